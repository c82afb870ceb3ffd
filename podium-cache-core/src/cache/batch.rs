//! Miss batching with a fair share of the source's call budget.
//!
//! Concurrent misses for different ids of one table are fetched with one list call
//! (`OR(RECORD_ID()=…)`, up to 100 ids), the way a DataLoader batches: a cold cache fills at up
//! to 100 records per source call instead of one.
//!
//! # Fair share
//! One client asking for thousands of random ids a second must not make every other client's
//! miss wait behind its queue, nor take the whole source budget. So:
//!
//! - **Queues per client.** Each miss is queued under the client of the request's
//!   [`Scope`](crate::scope::Scope) (peer address, trusted header or principal, as the HTTP
//!   layer decides); misses made outside any client share one queue.
//! - **Round robin, composed at send time.** A batch is composed when it is sent, not when its
//!   first miss arrived, by taking one id from each waiting client in turn until it holds
//!   `max_batch` ids. A client with one miss waiting is in the very next batch, whatever another
//!   client has queued.
//! - **Call slots.** The batcher keeps its own account of the source's budget
//!   ([`CacheConfig::source_budget`](super::CacheConfig::source_budget)): a call holds a slot
//!   from its sending until one window after its answer, as the Airtable client's limiter
//!   counts, so a batch the batcher sends is never held up by that limiter (calls made outside
//!   the batcher — queries, index lookups, other instances — are not seen). Without a budget a
//!   slot is held while the call is in flight, up to `max_in_flight_batches`. Each slot is
//!   charged to the client whose turn sent it.
//! - **A reserve for everyone else.** The last `reserved_calls` free slots go only to a client
//!   holding fewer than its fair share (the slots divided by the clients holding or waiting for
//!   one, counting at least two). A client that keeps the source busy on its own never takes the
//!   last slot, so another client's miss is sent the moment it arrives; the flooding client's
//!   ids still fill the rest of that batch.
//! - **Composed when the source can take it.** A batch is composed only once no call of this
//!   process waits for the source's budget ([`Source::ready`]): when the budget is shared with
//!   other instances and spent, misses keep joining the next batch (full batches, fewer calls)
//!   instead of each window's first misses leaving alone to wait in line.
//! - **Lists too.** An index lookup or a query that misses is a list call (`filterByFormula`)
//!   that no batch can share: it is queued in its client's queue like a miss and sent alone
//!   when that client's turn comes, holding a slot charged to the client, so a client looking
//!   up random values waits behind its own lookups and never delays another client's miss by
//!   more than the batches already in flight.
//! - **Outstanding limit.** A client may have at most `max_client_misses` misses queued or in
//!   flight ([`Batcher::admit`]); beyond that its next miss is refused at once
//!   ([`CacheError::TooManyMisses`](super::CacheError::TooManyMisses), HTTP 429 with
//!   `Retry-After`), and no other client's is.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use tracing::Instrument;

use crate::source::{ListQuery, Source, SourceError, SourceRecord};

/// The answer one waiter gets: the record (or `None`: the source says it does not exist), and
/// whether this waiter is the one charged with the source call.
pub(crate) type Loaded = Result<(Option<SourceRecord>, bool), Arc<SourceError>>;

/// The answer of a queued list call.
pub(crate) type Listed = Result<Vec<SourceRecord>, Arc<SourceError>>;

/// Whose miss it is: a client identity, or `None` for misses made outside any client.
pub(crate) type ClientKey = Option<Arc<str>>;

/// The least `Retry-After` a refused client is given.
const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// How the batcher batches and shares (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct BatchConfig {
    /// How long a miss waits for others to join its batch.
    pub(crate) window: Duration,
    /// The most ids in one batch.
    pub(crate) max_batch: usize,
    /// Batches in flight at once.
    pub(crate) max_in_flight: usize,
    /// The source's budget: at most `.0` calls in any `.1`.
    pub(crate) budget: Option<(usize, Duration)>,
    /// Slots kept for clients under their fair share.
    pub(crate) reserved: usize,
    /// Misses one client may have outstanding (0: no limit).
    pub(crate) max_client_misses: usize,
}

struct Waiter {
    job: Job,
    queued_at: Instant,
}

/// What a waiter asked for.
enum Job {
    /// One record by id (batched with others of its table).
    Load {
        id: String,
        tx: oneshot::Sender<Loaded>,
    },
    /// A list call, sent alone.
    List {
        query: ListQuery,
        tx: oneshot::Sender<Listed>,
    },
}

