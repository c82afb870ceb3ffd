//! An Airtable-compatible REST server: the subset of `https://api.airtable.com/v0` that
//! podium-cache uses, answered the way Airtable answers it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), podium_local::HarnessError> {
//! use std::time::Duration;
//! use podium_local::airtable::AirtableServer;
//!
//! let server = AirtableServer::builder()
//!     .api_key("keyTest".to_owned())
//!     .latency(Duration::from_millis(5), Duration::from_millis(20))
//!     .rate_limit(Some(5))
//!     .seed_json(&serde_json::json!({"bases": {"appAAAAAAAAAAAAAA": {"Users": []}}}))
//!     .start()
//!     .await?;
//! let id = server.insert("appAAAAAAAAAAAAAA", "Users", serde_json::Map::new());
//! assert_eq!(server.calls().total, 0); // direct access is not an API call
//! # let _ = id;
//! # Ok(())
//! # }
//! ```
//!
//! Routes (all under `/v0/{baseId}/{tableIdOrName}`, requests need
//! `Authorization: Bearer <token key>` and the token's scope for the call, see [`Token`]):
//! `GET /{id}`; `GET ?filterByFormula&fields[]&pageSize&
//! maxRecords&offset&sort[0][field]&sort[0][direction]`; `POST /listRecords`; `POST` (one
//! record or up to 10); `PATCH`/`PUT /{id}` and `PATCH`/`PUT` with up to 10 records; `DELETE
//! /{id}` and `DELETE ?records[]=…` (up to 10).
//!
//! The table "schema" is every field name ever written to the table (seeds, inserts, REST
//! writes, including fields written as `null`) plus names declared with
//! [`RunningAirtable::declare_fields`] or the seed's `{"fields": [...], "records": [...]}` form;
//! `fields[]` and `sort` must name known fields, formulas may name any (unknown = empty).
//!
//! Airtable's native Webhooks API (`/v0/bases/{baseId}/webhooks…`, with pings to the
//! notification URL) and the base schema (`GET /v0/meta/bases/{baseId}/tables`) are served as
//! well: see [`WebhookInfo`] and the methods [`RunningAirtable::webhooks`],
//! [`RunningAirtable::wait_for_webhook_ping`] and [`RunningAirtable::ping_webhook`].
//! `GET /v0/meta/whoami` answers the token's user (see [`Token`]).
//!
//! Errors as Airtable answers them (<https://airtable.com/developers/web/api/errors>): 401 for
//! an unknown key; 403 `INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND` for an unknown base or table
//! and for a token without the scope a call needs (Airtable does not tell these apart); 404
//! `{"error":"NOT_FOUND"}` for an unknown record, webhook or route.

mod api_error;
pub mod formula;
mod list;
mod ratelimit;
mod record;
mod seed;
mod server;
mod shared;
mod store;
mod tokens;
mod webhooks;
mod whoami;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::HarnessError;
use shared::{Settings, Shared};
use store::{Store, WriteOp};

pub use ratelimit::CallStats;
pub use record::{Change, ChangeKind, Record};
pub use seed::{SeedData, SeedRecord, SeedTable};
pub use store::{now_timestamp, random_id};
pub use tokens::{
    Token, ALL_SCOPES, DEFAULT_USER_EMAIL, DEFAULT_USER_ID, RECORDS_READ, RECORDS_WRITE,
    SCHEMA_READ, USER_EMAIL_READ, WEBHOOK_MANAGE,
};
pub use webhooks::{
    content_mac, NotificationResult, WebhookCallStats, WebhookInfo, CONTENT_MAC_HEADER,
    MAX_WEBHOOKS_PER_BASE, PING_RETRIES, PING_RETRY_DELAY,
};

/// The key of the default token (every scope) unless told otherwise.
pub const DEFAULT_API_KEY: &str = "keyLocalDev";
/// Requests per second per base unless told otherwise (Airtable's limit).
pub const DEFAULT_RATE_LIMIT: u32 = 5;

/// Entry point: [`AirtableServer::builder`].
#[derive(Debug, Clone, Copy)]
pub struct AirtableServer;

impl AirtableServer {
    /// A builder with the defaults: one token `keyLocalDev` with every scope, no latency, 5
    /// requests per second per base, no data, bound to `127.0.0.1:0`.
    pub fn builder() -> AirtableServerBuilder {
        AirtableServerBuilder::default()
    }
}

#[derive(Debug, Clone)]
enum SeedSource {
    Data(SeedData),
    Json(Value),
    File(PathBuf),
}

/// Configures and starts an [`AirtableServer`].
#[derive(Debug, Clone)]
pub struct AirtableServerBuilder {
    /// The default token first, then the ones added with [`token`](Self::token).
    tokens: Vec<Token>,
    latency: (Duration, Duration),
    rate_limit: Option<u32>,
    seeds: Vec<SeedSource>,
    bind: SocketAddr,
}

