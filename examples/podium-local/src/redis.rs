//! A real, throw-away `redis-server` process for tests.
//!
//! [`RedisServer::start`] finds `redis-server` on `PATH`, picks a free loopback port (never 6379),
//! runs the server without persistence in a temporary directory and waits until it answers
//! `PING`. Dropping the handle kills the process and removes the directory. The code is
//! synchronous and may be called from async tests as well.
//!
//! [`RedisServer::start_tls`] starts one that speaks TLS only (`--port 0`, `--tls-port`), on
//! certificate files such as those [`crate::tls::TestCertificates`] makes (feature `tls`).

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::Rng;

use crate::HarnessError;

/// How long to wait for a started server to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How many fresh ports to try when the chosen one is taken before the server binds it.
const START_ATTEMPTS: usize = 4;
/// The default Redis port, never handed out so a developer's own Redis is never touched.
const DEFAULT_REDIS_PORT: u16 = 6379;

/// Returns a loopback TCP port that was free a moment ago (bind `127.0.0.1:0`, read the port,
/// release it). Never returns 6379.
pub fn free_port() -> Result<u16, HarnessError> {
    for _ in 0..16 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| HarnessError::io("binding 127.0.0.1:0", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| HarnessError::io("reading the bound address", e))?
            .port();
        if port != DEFAULT_REDIS_PORT {
            return Ok(port);
        }
    }
    Err(HarnessError::NoFreePort)
}

/// The certificate files of a TLS `redis-server` (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate (`--tls-cert-file`), valid for `127.0.0.1`.
    pub cert: PathBuf,
    /// Its private key (`--tls-key-file`).
    pub key: PathBuf,
    /// The CA that signed it (`--tls-ca-cert-file`): what clients must trust.
    pub ca: PathBuf,
}

/// The line a started `redis-server` logs once it serves.
const READY_LINE: &str = "Ready to accept connections";

/// A `redis-server` child process listening on `127.0.0.1:<port>`.
#[derive(Debug)]
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    dir: PathBuf,
    extra_args: Vec<String>,
    tls: Option<TlsFiles>,
    child: Mutex<Option<Child>>,
}

impl RedisServer {
    /// Starts a server with the default settings (no persistence, loopback only).
    pub fn start() -> Result<RedisServer, HarnessError> {
        Self::start_with(&[])
    }

    /// Starts a server and passes `args` to `redis-server` after the defaults
    /// (e.g. `&["--maxmemory", "10mb"]`).
    pub fn start_with(args: &[&str]) -> Result<RedisServer, HarnessError> {
        Self::start_on_free_port(args, None)
    }

    /// Starts a server that speaks TLS only, on `files` (no plain port; clients need not
    /// present a certificate). Its [`url`](Self::url) is `rediss://127.0.0.1:<port>/`, and a
    /// client must trust `files.ca`.
    ///
    /// ```no_run
    /// # #[cfg(feature = "tls")]
    /// # fn demo() -> Result<(), podium_local::HarnessError> {
    /// use podium_local::redis::RedisServer;
    /// use podium_local::tls::TestCertificates;
    /// let certificates = TestCertificates::generate()?;
    /// let server = RedisServer::start_tls(&certificates.files())?;
    /// assert!(server.url().starts_with("rediss://127.0.0.1:"));
    /// # Ok(()) }
    /// ```
    pub fn start_tls(files: &TlsFiles) -> Result<RedisServer, HarnessError> {
        Self::start_on_free_port(&[], Some(files.clone()))
    }

