//! The `outpost` command: parse, run, print the error chain once, exit with a documented code.

use std::process::ExitCode;

/// mimalloc returns freed memory to the system promptly: the agent's initial lists allocate far
/// more than the state it keeps, and glibc's malloc held on to that peak (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    outpost::cli::main()
}
