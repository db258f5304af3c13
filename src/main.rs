//! The `outpost` command: parse, run, print the error chain once, exit with a documented code.

use std::process::ExitCode;

fn main() -> ExitCode {
    outpost::cli::main()
}
