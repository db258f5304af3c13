//! The command line every benchmark reads: `cargo bench` passes `--bench` (a full run), `cargo
//! test` does not (a smoke run), and `-- --name value` sets one of the bench's figures.

use std::fmt::Display;
use std::str::FromStr;

/// Whether this is a full run (`cargo bench`) rather than the smoke run of `cargo test`.
pub fn is_full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The value after `name` on the command line, parsed; `None` when `name` is not given.
pub fn flag<T: FromStr>(name: &str) -> Option<T>
where
    T::Err: Display,
{
    let args: Vec<String> = std::env::args().collect();
    let value = args
        .iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))?;
    Some(
        value
            .parse()
            .unwrap_or_else(|e| panic!("{name} {value}: {e}")),
    )
}
