//! Miss batching: concurrent misses for different ids of one table, within a short window, are
//! fetched with one list call (`OR(RECORD_ID()=…)`, up to 100 ids), the way a DataLoader
//! batches. A cold cache fills at up to 100 records per source call instead of one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{oneshot, Semaphore};
use tracing::Instrument;

use crate::source::{Source, SourceError, SourceRecord};

/// The answer one waiter gets: the record (or `None`: the source says it does not exist), and
/// whether this waiter is the one charged with the source call.
pub(crate) type Loaded = Result<(Option<SourceRecord>, bool), Arc<SourceError>>;

type Waiter = (String, oneshot::Sender<Loaded>);

#[derive(Default)]
struct Pending {
    waiters: Vec<Waiter>,
    scheduled: bool,
}

/// Collects misses per table and flushes them as batched source calls.
pub(crate) struct Batcher {
    source: Arc<dyn Source>,
    window: Duration,
    max_batch: usize,
    in_flight: Arc<Semaphore>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl Batcher {
    pub(crate) fn new(
        source: Arc<dyn Source>,
        window: Duration,
        max_batch: usize,
        max_in_flight: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            source,
            window,
            max_batch: max_batch.clamp(1, crate::source::airtable::MAX_PAGE),
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// Queues `id` of `table` and waits for the batch that fetches it.
    pub(crate) async fn load(self: &Arc<Self>, table: &str, id: &str) -> Loaded {
        let (tx, rx) = oneshot::channel();
        let schedule = {
            let mut pending = self.pending.lock();
            let entry = pending.entry(table.to_owned()).or_default();
            entry.waiters.push((id.to_owned(), tx));
            !std::mem::replace(&mut entry.scheduled, true)
        };
        if schedule {
            let this = Arc::clone(self);
            let table = table.to_owned();
            tokio::spawn(async move { this.flush(table).await });
        }
        rx.await.unwrap_or_else(|_| {
            Err(Arc::new(SourceError::Transient(
                "the batch fetching this record was dropped".to_owned(),
            )))
        })
    }

    /// Waits the batching window, then sends batches until nothing is pending for `table`.
    /// A batch is taken only once a call slot is free, so while calls wait on the rate limit,
    /// new misses gather into fuller batches.
    async fn flush(self: Arc<Self>, table: String) {
        tokio::time::sleep(self.window).await;
        loop {
            let Ok(permit) = Arc::clone(&self.in_flight).acquire_owned().await else {
                return;
            };
            let batch: Vec<Waiter> = {
                let mut pending = self.pending.lock();
                let Some(entry) = pending.get_mut(&table) else {
                    return;
                };
                if entry.waiters.is_empty() {
                    entry.scheduled = false;
                    return;
                }
                let mut ids_seen = std::collections::HashSet::new();
                let mut take = 0;
                for (id, _) in &entry.waiters {
                    if ids_seen.insert(id.as_str()) && ids_seen.len() > self.max_batch {
                        break;
                    }
                    take += 1;
                }
                entry.waiters.drain(..take).collect()
            };
            let this = Arc::clone(&self);
            let table = table.clone();
            tokio::spawn(async move {
                this.call(&table, batch).await;
                drop(permit);
            });
        }
    }

    async fn call(&self, table: &str, batch: Vec<Waiter>) {
        let mut ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let span = tracing::debug_span!("cache.batch", table, ids = ids.len());
        let result = async {
            if let [one] = ids.as_slice() {
                self.source
                    .get(table, one)
                    .await
                    .map(|r| r.into_iter().collect::<Vec<_>>())
            } else {
                self.source.get_many(table, &ids).await
            }
        }
        .instrument(span)
        .await;
        match result {
            Ok(records) => {
                let by_id: HashMap<&str, &SourceRecord> =
                    records.iter().map(|r| (r.id.as_str(), r)).collect();
                for (i, (id, tx)) in batch.into_iter().enumerate() {
                    let record = by_id.get(id.as_str()).map(|r| (*r).clone());
                    let _ = tx.send(Ok((record, i == 0)));
                }
            }
            Err(err) => {
                let err = Arc::new(err);
                for (_, tx) in batch {
                    let _ = tx.send(Err(Arc::clone(&err)));
                }
            }
        }
    }
}