impl Default for AirtableServerBuilder {
    fn default() -> Self {
        AirtableServerBuilder {
            tokens: vec![Token::new(DEFAULT_API_KEY)],
            latency: (Duration::ZERO, Duration::ZERO),
            rate_limit: Some(DEFAULT_RATE_LIMIT),
            seeds: Vec::new(),
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        }
    }
}

impl AirtableServerBuilder {
    /// The key of the default token (every scope), sent as `Authorization: Bearer <key>`.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.tokens[0] = Token::new(key);
        self
    }

    /// Accepts one more token, with its own scopes (a token with the default token's key
    /// replaces it).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), podium_local::HarnessError> {
    /// use podium_local::airtable::{AirtableServer, Token, RECORDS_READ};
    /// let server = AirtableServer::builder()
    ///     .token(Token::new("patReadOnly").scopes([RECORDS_READ]))
    ///     .start()
    ///     .await?;
    /// # let _ = server;
    /// # Ok(())
    /// # }
    /// ```
    pub fn token(mut self, token: Token) -> Self {
        match self.tokens.iter_mut().find(|t| t.key() == token.key()) {
            Some(existing) => *existing = token,
            None => self.tokens.push(token),
        }
        self
    }

    /// Each API request sleeps a uniformly random time in `min..=max` before it is answered.
    pub fn latency(mut self, min: Duration, max: Duration) -> Self {
        self.latency = (min, max.max(min));
        self
    }

    /// Requests per second per base (sliding one-second window); `None` = unlimited.
    pub fn rate_limit(mut self, per_second: Option<u32>) -> Self {
        self.rate_limit = per_second;
        self
    }

    /// Adds seed data (several seeds are loaded in order).
    pub fn seed(mut self, data: SeedData) -> Self {
        self.seeds.push(SeedSource::Data(data));
        self
    }

    /// Adds seed data in the JSON format (checked by [`start`](Self::start)).
    pub fn seed_json(mut self, json: &Value) -> Self {
        self.seeds.push(SeedSource::Json(json.clone()));
        self
    }

    /// Adds seed data from a JSON file (read by [`start`](Self::start)).
    pub fn seed_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.seeds.push(SeedSource::File(path.into()));
        self
    }

    /// The address to listen on (default `127.0.0.1:0`, a free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Loads the seeds, binds and serves on the current tokio runtime. A token with a scope
    /// Airtable does not have is refused.
    pub async fn start(self) -> Result<RunningAirtable, HarnessError> {
        for token in &self.tokens {
            check_token(token)?;
        }
        let mut store = Store::default();
        for source in &self.seeds {
            let data = match source {
                SeedSource::Data(data) => data.clone(),
                SeedSource::Json(json) => SeedData::from_json(json)?,
                SeedSource::File(path) => SeedData::from_file(path)?,
            };
            load_seed(&mut store, &data)?;
        }
        let settings = Settings::new(self.tokens, self.latency, self.rate_limit);
        let shared = Arc::new(Shared::new(settings, store));

        let listener = tokio::net::TcpListener::bind(self.bind)
            .await
            .map_err(|source| HarnessError::Bind {
                addr: self.bind,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| HarnessError::io("reading the bound address", e))?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let app = server::router(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                // A dropped sender stops the server as well.
                let _ = stop_rx.await;
            });
            if let Err(error) = serve.await {
                tracing::warn!(%error, "airtable-local server stopped with an error");
            }
        });
        tracing::debug!(%addr, "airtable-local listening");
        Ok(RunningAirtable {
            inner: Arc::new(Handle {
                shared,
                addr,
                stop: Mutex::new(Some(stop_tx)),
                task: Mutex::new(Some(task)),
            }),
        })
    }
}

/// A token with an empty key or a scope outside [`ALL_SCOPES`] is refused.
fn check_token(token: &Token) -> Result<(), HarnessError> {
    if token.key().trim().is_empty() {
        return Err(HarnessError::InvalidToken(
            "a token has an empty key".to_owned(),
        ));
    }
    let unknown = token.unknown_scopes();
    if !unknown.is_empty() {
        return Err(HarnessError::InvalidToken(format!(
            "unknown scope(s) {} (Airtable's scopes: {})",
            unknown.join(", "),
            ALL_SCOPES.join(", ")
        )));
    }
    Ok(())
}

