//! Who may read through the gateway: bearer tokens from a file (one per consumer, each with the
//! accounts it may read), read again when the file changes. A file that does not parse fails
//! closed: no token is accepted until it is fixed.
//!
//! ```yaml
//! - name: clouddriver          # names the consumer in logs and metrics
//!   token: 3c1f…               # at least 32 characters
//!   accounts: ["*"]            # optional: the accounts it may read ("*": all, the default)
//! ```

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The shortest token accepted: guessing must be out of reach.
pub const MIN_TOKEN_LENGTH: usize = 32;

/// How often the file's modification time is looked at, at most.
const RECHECK: Duration = Duration::from_secs(1);

/// Why the tokens file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the tokens file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid tokens file {path}: {reason}")]
    Parse { path: String, reason: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    token: String,
    #[serde(default)]
    accounts: Option<Vec<String>>,
}

/// A consumer a token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    pub name: String,
    /// `None`: every account.
    accounts: Option<Vec<String>>,
    digest: [u8; 32],
}

impl Consumer {
    /// Whether this consumer may read `account`.
    pub fn may_read(&self, account: &str) -> bool {
        self.accounts
            .as_ref()
            .is_none_or(|accounts| accounts.iter().any(|a| a == account))
    }
}

/// Parses and checks a tokens file's text (`path` names it in errors).
pub fn parse(path: &str, text: &str) -> Result<Vec<Consumer>, Error> {
    let fail = |reason: String| Error::Parse {
        path: path.to_string(),
        reason,
    };
    let entries: Vec<Entry> = serde_yaml_ng::from_str(text).map_err(|e| fail(e.to_string()))?;
    let mut consumers: Vec<Consumer> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let at = format!("entry {i} ({:?})", entry.name);
        if entry.name.trim().is_empty() || entry.name.chars().any(char::is_control) {
            return Err(fail(format!(
                "{at}: the name must be printable and not empty"
            )));
        }
        if entry.token.len() < MIN_TOKEN_LENGTH {
            return Err(fail(format!(
                "{at}: the token is {} characters, fewer than the {MIN_TOKEN_LENGTH} required",
                entry.token.len()
            )));
        }
        if entry
            .token
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(fail(format!(
                "{at}: the token has blanks or control characters"
            )));
        }
        let accounts = match entry.accounts {
            None => None,
            Some(accounts) if accounts.iter().any(|a| a == "*") => None,
            Some(accounts) => {
                for account in &accounts {
                    crate::format::check_account_name(account)
                        .map_err(|e| fail(format!("{at}: {e}")))?;
                }
                Some(accounts)
            }
        };
        let digest: [u8; 32] = Sha256::digest(entry.token.as_bytes()).into();
        if consumers.iter().any(|c| c.digest == digest) {
            return Err(fail(format!("{at}: the same token as an earlier entry")));
        }
        if consumers.iter().any(|c| c.name == entry.name) {
            return Err(fail(format!("{at}: the same name as an earlier entry")));
        }
        consumers.push(Consumer {
            name: entry.name,
            accounts,
            digest,
        });
    }
    Ok(consumers)
}

/// The consumer whose token `bearer` is, compared in constant time per consumer.
fn find<'a>(consumers: &'a [Consumer], bearer: &str) -> Option<&'a Consumer> {
    let digest: [u8; 32] = Sha256::digest(bearer.as_bytes()).into();
    let mut found = None;
    for consumer in consumers {
        let difference = consumer
            .digest
            .iter()
            .zip(digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if difference == 0 {
            found = Some(consumer);
        }
    }
    found
}

struct Loaded {
    modified: Option<SystemTime>,
    checked: Instant,
    /// `Err`: the file as last read does not parse (every token refused).
    consumers: Result<Vec<Consumer>, String>,
}

