//! Reading a cluster's chain from a bucket: its head checked against the layout, and each listed
//! segment streamed with its bytes checked against the listing (`format::chain` checks, this
//! module does the I/O).

use std::io::Read;

use crate::format::{
    self, ClusterName, DecodeLimits, Expected, Head, ListedSegment, Record, SegmentHeader,
    SegmentSummary, StoredBytes,
};

use super::{Error, Key, Layout, SegmentStream, Store};

impl Layout {
    /// Checks a head read for `cluster` against this layout ([`format::verify_head`]): its seqs
    /// follow each other and every key it lists is the one the layout gives.
    pub fn verify_head(&self, cluster: &ClusterName, head: &Head) -> Result<(), format::Error> {
        format::verify_head(&self.head(cluster).to_string(), head, |t, seq| {
            self.segment(cluster, &head.epoch, seq, t).relative
        })
    }

    /// The key of a segment `head` (of `cluster`) lists.
    pub fn listed(&self, cluster: &ClusterName, head: &Head, listed: &ListedSegment<'_>) -> Key {
        self.segment(cluster, &head.epoch, listed.seq, listed.segment_type)
    }
}

impl Store {
    /// `cluster`'s `head.json`, parsed and checked against the layout; `None` when there is none.
    pub async fn read_head(&self, cluster: &ClusterName) -> Result<Option<Head>, Error> {
        let key = self.layout().head(cluster);
        let bytes = match self.get(&key).await {
            Ok((bytes, _)) => bytes,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let head = Head::from_json(&key.to_string(), &bytes).map_err(Error::Verify)?;
        self.layout()
            .verify_head(cluster, &head)
            .map_err(Error::Verify)?;
        Ok(Some(head))
    }

    /// Opens the stored bytes of a segment `head` (of `cluster`) lists, for a blocking read: the
    /// size the store reports is checked first, then the bytes are hashed and capped as they
    /// stream ([`StoredBytes::finish`] checks them).
    pub async fn open_listed(
        &self,
        cluster: &ClusterName,
        head: &Head,
        listed: &ListedSegment<'_>,
    ) -> Result<StoredBytes<Box<dyn Read + Send>>, Error> {
        let key = self.layout().listed(cluster, head, listed);
        let expected = Expected::of(&key.to_string(), listed);
        let (stored, size) = self.open_stream(&key).await?;
        expected.check_reported_size(size).map_err(Error::Verify)?;
        Ok(StoredBytes::new(expected, stored))
    }

    /// Streams the records of a segment `head` (of `cluster`) lists, decoding on a blocking
    /// thread: its reported size and its header are checked before any record is returned, its
    /// stored size and sha256 by [`ListedStream::finish`].
    pub async fn read_listed(
        &self,
        cluster: &ClusterName,
        head: &Head,
        listed: &ListedSegment<'_>,
        limits: &DecodeLimits,
    ) -> Result<ListedStream, Error> {
        let key = self.layout().listed(cluster, head, listed);
        let label = key.to_string();
        let expected = Expected::of(&label, listed);
        let (stored, size) = self.open_stream(&key).await?;
        expected.check_reported_size(size).map_err(Error::Verify)?;
        let capped = Box::new(stored.take(listed.bytes.saturating_add(1)));
        let stream = SegmentStream::start(&key, capped, limits).await?;
        format::chain::check_header(&label, head, listed, stream.header())
            .map_err(Error::Verify)?;
        Ok(ListedStream { stream, expected })
    }
}

/// A listed segment being read: its header (checked), then its records, then its summary once
/// the stored bytes are found to be the listed ones.
pub struct ListedStream {
    stream: SegmentStream,
    expected: Expected,
}

impl ListedStream {
    /// The segment's header, checked against the listing.
    pub fn header(&self) -> &SegmentHeader {
        self.stream.header()
    }

    /// The next record; `None` once all have been read (then call [`ListedStream::finish`]).
    pub async fn next(&mut self) -> Option<Result<Record, Error>> {
        self.stream.next().await
    }

    /// Reads any records left, and checks the stored size and sha256 against the listing.
    pub async fn finish(self) -> Result<SegmentSummary, Error> {
        let summary = self.stream.finish().await?;
        self.expected
            .check_read(summary.bytes, &summary.sha256)
            .map_err(Error::Verify)?;
        Ok(summary)
    }
}
