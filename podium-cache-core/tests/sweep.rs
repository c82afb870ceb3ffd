//! The sweep against a real redis-server and the local Airtable server: records deleted in
//! Airtable behind the cache's back are found and removed with about 1% of the naive calls;
//! nothing unconfirmed or alive is ever removed; the lock, dry run, entity filter,
//! cancellation and the gone-share guard.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use parking_lot::Mutex;
use podium_cache_core::cache::{Cache, Change, ChangeKind, InvalidationListener};
use podium_cache_core::entity::{normalize_index_value, Cacheable};
use podium_cache_core::source::{
    AirtableSource, ListQuery, Source, SourceError, SourceRecord, SourceStats,
};
use podium_cache_core::store::{RedisStore, Store};
use podium_cache_core::sweep::{Method, Outcome, Progress, Strategy, Sweep, SweepError};
use podium_local::airtable::{random_id, AirtableServer, RunningAirtable};
use podium_local::redis::RedisServer;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

const BASE: &str = "appSWEEPSWEEP0001";

// ----- the five models (the example app's tables and links, fewer scalar fields) ------------

#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable,
)]
#[cacheable(table = "Users")]
struct User {
    id: String,
    #[cacheable(index)]
    email: String,
    #[serde(default)]
    #[cacheable(references = "projects")]
    projects: Vec<String>,
}

#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable,
)]
#[cacheable(table = "Events")]
struct Event {
    id: String,
    name: String,
    #[cacheable(index)]
    slug: String,
    #[serde(default)]
    #[cacheable(references = "users")]
    owner: Vec<String>,
}

#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable,
)]
#[cacheable(table = "Projects")]
struct Project {
    id: String,
    name: String,
    #[serde(default)]
    #[cacheable(references = "events")]
    event: Vec<String>,
    #[serde(default)]
    #[cacheable(references = "users")]
    owner: Vec<String>,
}

#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable,
)]
#[cacheable(table = "Votes")]
struct Vote {
    id: String,
    points: i64,
    #[serde(default)]
    #[cacheable(references = "projects")]
    project: Vec<String>,
    #[serde(default)]
    #[cacheable(references = "users")]
    voter: Vec<String>,
}

#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable,
)]
#[cacheable(table = "Referrals")]
struct Referral {
    id: String,
    content: String,
    #[serde(default)]
    #[cacheable(references = "users")]
    user: Vec<String>,
    #[serde(default)]
    #[cacheable(references = "events")]
    event: Vec<String>,
}

const ENTITIES: [&str; 5] = ["users", "events", "projects", "votes", "referrals"];

fn schema_hash(entity: &str) -> &'static str {
    match entity {
        "users" => User::schema_hash(),
        "events" => Event::schema_hash(),
        "projects" => Project::schema_hash(),
        "votes" => Vote::schema_hash(),
        _ => Referral::schema_hash(),
    }
}

fn table(entity: &str) -> &'static str {
    match entity {
        "users" => "Users",
        "events" => "Events",
        "projects" => "Projects",
        "votes" => "Votes",
        _ => "Referrals",
    }
}

/// The records: 10,000 at scale 1 (2,500 users, 500 events, 2,000 projects, 4,000 votes,
/// 1,000 referrals), `1/scale` of that otherwise. Users 0..40%, events 0..50% and projects
/// 0..60% are referenced by other records; votes and referrals by none.
struct Data {
    users: Vec<User>,
    events: Vec<Event>,
    projects: Vec<Project>,
    votes: Vec<Vote>,
    referrals: Vec<Referral>,
}

