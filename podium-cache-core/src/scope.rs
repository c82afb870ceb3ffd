//! The per-request scope: what one unit of work (an HTTP request) read through the cache.
//!
//! The engine reports every hit, miss, source call and the records and queries it read to the
//! scope of the task it runs in (a tokio task-local), so an HTTP layer can set `X-Cache`
//! headers and tag a cached response with exactly the records it depended on.
//!
//! ```
//! use podium_cache_core::scope::Scope;
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let scope = Scope::new();
//! scope.run(async {
//!     // … cache reads here are counted in `scope` …
//!     Scope::with_current(|s| s.add_tag("events", "recAAAAAAAAAAAAAA"));
//! }).await;
//! let report = scope.report();
//! assert_eq!(report.records, vec![("events".to_string(), "recAAAAAAAAAAAAAA".to_string())]);
//! # }
//! ```

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

tokio::task_local! {
    static CURRENT: Scope;
}

/// Collects what the cache did for one unit of work. Cheap to clone (shared state).
#[derive(Clone, Debug, Default)]
pub struct Scope {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    hits: AtomicU64,
    misses: AtomicU64,
    source_calls: AtomicU64,
    store_errors: AtomicU64,
    stale: AtomicU64,
    never_seen: AtomicU64,
    client: Mutex<Option<Arc<str>>>,
    records: Mutex<BTreeSet<(String, String)>>,
    entities: Mutex<BTreeSet<String>>,
}

/// What a scope collected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeReport {
    /// Reads answered from the store (tombstone answers included).
    pub hits: u64,
    /// Reads that had to ask the source.
    pub misses: u64,
    /// Source calls made on behalf of this scope.
    pub source_calls: u64,
    /// Store calls that failed (the read fell through to the source).
    pub store_errors: u64,
    /// Reads answered with an expired record because the source failed (stale-if-error); each
    /// is counted in `hits` too. An HTTP layer marks such a response stale.
    pub stale: u64,
    /// Reads answered "not found" for an id the cache has never seen, from the engine's bounded
    /// in-process negative cache (nothing about such an id is in the store). An HTTP layer does
    /// not store such a response: random ids would otherwise grow the store without bound.
    pub never_seen: u64,
    /// `(entity, id)` of every record read (found or not).
    pub records: Vec<(String, String)>,
    /// Entities whose queries (lists) were read: a create in them changes the answer.
    pub entities: Vec<String>,
}

impl Scope {
    /// An empty scope.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `future` with this scope as the current one.
    pub async fn run<F: Future>(&self, future: F) -> F::Output {
        CURRENT.scope(self.clone(), future).await
    }

    /// Calls `f` with the current scope, if the task runs inside one.
    pub fn with_current<R>(f: impl FnOnce(&Scope) -> R) -> Option<R> {
        CURRENT.try_with(f).ok()
    }

    /// The current scope, if any.
    pub fn current() -> Option<Scope> {
        Self::with_current(Scope::clone)
    }

    /// Tags the scope with a record it depends on.
    pub fn add_tag(&self, entity: &str, id: &str) {
        self.inner
            .records
            .lock()
            .insert((entity.to_owned(), id.to_owned()));
    }

    /// This scope with its misses attributed to `client`: the peer address, a trusted header's
    /// value or an authenticated principal, as the HTTP layer decides. The engine queues the
    /// misses of each client apart, fills batches round robin across clients and limits how
    /// many misses one client may have outstanding (see [`crate::cache::CacheConfig`]).
    /// Misses made outside any client share one queue and are not limited.
    ///
    /// ```
    /// use podium_cache_core::scope::Scope;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let scope = Scope::new().with_client("203.0.113.7");
    /// assert_eq!(scope.client().as_deref(), Some("203.0.113.7"));
    /// let seen = scope.run(async { Scope::current_client() }).await;
    /// assert_eq!(seen.as_deref(), Some("203.0.113.7"));
    /// assert_eq!(Scope::current_client(), None);
    /// # }
    /// ```
    pub fn with_client(self, client: impl Into<Arc<str>>) -> Self {
        *self.inner.client.lock() = Some(client.into());
        self
    }

    /// The client this scope's misses are attributed to, if any.
    pub fn client(&self) -> Option<Arc<str>> {
        self.inner.client.lock().clone()
    }

    /// The client of the scope the current task runs in, if any.
    pub fn current_client() -> Option<Arc<str>> {
        Self::with_current(Scope::client).flatten()
    }

    /// Tags the scope with an entity whose list it read.
    pub fn add_entity(&self, entity: &str) {
        self.inner.entities.lock().insert(entity.to_owned());
    }

    /// Everything collected so far.
    pub fn report(&self) -> ScopeReport {
        ScopeReport {
            hits: self.inner.hits.load(Ordering::Relaxed),
            misses: self.inner.misses.load(Ordering::Relaxed),
            source_calls: self.inner.source_calls.load(Ordering::Relaxed),
            store_errors: self.inner.store_errors.load(Ordering::Relaxed),
            stale: self.inner.stale.load(Ordering::Relaxed),
            never_seen: self.inner.never_seen.load(Ordering::Relaxed),
            records: self.inner.records.lock().iter().cloned().collect(),
            entities: self.inner.entities.lock().iter().cloned().collect(),
        }
    }
}

/// What the engine reports into the current scope.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Event {
    Hit,
    Miss,
    SourceCall,
    StoreError,
    /// A hit with an expired record, served because the source failed.
    StaleHit,
}

/// Records `event` for `entity`/`id` in the current scope (if there is one).
pub(crate) fn note(event: Event, entity: &str, id: Option<&str>) {
    Scope::with_current(|scope| {
        let counter = match event {
            Event::Hit => &scope.inner.hits,
            Event::Miss => &scope.inner.misses,
            Event::SourceCall => &scope.inner.source_calls,
            Event::StoreError => &scope.inner.store_errors,
            Event::StaleHit => {
                scope.inner.stale.fetch_add(1, Ordering::Relaxed);
                &scope.inner.hits
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let (Event::Hit | Event::Miss | Event::StaleHit, Some(id)) = (event, id) {
            scope.add_tag(entity, id);
        }
    });
}

/// Records in the current scope (if there is one) that a read was answered "not found" for an
/// id the cache has never seen (see [`ScopeReport::never_seen`]).
pub(crate) fn note_never_seen() {
    Scope::with_current(|scope| {
        scope.inner.never_seen.fetch_add(1, Ordering::Relaxed);
    });
}
