//! Applying fetched segments through an account's writer: a snapshot in its two passes, with
//! the next batch prepared on a blocking thread while the database writes the previous one, and
//! a diff record by record.

use crate::format::{SegmentReader, SegmentType};

use super::apply::{AccountWriter, ObjectBatch, RowBatch, RowMaker};
use super::fetch::FetchedSegment;
use super::{Error, Indexer};

impl Indexer {
    /// Loads a snapshot in the writer's two passes over its records (see
    /// [`AccountWriter::begin_snapshot`]). In each pass a blocking thread decodes the records
    /// and prepares the next batches ([`RowMaker`]) while this task writes the previous one, so
    /// the indexer's CPU work and the database's overlap. Progress counts both passes.
    pub(super) async fn load_snapshot(
        &self,
        writer: &mut AccountWriter<'_>,
        segment: &FetchedSegment,
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
        for pass in [SnapshotPass::Objects, SnapshotPass::Rows] {
            let (batches, mut prepared) = tokio::sync::mpsc::channel(2);
            let producer = {
                let key = segment.key.clone();
                let copy = segment.reopen()?;
                let limits = self.options.limits.clone();
                let maker = writer.row_maker();
                let cluster = cluster.clone();
                tokio::task::spawn_blocking(move || {
                    prepare_batches(pass, &key, copy, &limits, &maker, &cluster, &batches)
                })
            };
            while let Some(batch) = prepared.recv().await {
                progress.total = 2 * batch.total;
                progress.report();
                progress.done += batch.records;
                match batch.prepared {
                    Prepared::Objects(objects) => writer.store_objects(objects).await?,
                    Prepared::Rows(rows) => writer.store_rows(rows).await?,
                }
            }
            producer.await.map_err(|e| Error::Task {
                cluster: cluster.clone(),
                reason: e.to_string(),
            })??;
            if pass == SnapshotPass::Objects {
                writer.link_snapshot().await?;
            }
        }
        progress.finish();
        Ok(())
    }

    /// Applies a diff's records, then rewrites the rows they touched.
    pub(super) async fn apply_diff(
        &self,
        writer: &mut AccountWriter<'_>,
        segment: &FetchedSegment,
    ) -> Result<(), Error> {
        let cluster = segment.cluster.clone();
        debug_assert_eq!(segment.segment_type, SegmentType::Diff);
        let mut reader = SegmentReader::new(&segment.key, segment.reopen()?, &self.options.limits)
            .map_err(|e| Error::format(&cluster, e))?;
        while let Some(record) = reader
            .next_record()
            .map_err(|e| Error::format(&cluster, e))?
        {
            writer.apply(record).await?;
        }
        writer.finish_diff().await?;
        Ok(())
    }
}

/// One pass of a snapshot load on a blocking thread: decodes the records and sends them on as
/// prepared batches, until the segment ends or the receiver is gone.
fn prepare_batches(
    pass: SnapshotPass,
    key: &str,
    bytes: impl std::io::Read,
    limits: &crate::format::DecodeLimits,
    maker: &RowMaker,
    cluster: &str,
    batches: &tokio::sync::mpsc::Sender<PreparedBatch>,
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
        let count = records.len() as u64;
        let prepared = match pass {
            SnapshotPass::Objects => Prepared::Objects(maker.objects(records)?),
            SnapshotPass::Rows => Prepared::Rows(maker.rows(records)?),
        };
        let batch = PreparedBatch {
            records: count,
            total,
            prepared,
        };
        if batches.blocking_send(batch).is_err() {
            // The writer stopped (its error is reported there).
            return Ok(());
        }
    }
}

/// A batch of a snapshot, prepared off the async task.
struct PreparedBatch {
    /// Records in this batch.
    records: u64,
    /// Records in the snapshot.
    total: u64,
    prepared: Prepared,
}

enum Prepared {
    Objects(ObjectBatch),
    Rows(RowBatch),
}

/// The two passes of a snapshot load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SnapshotPass {
    /// Objects and links.
    Objects,
    /// Cache rows.
    Rows,
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
