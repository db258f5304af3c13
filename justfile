# Outpost developer commands. `just` itself: `pip install rust-just`.

# List the recipes.
default:
    @just --list

# Run all tests against the object-storage emulators (what CI runs).
test *ARGS:
    scripts/test {{ ARGS }}

# Start the emulators; then `eval "$(scripts/test-servers env)"` in your shell.
servers-start:
    scripts/test-servers start

# Stop the emulators started by servers-start.
servers-stop:
    scripts/test-servers stop

# The AWS Lambda zip (runtime provided.al2023): the release binary, stripped, as `bootstrap`, in
# target/lambda/outpost-lambda.zip; fails if the binary needs a glibc newer than 2.34.
lambda-zip:
    scripts/package lambda-zip

# The container image (Dockerfile; needs a running Docker engine or another builder).
image TAG="outpost:dev":
    docker build -t {{ TAG }} .

# Clippy on every target, warnings are errors.
lint:
    cargo clippy --all-targets -- -D warnings

# Format all code.
fmt:
    cargo fmt --all

# Codec benchmark.
bench:
    cargo bench --bench codec

# Agent against a real API server holding ~10k objects (memory, CPU per event, time to first
# snapshot) against a kube-rs reflector; starts and stops its own API server.
bench-kube:
    #!/usr/bin/env bash
    set -euo pipefail
    cargo bench --bench agent_kube --no-run
    export OUTPOST_TEST_RUN=${TMPDIR:-/tmp}/outpost-bench-kube
    trap 'scripts/test-kube stop' EXIT
    scripts/test-kube start
    eval "$(scripts/test-kube env)"
    cargo bench --bench agent_kube

# Indexer: a ~100k-object snapshot load against COPY / multi-row INSERT, a 10-object diff into
# it, peak memory, and one indexer over 1,000 clusters, on the local PostgreSQL and MariaDB
# (OUTPOST_TEST_POSTGRES_URL / OUTPOST_TEST_MYSQL_URL, or scripts/test-db's defaults).
bench-indexer *ARGS:
    cargo bench --bench indexer -- {{ ARGS }}

# Write the golden v1 fixtures (refuses to overwrite fixtures/v1: they are frozen once committed).
fixtures:
    cargo run --example make-fixtures

# Fuzz segment decoding, head parsing and verification, and the indexer's segment choice
# (fuzz/harness.rs). With cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain:
# libFuzzer runs each target for SECONDS from seeds of fixtures/v1 (finds land in
# fuzz/artifacts/). Then, or without them, the same checks as bounded property tests with
# PROPTEST_CASES cases each (default 100000; the normal test suite runs 48).
fuzz SECONDS="60":
    #!/usr/bin/env bash
    set -euo pipefail
    if cargo fuzz --version >/dev/null 2>&1 && rustup run nightly rustc --version >/dev/null 2>&1; then
        fuzz/seed-corpus
        for target in segment segment_text head; do
            (cd fuzz && cargo +nightly fuzz run "$target" -- -max_total_time={{ SECONDS }} -rss_limit_mb=2048)
        done
    else
        echo "cargo-fuzz or a nightly toolchain is missing: property tests only" >&2
    fi
    PROPTEST_CASES=${PROPTEST_CASES:-100000} cargo test --test fuzz_format
