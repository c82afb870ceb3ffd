//! The history check of issue 10 (item 6), shared by `tests/history.rs` and
//! `benches/history.rs`:
//! - [`run`]: two engine instances, each with its own in-process tier (`TieredStore`, coherent
//!   through pub/sub), over one real redis-server and the local Airtable server; concurrent
//!   readers, webhook-style upserts (Airtable changed first, then `Cache::upsert` with an
//!   increasing record timestamp), deletes and invalidations on a small key space, every
//!   operation recorded with its start, end and result;
//! - [`check`]: per key, no read returns a value older than the newest one acknowledged before
//!   the read started (a deleted record included) on the instance that wrote it, nor on the
//!   other instance once that instance had heard of it (received the write's invalidation, or
//!   flushed its tier since the acknowledgement: README's rule 1 for instances with a tier),
//!   with no time allowance; the largest lag seen on the other instance is reported;
//! - [`Delays`]: random sleeps after a store read (a [`ReadHook`]) and after a source fetch (the
//!   harness's gated source), to widen the windows in which fills race writes.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use podium_cache_core::cache::Cache;
use podium_cache_core::store::{RedisStore, Store, TieredStore};
use podium_cache_core::UpsertOutcome;
use rand::Rng;
use tokio::sync::Mutex;

use crate::common::{
    fields, harness, now_ms, tiered, Event, Gate, Harness, ObservedStore, ReadHook, StoreKind,
    BASE, TABLE,
};

/// The instance of the seed writes: the records as they were before the run, known to both.
pub const SEED: u8 = u8::MAX;

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `Cache::get`; `value` is the version read (`None`: not found).
    Read,
    /// Airtable changed, then `Cache::upsert`; `value` is the version written.
    Upsert,
    /// `Cache::delete` (Airtable and cache); `value` is `None`.
    Delete,
    /// `Cache::invalidate`: changes no value, only drops cached copies.
    Invalidate,
}

/// One operation as it happened. Times are since the run's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    /// Which engine instance ran it ([`SEED`] for the seed).
    pub instance: u8,
    /// Which record (an index into the key space).
    pub key: u32,
    pub kind: Kind,
    pub start: Duration,
    pub end: Duration,
    /// The version read or written; `None` for "not found" and for a delete.
    pub value: Option<i64>,
    /// Whether it answered `Ok` (a write: and was applied). A write that did not is never
    /// taken as acknowledged, but its value may show up in reads that began after it did.
    pub ok: bool,
    /// A write: its instance's invalidations started when it was acknowledged (at least its
    /// own message's place in that instance's publishing order). A read: the invalidations
    /// its instance had received from the other one when it started.
    pub heard: u64,
    /// A write: the other instance's tier flushes when it was acknowledged. A read: its
    /// instance's tier flushes when it started.
    pub flushed: u64,
}

/// The seed write of `key`: version 1, there before anything started, known to every instance.
pub fn seed(key: u32) -> Op {
    Op {
        instance: SEED,
        key,
        kind: Kind::Upsert,
        start: Duration::ZERO,
        end: Duration::ZERO,
        value: Some(1),
        ok: true,
        heard: 0,
        flushed: 0,
    }
}

impl Op {
    fn is_write(&self) -> bool {
        matches!(self.kind, Kind::Upsert | Kind::Delete)
    }
}

/// Why a read broke the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breach {
    /// It returned an older version than one acknowledged before it started.
    Stale,
    /// It returned a record whose deletion was acknowledged before it started (and that was
    /// not written again since).
    Resurrected,
    /// It returned a version no write had begun to write by the time it ended.
    Phantom,
    /// Two writes of the key overlapped: the history is not one the checker can judge (a
    /// generator bug, reported rather than guessed around).
    OverlappingWrites,
}

/// One broken rule: the read, and the acknowledged write it did not reflect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    pub breach: Breach,
    pub read: Op,
    pub missed: Option<Op>,
}

/// What [`check`] found.
#[derive(Clone, Debug, Default)]
pub struct Checked {
    pub reads: u64,
    pub upserts: u64,
    pub deletes: u64,
    pub invalidations: u64,
    /// Reads that answered an error (the engine promises none: a store failure falls through to
    /// the source).
    pub failed_reads: u64,
    /// Writes that answered an error or an upsert refused as stale: never acknowledged, so
    /// never the baseline of a read (allowed, e.g. while a broadcast cannot be published).
    pub failed_writes: u64,
    pub violations: Vec<Violation>,
    /// Reads on one instance that had not yet seen a write the other instance acknowledged
    /// before they started, and had not heard of yet (allowed).
    pub lagging_reads: u64,
    /// The largest observed spread: from the other instance's acknowledgement of a write until
    /// the start of the last read here that still did not reflect it.
    pub max_spread: Duration,
}

