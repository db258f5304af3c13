//! The key layout of a bucket: the one place that turns names into object keys.
//!
//! ```text
//! <prefix>/outpost/v1/clusters/<cluster>/identity.json
//! <prefix>/outpost/v1/clusters/<cluster>/head.json
//! <prefix>/outpost/v1/clusters/<cluster>/decommissioned.json
//! <prefix>/outpost/v1/clusters/<cluster>/epochs/<epoch>/<seq>.snap.ndjson.zst
//! <prefix>/outpost/v1/clusters/<cluster>/epochs/<epoch>/<seq>.diff.ndjson.zst
//! ```
//! Every component is validated ([`ClusterName`], [`Epoch`], a hex seq, a checked prefix), so no
//! input can produce a key outside its cluster's prefix.

use object_store::path::Path;

use crate::format::names::{parse_seq_key, seq_key};
use crate::format::{ClusterName, Epoch, SegmentType};

use super::Error;

/// The format root below the bucket prefix.
pub const FORMAT_ROOT: &str = "outpost/v1";

/// Builds every key of a bucket under an optional prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Validated prefix parts (may be empty).
    prefix: Vec<String>,
}

/// A key: the full object path in the bucket plus the part after the prefix, which is what
/// `head.json` records (so a bucket can be moved under another prefix without rewriting heads).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// Relative to the bucket prefix, e.g. `outpost/v1/clusters/a/head.json`.
    pub relative: String,
    /// The full path in the bucket, prefix included.
    pub path: Path,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path.as_ref())
    }
}

impl Layout {
    /// A layout under `prefix` (`""` for the bucket root). Prefix parts may hold ASCII letters,
    /// digits, `.`, `_` and `-`, and may not be `.` or `..`.
    pub fn new(prefix: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidPrefix {
            prefix: prefix.to_string(),
            reason,
        };
        let mut parts = Vec::new();
        for part in prefix.split('/').filter(|p| !p.is_empty()) {
            if part == "." || part == ".." {
                return Err(invalid(format!("{part:?} is not allowed as a path part")));
            }
            if let Some(c) = part
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            {
                return Err(invalid(format!(
                    "{c:?} is not allowed (use ASCII letters, digits, '.', '_', '-')"
                )));
            }
            parts.push(part.to_string());
        }
        Ok(Self { prefix: parts })
    }

    /// The prefix as given (normalised, without leading or trailing slashes).
    pub fn prefix(&self) -> String {
        self.prefix.join("/")
    }

    fn key(&self, relative: String) -> Key {
        let full = if self.prefix.is_empty() {
            relative.clone()
        } else {
            format!("{}/{relative}", self.prefix())
        };
        // Every part was validated: nothing here needs percent-encoding or can escape.
        Key {
            path: Path::from(full),
            relative,
        }
    }

    /// The folder holding one folder per cluster; listed with a delimiter to find clusters.
    pub fn clusters_dir(&self) -> Path {
        self.key(format!("{FORMAT_ROOT}/clusters")).path
    }

    fn cluster_dir(cluster: &ClusterName) -> String {
        format!("{FORMAT_ROOT}/clusters/{cluster}")
    }

    /// `…/clusters/<cluster>/head.json`
    pub fn head(&self, cluster: &ClusterName) -> Key {
        self.key(format!("{}/head.json", Self::cluster_dir(cluster)))
    }

    /// `…/clusters/<cluster>/identity.json`
    pub fn identity(&self, cluster: &ClusterName) -> Key {
        self.key(format!("{}/identity.json", Self::cluster_dir(cluster)))
    }

    /// `…/clusters/<cluster>/decommissioned.json`
    pub fn decommissioned(&self, cluster: &ClusterName) -> Key {
        self.key(format!(
            "{}/decommissioned.json",
            Self::cluster_dir(cluster)
        ))
    }

    /// `…/clusters/<cluster>/epochs/<epoch>/<seq>.{snap,diff}.ndjson.zst`
    pub fn segment(
        &self,
        cluster: &ClusterName,
        epoch: &Epoch,
        seq: u64,
        segment_type: SegmentType,
    ) -> Key {
        let suffix = match segment_type {
            SegmentType::Snapshot => "snap",
            SegmentType::Diff => "diff",
        };
        self.key(format!(
            "{}/epochs/{epoch}/{}.{suffix}.ndjson.zst",
            Self::cluster_dir(cluster),
            seq_key(seq)
        ))
    }

