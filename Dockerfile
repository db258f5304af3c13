# syntax=docker/dockerfile:1
# The outpost image: one binary for `outpost agent`, `outpost index` and `outpost gateway`
# (choose with the arguments, e.g. `docker run IMAGE index --bucket … --db-secret …`).
#
# Stage "build" compiles the release binary and assembles the runtime's whole root filesystem
# with scripts/package image-rootfs: the binary, the shared libraries it loads and the dynamic
# loader, CA certificates, /etc/passwd and /etc/group with the user nonroot (65532), an empty
# /tmp. The tests run that same script and start the result with chroot, as uid 65532, without
# Docker (tests/image_rootfs.rs).
#
# Stage "runtime" is that directory and nothing else: no shell, no package manager, non-root.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target caches only speed up rebuilds; the binary is copied out of the cached
# target directory by image-rootfs within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin outpost \
    && scripts/package image-rootfs target/release/outpost /rootfs

FROM scratch AS runtime
# Copied from another stage, files keep the owners and modes the script gave them (/tmp 1777,
# /home/nonroot owned by 65532).
COPY --from=build /rootfs/ /
USER 65532:65532
ENV HOME=/home/nonroot
WORKDIR /home/nonroot
# The agent's health and metrics (--listen), the gateway's API (--listen).
EXPOSE 9090 8443
ENTRYPOINT ["/outpost"]
CMD ["--help"]