    fn start_on_free_port(
        args: &[&str],
        tls: Option<TlsFiles>,
    ) -> Result<RedisServer, HarnessError> {
        let binary = find_redis_server()?;
        let dir = make_temp_dir()?;
        let mut server = RedisServer {
            binary,
            port: 0,
            dir,
            extra_args: args.iter().map(|a| (*a).to_owned()).collect(),
            tls,
            child: Mutex::new(None),
        };
        let mut last_error = HarnessError::NoFreePort;
        for _ in 0..START_ATTEMPTS {
            server.port = free_port()?;
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                // Someone else took the port between our probe and the server's bind: try another.
                Err(e @ HarnessError::RedisExited { .. }) if port_was_taken(&e) => last_error = e,
                Err(e) => return Err(e),
            }
        }
        Err(last_error)
    }

    /// Starts a server on `port` (one attempt: a port that is taken is an error, see
    /// [`HarnessError::RedisExited`]) and passes `args` after the defaults. For callers that
    /// must choose the port themselves, e.g. a cluster node, whose bus port is `port + 10000`.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), podium_local::HarnessError> {
    /// use podium_local::redis::RedisServer;
    /// let server = RedisServer::start_on(31000, &["--maxmemory", "10mb"])?;
    /// assert_eq!(server.port(), 31000);
    /// # Ok(()) }
    /// ```
    pub fn start_on(port: u16, args: &[&str]) -> Result<RedisServer, HarnessError> {
        let binary = find_redis_server()?;
        let dir = make_temp_dir()?;
        let mut server = RedisServer {
            binary,
            port,
            dir,
            extra_args: args.iter().map(|a| (*a).to_owned()).collect(),
            tls: None,
            child: Mutex::new(None),
        };
        server.spawn_and_wait()?;
        Ok(server)
    }

    /// The connection URL, `redis://127.0.0.1:<port>/` (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// The port the server listens on (kept across [`stop`](Self::stop) and
    /// [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The server's log file (its stdout and stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// Whether the child process is alive.
    pub fn is_running(&self) -> bool {
        match self.child.lock().as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server and waits for it to exit. The port stays recorded so that
    /// [`restart`](Self::restart) can bring the server back on it. Stopping a stopped server
    /// does nothing.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.get_mut().take() {
            // The process may have exited already; either way it is gone afterwards.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (stopping it first if it runs) and waits
    /// until it answers `PING`. The data is gone: the server keeps nothing on disk.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return Ok(()),
                // The old socket may linger for a moment; retry until the deadline.
                Err(e @ HarnessError::RedisExited { .. })
                    if port_was_taken(&e) && Instant::now() < deadline =>
                {
                    thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends `PING` over a fresh connection and reports whether `+PONG` came back. A TLS
    /// server is not spoken to (this harness has no TLS client): it counts as answering when
    /// it accepts a connection and has logged that it is ready.
    pub fn ping(&self) -> bool {
        self.answers(Duration::from_millis(500))
    }

    fn answers(&self, timeout: Duration) -> bool {
        if self.tls.is_none() {
            return ping(self.port, timeout);
        }
        let ready = fs::read(self.log_path())
            .map(|log| String::from_utf8_lossy(&log).contains(READY_LINE))
            .unwrap_or(false);
        ready && TcpStream::connect_timeout(&self.addr(), timeout).is_ok()
    }

    fn spawn_and_wait(&mut self) -> Result<(), HarnessError> {
        let log_path = self.log_path();
        let log = File::create(&log_path)
            .map_err(|e| HarnessError::io(format!("creating {}", log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| HarnessError::io("duplicating the log file handle", e))?;
        let port = self.port.to_string();
        let mut command = Command::new(&self.binary);
        match &self.tls {
            None => command.args(["--port", &port]),
            Some(files) => command
                .args(["--port", "0", "--tls-port", &port])
                .arg("--tls-cert-file")
                .arg(&files.cert)
                .arg("--tls-key-file")
                .arg(&files.key)
                .arg("--tls-ca-cert-file")
                .arg(&files.ca)
                .args(["--tls-auth-clients", "no"]),
        };
        let child = command
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args([
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--daemonize",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|e| HarnessError::io(format!("spawning {}", self.binary.display()), e))?;
        *self.child.get_mut() = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), HarnessError> {
        let started = Instant::now();
        loop {
            let child = self.child.get_mut();
            if let Some(running) = child.as_mut() {
                if let Ok(Some(status)) = running.try_wait() {
                    *child = None;
                    return Err(HarnessError::RedisExited {
                        port: self.port,
                        status: status.to_string(),
                        log: read_tail(&self.log_path()),
                    });
                }
            }
            if self.answers(Duration::from_millis(200)) {
                return Ok(());
            }
            if started.elapsed() >= READY_TIMEOUT {
                self.stop();
                return Err(HarnessError::RedisNotReady {
                    port: self.port,
                    waited: started.elapsed(),
                    log: read_tail(&self.log_path()),
                });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Whether a start failed because the port was in use (worth retrying) rather than, say, a bad
/// argument.
pub(crate) fn port_was_taken(error: &HarnessError) -> bool {
    match error {
        HarnessError::RedisExited { log, .. } => {
            log.contains("Address already in use")
                || log.contains("Could not create server TCP listening socket")
        }
        _ => false,
    }
}

/// Raw RESP `PING`; true when the answer starts with `+PONG`.
fn ping(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    if stream.set_read_timeout(Some(timeout)).is_err()
        || stream.set_write_timeout(Some(timeout)).is_err()
        || stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err()
    {
        return false;
    }
    let mut buf = [0u8; 7];
    let mut read = 0;
    while read < buf.len() {
        match stream.read(&mut buf[read..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    buf[..read].starts_with(b"+PONG")
}

pub(crate) fn find_redis_server() -> Result<PathBuf, HarnessError> {
    let path = std::env::var_os("PATH").ok_or(HarnessError::RedisNotInstalled)?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| is_executable(candidate))
        .ok_or(HarnessError::RedisNotInstalled)
}

#[cfg(unix)]
pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
pub(crate) fn is_executable(path: &Path) -> bool {
    path.is_file()
}

fn make_temp_dir() -> Result<PathBuf, HarnessError> {
    let suffix: u64 = rand::thread_rng().gen();
    let dir =
        std::env::temp_dir().join(format!("podium-redis-{}-{suffix:016x}", std::process::id()));
    fs::create_dir_all(&dir)
        .map_err(|e| HarnessError::io(format!("creating {}", dir.display()), e))?;
    Ok(dir)
}

/// The last few KiB of a log file, for error messages.
fn read_tail(path: &Path) -> String {
    const TAIL: usize = 4096;
    match fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(TAIL);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}
