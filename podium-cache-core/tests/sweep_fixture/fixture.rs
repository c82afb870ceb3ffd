// The sweep fixture: five models, 10,000 records in the local Airtable server and the cache,
// a share of them deleted in Airtable. Included (textually) by tests/sweep.rs and
// benches/sweep.rs so the test and the bench run the very same scenario.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use parking_lot::Mutex;
use podium_cache_core::cache::{Cache, Change, ChangeKind, InvalidationListener};
use podium_cache_core::entity::{normalize_index_value, Cacheable};
use podium_cache_core::source::{AirtableSource, Source};
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