    /// The cluster whose folder a listed common prefix is, or `None` for anything else.
    pub fn cluster_of_dir(&self, dir: &Path) -> Option<ClusterName> {
        let clusters = self.clusters_dir();
        let mut rest = dir.prefix_match(&clusters)?;
        let name = rest.next()?;
        if rest.next().is_some() {
            return None;
        }
        ClusterName::new(name.as_ref()).ok()
    }

    /// The cluster an object key (full or relative) belongs to, e.g. from a bucket event
    /// notification; `None` for keys outside this layout's clusters.
    pub fn cluster_of_key(&self, key: &str) -> Option<ClusterName> {
        let relative = if self.prefix.is_empty() {
            key
        } else {
            key.strip_prefix(&format!("{}/", self.prefix()))?
        };
        let rest = relative.strip_prefix(&format!("{FORMAT_ROOT}/clusters/"))?;
        let (cluster, file) = rest.split_once('/')?;
        if file.is_empty() {
            return None;
        }
        ClusterName::new(cluster).ok()
    }

    /// Parses a segment key (full or relative) back into its parts.
    pub fn parse_segment(
        &self,
        key: &str,
    ) -> Result<(ClusterName, Epoch, u64, SegmentType), Error> {
        let invalid = |reason: &str| Error::InvalidKey {
            key: key.to_string(),
            reason: reason.to_string(),
        };
        let relative = if self.prefix.is_empty() {
            key
        } else {
            key.strip_prefix(&format!("{}/", self.prefix()))
                .unwrap_or(key)
        };
        let rest = relative
            .strip_prefix(&format!("{FORMAT_ROOT}/clusters/"))
            .ok_or_else(|| invalid("not under outpost/v1/clusters/"))?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [cluster, "epochs", epoch, file] = parts[..] else {
            return Err(invalid(
                "expected <cluster>/epochs/<epoch>/<seq>.<type>.ndjson.zst",
            ));
        };
        let cluster = ClusterName::new(cluster).map_err(|e| invalid(&e.to_string()))?;
        let epoch = Epoch::new(epoch).map_err(|e| invalid(&e.to_string()))?;
        let (seq, segment_type) = if let Some(seq) = file.strip_suffix(".snap.ndjson.zst") {
            (seq, SegmentType::Snapshot)
        } else if let Some(seq) = file.strip_suffix(".diff.ndjson.zst") {
            (seq, SegmentType::Diff)
        } else {
            return Err(invalid(
                "the file name must end in .snap.ndjson.zst or .diff.ndjson.zst",
            ));
        };
        let seq = parse_seq_key(seq).map_err(|e| invalid(&e.to_string()))?;
        Ok((cluster, epoch, seq, segment_type))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cluster(name: &str) -> ClusterName {
        ClusterName::new(name).unwrap()
    }

    #[test]
    fn keys_follow_the_documented_layout() {
        let layout = Layout::new("/fleet/prod/").unwrap();
        let c = cluster("eu-1");
        let e = Epoch::from_parts(1_763_899_200_000, 0xabcdef01).unwrap();
        assert_eq!(
            layout.head(&c).path.as_ref(),
            "fleet/prod/outpost/v1/clusters/eu-1/head.json"
        );
        assert_eq!(
            layout.head(&c).relative,
            "outpost/v1/clusters/eu-1/head.json"
        );
        assert_eq!(
            layout.segment(&c, &e, 3, SegmentType::Diff).relative,
            "outpost/v1/clusters/eu-1/epochs/1763899200000-abcdef01/0000000000000003.diff.ndjson.zst"
        );
        assert_eq!(
            layout.identity(&c).relative,
            "outpost/v1/clusters/eu-1/identity.json"
        );
        assert_eq!(
            layout.decommissioned(&c).relative,
            "outpost/v1/clusters/eu-1/decommissioned.json"
        );
        assert_eq!(
            Layout::new("").unwrap().clusters_dir().as_ref(),
            "outpost/v1/clusters"
        );
    }

    #[test]
    fn prefixes_that_could_escape_are_refused() {
        for bad in ["..", "a/../b", "./a", "a b", "a%2F", "ä", "a\\b", "a?b"] {
            let err = Layout::new(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn segment_keys_parse_back() {
        let layout = Layout::new("p").unwrap();
        let c = cluster("a");
        let e = Epoch::from_parts(1, 2).unwrap();
        for t in [SegmentType::Snapshot, SegmentType::Diff] {
            let key = layout.segment(&c, &e, 77, t);
            assert_eq!(
                layout.parse_segment(&key.relative).unwrap(),
                (c.clone(), e.clone(), 77, t)
            );
            assert_eq!(
                layout.parse_segment(key.path.as_ref()).unwrap(),
                (c.clone(), e.clone(), 77, t)
            );
        }
        for bad in [
            "outpost/v1/clusters/a/head.json",
            "outpost/v1/clusters/../epochs/0000000000001-00000002/0000000000000001.diff.ndjson.zst",
            "outpost/v1/clusters/a/epochs/x/0000000000000001.diff.ndjson.zst",
            "outpost/v1/clusters/a/epochs/0000000000001-00000002/1.diff.ndjson.zst",
            "elsewhere/a",
        ] {
            assert!(layout.parse_segment(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cluster_dirs_are_recognised() {
        let layout = Layout::new("p").unwrap();
        assert_eq!(
            layout.cluster_of_dir(&Path::from("p/outpost/v1/clusters/abc")),
            Some(cluster("abc"))
        );
        assert_eq!(
            layout.cluster_of_dir(&Path::from("p/outpost/v1/clusters/ABC")),
            None
        );
        assert_eq!(
            layout.cluster_of_dir(&Path::from("q/outpost/v1/clusters/abc")),
            None
        );
    }

    #[test]
    fn keys_name_their_cluster() {
        let layout = Layout::new("fleet/prod").unwrap();
        for key in [
            "fleet/prod/outpost/v1/clusters/eu-1/head.json",
            "fleet/prod/outpost/v1/clusters/eu-1/epochs/1795435140000-0f1e2d3c/0000000000000002.diff.ndjson.zst",
            "fleet/prod/outpost/v1/clusters/eu-1/decommissioned.json",
        ] {
            assert_eq!(layout.cluster_of_key(key), Some(cluster("eu-1")), "{key}");
        }
        for key in [
            "fleet/prod/outpost/v1/clusters/eu-1/",
            "fleet/prod/outpost/v1/clusters/eu-1",
            "fleet/other/outpost/v1/clusters/eu-1/head.json",
            "fleet/prod/outpost/v2/clusters/eu-1/head.json",
            "fleet/prod/outpost/v1/clusters/EU_1/head.json",
        ] {
            assert_eq!(layout.cluster_of_key(key), None, "{key}");
        }
        let bare = Layout::new("").unwrap();
        assert_eq!(
            bare.cluster_of_key("outpost/v1/clusters/a/head.json"),
            Some(cluster("a"))
        );
    }

    proptest! {
        #[test]
        fn every_key_stays_inside_its_cluster(name in "[a-z0-9-]{1,63}", seq in any::<u64>(), ms in 0u64..9_999_999_999_999, r in any::<u32>(), prefix in "[a-z0-9./_-]{0,20}") {
            let (Ok(c), Ok(layout)) = (ClusterName::new(&name), Layout::new(&prefix)) else { return Ok(()); };
            let e = Epoch::from_parts(ms, r).unwrap();
            let dir = format!("{}/", layout.key(format!("{FORMAT_ROOT}/clusters/{c}")).path);
            for key in [layout.head(&c), layout.identity(&c), layout.decommissioned(&c),
                        layout.segment(&c, &e, seq, SegmentType::Snapshot), layout.segment(&c, &e, seq, SegmentType::Diff)] {
                prop_assert!(key.path.as_ref().starts_with(&dir), "{} not under {}", key.path, dir);
                prop_assert!(!key.path.parts().any(|p| p.as_ref() == ".." || p.as_ref() == "."));
            }
        }
    }
}