/// Checks every key of `history` (seed writes included, see [`SEED`]) against the rules.
///
/// For a read of key K on instance I that started at `s` and ended at `e`, take K's writes in
/// order (they never overlap) and find the last one, up to those that began before `e`, whose
/// value the read returned. Every write after it that was acknowledged before `s` is one the
/// read missed: a breach if it was acknowledged on I (or is the seed), or on the other instance
/// and I had heard of it when the read started (I had received as many of that instance's
/// invalidations as it had started when it acknowledged the write, and they arrive in the
/// order they were published; or I's tier was flushed since); otherwise a lag, counted
/// towards [`Checked::max_spread`].
///
/// ```ignore
/// let checked = check(&history);
/// assert!(checked.violations.is_empty());
/// ```
pub fn check(history: &[Op]) -> Checked {
    let mut checked = Checked::default();
    let keys = history
        .iter()
        .map(|op| op.key as usize + 1)
        .max()
        .unwrap_or(0);
    let mut writes: Vec<Vec<Op>> = vec![Vec::new(); keys];
    let mut reads: Vec<Vec<Op>> = vec![Vec::new(); keys];
    for op in history {
        let seeded = op.instance == SEED;
        match op.kind {
            Kind::Read if op.ok => checked.reads += 1,
            Kind::Upsert if !seeded => checked.upserts += 1,
            Kind::Delete => checked.deletes += 1,
            Kind::Invalidate => checked.invalidations += 1,
            _ => {}
        }
        if !op.ok {
            match op.kind {
                Kind::Read => checked.failed_reads += 1,
                _ => checked.failed_writes += 1,
            }
        }
        match op.kind {
            _ if op.is_write() => writes[op.key as usize].push(*op),
            Kind::Read if op.ok => reads[op.key as usize].push(*op),
            _ => {}
        }
    }
    for (writes, reads) in writes.iter_mut().zip(&reads) {
        writes.sort_by_key(|w| (w.start, w.end));
        if let Some(pair) = writes.windows(2).find(|p| p[1].start < p[0].end) {
            checked.violations.push(Violation {
                breach: Breach::OverlappingWrites,
                read: pair[1],
                missed: Some(pair[0]),
            });
            continue;
        }
        for read in reads {
            check_read(read, writes, &mut checked);
        }
    }
    checked
}

fn check_read(read: &Op, writes: &[Op], checked: &mut Checked) {
    // Writes that began before the read ended: the read may reflect any of them.
    let begun = writes.partition_point(|w| w.start < read.end);
    let Some(seen) = writes[..begun].iter().rposition(|w| w.value == read.value) else {
        checked.violations.push(Violation {
            breach: Breach::Phantom,
            read: *read,
            missed: None,
        });
        return;
    };
    for (n, missed) in writes[seen + 1..begun].iter().enumerate() {
        if !missed.ok || missed.end >= read.start {
            continue;
        }
        let lag = read.start - missed.end;
        let here = missed.instance == read.instance || missed.instance == SEED;
        let heard = read.heard >= missed.heard || read.flushed > missed.flushed;
        if here || heard {
            let breach = match (missed.kind, read.value) {
                (Kind::Delete, Some(_)) => Breach::Resurrected,
                _ => Breach::Stale,
            };
            checked.violations.push(Violation {
                breach,
                read: *read,
                missed: Some(*missed),
            });
            return;
        }
        if n == 0 {
            checked.lagging_reads += 1;
        }
        checked.max_spread = checked.max_spread.max(lag);
    }
}

/// Random sleeps injected after a store read and after a source fetch (none by default), by a
/// [`Gate::delaying`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Delays {
    /// The share of calls delayed (0 to 1).
    pub chance: f64,
    /// The longest delay; each is uniform up to it.
    pub max: Duration,
}

/// Store reads (after the shared store answered) pass the run's delaying [`Gate`], widening
/// the window between a read and the in-process tier keeping what it read.
#[async_trait]
impl ReadHook for Gate {
    async fn after_get_many(&self) {
        self.pass().await;
    }
}

