//! Local stand-ins for the services podium-cache talks to.
//!
//! * [`airtable`]: an Airtable-compatible REST server (the `/v0/{base}/{table}` subset that
//!   podium-cache uses) with seeded data, a real `filterByFormula` evaluator, Airtable's rate
//!   limit, latency, fault injection and call counters for tests.
//! * [`redis`]: launches a throw-away `redis-server` process on a free loopback port.
//! * [`redis_cluster`]: launches a throw-away Redis Cluster (`redis-server` × N joined by
//!   `redis-cli --cluster create`) on free loopback ports, with failure controls.
//! * [`tls`] (feature `tls`): a certificate authority and a server certificate for `127.0.0.1`
//!   made at run time, for a TLS `redis-server` ([`RedisServer::start_tls`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), podium_local::HarnessError> {
//! use podium_local::airtable::AirtableServer;
//! use podium_local::redis::RedisServer;
//!
//! let airtable = AirtableServer::builder()
//!     .seed_json(&serde_json::json!({
//!         "bases": {"appAAAAAAAAAAAAAA": {"Users": [{"fields": {"email": "a@example.com"}}]}}
//!     }))
//!     .start()
//!     .await?;
//! let redis = RedisServer::start()?;
//! println!("airtable at {}, redis at {}", airtable.url(), redis.url());
//! # Ok(())
//! # }
//! ```

pub mod airtable;
mod error;
pub mod proxy;
pub mod redis;
pub mod redis_cluster;
#[cfg(feature = "tls")]
pub mod tls;

pub use airtable::{
    AirtableServer, AirtableServerBuilder, CallStats, Record, RunningAirtable, SeedData,
};
pub use error::HarnessError;
pub use redis::{free_port, RedisServer, TlsFiles};
pub use redis_cluster::{ClusterError, RedisCluster};