impl Waiter {
    /// The id a load asks for; `None` for a list call.
    fn id(&self) -> Option<&str> {
        match &self.job {
            Job::Load { id, .. } => Some(id),
            Job::List { .. } => None,
        }
    }
}

/// What the dispatcher does next.
enum Step {
    /// Nothing is queued: the dispatcher ends.
    Idle,
    /// Wait for a slot, a new miss, or this instant.
    Wait(Option<Instant>),
    /// Send this batch of `table`, charged to `charge`.
    Send {
        table: String,
        batch: Vec<Waiter>,
        charge: ClientKey,
    },
}

#[derive(Default)]
struct State {
    /// Per table, per client, the misses waiting to be sent.
    tables: HashMap<String, HashMap<ClientKey, VecDeque<Waiter>>>,
    /// Clients with misses waiting, in round-robin order (each once).
    turn: VecDeque<ClientKey>,
    /// Misses waiting per client (all tables).
    queued: HashMap<ClientKey, usize>,
    /// Calls sent and not answered yet.
    in_flight: usize,
    /// Calls answered within the last budget window: when, and whose slot.
    recent: VecDeque<(Instant, ClientKey)>,
    /// Slots held (in flight or in `recent`) per client.
    held: HashMap<ClientKey, usize>,
    /// Whether the dispatcher task runs.
    running: bool,
    /// Misses admitted and not answered yet, per identified client.
    outstanding: HashMap<Arc<str>, usize>,
}

/// Collects misses per client and table and sends them as batched source calls, sharing the
/// source's budget fairly between clients (see the module docs).
pub(crate) struct Batcher {
    source: Arc<dyn Source>,
    config: BatchConfig,
    state: Mutex<State>,
    wake: Notify,
}

/// A client's admitted miss: counts against its outstanding limit until dropped.
pub(crate) struct Admission {
    batcher: Arc<Batcher>,
    client: Arc<str>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut state = self.batcher.state.lock();
        if let Some(count) = state.outstanding.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.outstanding.remove(&self.client);
            }
        }
    }
}

/// Releases a call's slot when the call ends (answered, failed or panicked).
struct SlotGuard {
    batcher: Arc<Batcher>,
    charge: ClientKey,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        {
            let mut state = self.batcher.state.lock();
            state.in_flight = state.in_flight.saturating_sub(1);
            if self.batcher.config.budget.is_some() {
                state
                    .recent
                    .push_back((Instant::now(), self.charge.clone()));
            } else {
                release_held(&mut state.held, &self.charge);
            }
        }
        self.batcher.wake.notify_one();
    }
}

fn release_held(held: &mut HashMap<ClientKey, usize>, client: &ClientKey) {
    if let Some(count) = held.get_mut(client) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            held.remove(client);
        }
    }
}

impl Batcher {
    pub(crate) fn new(source: Arc<dyn Source>, mut config: BatchConfig) -> Arc<Self> {
        config.max_batch = config.max_batch.clamp(1, crate::source::airtable::MAX_PAGE);
        config.max_in_flight = config.max_in_flight.max(1);
        config.budget = config
            .budget
            .filter(|(max, window)| *max > 0 && !window.is_zero());
        Arc::new(Self {
            source,
            config,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        })
    }

    /// Admits one more miss of `client`, or says how long it should wait: `Ok(None)` for misses
    /// outside any client (never limited), `Ok(Some(admission))` while the client has fewer
    /// than `max_client_misses` outstanding, else `Err(retry_after)`.
    pub(crate) fn admit(
        self: &Arc<Self>,
        client: &ClientKey,
    ) -> Result<Option<Admission>, Duration> {
        let Some(client) = client else {
            return Ok(None);
        };
        let limit = self.config.max_client_misses;
        let mut state = self.state.lock();
        let count = state.outstanding.entry(Arc::clone(client)).or_insert(0);
        if limit > 0 && *count >= limit {
            return Err(self.retry_after());
        }
        *count += 1;
        Ok(Some(Admission {
            batcher: Arc::clone(self),
            client: Arc::clone(client),
        }))
    }

    /// How long a refused client is asked to wait: one budget window, at least a second.
    fn retry_after(&self) -> Duration {
        self.config
            .budget
            .map_or(MIN_RETRY_AFTER, |(_, window)| window.max(MIN_RETRY_AFTER))
    }

