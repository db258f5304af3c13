//! Applying fetched segments through an account's writer: a snapshot in its two passes, with
//! the next batch prepared on a blocking thread while the database writes the previous one, and
//! a diff record by record.

use std::collections::BTreeSet;

use crate::format::{Record, SegmentReader};

use super::apply::{AccountWriter, ApplyError, SnapshotLoad};
use super::fetch::FetchedSegment;
use super::{Error, Indexer};

impl Indexer {
    /// Replaces the account's rows by a snapshot, in the writer's two passes over its records
    /// ([`SnapshotLoad`], then [`SnapshotRows`](super::apply::SnapshotRows)); `previous_types`
    /// are the cache types the account had before. In each pass a blocking thread decodes the
    /// records and prepares the next batches while this task writes the previous one, so the
    /// indexer's CPU work and the database's overlap. Progress counts both passes.
    pub(super) async fn load_snapshot(
        &self,
        writer: &mut AccountWriter<'_>,
        segment: &FetchedSegment,
        previous_types: &BTreeSet<String>,
    ) -> Result<(), Error> {
        let cluster = segment.cluster.clone();
        let _turn = if segment.stored_bytes >= self.options.large_snapshot_bytes {
            let waited = std::time::Instant::now();
            let turn = self
                .options
                .large_loads
                .acquire()
                .await
                .map_err(|e| Error::Task {
                    cluster: cluster.clone(),
                    reason: format!("waiting for the turn of large snapshots: {e}"),
                })?;
            tracing::debug!(cluster = %cluster, waited_ms = waited.elapsed().as_millis() as u64, "large snapshot: its turn");
            Some(turn)
        } else {
            None
        };
        let mut progress = SnapshotProgress::new(&cluster, &self.options.progress);

        let mut load: SnapshotLoad<'_, '_> = writer.begin_snapshot().await?;
        let maker = load.object_maker();
        let (mut prepared, producer) =
            self.prepare(segment, move |records| maker.objects(records))?;
        while let Some(batch) = prepared.recv().await {
            progress.step(batch.records, batch.total);
            load.store_objects(batch.prepared).await?;
        }
        joined(&cluster, producer).await?;

        let mut rows = load.link().await?;
        let maker = rows.row_maker();
        let (mut prepared, producer) = self.prepare(segment, move |records| maker.rows(records))?;
        while let Some(batch) = prepared.recv().await {
            progress.step(batch.records, batch.total);
            rows.store_rows(batch.prepared).await?;
        }
        joined(&cluster, producer).await?;
        rows.finish(previous_types).await?;
        progress.finish();
        Ok(())
    }

    /// Starts decoding `segment` on a blocking thread, sending on its records as batches that
    /// `prepare` made ready to write.
    fn prepare<T: Send + 'static>(
        &self,
        segment: &FetchedSegment,
        prepare: impl Fn(Vec<Record>) -> Result<T, ApplyError> + Send + 'static,
    ) -> Result<Prepared<T>, Error> {
        let (batches, prepared) = tokio::sync::mpsc::channel(2);
        let key = segment.key.clone();
        let copy = segment.reopen()?;
        let limits = self.options.limits.clone();
        let cluster = segment.cluster.clone();
        let producer = tokio::task::spawn_blocking(move || {
            prepare_batches(&key, copy, &limits, &prepare, &cluster, &batches)
        });
        Ok((prepared, producer))
    }

    /// Applies a diff's records, then rewrites the rows they touched.
    pub(super) async fn apply_diff(
        &self,
        writer: &mut AccountWriter<'_>,
        segment: &FetchedSegment,
    ) -> Result<(), Error> {
        let cluster = segment.cluster.clone();
        let mut reader = SegmentReader::new(&segment.key, segment.reopen()?, &self.options.limits)
            .map_err(|e| Error::format(&cluster, e))?;
        let mut diff = writer.diff();
        while let Some(record) = reader
            .next_record()
            .map_err(|e| Error::format(&cluster, e))?
        {
            diff.apply(record).await?;
        }
        diff.finish().await?;
        Ok(())
    }
}

/// The batches of one pass as they are prepared, and the thread preparing them.
type Prepared<T> = (
    tokio::sync::mpsc::Receiver<PreparedBatch<T>>,
    tokio::task::JoinHandle<Result<(), Error>>,
);

/// The end of a pass's preparing thread: its error, if it failed.
async fn joined(
    cluster: &str,
    producer: tokio::task::JoinHandle<Result<(), Error>>,
) -> Result<(), Error> {
    producer.await.map_err(|e| Error::Task {
        cluster: cluster.to_string(),
        reason: e.to_string(),
    })?
}

/// One pass of a snapshot load on a blocking thread: decodes the records and sends them on as
/// prepared batches, until the segment ends or the receiver is gone.
fn prepare_batches<T>(
    key: &str,
    bytes: impl std::io::Read,
    limits: &crate::format::DecodeLimits,
    prepare: &impl Fn(Vec<Record>) -> Result<T, ApplyError>,
    cluster: &str,
    batches: &tokio::sync::mpsc::Sender<PreparedBatch<T>>,
) -> Result<(), Error> {
    let mut reader =
        SegmentReader::new(key, bytes, limits).map_err(|e| Error::format(cluster, e))?;
    let total = reader.header().counts.put;
    loop {
        let mut records = Vec::with_capacity(super::apply_batch());
        while records.len() < super::apply_batch() {
            match reader
                .next_record()
                .map_err(|e| Error::format(cluster, e))?
            {
                Some(record) => records.push(record),
                None => break,
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        let batch = PreparedBatch {
            records: records.len() as u64,
            total,
            prepared: prepare(records)?,
        };
        if batches.blocking_send(batch).is_err() {
            // The writer stopped (its error is reported there).
            return Ok(());
        }
    }
}

/// A batch of a snapshot, prepared off the async task.
struct PreparedBatch<T> {
    /// Records in this batch.
    records: u64,
    /// Records in the snapshot.
    total: u64,
    prepared: T,
}

/// Reports a large snapshot's progress: to the hook when there is one, else as a log line every
/// [`super::PROGRESS_FROM_RECORDS`] records.
struct SnapshotProgress<'a> {
    cluster: &'a str,
    hook: &'a super::ProgressHook,
    done: u64,
    total: u64,
    logged: Option<u64>,
}

impl<'a> SnapshotProgress<'a> {
    fn new(cluster: &'a str, hook: &'a super::ProgressHook) -> Self {
        Self {
            cluster,
            hook,
            done: 0,
            total: 0,
            logged: None,
        }
    }

    fn large(&self) -> bool {
        self.total >= 2 * super::PROGRESS_FROM_RECORDS
    }

    /// Notes a batch of `records` about to be written, of `total` records in the snapshot.
    fn step(&mut self, records: u64, total: u64) {
        self.total = 2 * total;
        self.report();
        self.done += records;
    }

    fn report(&mut self) {
        if !self.large() {
            return;
        }
        match &self.hook.0 {
            Some(report) => report(self.cluster, self.done, self.total),
            None => {
                if self
                    .logged
                    .is_none_or(|logged| self.done >= logged + super::PROGRESS_FROM_RECORDS)
                {
                    tracing::info!(cluster = %self.cluster, done = self.done, total = self.total, "loading snapshot");
                    self.logged = Some(self.done);
                }
            }
        }
    }

    fn finish(&self) {
        if self.large()
            && let Some(report) = &self.hook.0
        {
            report(self.cluster, self.total, self.total);
        }
    }
}