/// What a run does.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Operations in all (the seed not counted).
    pub ops: u64,
    /// Records operated on (few, so operations collide).
    pub keys: usize,
    /// Concurrent tasks on each of the two instances.
    pub tasks_per_instance: usize,
    /// Shares of upserts, deletes and invalidations (the rest are reads).
    pub upserts: f64,
    pub deletes: f64,
    pub invalidations: f64,
    /// Injected delays after store reads (see [`Delays`]).
    pub store_delays: Delays,
    /// Injected delays after source fetches, between a fill's fetch and its store: fills are
    /// few (misses only), so these can be frequent at little cost.
    pub source_delays: Delays,
    /// Airtable's answer latency.
    pub airtable_latency: Duration,
    /// The data TTL: short, so records expire and are filled from Airtable again during the run.
    pub data_ttl: Duration,
    /// The run stops here even if not every operation was made.
    pub deadline: Duration,
    /// Every this often the invalidation links are cut (`CLIENT KILL TYPE pubsub`) and kept
    /// out for `link_outage` (their redis users switched off), while writes go on: each tier
    /// must flush and stay bypassed until it has resubscribed. `None`: never.
    pub link_kills: Option<Duration>,
    /// How long a cut link stays out: while it is, writes go on that the cut-off tier cannot
    /// hear of (it must not serve through it).
    pub link_outage: Duration,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            ops: 100_000,
            keys: 50,
            tasks_per_instance: 24,
            upserts: 0.03,
            deletes: 0.005,
            invalidations: 0.005,
            store_delays: Delays::default(),
            source_delays: Delays::default(),
            airtable_latency: Duration::ZERO,
            data_ttl: Duration::from_secs(2),
            deadline: Duration::from_secs(120),
            link_kills: None,
            link_outage: Duration::from_millis(1_500),
        }
    }
}

/// One app instance: its own redis connections, its own tier, the shared source.
struct Instance {
    cache: Cache,
    store: TieredStore,
}

/// The redis user of instance `n`'s invalidation link (see [`cut_links`]).
fn link_user(n: usize) -> String {
    format!("history-{n}")
}

async fn admin(h: &Harness) -> redis::aio::MultiplexedConnection {
    let url = h.redis.as_ref().expect("a redis harness").url();
    redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection")
}

/// Instance `n`: its data connections as the default user, its invalidation link as its own.
async fn instance(h: &Harness, n: usize, gate: &Arc<Gate>, plan: &Plan) -> Instance {
    let server = h.redis.as_ref().expect("a redis harness");
    let url = server.url();
    let user = link_user(n);
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", &user, "on", ">pw", "~*", "&*", "+@all"])
        .query_async(&mut admin(h).await)
        .await
        .expect("link user");
    let bus_url = format!("redis://{user}:pw@127.0.0.1:{}/", server.port());
    let redis: Arc<dyn Store> = Arc::new(
        RedisStore::builder(&url)
            .call_timeout(Duration::from_secs(2))
            .connect()
            .await
            .expect("redis store"),
    );
    let shared: Arc<dyn Store> = ObservedStore::with_read_hook(redis, Arc::clone(gate) as _);
    let store = tiered(shared, &bus_url, Duration::from_secs(15)).await;
    let cache = Cache::builder(Arc::new(store.clone()), Arc::clone(&h.source))
        .data_ttl(plan.data_ttl)
        .build();
    Instance { cache, store }
}

/// The writer's view of one record: the next version and the last record timestamp used.
struct KeyState {
    next_version: i64,
    last_ms: i64,
}

/// Everything the tasks of a run share.
struct Shared {
    h: Harness,
    instances: Vec<Instance>,
    keys: Vec<Mutex<KeyState>>,
    plan: Plan,
    claimed: AtomicU64,
    epoch: Instant,
}

/// What [`run`] did: the history, its check, and the engines' counters.
pub struct Run {
    pub history: Vec<Op>,
    pub checked: Checked,
    pub elapsed: Duration,
    /// Reads answered from the in-process tiers, both instances.
    pub tier_hits: u64,
    /// Values the tiers refused because an invalidation raced their read.
    pub tier_refused: u64,
    /// Fills not stored because a write raced them.
    pub fills_discarded: u64,
    /// Calls the local Airtable server answered.
    pub airtable_calls: u64,
    /// Invalidation links lost (and tiers flushed), both instances.
    pub link_drops: u64,
}

impl Run {
    /// Operations made (the seed not counted).
    pub fn ops(&self) -> u64 {
        self.history.iter().filter(|op| op.instance != SEED).count() as u64
    }