impl Data {
    fn new(scale: usize) -> Data {
        let (u, e, p, v, r) = (
            2_500 / scale,
            500 / scale,
            2_000 / scale,
            4_000 / scale,
            1_000 / scale,
        );
        let ids = |n: usize| (0..n).map(|_| random_id("rec")).collect::<Vec<_>>();
        let (uid, eid, pid, vid, rid) = (ids(u), ids(e), ids(p), ids(v), ids(r));
        let one = |ids: &[String], i: usize| vec![ids[i].clone()];
        Data {
            users: (0..u)
                .map(|i| User {
                    id: uid[i].clone(),
                    email: format!("User{i}@Example.com"),
                    projects: if i < u * 2 / 25 {
                        one(&pid, p / 2 + i)
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
            events: (0..e)
                .map(|i| Event {
                    id: eid[i].clone(),
                    name: format!("Event {i}"),
                    slug: format!("event-{i}"),
                    owner: one(&uid, i % u),
                })
                .collect(),
            projects: (0..p)
                .map(|i| Project {
                    id: pid[i].clone(),
                    name: format!("Project {i}"),
                    event: one(&eid, i % (e / 2)),
                    owner: one(&uid, u / 5 + i % (u / 5)),
                })
                .collect(),
            votes: (0..v)
                .map(|i| Vote {
                    id: vid[i].clone(),
                    points: (i % 5) as i64,
                    project: one(&pid, i % (p / 2)),
                    voter: one(&uid, i % (u * 2 / 5)),
                })
                .collect(),
            referrals: (0..r)
                .map(|i| Referral {
                    id: rid[i].clone(),
                    content: format!("Heard of it from a friend ({i})"),
                    user: one(&uid, i % (u * 2 / 5)),
                    event: one(&eid, i % (e / 2)),
                })
                .collect(),
        }
    }

    fn ids(&self, entity: &str) -> Vec<String> {
        fn of<T: Cacheable>(records: &[T]) -> Vec<String> {
            records.iter().map(|r| r.id().to_owned()).collect()
        }
        match entity {
            "users" => of(&self.users),
            "events" => of(&self.events),
            "projects" => of(&self.projects),
            "votes" => of(&self.votes),
            _ => of(&self.referrals),
        }
    }

    fn len(&self) -> usize {
        ENTITIES.iter().map(|e| self.ids(e).len()).sum()
    }

    /// `(entity, id)` of every record some other record (among those `kept`) links to.
    fn referenced(&self, kept: impl Fn(&str) -> bool) -> HashSet<(String, String)> {
        fn add<T: Cacheable>(
            records: &[T],
            kept: &dyn Fn(&str) -> bool,
            out: &mut HashSet<(String, String)>,
        ) {
            for record in records.iter().filter(|r| kept(r.id())) {
                for reference in record.references() {
                    for id in reference.ids {
                        if id != record.id() {
                            out.insert((reference.entity.to_owned(), id.to_owned()));
                        }
                    }
                }
            }
        }
        let mut out = HashSet::new();
        add(&self.users, &kept, &mut out);
        add(&self.events, &kept, &mut out);
        add(&self.projects, &kept, &mut out);
        add(&self.votes, &kept, &mut out);
        add(&self.referrals, &kept, &mut out);
        out
    }
}

/// Records every change the cache announces.
#[derive(Default)]
struct Recorder(Mutex<Vec<Change>>);

#[async_trait]
impl InvalidationListener for Recorder {
    async fn on_change(&self, change: &Change) {
        self.0.lock().push(change.clone());
    }
}

impl Recorder {
    fn deleted(&self) -> HashSet<String> {
        self.0
            .lock()
            .iter()
            .filter(|c| c.kind == ChangeKind::Deleted)
            .map(|c| c.id.clone())
            .collect()
    }
}

/// How a fixture talks to its local Airtable server.
struct Limits {
    /// The server's per-base limit (`None`: unlimited).
    server: Option<u32>,
    /// The client's limit per 1.05 s.
    client: usize,
    /// Client retries after 429/5xx.
    retries: u32,
}

/// Airtable's real limit: 5 requests a second on both sides.
const REAL: Limits = Limits {
    server: Some(5),
    client: 5,
    retries: 4,
};
/// Raised on both sides, to keep the 10,000-record runs short.
const RAISED: Limits = Limits {
    server: Some(60),
    client: 50,
    retries: 4,
};

struct Fixture {
    airtable: RunningAirtable,
    _redis: RedisServer,
    store: Arc<dyn Store>,
    cache: Cache,
    data: Data,
    /// Ids deleted in Airtable, by entity.
    deleted: HashMap<&'static str, HashSet<String>>,
    changes: Arc<Recorder>,
}

/// Deletes every 33rd record of each table (~3%).
fn every_33rd(i: usize) -> bool {
    i % 33 == 5
}

impl Fixture {
    /// Caches every record of `Data::new(scale)` (no Airtable call), puts the same records in
    /// the local Airtable server, then deletes the records `delete(i)` selects directly in the
    /// server, as if in Airtable's UI.
    async fn start(scale: usize, limits: Limits, delete: fn(usize) -> bool) -> Fixture {
        Self::start_with(scale, limits, delete, |s| s).await
    }

    async fn start_with(
        scale: usize,
        limits: Limits,
        delete: fn(usize) -> bool,
        wrap: impl FnOnce(Arc<dyn Source>) -> Arc<dyn Source>,
    ) -> Fixture {
        let airtable = AirtableServer::builder()
            .rate_limit(limits.server)
            .start()
            .await
            .expect("local airtable");
        let redis = RedisServer::start().expect("redis-server");
        let store: Arc<dyn Store> = Arc::new(
            RedisStore::builder(redis.url())
                .call_timeout(Duration::from_secs(2))
                .connect()
                .await
                .expect("redis store"),
        );
        let source = AirtableSource::builder(airtable.api_key(), BASE)
            .api_url(airtable.url())
            .rate_limit(limits.client, Duration::from_millis(1_050))
            .rate_limit_pause(Duration::from_millis(50))
            .retries(
                limits.retries,
                Duration::from_millis(10),
                Duration::from_millis(100),
            )
            .build()
            .expect("source");
        let cache = Cache::builder(Arc::clone(&store), wrap(Arc::new(source))).build();
        let data = Data::new(scale);
        put(&airtable, &cache, &data.users).await;
        put(&airtable, &cache, &data.events).await;
        put(&airtable, &cache, &data.projects).await;
        put(&airtable, &cache, &data.votes).await;
        put(&airtable, &cache, &data.referrals).await;
        let changes = Arc::new(Recorder::default());
        cache.add_listener(Arc::clone(&changes) as Arc<dyn InvalidationListener>);
        let mut deleted = HashMap::new();
        for entity in ENTITIES {
            let victims: HashSet<String> = data
                .ids(entity)
                .into_iter()
                .enumerate()
                .filter(|(i, _)| delete(*i))
                .map(|(_, id)| id)
                .collect();
            for id in &victims {
                assert!(airtable.remove(BASE, table(entity), id));
            }
            deleted.insert(entity, victims);
        }
        airtable.reset_calls();
        Fixture {
            airtable,
            _redis: redis,
            store,
            cache,
            data,
            deleted,
            changes,
        }
    }

    fn sweep(&self) -> Sweep {
        Sweep::new(&self.cache)
            .entity::<User>()
            .entity::<Event>()
            .entity::<Project>()
            .entity::<Vote>()
            .entity::<Referral>()
    }

    fn all_deleted(&self) -> HashSet<String> {
        self.deleted.values().flatten().cloned().collect()
    }

    fn calls(&self) -> u64 {
        self.airtable.calls().total
    }

    /// Which of `ids` still have their data key.
    async fn cached(&self, entity: &str, ids: &[String]) -> HashSet<String> {
        let keys: Vec<String> = ids
            .iter()
            .map(|id| self.cache.keys().data(entity, schema_hash(entity), id))
            .collect();
        let values = self.store.get_many(&keys).await.expect("store");
        ids.iter()
            .zip(values)
            .filter(|(_, v)| v.is_some())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Which of `ids` have a tombstone.
    async fn tombstoned(&self, entity: &str, ids: &[String]) -> HashSet<String> {
        let keys: Vec<String> = ids
            .iter()
            .map(|id| self.cache.keys().tombstone(entity, id))
            .collect();
        let values = self.store.get_many(&keys).await.expect("store");
        ids.iter()
            .zip(values)
            .filter(|(_, v)| v.is_some())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Every record not deleted in Airtable is still cached, and none has a tombstone.
    async fn assert_no_live_record_removed(&self) {
        for entity in ENTITIES {
            let live: Vec<String> = self
                .data
                .ids(entity)
                .into_iter()
                .filter(|id| !self.deleted[entity].contains(id))
                .collect();
            let cached = self.cached(entity, &live).await;
            assert_eq!(
                cached.len(),
                live.len(),
                "live {entity} records were removed"
            );
            assert!(
                self.tombstoned(entity, &live).await.is_empty(),
                "a live {entity} record was tombstoned"
            );
        }
    }

    /// Removed = data key gone and a tombstone written; returns the deleted ids still cached.
    async fn deleted_still_cached(&self) -> HashSet<String> {
        let mut still = HashSet::new();
        for entity in ENTITIES {
            let ids: Vec<String> = self.deleted[entity].iter().cloned().collect();
            let cached = self.cached(entity, &ids).await;
            let tombstoned = self.tombstoned(entity, &ids).await;
            for id in &ids {
                assert!(
                    cached.contains(id) != tombstoned.contains(id),
                    "{entity} {id} must be either still cached or removed and tombstoned"
                );
            }
            still.extend(cached);
        }
        still
    }
}

/// Puts `records` in the local Airtable server and in the cache (no Airtable call).
async fn put<T: Cacheable>(airtable: &RunningAirtable, cache: &Cache, records: &[T]) {
    let meta = T::meta();
    airtable.declare_fields(BASE, meta.table, &meta.field_names().collect::<Vec<_>>());
    for record in records {
        let Value::Object(mut fields) = serde_json::to_value(record).expect("json") else {
            panic!("a model serialises to an object");
        };
        fields.remove(meta.id_key);
        airtable.insert_with_id(BASE, meta.table, record.id(), fields);
    }
    let timestamp = chrono::Utc::now().timestamp_millis();
    let results: Vec<_> = stream::iter(records)
        .map(|record| cache.upsert(record, timestamp))
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(
        results.iter().all(Result::is_ok),
        "filling the cache failed"
    );
}

/// Runs the sweep while draining its progress channel.
async fn run_with_progress(
    sweep: Sweep,
) -> (
    Result<podium_cache_core::sweep::SweepReport, SweepError>,
    Vec<Progress>,
) {
    let (tx, mut rx) = mpsc::channel(16);
    let sweep = sweep.progress(tx);
    let collector = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            events.push(event);
        }
        events
    });
    let result = sweep.run().await;
    drop(sweep);
    (result, collector.await.expect("collector"))
}

// ----- the 10,000-record runs ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_removes_every_deleted_record_of_ten_thousand_with_at_most_one_percent_of_the_naive_calls(
) {
    let fx = Fixture::start(1, RAISED, every_33rd).await;
    assert_eq!(fx.data.len(), 10_000);
    let deleted = fx.all_deleted();
    assert_eq!(deleted.len(), 305);
    let referenced = fx.data.referenced(|_| true);
    let deleted_referenced = fx
        .deleted
        .iter()
        .flat_map(|(e, ids)| ids.iter().map(move |id| (e.to_string(), id.clone())))
        .filter(|pair| referenced.contains(pair))
        .count() as u64;
    assert!(
        deleted_referenced > 0,
        "the data must have referenced victims"
    );

    let (report, progress) = run_with_progress(fx.sweep()).await;
    let report = report.expect("sweep");
    println!("{report}");
    println!("{}", serde_json::to_string(&report.totals).expect("json"));

    let calls = fx.calls();
    assert!(
        calls <= 100,
        "{calls} Airtable calls for 10,000 cached records"
    );
    assert_eq!(report.totals.calls, calls, "the report counts every call");
    assert_eq!(report.totals.naive_calls, 10_000);
    assert!(report.totals.savings_percent >= 99.0);
    assert_eq!(report.totals.cached, 10_000);
    assert_eq!(report.totals.checked, 10_000);
    assert_eq!(report.totals.gone, 305);
    assert_eq!(report.totals.removed, 305);
    assert_eq!(report.totals.unconfirmed, 0);
    assert_eq!(report.totals.gone_referenced, deleted_referenced);
    assert_eq!(report.outcome(), Outcome::Clean);
    for entity in &report.entities {
        let expected = &fx.deleted[entity.entity];
        assert_eq!(
            entity.gone_ids.iter().cloned().collect::<HashSet<_>>(),
            *expected,
            "{}",
            entity.entity
        );
        // The cache holds the whole table: listing it is cheaper than checking ids.
        assert_eq!(entity.method, Method::Listing, "{}", entity.entity);
    }
    assert_eq!(
        progress.iter().find_map(|p| match p {
            Progress::Planned { ids } => Some(*ids),
            _ => None,
        }),
        Some(10_000)
    );

    // Every deleted record is removed, tombstoned and announced; no live one is touched.
    assert!(fx.deleted_still_cached().await.is_empty());
    assert_eq!(fx.changes.deleted(), deleted);
    fx.assert_no_live_record_removed().await;

    // Reads of deleted records answer None from the tombstone, with no Airtable call.
    let before = fx.calls();
    for id in &fx.deleted["users"] {
        assert!(fx.cache.get::<User>(id).await.expect("read").is_none());
    }
    for id in &fx.deleted["votes"] {
        assert!(fx.cache.get::<Vote>(id).await.expect("read").is_none());
    }
    let live = fx
        .data
        .users
        .iter()
        .find(|u| !deleted.contains(&u.id))
        .expect("a live user");
    assert_eq!(
        fx.cache.get::<User>(&live.id).await.expect("read"),
        Some(live.clone())
    );
    assert_eq!(
        fx.calls(),
        before,
        "tombstones and hits need no Airtable call"
    );

    // The index entries of removed records are gone; live ones keep theirs.
    for user in &fx.data.users {
        let key = fx.cache.keys().index(
            "users",
            User::schema_hash(),
            "email",
            &normalize_index_value(&user.email),
        );
        let entry = fx.store.get(&key).await.expect("store");
        assert_eq!(
            entry.is_none(),
            deleted.contains(&user.id),
            "{}",
            user.email
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_strategy_misses_deleted_records_that_are_still_referenced() {
    let fx = Fixture::start(1, RAISED, every_33rd).await;
    let referenced = fx.data.referenced(|_| true);
    let is_referenced =
        |entity: &str, id: &str| referenced.contains(&(entity.to_owned(), id.to_owned()));
    let cached_referenced = ENTITIES
        .iter()
        .flat_map(|e| fx.data.ids(e).into_iter().map(move |id| (*e, id)))
        .filter(|(e, id)| is_referenced(e, id))
        .count() as u64;
    let missed_expected: HashSet<String> = fx
        .deleted
        .iter()
        .flat_map(|(e, ids)| ids.iter().filter(|id| is_referenced(e, id)).cloned())
        .collect();

    let report = fx
        .sweep()
        .strategy(Strategy::References)
        .run()
        .await
        .expect("sweep");
    println!("{report}");
    let calls = fx.calls();
    assert_eq!(report.totals.calls, calls);
    assert_eq!(report.totals.skipped_referenced, cached_referenced);
    assert_eq!(report.totals.checked, 10_000 - cached_referenced);
    assert_eq!(report.totals.removed, 305 - missed_expected.len() as u64);
    assert_eq!(report.outcome(), Outcome::Clean);
    // Exactly the referenced victims stay cached.
    assert_eq!(fx.deleted_still_cached().await, missed_expected);
    fx.assert_no_live_record_removed().await;

    // The full strategy finds the missed ones and says they were referenced.
    let still_cached: HashSet<String> = {
        let removed: HashSet<String> = fx.changes.deleted();
        fx.data
            .referenced(|id| !removed.contains(id))
            .into_iter()
            .map(|(_, id)| id)
            .collect()
    };
    let full = fx.sweep().run().await.expect("sweep");
    println!("{full}");
    assert_eq!(full.totals.gone, missed_expected.len() as u64);
    let missed_referenced = missed_expected
        .iter()
        .filter(|id| still_cached.contains(*id))
        .count() as u64;
    assert!(missed_referenced > 0);
    assert_eq!(full.totals.gone_referenced, missed_referenced);
    assert!(fx.deleted_still_cached().await.is_empty());
    fx.assert_no_live_record_removed().await;
}

// ----- faults -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_under_429s_removes_only_what_airtable_confirmed_and_counts_the_rest() {
    let fx = Fixture::start(
        10,
        Limits {
            server: None,
            client: 50,
            retries: 0,
        },
        every_33rd,
    )
    .await;
    fx.airtable.fail_ratio(0.5, 429);
    let report = fx.sweep().run().await.expect("sweep");
    println!("{report}");
    assert!(fx.airtable.calls().errors_injected > 0);
    assert!(
        report.totals.unconfirmed > 0,
        "half of the calls answered 429 with no retry"
    );
    assert_eq!(report.outcome(), Outcome::Unconfirmed);
    assert_eq!(report.outcome().exit_code(), 2);
    assert_eq!(
        report.totals.checked + report.totals.unconfirmed,
        report.totals.cached
    );
    fx.assert_no_live_record_removed().await;
    let still = fx.deleted_still_cached().await;
    assert!(
        (still.len() as u64) <= report.totals.unconfirmed,
        "a deleted record stays cached only if its check was unconfirmed"
    );
    assert_eq!(
        report.totals.removed as usize + still.len(),
        fx.all_deleted().len()
    );

    // Once Airtable answers again, the next sweep removes the rest.
    fx.airtable.clear_faults();
    let report = fx.sweep().run().await.expect("sweep");
    assert_eq!(report.outcome(), Outcome::Clean);
    assert_eq!(report.totals.removed as usize, still.len());
    assert!(fx.deleted_still_cached().await.is_empty());
    fx.assert_no_live_record_removed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_gone_than_the_allowed_share_removes_nothing_of_that_entity() {
    // Everything deleted in Airtable (say, the sweep points at the wrong base).
    let fx = Fixture::start(50, REAL, |_| true).await;
    let report = fx.sweep().only(["votes"]).run().await.expect("sweep");
    println!("{report}");
    let votes = report.entity("votes").expect("votes reported");
    assert_eq!(report.entities.len(), 1);
    assert_eq!(votes.counts.gone, 80);
    assert_eq!(votes.counts.removed, 0);
    assert!(votes
        .error
        .as_deref()
        .unwrap_or("")
        .contains("allowed share"));
    assert_eq!(report.outcome(), Outcome::Failed);
    let ids = fx.data.ids("votes");
    assert_eq!(fx.cached("votes", &ids).await.len(), ids.len());
}

// ----- safety: lock, dry run, filter, cancellation (at Airtable's real 5 requests/s) ---------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sweep_while_one_runs_is_refused_because_the_lock_is_held() {
    let fx = Fixture::start(50, REAL, every_33rd).await;
    // The first sweep waits on its full progress channel right after taking the lock.
    let (tx, mut rx) = mpsc::channel(1);
    let first = fx.sweep().progress(tx);
    let running = tokio::spawn(async move { first.run().await });
    assert_eq!(rx.recv().await, Some(Progress::Locked));

    let second = fx.sweep().run().await;
    match second {
        Err(err @ SweepError::LockHeld { .. }) => {
            assert!(err.to_string().contains("lock"), "{err}");
            println!("second sweep: {err}");
        }
        other => panic!("the second sweep must be refused, got {other:?}"),
    }

    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let report = running.await.expect("join").expect("the first sweep runs");
    drain.await.expect("drain");
    assert_eq!(report.totals.removed as usize, fx.all_deleted().len());
    assert!(fx.deleted_still_cached().await.is_empty());

    // The lock was released: the next sweep runs (and finds nothing left to remove).
    let third = fx.sweep().run().await.expect("lock released");
    assert_eq!(third.totals.gone, 0);
    assert_eq!(third.outcome(), Outcome::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_finds_the_deleted_records_but_removes_nothing() {
    let fx = Fixture::start(50, REAL, every_33rd).await;
    let deleted = fx.all_deleted();
    let report = fx.sweep().dry_run(true).run().await.expect("sweep");
    println!("{report}");
    assert!(report.dry_run);
    assert_eq!(report.totals.gone as usize, deleted.len());
    assert_eq!(report.totals.removed, 0);
    assert_eq!(fx.deleted_still_cached().await, deleted);
    assert!(fx.changes.deleted().is_empty());
    // Still served from the cache, no Airtable call.
    let before = fx.calls();
    for id in &fx.deleted["events"] {
        assert!(fx.cache.get::<Event>(id).await.expect("read").is_some());
    }
    assert_eq!(fx.calls(), before);

    // The same sweep without --dry-run removes exactly what the dry run reported.
    let real = fx.sweep().run().await.expect("sweep");
    assert_eq!(real.totals.removed as usize, deleted.len());
    assert!(fx.deleted_still_cached().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_filter_sweeps_only_the_named_entity() {
    let fx = Fixture::start(50, REAL, every_33rd).await;
    let err = fx.sweep().only(["Venues"]).run().await.unwrap_err();
    assert!(matches!(err, SweepError::UnknownEntity { .. }), "{err}");
    assert!(err.to_string().contains("events"), "{err}");

    let report = fx.sweep().only(["Events"]).run().await.expect("sweep");
    assert_eq!(report.entities.len(), 1);
    assert_eq!(report.entities[0].entity, "events");
    assert_eq!(report.totals.removed as usize, fx.deleted["events"].len());
    let still = fx.deleted_still_cached().await;
    let others: HashSet<String> = fx
        .deleted
        .iter()
        .filter(|(e, _)| **e != "events")
        .flat_map(|(_, ids)| ids.iter().cloned())
        .collect();
    assert_eq!(still, others);
}

/// Sets a cancellation flag when the first list call on `table` answers (before the sweep
/// sees the answer).
struct CancelOnTable {
    inner: Arc<dyn Source>,
    table: &'static str,
    cancel: watch::Sender<bool>,
}

#[async_trait]
impl Source for CancelOnTable {
    async fn get(&self, table: &str, id: &str) -> Result<Option<SourceRecord>, SourceError> {
        self.inner.get(table, id).await
    }
    async fn get_many(
        &self,
        table: &str,
        ids: &[String],
    ) -> Result<Vec<SourceRecord>, SourceError> {
        self.inner.get_many(table, ids).await
    }
    async fn list(&self, table: &str, query: &ListQuery) -> Result<Vec<SourceRecord>, SourceError> {
        let answer = self.inner.list(table, query).await;
        if table == self.table {
            self.cancel.send_replace(true);
        }
        answer
    }
    async fn delete(&self, table: &str, ids: &[String]) -> Result<Vec<String>, SourceError> {
        self.inner.delete(table, ids).await
    }
    fn stats(&self) -> SourceStats {
        self.inner.stats()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_sweep_stops_between_batches_and_leaves_every_record_consistent() {
    let (cancel, cancelled) = watch::channel(false);
    let fx = Fixture::start_with(10, RAISED, every_33rd, |inner| {
        Arc::new(CancelOnTable {
            inner,
            table: "Projects",
            cancel,
        })
    })
    .await;
    let report = fx.sweep().cancel_on(cancelled).run().await.expect("sweep");
    println!("{report}");
    assert!(report.cancelled);
    assert_eq!(report.outcome().exit_code(), 1);
    // Users and events were finished; the projects' answer came after the cancellation.
    let names: Vec<&str> = report.entities.iter().map(|e| e.entity).collect();
    assert_eq!(names, ["users", "events", "projects"]);
    assert_eq!(
        report.totals.removed as usize,
        fx.deleted["users"].len() + fx.deleted["events"].len()
    );
    let still = fx.deleted_still_cached().await;
    let expected: HashSet<String> = ["projects", "votes", "referrals"]
        .iter()
        .flat_map(|e| fx.deleted[e].iter().cloned())
        .collect();
    assert_eq!(still, expected);
    fx.assert_no_live_record_removed().await;

    // The lock was released on the way out.
    let again = fx.sweep().run().await.expect("lock released");
    assert_eq!(again.totals.removed as usize, expected.len());
}