    /// Queues `id` of `table` for `client` and waits for the batch that fetches it.
    pub(crate) async fn load(self: &Arc<Self>, table: &str, id: &str, client: ClientKey) -> Loaded {
        let (tx, rx) = oneshot::channel();
        self.enqueue(
            table,
            client,
            Job::Load {
                id: id.to_owned(),
                tx,
            },
        );
        rx.await.unwrap_or_else(|_| {
            Err(Arc::new(SourceError::Transient(
                "the batch fetching this record was dropped".to_owned(),
            )))
        })
    }

    /// Queues the list call `query` of `table` for `client` and waits for its answer; it is
    /// sent alone, in the client's turn, holding a slot charged to the client.
    pub(crate) async fn list(
        self: &Arc<Self>,
        table: &str,
        query: ListQuery,
        client: ClientKey,
    ) -> Listed {
        let (tx, rx) = oneshot::channel();
        self.enqueue(table, client, Job::List { query, tx });
        rx.await.unwrap_or_else(|_| {
            Err(Arc::new(SourceError::Transient(
                "the list call was dropped".to_owned(),
            )))
        })
    }

    /// Puts `job` in `client`'s queue for `table` and makes sure the dispatcher runs.
    fn enqueue(self: &Arc<Self>, table: &str, client: ClientKey, job: Job) {
        let start = {
            let mut state = self.state.lock();
            let queue = state
                .tables
                .entry(table.to_owned())
                .or_default()
                .entry(client.clone())
                .or_default();
            queue.push_back(Waiter {
                job,
                queued_at: Instant::now(),
            });
            let queued = state.queued.entry(client.clone()).or_insert(0);
            *queued += 1;
            if *queued == 1 {
                state.turn.push_back(client);
            }
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            let this = Arc::clone(self);
            tokio::spawn(async move { this.dispatch().await });
        } else {
            self.wake.notify_one();
        }
    }

    /// The dispatcher: sends batches while misses are queued and slots allow, then ends.
    async fn dispatch(self: Arc<Self>) {
        loop {
            // Composed only when the source could take a call at once: while a budget shared
            // with other instances is spent, the misses arriving meanwhile join this batch, and
            // ids another instance fetched meanwhile are already in the store for the misses
            // that come after (see `Source::ready`).
            self.source.ready().await;
            let step = self.state.lock().next_step(&self.config, Instant::now());
            match step {
                Step::Idle => return,
                Step::Wait(Some(at)) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.wake.notified() => {}
                    }
                }
                Step::Wait(None) => self.wake.notified().await,
                Step::Send {
                    table,
                    batch,
                    charge,
                } => {
                    let guard = SlotGuard {
                        batcher: Arc::clone(&self),
                        charge,
                    };
                    let this = Arc::clone(&self);
                    tokio::spawn(async move {
                        this.call(&table, batch, guard).await;
                    });
                }
            }
        }
    }

    async fn call(&self, table: &str, batch: Vec<Waiter>, guard: SlotGuard) {
        let mut loads = Vec::with_capacity(batch.len());
        for waiter in batch {
            match waiter.job {
                Job::Load { id, tx } => loads.push((id, tx)),
                Job::List { query, tx } => {
                    // Composed alone (see `State::compose`).
                    let span = tracing::debug_span!(
                        "cache.batch.list",
                        table,
                        charged_to = guard.charge.as_deref().unwrap_or("-"),
                    );
                    let result = self.source.list(table, &query).instrument(span).await;
                    drop(guard);
                    let _ = tx.send(result.map_err(Arc::new));
                    return;
                }
            }
        }
        let mut ids: Vec<String> = loads.iter().map(|(id, _)| id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let span = tracing::debug_span!(
            "cache.batch",
            table,
            ids = ids.len(),
            charged_to = guard.charge.as_deref().unwrap_or("-"),
        );
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
        // The answer is in: the slot's window starts now (as the source's limiter counts it).
        drop(guard);
        match result {
            Ok(records) => {
                let by_id: HashMap<&str, &SourceRecord> =
                    records.iter().map(|r| (r.id.as_str(), r)).collect();
                for (i, (id, tx)) in loads.into_iter().enumerate() {
                    let record = by_id.get(id.as_str()).map(|r| (*r).clone());
                    let _ = tx.send(Ok((record, i == 0)));
                }
            }
            Err(err) => {
                let err = Arc::new(err);
                for (_, tx) in loads {
                    let _ = tx.send(Err(Arc::clone(&err)));
                }
            }
        }
    }
}