    pub fn ops_per_second(&self) -> f64 {
        self.ops() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The figures as a markdown table.
    pub fn table(&self) -> String {
        let c = &self.checked;
        format!(
            "| operations | reads | writes (upserts) | deletes | invalidations | failed reads | failed writes | violations | lagging reads | max spread | link drops | ops/s |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|\n\
             | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} ms | {} | {:.0} |\n",
            self.ops(),
            c.reads,
            c.upserts,
            c.deletes,
            c.invalidations,
            c.failed_reads,
            c.failed_writes,
            c.violations.len(),
            c.lagging_reads,
            c.max_spread.as_secs_f64() * 1e3,
            self.link_drops,
            self.ops_per_second(),
        )
    }

    /// The figures as JSON.
    pub fn json(&self, plan: &Plan) -> serde_json::Value {
        let c = &self.checked;
        serde_json::json!({
            "operations": self.ops(),
            "reads": c.reads,
            "writes": c.upserts,
            "deletes": c.deletes,
            "invalidations": c.invalidations,
            "failed_reads": c.failed_reads,
            "failed_writes": c.failed_writes,
            "violations": c.violations.len(),
            "lagging_reads": c.lagging_reads,
            "max_spread_ms": c.max_spread.as_secs_f64() * 1e3,
            "ops_per_second": self.ops_per_second(),
            "seconds": self.elapsed.as_secs_f64(),
            "tier_hits": self.tier_hits,
            "tier_inserts_refused": self.tier_refused,
            "fills_discarded": self.fills_discarded,
            "airtable_calls": self.airtable_calls,
            "link_drops": self.link_drops,
            "keys": plan.keys,
            "tasks": plan.tasks_per_instance * 2,
            "store_delay": {"chance": plan.store_delays.chance, "max_ms": plan.store_delays.max.as_secs_f64() * 1e3},
            "source_delay": {"chance": plan.source_delays.chance, "max_ms": plan.source_delays.max.as_secs_f64() * 1e3},
        })
    }
}

/// Runs `plan` on fresh servers and checks the history.
pub async fn run(plan: Plan) -> Run {
    let source_gate = Gate::delaying(plan.source_delays.chance, plan.source_delays.max);
    let gate = Gate::delaying(plan.store_delays.chance, plan.store_delays.max);
    let h = harness(StoreKind::Redis)
        .gate(source_gate)
        .records(plan.keys)
        .rate_limit(None)
        .latency(plan.airtable_latency)
        .source_limit(100_000, Duration::from_secs(1))
        .start()
        .await;
    let instances = vec![
        instance(&h, 0, &gate, &plan).await,
        instance(&h, 1, &gate, &plan).await,
    ];
    let keys = (0..plan.keys)
        .map(|_| {
            Mutex::new(KeyState {
                next_version: 2,
                last_ms: now_ms(),
            })
        })
        .collect();
    let shared = Arc::new(Shared {
        h,
        instances,
        keys,
        plan: plan.clone(),
        claimed: AtomicU64::new(0),
        epoch: Instant::now(),
    });
    // The seed: every record exists at version 1 before anything starts.
    let mut history: Vec<Op> = (0..plan.keys as u32).map(seed).collect();
    let tasks: Vec<_> = (0..plan.tasks_per_instance * 2)
        .map(|n| {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move { worker(&shared, (n % 2) as u8).await })
        })
        .collect();
    let killer = plan
        .link_kills
        .map(|every| tokio::spawn(cut_links(Arc::clone(&shared), every)));
    for task in tasks {
        history.extend(task.await.expect("worker task"));
    }
    let elapsed = shared.epoch.elapsed();
    if let Some(killer) = killer {
        killer.abort();
    }
    let checked = check(&history);
    let tiers = shared.instances.iter().map(|i| i.store.tier().metrics());
    let (tier_hits, tier_refused, link_drops) = tiers.fold((0, 0, 0), |(h, r, d), m| {
        (h + m.hits, r + m.inserts_refused, d + m.link_drops)
    });
    Run {
        history,
        checked,
        elapsed,
        tier_hits,
        tier_refused,
        fills_discarded: shared
            .instances
            .iter()
            .map(|i| i.cache.metrics().fills_discarded)
            .sum(),
        airtable_calls: shared.h.calls(),
        link_drops,
    }
}