/// The tokens file, read again when it changes.
pub struct Tokens {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

impl Tokens {
    /// Reads the file; a file that cannot be read or parsed is an error at start.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let (modified, consumers) = read(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            loaded: Mutex::new(Loaded {
                modified,
                checked: Instant::now(),
                consumers: Ok(consumers),
            }),
        })
    }

    /// The consumer of `bearer`, if the file (as of now) has it.
    pub fn authenticate(&self, bearer: &str) -> Option<Consumer> {
        let mut loaded = match self.loaded.lock() {
            Ok(loaded) => loaded,
            Err(poisoned) => poisoned.into_inner(),
        };
        if loaded.checked.elapsed() >= RECHECK {
            loaded.checked = Instant::now();
            let modified = std::fs::metadata(&self.path)
                .and_then(|m| m.modified())
                .ok();
            if modified != loaded.modified {
                loaded.modified = modified;
                loaded.consumers = match read(&self.path) {
                    Ok((_, consumers)) => {
                        tracing::info!(path = %self.path.display(), consumers = consumers.len(), "tokens file read again");
                        Ok(consumers)
                    }
                    Err(error) => {
                        tracing::error!(%error, "the tokens file changed and cannot be used: every token is refused until it is fixed");
                        Err(error.to_string())
                    }
                };
            }
        }
        match &loaded.consumers {
            Ok(consumers) => find(consumers, bearer).cloned(),
            Err(_) => None,
        }
    }
}

fn read(path: &Path) -> Result<(Option<SystemTime>, Vec<Consumer>), Error> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: shown.clone(),
        source,
    })?;
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Ok((modified, parse(&shown, &text)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn tokens_name_consumers_and_their_accounts() {
        let consumers = parse(
            "t.yaml",
            &format!(
                "- {{name: cd, token: {A}}}\n- {{name: team, token: {B}, accounts: [eu-1]}}\n"
            ),
        )
        .unwrap();
        let cd = find(&consumers, A).unwrap();
        assert!(cd.may_read("anything"));
        let team = find(&consumers, B).unwrap();
        assert!(team.may_read("eu-1") && !team.may_read("eu-2"));
        assert!(find(&consumers, "wrong").is_none());
        assert!(find(&consumers, &A[1..]).is_none());
    }

    #[test]
    fn a_bad_file_is_refused_naming_the_entry() {
        for (text, reason) in [
            ("- {name: cd, token: short}", "fewer than the 32"),
            (
                &format!("- {{name: a, token: {A}}}\n- {{name: b, token: {A}}}"),
                "same token",
            ),
            (
                &format!("- {{name: a, token: {A}}}\n- {{name: a, token: {B}}}"),
                "same name",
            ),
            (
                &format!("- {{name: a, token: {A}, accounts: [Bad_Name]}}"),
                "entry 0",
            ),
            (
                &format!("- {{name: a, token: {A}, extra: 1}}"),
                "unknown field",
            ),
            ("not: a list", "invalid tokens file t.yaml"),
        ] {
            let error = parse("t.yaml", text).unwrap_err().to_string();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn the_file_is_read_again_when_it_changes_and_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.yaml");
        std::fs::write(&path, format!("- {{name: cd, token: {A}}}\n")).unwrap();
        let tokens = Tokens::load(&path).unwrap();
        assert!(tokens.authenticate(A).is_some());
        let change = |text: String| {
            std::fs::write(&path, text).unwrap();
            // A modification time of its own, and past the recheck interval.
            let later = SystemTime::now() + Duration::from_secs(5);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(later)
                .unwrap();
            tokens.loaded.lock().unwrap().checked = Instant::now() - RECHECK;
        };
        change(format!("- {{name: cd, token: {B}}}\n"));
        assert!(
            tokens.authenticate(A).is_none(),
            "a removed token is refused"
        );
        assert!(tokens.authenticate(B).is_some());
        change("- {name: cd, token: short}\n".into());
        assert!(
            tokens.authenticate(B).is_none(),
            "a broken file refuses every token"
        );
    }
}