impl State {
    /// Decides the dispatcher's next step (and, for a send, takes the batch and its slot).
    fn next_step(&mut self, config: &BatchConfig, now: Instant) -> Step {
        if let Some((_, window)) = config.budget {
            while let Some((at, _)) = self.recent.front() {
                if now.saturating_duration_since(*at) < window {
                    break;
                }
                if let Some((_, client)) = self.recent.pop_front() {
                    release_held(&mut self.held, &client);
                }
            }
        }
        if self.turn.is_empty() {
            self.running = false;
            return Step::Idle;
        }
        // The next time a slot frees by its window passing (answers notify by themselves).
        let next_expiry = config
            .budget
            .and_then(|(_, window)| self.recent.front().map(|(at, _)| *at + window));
        let capacity = config.budget.map_or(config.max_in_flight, |(max, _)| max);
        let used = self.in_flight + self.recent.len();
        let free = capacity
            .saturating_sub(used)
            .min(config.max_in_flight.saturating_sub(self.in_flight));
        if free == 0 {
            return Step::Wait(next_expiry);
        }
        let reserved = config.reserved.min(capacity.saturating_sub(1));
        let share = self.fair_share(capacity);
        let trigger = self.turn.iter().position(|client| {
            free > reserved || self.held.get(client).copied().unwrap_or(0) < share
        });
        let Some(position) = trigger else {
            return Step::Wait(next_expiry);
        };
        let client = self.turn[position].clone();
        let Some((table, oldest)) = self.oldest_table_of(&client) else {
            // Bookkeeping out of step (cannot happen): forget the client's turn.
            self.turn.remove(position);
            self.queued.remove(&client);
            return Step::Wait(Some(now));
        };
        // Give the trigger's newest misses a moment to join its first one.
        let gathered = oldest + config.window;
        if gathered > now {
            return Step::Wait(Some(gathered));
        }
        let batch = self.compose(&table, position, config.max_batch);
        self.in_flight += 1;
        *self.held.entry(client.clone()).or_insert(0) += 1;
        Step::Send {
            table,
            batch,
            charge: client,
        }
    }

    /// The slots each active client is entitled to: the capacity divided among the clients
    /// holding or waiting for a slot, counting at least two (room for one more), at least one.
    fn fair_share(&self, capacity: usize) -> usize {
        let others = self
            .held
            .keys()
            .filter(|client| !self.queued.contains_key(*client))
            .count();
        let active = self.turn.len() + others;
        (capacity / active.max(2)).max(1)
    }

    /// The table holding `client`'s oldest waiting miss, and when that miss was queued.
    fn oldest_table_of(&self, client: &ClientKey) -> Option<(String, Instant)> {
        self.tables
            .iter()
            .filter_map(|(table, clients)| {
                let first = clients.get(client)?.front()?;
                Some((table, first.queued_at))
            })
            .min_by_key(|(_, at)| *at)
            .map(|(table, at)| (table.clone(), at))
    }