fn load_seed(store: &mut Store, data: &SeedData) -> Result<(), HarnessError> {
    for (base, tables) in &data.bases {
        if base.is_empty() {
            return Err(HarnessError::InvalidSeed("empty base id".to_owned()));
        }
        for (table, seed) in tables {
            let t = store.ensure_table(base, table);
            t.declare_fields(seed.declared_fields().iter().map(String::as_str));
            for record in seed.records() {
                let op = WriteOp::Create {
                    id: record.id.clone(),
                    created_time: record.created_time.clone(),
                    fields: record.fields.clone(),
                };
                store
                    .write(base, table, op)
                    .map_err(|e| HarnessError::InvalidSeed(format!("{base}/{table}: {e:?}")))?;
            }
        }
    }
    Ok(())
}

#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.get_mut().take() {
            let _ = stop.send(());
        }
        self.shared.store.write().webhooks.close_all();
    }
}

/// A running server. Cheap to clone; the server stops when [`shutdown`](Self::shutdown) is
/// called or the last clone is dropped.
///
/// The data methods act directly on the records: they are not API calls, are not counted and
/// bypass the rate limit, latency and faults. Changes they make are in the change log like any
/// other.
#[derive(Debug, Clone)]
pub struct RunningAirtable {
    inner: Arc<Handle>,
}

impl RunningAirtable {
    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The origin, e.g. `http://127.0.0.1:40123` (no `/v0`).
    pub fn url(&self) -> String {
        let addr = self.addr();
        format!("http://{addr}")
    }

    /// The API root, the origin plus `/v0`.
    pub fn api_url(&self) -> String {
        format!("{}/v0", self.url())
    }

