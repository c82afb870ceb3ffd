//! A delaying TCP proxy for fault tests: a slow network between an app and its Redis.
//!
//! [`DelayProxy::start`] listens on a free loopback port and forwards every connection to an
//! upstream address, holding each chunk of bytes, in both directions, for the current delay
//! before passing it on (a delay line: throughput is not limited, latency is added). The delay
//! can be changed while connections are open ([`DelayProxy::set_delay`]); a chunk keeps the
//! delay it was read under, and order is kept. [`DelayProxy::stop`] (or dropping the handle)
//! closes the listener and every connection.
//!
//! ```no_run
//! # async fn demo() -> Result<(), podium_local::HarnessError> {
//! use std::time::Duration;
//! use podium_local::proxy::DelayProxy;
//! use podium_local::redis::RedisServer;
//!
//! let redis = RedisServer::start()?;
//! let proxy = DelayProxy::start(redis.addr()).await?;
//! let url = proxy.redis_url(); // connect the store here instead of to redis.url()
//! proxy.set_delay(Duration::from_millis(500)); // every round trip now takes 1 s more
//! proxy.set_delay(Duration::ZERO); // and back
//! # let _ = url;
//! proxy.stop();
//! # Ok(()) }
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::HarnessError;

/// Bytes read from one side at a time.
const CHUNK: usize = 16 * 1024;

/// A running delaying proxy. See the [module documentation](self).
#[derive(Debug)]
pub struct DelayProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

/// Counters of a [`DelayProxy`], at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted so far.
    pub connections: u64,
    /// Bytes read and not yet passed on now (both directions).
    pub queued_bytes: u64,
    /// The most bytes ever held at once.
    pub max_queued_bytes: u64,
    /// Bytes passed on so far (both directions).
    pub forwarded_bytes: u64,
}

#[derive(Debug, Default)]
struct Shared {
    /// The added delay, in microseconds.
    delay_us: AtomicU64,
    connections: AtomicU64,
    queued: AtomicU64,
    max_queued: AtomicU64,
    forwarded: AtomicU64,
}

impl Shared {
    fn delay(&self) -> Duration {
        Duration::from_micros(self.delay_us.load(Ordering::Relaxed))
    }

    fn queue(&self, bytes: usize) {
        let now = self.queued.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
        self.max_queued.fetch_max(now, Ordering::Relaxed);
    }

