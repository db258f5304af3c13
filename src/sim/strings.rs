//! String encodings the simulated objects need: base64, IPv4 addresses, stable hashes, image references.

use sha2::{Digest, Sha256};

use crate::sim::vocabulary::SAFE_ALPHABET;

pub(in crate::sim) const BASE64_ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A stable `SAFE_ALPHABET` hash of `seed`, for labels that must agree across pods of one owner.
pub(in crate::sim) fn safe_hash(seed: &str) -> String {
    Sha256::digest(seed.as_bytes())
        .iter()
        .take(10)
        .map(|b| char::from(SAFE_ALPHABET[usize::from(*b) % SAFE_ALPHABET.len()]))
        .collect()
}

pub(in crate::sim) fn ipv4(ip: u32) -> String {
    let [a, b, c, d] = ip.to_be_bytes();
    format!("{a}.{b}.{c}.{d}")
}

pub(in crate::sim) fn truncate(s: &str, n: usize) -> &str {
    s.get(..n).unwrap_or(s)
}

pub(in crate::sim) fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The Spinnaker application of an app: its name's first word.
pub(in crate::sim) fn spinnaker_application(name: &str) -> &str {
    name.split('-').next().unwrap_or(name)
}

/// The repository of an image reference, without tag or digest.
pub(in crate::sim) fn image_repo_of(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    match without_digest.rfind(':') {
        Some(i) if !without_digest[i..].contains('/') => &without_digest[..i],
        _ => without_digest,
    }
}

/// The image as the kubelet reports it in `containerStatuses[].image` (tag without digest).
pub(in crate::sim) fn image_display(image: &str) -> String {
    match image.split_once('@') {
        Some((repo_tag, _))
            if repo_tag
                .rfind(':')
                .is_some_and(|i| !repo_tag[i..].contains('/')) =>
        {
            repo_tag.to_string()
        }
        _ => image.to_string(),
    }
}

pub(in crate::sim) fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(
                    BASE64_ALPHABET[(n >> (18 - 6 * i)) as usize & 63],
                ));
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(in crate::sim) fn base64url(data: &[u8]) -> String {
    base64(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_repositories_and_base64() {
        assert_eq!(image_repo_of("ghcr.io/a/b:v1@sha256:00"), "ghcr.io/a/b");
        assert_eq!(image_repo_of("localhost:5000/b"), "localhost:5000/b");
        assert_eq!(base64(b"hello"), "aGVsbG8=");
    }
}