/// Every `every`: switches the link users off, cuts every pub/sub connection, waits the plan's
/// outage and lets the links back; until aborted.
async fn cut_links(shared: Arc<Shared>, every: Duration) {
    let mut admin = admin(&shared.h).await;
    let users: Vec<String> = (0..shared.instances.len()).map(link_user).collect();
    loop {
        tokio::time::sleep(every).await;
        for user in &users {
            let _: redis::RedisResult<()> = redis::cmd("ACL")
                .arg(&["SETUSER", user, "off"])
                .query_async(&mut admin)
                .await;
        }
        let killed: redis::RedisResult<i64> = redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "pubsub"])
            .query_async(&mut admin)
            .await;
        tracing::info!(?killed, "invalidation links cut");
        tokio::time::sleep(shared.plan.link_outage).await;
        for user in &users {
            let _: redis::RedisResult<()> = redis::cmd("ACL")
                .arg(&["SETUSER", user, "on"])
                .query_async(&mut admin)
                .await;
        }
    }
}

/// One task: claims operations until the plan's count or deadline, all on one instance.
async fn worker(shared: &Shared, instance: u8) -> Vec<Op> {
    let plan = &shared.plan;
    let mut ops = Vec::new();
    while shared.claimed.fetch_add(1, Ordering::Relaxed) < plan.ops
        && shared.epoch.elapsed() < plan.deadline
    {
        let (key, draw) = {
            let mut rng = rand::thread_rng();
            (rng.gen_range(0..plan.keys), rng.gen::<f64>())
        };
        let kind = if draw < plan.upserts {
            Kind::Upsert
        } else if draw < plan.upserts + plan.deletes {
            Kind::Delete
        } else if draw < plan.upserts + plan.deletes + plan.invalidations {
            Kind::Invalidate
        } else {
            Kind::Read
        };
        ops.push(operate(shared, instance, key, kind).await);
    }
    ops
}

async fn operate(shared: &Shared, instance: u8, key: usize, kind: Kind) -> Op {
    let cache = &shared.instances[instance as usize].cache;
    let id = shared.h.ids[key].as_str();
    let at = || shared.epoch.elapsed();
    let own = shared.instances[instance as usize].store.tier();
    let other = shared.instances[1 - instance as usize].store.tier();
    // A write: what it had published and the other tier's flushes, once acknowledged.
    let done = |start: Duration, value: Option<i64>, ok: bool| {
        let end = at();
        Op {
            instance,
            key: key as u32,
            kind,
            start,
            end,
            value,
            ok,
            heard: own.metrics().broadcasts_started,
            flushed: other.metrics().flushes,
        }
    };
    match kind {
        Kind::Read => {
            // What this instance had heard when the read started.
            let (heard, flushed) = {
                let m = own.metrics();
                (m.broadcasts_received, m.flushes)
            };
            let start = at();
            let (value, ok) = match cache.get::<Event>(id).await {
                Ok(found) => (found.map(|e| e.version), true),
                Err(err) => {
                    tracing::warn!(%err, "history read failed");
                    (None, false)
                }
            };
            Op {
                heard,
                flushed,
                ..done(start, value, ok)
            }
        }
        Kind::Invalidate => {
            let start = at();
            let ok = cache.invalidate::<Event>(id).await.is_ok();
            done(start, None, ok)
        }
        Kind::Upsert => {
            // Writes of one record never overlap: its versions and timestamps increase.
            let mut state = shared.keys[key].lock().await;
            let version = state.next_version;
            state.next_version += 1;
            let timestamp = now_ms().max(state.last_ms + 1);
            state.last_ms = timestamp;
            let slug = format!("event-{key}");
            let record = Event {
                id: id.to_owned(),
                name: format!("v{version}"),
                slug: slug.clone(),
                version,
                owner: vec!["recUSER0000000001".to_owned()],
            };
            let start = at();
            // The change happens in Airtable, then its webhook reaches this instance.
            shared
                .h
                .airtable
                .insert_with_id(BASE, TABLE, id, fields(&record.name, &slug, version));
            let outcome = cache.upsert(&record, timestamp).await;
            let ok = matches!(outcome, Ok(UpsertOutcome::Applied));
            if !ok {
                tracing::warn!(?outcome, id, version, "history upsert not applied");
            }
            done(start, Some(version), ok)
        }
        Kind::Delete => {
            let mut state = shared.keys[key].lock().await;
            let start = at();
            let outcome = cache.delete::<Event>(id).await;
            let op = done(start, None, outcome.is_ok());
            // The tombstone's timestamp is the delete's clock: a later upsert must be newer.
            state.last_ms = state.last_ms.max(now_ms());
            op
        }
    }
}
