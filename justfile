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

# Clippy on every target, warnings are errors.
lint:
    cargo clippy --all-targets -- -D warnings

# Format all code.
fmt:
    cargo fmt --all

# Codec benchmark.
bench:
    cargo bench --bench codec

# Write the golden v1 fixtures (refuses to overwrite fixtures/v1: they are frozen once committed).
fixtures:
    cargo run --example make-fixtures