    /// The socket address served (an unspecified bind address is reported as 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        let addr = self.inner.addr;
        if addr.ip().is_unspecified() {
            SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
        } else {
            addr
        }
    }

    /// The key of the default token (every scope unless the builder said otherwise).
    pub fn api_key(&self) -> String {
        let settings = self.shared().settings.lock();
        settings
            .tokens
            .first()
            .map(|t| t.key().to_owned())
            .unwrap_or_default()
    }

    /// Accepts one more token from now on, or replaces the token with the same key (its
    /// scopes change at once). Refused like [`AirtableServerBuilder::start`] refuses it.
    pub fn add_token(&self, token: Token) -> Result<(), HarnessError> {
        check_token(&token)?;
        let mut settings = self.shared().settings.lock();
        match settings.tokens.iter_mut().find(|t| t.key() == token.key()) {
            Some(existing) => *existing = token,
            None => settings.tokens.push(token),
        }
        Ok(())
    }

    /// Stops accepting connections and waits for requests in flight to finish.
    pub async fn shutdown(&self) {
        if let Some(stop) = self.inner.stop.lock().take() {
            let _ = stop.send(());
        }
        let task = self.inner.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    // ----- data access (not API calls) ------------------------------------------------------

    /// Creates a record with a generated id (creating the base and table if needed) and
    /// returns the id.
    pub fn insert(&self, base: &str, table: &str, fields: Map<String, Value>) -> String {
        let id = random_id("rec");
        self.insert_with_id(base, table, &id, fields);
        id
    }

    /// Creates the record with this id, or replaces the fields of the record that has it.
    /// Returns `true` when the record is new.
    pub fn insert_with_id(
        &self,
        base: &str,
        table: &str,
        id: &str,
        fields: Map<String, Value>,
    ) -> bool {
        let mut store = self.shared().store.write();
        let existed = store.ensure_table(base, table).contains(id);
        let op = if existed {
            WriteOp::Update {
                id: id.to_owned(),
                fields,
                replace: true,
            }
        } else {
            WriteOp::Create {
                id: Some(id.to_owned()),
                created_time: None,
                fields,
            }
        };
        if let Err(error) = store.write(base, table, op) {
            // Unreachable: the table was just ensured.
            tracing::warn!(?error, base, table, id, "airtable-local insert failed");
        }
        !existed
    }

    /// Merges `fields` into a record (`null` clears a field). `false` if there is no such
    /// record.
    pub fn update(&self, base: &str, table: &str, id: &str, fields: Map<String, Value>) -> bool {
        let op = WriteOp::Update {
            id: id.to_owned(),
            fields,
            replace: false,
        };
        self.shared().store.write().write(base, table, op).is_ok()
    }

    /// Deletes a record. `false` if there is no such record.
    pub fn remove(&self, base: &str, table: &str, id: &str) -> bool {
        let op = WriteOp::Delete { id: id.to_owned() };
        self.shared().store.write().write(base, table, op).is_ok()
    }

    /// A record, as the API would return it.
    pub fn get(&self, base: &str, table: &str, id: &str) -> Option<Record> {
        let store = self.shared().store.read();
        store.table(base, table).ok()?.get(id).cloned()
    }

    /// The ids of a table's records in insertion order (empty for an unknown table).
    pub fn ids(&self, base: &str, table: &str) -> Vec<String> {
        let store = self.shared().store.read();
        store
            .table(base, table)
            .map(|t| t.ids())
            .unwrap_or_default()
    }

    /// A table's records in insertion order (empty for an unknown table).
    pub fn records(&self, base: &str, table: &str) -> Vec<Record> {
        let store = self.shared().store.read();
        store
            .table(base, table)
            .map(|t| t.records().cloned().collect())
            .unwrap_or_default()
    }

    /// How many records a table has (0 for an unknown table).
    pub fn len(&self, base: &str, table: &str) -> usize {
        let store = self.shared().store.read();
        store.table(base, table).map(|t| t.len()).unwrap_or(0)
    }

    /// The base ids, sorted.
    pub fn bases(&self) -> Vec<String> {
        self.shared().store.read().base_ids()
    }

    /// A base's table names in creation order.
    pub fn tables(&self, base: &str) -> Vec<String> {
        self.shared().store.read().table_names(base)
    }

    /// A table's known field names (see the module docs on the schema).
    pub fn fields(&self, base: &str, table: &str) -> Vec<String> {
        let store = self.shared().store.read();
        store
            .table(base, table)
            .map(|t| t.field_names().to_vec())
            .unwrap_or_default()
    }

    /// Declares field names (creating the base and table if needed), so `fields[]` and `sort`
    /// accept them before any record fills them.
    pub fn declare_fields(&self, base: &str, table: &str, names: &[&str]) {
        let mut store = self.shared().store.write();
        store
            .ensure_table(base, table)
            .declare_fields(names.iter().copied());
    }

    /// Loads more seed data into the running server.
    pub fn load_seed(&self, data: &SeedData) -> Result<(), HarnessError> {
        load_seed(&mut self.shared().store.write(), data)
    }

    // ----- change log -----------------------------------------------------------------------

    /// Changes after sequence number `seq` (0 = all kept), oldest first.
    pub fn changes_since(&self, seq: u64) -> Vec<Change> {
        self.shared().store.read().changes_since(seq)
    }

    /// The sequence number of the latest change (0 if none).
    pub fn last_change_seq(&self) -> u64 {
        self.shared().store.read().last_seq()
    }

    // ----- counters and logs ----------------------------------------------------------------

    /// API calls over all bases since start or [`reset_calls`](Self::reset_calls).
    pub fn calls(&self) -> CallStats {
        self.shared().stats.lock().all
    }

    /// API calls addressed to one base.
    pub fn calls_for(&self, base: &str) -> CallStats {
        self.shared()
            .stats
            .lock()
            .per_base
            .get(base)
            .copied()
            .unwrap_or_default()
    }

    /// Zeroes the counters and forgets the logged formulas (the rate-limit window stays).
    pub fn reset_calls(&self) {
        let shared = self.shared();
        let mut stats = shared.stats.lock();
        stats.all = CallStats::default();
        stats.per_base.clear();
        shared.formulas.lock().clear();
    }

    /// The `filterByFormula` of recent list calls, oldest first (an empty string for a list
    /// without a formula; at most 256 are kept).
    pub fn last_formulas(&self) -> Vec<String> {
        self.shared().formulas.lock().iter().cloned().collect()
    }

    /// The `filterByFormula` of the latest list call.
    pub fn last_formula(&self) -> Option<String> {
        self.shared().formulas.lock().back().cloned()
    }

    // ----- runtime knobs --------------------------------------------------------------------

    /// Changes the latency range.
    pub fn set_latency(&self, min: Duration, max: Duration) {
        self.shared().settings.lock().latency = (min, max.max(min));
    }

    /// Changes the per-base limit (`None` = unlimited).
    pub fn set_rate_limit(&self, per_second: Option<u32>) {
        self.shared().settings.lock().rate_limit = per_second;
    }

    /// Forgets the requests counted in the current rate-limit windows.
    pub fn reset_rate_limit(&self) {
        self.shared().limiter.lock().clear();
    }

    /// The next `n` API requests (that pass authentication and the rate limit) are answered
    /// `status` with an Airtable-shaped error body (503 `SERVICE_UNAVAILABLE`, 500
    /// `SERVER_ERROR`, 429 the rate-limit body, …).
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut settings = self.shared().settings.lock();
        settings.fail_next = n;
        settings.fail_next_status = status;
    }

    /// That share (0.0..=1.0) of API requests fails at random with `status`; 0.0 turns it off.
    pub fn fail_ratio(&self, ratio: f64, status: u16) {
        let mut settings = self.shared().settings.lock();
        settings.fail_ratio = if ratio.is_finite() {
            ratio.clamp(0.0, 1.0)
        } else {
            0.0
        };
        settings.fail_ratio_status = status;
    }

    /// Turns off all fault injection.
    pub fn clear_faults(&self) {
        let mut settings = self.shared().settings.lock();
        settings.fail_next = 0;
        settings.fail_ratio = 0.0;
    }
}