    /// Takes one batch of `table`: one id from each waiting client in turn, starting with the
    /// client at `turn[start]`, until `max_batch` distinct ids (a waiter whose id is already in
    /// the batch always joins). The starting client's turn moves to the back.
    fn compose(&mut self, table: &str, start: usize, max_batch: usize) -> Vec<Waiter> {
        let order: Vec<ClientKey> = self
            .turn
            .iter()
            .skip(start)
            .chain(self.turn.iter().take(start))
            .cloned()
            .collect();
        let mut batch = Vec::new();
        let mut taken: HashMap<ClientKey, usize> = HashMap::new();
        if let Some(queues) = self.tables.get_mut(table) {
            let mut ids: HashSet<String> = HashSet::new();
            // A list call at the head of the starting client's queue goes alone.
            let starter = order.first().and_then(|client| {
                let queue = queues.get_mut(client)?;
                queue.front()?.id().is_none().then(|| queue.pop_front())?
            });
            let alone = starter.is_some();
            if let (Some(waiter), Some(client)) = (starter, order.first()) {
                batch.push(waiter);
                taken.insert(client.clone(), 1);
            }
            if !alone {
                loop {
                    let mut progressed = false;
                    for client in &order {
                        let Some(queue) = queues.get_mut(client) else {
                            continue;
                        };
                        // Loads only: a list call waits for its own client's turn.
                        let fits = queue
                            .front()
                            .and_then(Waiter::id)
                            .is_some_and(|id| ids.len() < max_batch || ids.contains(id));
                        if !fits {
                            continue;
                        }
                        if let Some(waiter) = queue.pop_front() {
                            ids.insert(waiter.id().unwrap_or_default().to_owned());
                            batch.push(waiter);
                            *taken.entry(client.clone()).or_insert(0) += 1;
                            progressed = true;
                        }
                    }
                    if !progressed {
                        break;
                    }
                }
            }
            queues.retain(|_, queue| !queue.is_empty());
            if queues.is_empty() {
                self.tables.remove(table);
            }
        }
        for (client, n) in taken {
            if let Some(queued) = self.queued.get_mut(&client) {
                *queued = queued.saturating_sub(n);
                if *queued == 0 {
                    self.queued.remove(&client);
                }
            }
        }
        // The starting client goes to the back; clients with nothing left leave the turn.
        if let Some(first) = self.turn.remove(start) {
            self.turn.push_back(first);
        }
        let queued = &self.queued;
        self.turn.retain(|client| queued.contains_key(client));
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{ListQuery, SourceStats};
    use async_trait::async_trait;

    /// Records the ids of every call; answers nothing found after `latency`. With `open`, its
    /// budget is spent until `open` says otherwise ([`Source::ready`] waits).
    #[derive(Default)]
    struct Recording {
        calls: Mutex<Vec<Vec<String>>>,
        sent: Mutex<Vec<Instant>>,
        latency: Duration,
        open: Option<tokio::sync::watch::Sender<bool>>,
    }

    impl Recording {
        async fn answer(&self, ids: Vec<String>) {
            self.calls.lock().push(ids);
            self.sent.lock().push(Instant::now());
            tokio::time::sleep(self.latency).await;
        }
    }

    #[async_trait]
    impl Source for Recording {
        async fn get(&self, _: &str, id: &str) -> Result<Option<SourceRecord>, SourceError> {
            self.answer(vec![id.to_owned()]).await;
            Ok(None)
        }
        async fn get_many(
            &self,
            _: &str,
            ids: &[String],
        ) -> Result<Vec<SourceRecord>, SourceError> {
            self.answer(ids.to_vec()).await;
            Ok(Vec::new())
        }
        async fn list(&self, _: &str, _: &ListQuery) -> Result<Vec<SourceRecord>, SourceError> {
            Ok(Vec::new())
        }
        async fn delete(&self, _: &str, _: &[String]) -> Result<Vec<String>, SourceError> {
            Ok(Vec::new())
        }
        fn stats(&self) -> SourceStats {
            SourceStats::default()
        }
        async fn ready(&self) {
            if let Some(open) = &self.open {
                let _ = open.subscribe().wait_for(|open| *open).await;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn misses_arriving_while_the_source_cannot_take_a_call_ride_in_one_batch() {
        let source = Arc::new(Recording {
            latency: Duration::from_millis(10),
            open: Some(tokio::sync::watch::channel(false).0),
            ..Recording::default()
        });
        let batcher = Batcher::new(source.clone(), config());
        let mut tasks = Vec::new();
        // Three misses 50 ms apart, each far past the 2 ms gathering window of the one before.
        for id in ["a", "b", "c"] {
            let batcher = Arc::clone(&batcher);
            tasks.push(tokio::spawn(async move {
                batcher.load("T", id, None).await.map(|(r, _)| r)
            }));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            source.calls.lock().is_empty(),
            "nothing is sent while the source cannot take it"
        );
        if let Some(open) = &source.open {
            open.send_replace(true);
        }
        for task in tasks {
            assert!(task.await.unwrap().unwrap().is_none());
        }
        assert_eq!(
            source.calls.lock().clone(),
            vec![vec!["a".to_string(), "b".into(), "c".into()]],
            "one call with every miss that waited, not one call each"
        );
    }

    fn config() -> BatchConfig {
        BatchConfig {
            window: Duration::from_millis(2),
            max_batch: 4,
            max_in_flight: 1,
            budget: None,
            reserved: 0,
            max_client_misses: 0,
        }
    }

    fn client(name: &str) -> ClientKey {
        Some(Arc::from(name))
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_takes_one_id_from_each_client_in_turn() {
        let source = Arc::new(Recording {
            latency: Duration::from_millis(100),
            ..Recording::default()
        });
        let batcher = Batcher::new(source.clone(), config());
        let mut tasks = Vec::new();
        // The first miss goes alone; meanwhile "a" queues six and "b" two.
        for (who, id) in [("a", "a0"), ("a", "a1"), ("a", "a2"), ("a", "a3")]
            .into_iter()
            .chain([("a", "a4"), ("a", "a5"), ("b", "b0"), ("b", "b1")])
        {
            let batcher = Arc::clone(&batcher);
            tasks.push(tokio::spawn(async move {
                batcher.load("T", id, client(who)).await.map(|(r, _)| r)
            }));
            if id == "a0" {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        for task in tasks {
            assert!(task.await.unwrap().unwrap().is_none());
        }
        let calls = source.calls.lock().clone();
        assert_eq!(
            calls,
            vec![
                vec!["a0".to_string()],
                vec!["a1".into(), "a2".into(), "b0".into(), "b1".into()],
                vec!["a3".into(), "a4".into(), "a5".into()],
            ],
            "b's misses, queued last, ride in the next batch, interleaved with a's"
        );
    }

    /// A flooding client keeps 16 misses waiting while another asks for one id every 700 ms;
    /// returns the other client's waits and the send times of every call (virtual time).
    async fn waits_beside_a_flood(reserved: usize) -> (Vec<Duration>, Vec<Instant>) {
        let source = Arc::new(Recording {
            latency: Duration::from_millis(100),
            ..Recording::default()
        });
        let batcher = Batcher::new(
            source.clone(),
            BatchConfig {
                max_in_flight: 5,
                budget: Some((5, Duration::from_secs(1))),
                reserved,
                ..config()
            },
        );
        let flood: Vec<_> = (0..16)
            .map(|worker| {
                let batcher = Arc::clone(&batcher);
                tokio::spawn(async move {
                    for n in 0.. {
                        let id = format!("f{worker}-{n}");
                        let _ = batcher.load("T", &id, client("flood")).await;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut waits = Vec::new();
        for n in 0..20 {
            let started = Instant::now();
            let id = format!("l{n}");
            // The wait counts only if the miss was answered by the source: an error returned
            // at once would pass any bound.
            let answer = batcher.load("T", &id, client("legit")).await;
            assert!(
                matches!(answer, Ok((None, _))),
                "{id}: the source's answer (no record), got {answer:?}"
            );
            assert!(
                source.calls.lock().iter().any(|call| call.contains(&id)),
                "{id} was sent to the source"
            );
            waits.push(started.elapsed());
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        for task in flood {
            task.abort();
        }
        let sent = source.sent.lock().clone();
        (waits, sent)
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_holds_and_the_last_slot_is_kept_for_another_client() {
        let (waits, sent) = waits_beside_a_flood(1).await;
        assert!(
            waits.iter().all(|w| *w <= Duration::from_millis(110)),
            "another client's miss is sent at once: {waits:?}"
        );
        // Never more than 5 calls in one window, counting each from its answer.
        assert!(
            sent.len() > 30,
            "the flood kept the source busy: {} calls",
            sent.len()
        );
        for pair in sent.windows(6) {
            let apart = pair[5].duration_since(pair[0]);
            assert!(
                apart >= Duration::from_millis(1_100),
                "6 calls within {apart:?}"
            );
        }
        // Without the reserve the flood takes every slot and the other client waits for one.
        let (unreserved, _) = waits_beside_a_flood(0).await;
        let worst = unreserved.iter().max().copied().unwrap_or_default();
        assert!(worst >= Duration::from_millis(300), "{unreserved:?}");
    }

    #[tokio::test]
    async fn a_client_over_its_outstanding_limit_is_refused_and_no_other() {
        let batcher = Batcher::new(
            Arc::new(Recording::default()),
            BatchConfig {
                max_client_misses: 2,
                ..config()
            },
        );
        let first = batcher.admit(&client("flood")).unwrap();
        let second = batcher.admit(&client("flood")).unwrap();
        assert!(first.is_some() && second.is_some());
        let refused = batcher.admit(&client("flood")).err();
        assert_eq!(refused, Some(Duration::from_secs(1)));
        assert!(batcher.admit(&client("legit")).unwrap().is_some());
        assert!(
            batcher.admit(&None).unwrap().is_none(),
            "no client: no limit"
        );
        drop(first);
        assert!(batcher.admit(&client("flood")).is_ok(), "admitted again");
    }
}
