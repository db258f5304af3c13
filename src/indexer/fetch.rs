//! Fetching a segment: its stored bytes streamed once into a temporary file while their size and
//! sha256 are checked, then the copy decoded and checked against the listing, before anything
//! is applied. A cluster's run so holds about one segment's decode buffers in memory whatever
//! its head lists, its disk use is bounded by the listed-bytes quota, and the bucket is read once
//! per segment (re-fetching to apply would read it twice and need the sha256 checked again).

use std::collections::BTreeSet;

use crate::cache::KubernetesKind;
use crate::format::{
    self, ClusterName, Head, ListedSegment, ListedSegmentReader, Record, StoredBytes,
};
use crate::store;

use super::{Error, Indexer};

/// A verified segment, its stored bytes in a temporary file, with what applying needs to know
/// first.
pub(super) struct FetchedSegment {
    pub(super) cluster: String,
    pub(super) key: String,
    file: tempfile::NamedTempFile,
    /// Its stored size.
    pub(super) stored_bytes: u64,
    /// The cache types its records touch.
    pub(super) types: BTreeSet<String>,
}

impl Indexer {
    /// Downloads one segment into a temporary file, checking its size and sha256 as it streams,
    /// then decodes the copy, checking its header and every record, before anything is applied;
    /// notes the cache types its records touch.
    pub(super) async fn fetch_verified(
        &self,
        cluster: &ClusterName,
        head: &Head,
        listed: &ListedSegment<'_>,
    ) -> Result<FetchedSegment, Error> {
        let name = cluster.as_str();
        let key = self.store.layout().listed(cluster, head, listed);
        let label = key.to_string();
        let stored = self
            .store
            .open_listed(cluster, head, listed)
            .await
            .map_err(|e| match e {
                store::Error::Verify(e) => Error::format(name, e),
                e => Error::store(name, e),
            })?;
        let copy_label = label.clone();
        let file = tokio::task::spawn_blocking(move || copy_verified(stored, &copy_label))
            .await
            .map_err(|e| Error::Task {
                cluster: name.to_string(),
                reason: e.to_string(),
            })?
            .map_err(|e| match e {
                CopyFailure::Read(reason) => Error::Task {
                    cluster: name.to_string(),
                    reason,
                },
                CopyFailure::Verify(e) => Error::format(name, e),
            })?;
        let check = file.reopen().map_err(|e| Error::Task {
            cluster: name.to_string(),
            reason: format!("reopening the copy of {label}: {e}"),
        })?;
        let limits = self.options.limits.clone();
        let head = head.clone();
        let index = listed.index;
        let max_puts = self.options.quotas.objects;
        let types = tokio::task::spawn_blocking(move || -> Result<_, Error> {
            let format_error = |e| Error::format(head.cluster.as_str(), e);
            let listed = head.segments().nth(index).ok_or_else(|| Error::Task {
                cluster: head.cluster.to_string(),
                reason: format!("{label}: the chain has no segment #{index}"),
            })?;
            let mut reader = ListedSegmentReader::new(
                &label,
                &head,
                &listed,
                std::io::BufReader::new(check),
                &limits,
            )
            .map_err(format_error)?;
            super::Quotas::check(
                head.cluster.as_str(),
                "the puts a segment's header announces",
                reader.header().counts.put,
                max_puts,
                "--max-objects",
            )?;
            let mut types = BTreeSet::new();
            while let Some(record) = reader.next_record().map_err(format_error)? {
                let target = match &record {
                    Record::Put { target, .. } | Record::Delete { target } => target,
                };
                types.insert(
                    KubernetesKind::from_manifest(&target.api_version, &target.kind)
                        .as_str()
                        .to_string(),
                );
            }
            reader.finish().map_err(format_error)?;
            Ok(types)
        })
        .await
        .map_err(|e| Error::Task {
            cluster: name.to_string(),
            reason: e.to_string(),
        })??;
        Ok(FetchedSegment {
            cluster: name.to_string(),
            key: key.to_string(),
            file,
            stored_bytes: listed.bytes,
            types,
        })
    }
}

impl FetchedSegment {
    /// A new reader of the segment's stored bytes, from the start.
    pub(super) fn reopen(&self) -> Result<std::io::BufReader<std::fs::File>, Error> {
        self.file
            .reopen()
            .map(|file| std::io::BufReader::with_capacity(256 << 10, file))
            .map_err(|e| Error::Task {
                cluster: self.cluster.clone(),
                reason: format!("reopening the copy of {}: {e}", self.key),
            })
    }
}

/// Why a segment's copy failed.
enum CopyFailure {
    /// Reading the store or writing the temporary file failed.
    Read(String),
    /// The bytes are not the listed ones.
    Verify(format::Error),
}

/// Copies a listed segment's stored bytes into a temporary file, and checks they were the
/// listed ones.
fn copy_verified(
    mut stored: StoredBytes<impl std::io::Read>,
    label: &str,
) -> Result<tempfile::NamedTempFile, CopyFailure> {
    use std::io::Write;
    let failed = |e: std::io::Error| CopyFailure::Read(format!("reading {label}: {e}"));
    let mut file = tempfile::NamedTempFile::new().map_err(failed)?;
    let mut writer = std::io::BufWriter::with_capacity(256 << 10, &mut file);
    std::io::copy(&mut stored, &mut writer).map_err(failed)?;
    writer.flush().map_err(failed)?;
    drop(writer);
    stored.finish().map_err(CopyFailure::Verify)?;
    Ok(file)
}
