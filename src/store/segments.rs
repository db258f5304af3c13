//! Streaming reads of segments: decoding runs on a blocking thread and hands records over a
//! bounded channel, so memory stays bounded whatever the segment's size.

use std::io::Read;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::format::{self, DecodeLimits, Record, SegmentHeader, SegmentReader, SegmentSummary};

use super::{Error, Key};

/// Records in flight between the decoding thread and the consumer.
const CHANNEL_RECORDS: usize = 512;

/// A segment being read: its header, then its records, then its summary (hash and sizes).
pub struct SegmentStream {
    key: String,
    header: SegmentHeader,
    records: mpsc::Receiver<Result<Record, format::Error>>,
    task: JoinHandle<Result<SegmentSummary, format::Error>>,
}

impl SegmentStream {
    /// Starts decoding `reader` and waits for the header.
    pub(super) async fn start(
        key: &Key,
        reader: Box<dyn Read + Send>,
        limits: &DecodeLimits,
    ) -> Result<Self, Error> {
        let label = key.to_string();
        let limits = limits.clone();
        let (header_tx, header_rx) = oneshot::channel();
        let (records_tx, records) = mpsc::channel(CHANNEL_RECORDS);
        let task_label = label.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut decoder = match SegmentReader::new(&task_label, reader, &limits) {
                Ok(decoder) => decoder,
                Err(e) => {
                    let message = e.to_string();
                    let _ = header_tx.send(Err(e));
                    return Err(format::Error::InvalidSegment {
                        object: task_label,
                        reason: message,
                    });
                }
            };
            let _ = header_tx.send(Ok(decoder.header().clone()));
            loop {
                match decoder.next_record() {
                    Ok(Some(record)) => {
                        if records_tx.blocking_send(Ok(record)).is_err() {
                            // The consumer stopped listening; nothing more to do.
                            return Err(format::Error::InvalidSegment {
                                object: task_label,
                                reason: "reading was abandoned".into(),
                            });
                        }
                    }
                    Ok(None) => return decoder.finish(),
                    Err(e) => {
                        let message = e.to_string();
                        let _ = records_tx.blocking_send(Err(e));
                        return Err(format::Error::InvalidSegment {
                            object: task_label,
                            reason: message,
                        });
                    }
                }
            }
        });
        let header = match header_rx.await {
            Ok(Ok(header)) => header,
            Ok(Err(source)) => return Err(Error::Decode { key: label, source }),
            Err(_) => {
                let reason = match task.await {
                    Err(e) => e.to_string(),
                    Ok(_) => "the decoder stopped before the header".to_string(),
                };
                return Err(Error::Task { key: label, reason });
            }
        };
        Ok(Self {
            key: label,
            header,
            records,
            task,
        })
    }

    /// The segment's header.
    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// The next record; `None` once all have been read (then call [`SegmentStream::finish`]).
    pub async fn next(&mut self) -> Option<Result<Record, Error>> {
        let item = self.records.recv().await?;
        Some(item.map_err(|source| Error::Decode {
            key: self.key.clone(),
            source,
        }))
    }

    /// Reads any records left and returns the segment's hash and sizes, or the first fault.
    pub async fn finish(mut self) -> Result<SegmentSummary, Error> {
        while let Some(item) = self.records.recv().await {
            if let Err(source) = item {
                return Err(Error::Decode {
                    key: self.key,
                    source,
                });
            }
        }
        match self.task.await {
            Ok(Ok(summary)) => Ok(summary),
            Ok(Err(source)) => Err(Error::Decode {
                key: self.key,
                source,
            }),
            Err(e) => Err(Error::Task {
                key: self.key,
                reason: e.to_string(),
            }),
        }
    }
}
