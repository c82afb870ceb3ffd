//! The one error type of this crate.

use std::net::SocketAddr;
use std::time::Duration;

/// Why a local stand-in could not be started or driven.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// `redis-server` is not on `PATH`.
    #[error(
        "redis-server was not found on PATH; install it with `apt-get install -y redis-server`"
    )]
    RedisNotInstalled,
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No free loopback port could be found.
    #[error("could not find a free loopback port")]
    NoFreePort,
    /// `redis-server` started but did not answer `PING` in time.
    #[error("redis-server on port {port} did not answer PING within {waited:?}; its log:\n{log}")]
    RedisNotReady {
        /// The port it was asked to listen on.
        port: u16,
        /// How long we waited.
        waited: Duration,
        /// The tail of its log file.
        log: String,
    },
    /// `redis-server` exited while starting.
    #[error("redis-server on port {port} exited while starting ({status}); its log:\n{log}")]
    RedisExited {
        /// The port it was asked to listen on.
        port: u16,
        /// Its exit status.
        status: String,
        /// The tail of its log file.
        log: String,
    },
    /// A test certificate could not be made.
    #[error("could not make a test certificate: {0}")]
    Certificate(String),
    /// The seed data could not be read or is not in the expected shape.
    #[error("invalid seed data: {0}")]
    InvalidSeed(String),
    /// A token of the local Airtable server is malformed (empty key, unknown scope).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The Airtable server could not bind its address.
    #[error("could not bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl HarnessError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        HarnessError::Io {
            context: context.into(),
            source,
        }
    }
}