    fn dequeue(&self, bytes: usize) {
        self.queued.fetch_sub(bytes as u64, Ordering::Relaxed);
        self.forwarded.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

impl DelayProxy {
    /// Starts a proxy on a free `127.0.0.1` port forwarding to `upstream`, with no delay.
    /// Must be called within a Tokio runtime; the proxy runs on it.
    pub async fn start(upstream: SocketAddr) -> Result<DelayProxy, HarnessError> {
        let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| HarnessError::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|e| HarnessError::io("reading the proxy's address", e))?;
        let shared = Arc::new(Shared::default());
        let accept = tokio::spawn(accept_loop(listener, upstream, Arc::clone(&shared)));
        Ok(DelayProxy {
            addr,
            shared,
            accept,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `redis://127.0.0.1:<port>/`: the proxy's address as a Redis URL.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.addr.port())
    }

    /// Sets the delay added to every chunk read from now on, in each direction (a round trip
    /// gains twice this).
    pub fn set_delay(&self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.shared.delay_us.store(micros, Ordering::Relaxed);
    }

    /// The delay added now, in each direction.
    pub fn delay(&self) -> Duration {
        self.shared.delay()
    }

    /// The proxy's counters now.
    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            connections: self.shared.connections.load(Ordering::Relaxed),
            queued_bytes: self.shared.queued.load(Ordering::Relaxed),
            max_queued_bytes: self.shared.max_queued.load(Ordering::Relaxed),
            forwarded_bytes: self.shared.forwarded.load(Ordering::Relaxed),
        }
    }

    /// Closes the listener and every open connection (what is still held is dropped).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        // The accept task owns every connection's tasks (a `JoinSet`): they end with it.
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    connections.spawn(connection(client, upstream, Arc::clone(&shared)));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Forwards one connection both ways; ends when either side closes.
async fn connection(client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let server = match TcpStream::connect(upstream).await {
        Ok(server) => server,
        Err(err) => {
            tracing::debug!(error = %err, %upstream, "proxy could not reach upstream");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let mut halves = JoinSet::new();
    halves.spawn(delay_line(client_read, server_write, Arc::clone(&shared)));
    halves.spawn(delay_line(server_read, client_write, shared));
    // A direction ends at its reader's end of stream, after delivering what it holds, and
    // closes its writer: the other side then sees the close and ends the other direction.
    while halves.join_next().await.is_some() {}
}

/// Reads chunks from `from` and writes each to `to` once its delay has passed, in order.
async fn delay_line(from: OwnedReadHalf, to: OwnedWriteHalf, shared: Arc<Shared>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = {
        let shared = Arc::clone(&shared);
        async move {
            loop {
                if from.readable().await.is_err() {
                    return;
                }
                let mut buf = vec![0u8; CHUNK];
                match from.try_read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        shared.queue(n);
                        if tx.send((Instant::now() + shared.delay(), buf)).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(_) => return,
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            // Counted before the write: once the peer has the bytes, the counters say so.
            shared.dequeue(chunk.len());
            if write_all(&to, &chunk).await.is_err() {
                return;
            }
        }
    };
    // The reader ending (end of stream) drops `tx`; the writer then delivers what is held,
    // and dropping `to` shuts its side down.
    tokio::join!(reader, writer);
}

async fn write_all(to: &OwnedWriteHalf, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        to.writable().await?;
        match to.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server that answers each read with the same bytes.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (read, write) = stream.into_split();
                    let mut buf = vec![0u8; 1024];
                    loop {
                        if read.readable().await.is_err() {
                            return;
                        }
                        match read.try_read(&mut buf) {
                            Ok(0) => return,
                            Ok(n) => {
                                if write_all(&write, &buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                            Err(_) => return,
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &TcpStream, message: &[u8]) -> (Vec<u8>, Duration) {
        let started = Instant::now();
        stream.writable().await.unwrap();
        stream.try_write(message).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < message.len() {
            stream.readable().await.unwrap();
            if let Ok(n) = stream.try_read(&mut buf) {
                assert!(n > 0, "closed early");
                got.extend_from_slice(&buf[..n]);
            }
        }
        (got, started.elapsed())
    }

    #[tokio::test]
    async fn delay_is_added_both_ways_and_can_be_changed_while_connected() {
        let proxy = DelayProxy::start(echo().await).await.unwrap();
        let stream = TcpStream::connect(proxy.addr()).await.unwrap();
        let (echoed, fast) = round_trip(&stream, b"ping").await;
        assert_eq!(echoed, b"ping");

        proxy.set_delay(Duration::from_millis(150));
        let (echoed, slow) = round_trip(&stream, b"slow").await;
        assert_eq!(echoed, b"slow");
        assert!(slow >= Duration::from_millis(300), "{slow:?}");

        // Changed while connected: a delay of an hour, then none, and the next round trip
        // comes back (a deadline against the hour, not a bound on the proxy's speed).
        proxy.set_delay(Duration::from_secs(3_600));
        proxy.set_delay(Duration::ZERO);
        let (echoed, again) =
            tokio::time::timeout(Duration::from_secs(30), round_trip(&stream, b"fast"))
                .await
                .unwrap_or_else(|_| {
                    panic!("the delay set to zero was not applied (first trip took {fast:?})")
                });
        assert_eq!(echoed, b"fast", "{again:?}");
        let stats = proxy.stats();
        assert_eq!(stats.connections, 1);
        assert_eq!(stats.queued_bytes, 0);
        assert_eq!(stats.forwarded_bytes, 24);
    }

    #[tokio::test]
    async fn stop_closes_open_connections() {
        let proxy = DelayProxy::start(echo().await).await.unwrap();
        let stream = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&stream, b"x").await;
        let addr = proxy.addr();
        proxy.stop();
        let mut buf = [0u8; 8];
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                stream.readable().await.unwrap();
                match stream.try_read(&mut buf) {
                    Ok(0) => return,
                    Ok(_) => panic!("data after stop"),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(_) => return,
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the connection stayed open");
        assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    }
}
