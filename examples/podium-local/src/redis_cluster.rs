//! A real, throw-away Redis Cluster for tests: several `redis-server` processes in cluster mode
//! joined by `redis-cli --cluster create`.
//!
//! [`RedisCluster::start`] starts `masters × (1 + replicas_per_master)` servers on free loopback
//! ports (never 6379; each port ≤ 55535 with its cluster bus port, port + 10000, free too),
//! creates the cluster, and waits until every node reports `cluster_state:ok`, knows every other
//! node, and every replica's link to its master is up. [`RedisCluster::kill_master`] and
//! [`RedisCluster::restart`] drive failures. Dropping the handle stops every process and removes
//! the temporary files.
//!
//! A small watchdog process (`sh`) is started beside the nodes: it ends them when the process
//! that started them exits without dropping the handle (a test binary holding a shared cluster
//! in a static, see [`RedisCluster::shared`], or a test that aborts), so no server outlives its
//! test run. Everything here is synchronous and bounded; it may be called from async tests.
//!
//! ```no_run
//! # fn demo() -> Result<(), podium_local::redis_cluster::ClusterError> {
//! use podium_local::redis_cluster::RedisCluster;
//! let cluster = RedisCluster::start(3, 0)?;
//! assert_eq!(cluster.nodes().len(), 3);
//! println!("seed nodes: {}", cluster.nodes().join(","));
//! # Ok(()) }
//! ```

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::redis::{find_redis_server, is_executable, port_was_taken, RedisServer};
use crate::HarnessError;

/// How long `redis-cli --cluster create` may take.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the cluster may take to report `cluster_state:ok` everywhere.
const OK_TIMEOUT: Duration = Duration::from_secs(20);
/// Timeout of one command sent to a node by the harness.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// A cluster node's bus port is its port plus this.
const BUS_PORT_OFFSET: u16 = 10_000;
/// The highest node port whose bus port still exists.
const MAX_NODE_PORT: u16 = u16::MAX - BUS_PORT_OFFSET;
/// The default Redis port, never handed out.
const DEFAULT_REDIS_PORT: u16 = 6379;
/// Attempts at starting one node on a fresh port when the chosen one is taken meanwhile.
const START_ATTEMPTS: usize = 4;

/// Why a cluster could not be started or driven.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A node could not be started (see [`HarnessError`]).
    #[error(transparent)]
    Harness(#[from] HarnessError),
    /// `redis-cli` is not on `PATH`.
    #[error(
        "redis-cli was not found on PATH; it is installed with redis-server \
         (`apt-get install -y redis-server`)"
    )]
    CliNotInstalled,
    /// The requested shape cannot be created.
    #[error("invalid cluster shape: {0}")]
    InvalidShape(String),
    /// `redis-cli --cluster create` failed or did not finish.
    #[error("`redis-cli --cluster create` failed ({status}); its output:\n{output}")]
    CreateFailed {
        /// Its exit status (or that it was killed after the timeout).
        status: String,
        /// What it printed.
        output: String,
    },
    /// The cluster did not become healthy in time.
    #[error("the cluster was not ready within {waited:?}: {detail}")]
    NotReady {
        /// How long we waited.
        waited: Duration,
        /// What was last seen not to be ready.
        detail: String,
    },
    /// A node could not be reached or refused a command.
    #[error("node 127.0.0.1:{port} failed `{command}`: {message}")]
    Command {
        /// The node's port.
        port: u16,
        /// The command sent.
        command: String,
        /// What went wrong.
        message: String,
    },
    /// No node or master with that index.
    #[error("no {what} {index}: the cluster has {count}")]
    NoSuch {
        /// `"node"` or `"master"`.
        what: &'static str,
        /// The index asked for.
        index: usize,
        /// How many there are.
        count: usize,
    },
}

/// A running Redis Cluster on loopback ports. See the [module documentation](self).
#[derive(Debug)]
pub struct RedisCluster {
    servers: Vec<RedisServer>,
    masters: usize,
    replicas_per_master: usize,
    dir: PathBuf,
    watchdog: Option<(Child, ChildStdin)>,
}

impl RedisCluster {
    /// Starts `masters` masters (at least 3, as `redis-cli --cluster create` requires), each with
    /// `replicas_per_master` replicas, and waits until the cluster is healthy.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), podium_local::redis_cluster::ClusterError> {
    /// use podium_local::redis_cluster::RedisCluster;
    /// let cluster = RedisCluster::start(3, 1)?; // 6 nodes
    /// assert_eq!(cluster.master_ports()?.len(), 3);
    /// # Ok(()) }
    /// ```
    pub fn start(masters: usize, replicas_per_master: usize) -> Result<RedisCluster, ClusterError> {
        if masters < 3 {
            return Err(ClusterError::InvalidShape(format!(
                "{masters} masters: a cluster needs at least 3"
            )));
        }
        let total = masters
            .checked_mul(replicas_per_master + 1)
            .filter(|n| *n <= 64)
            .ok_or_else(|| {
                ClusterError::InvalidShape(format!(
                    "{masters} masters × {} nodes each is more than 64 nodes",
                    replicas_per_master + 1
                ))
            })?;
        find_redis_server()?;
        let cli = find_on_path("redis-cli").ok_or(ClusterError::CliNotInstalled)?;
        let dir = make_dir()?;
        let mut cluster = RedisCluster {
            servers: Vec::with_capacity(total),
            masters,
            replicas_per_master,
            dir,
            watchdog: None,
        };
        let started = Instant::now();
        for _ in 0..total {
            let server = cluster.start_node()?;
            cluster.servers.push(server);
        }
        cluster.watchdog = Some(cluster.start_watchdog()?);
        cluster.create(&cli)?;
        cluster.wait_until_ok(OK_TIMEOUT)?;
        tracing::info!(
            masters,
            replicas_per_master,
            ports = ?cluster.ports(),
            elapsed = ?started.elapsed(),
            "redis cluster ready"
        );
        Ok(cluster)
    }

    /// A 3-master cluster without replicas, started on first use and shared by every caller in
    /// this process (e.g. all tests of one test binary). It is never dropped: the watchdog ends
    /// its processes when the process exits. Callers share its keyspace, so they either use
    /// distinct key prefixes or serialise themselves and [`flush_all`](Self::flush_all).
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), podium_local::redis_cluster::ClusterError> {
    /// use podium_local::redis_cluster::RedisCluster;
    /// let a = RedisCluster::shared()?;
    /// let b = RedisCluster::shared()?;
    /// assert_eq!(a.nodes(), b.nodes());
    /// # Ok(()) }
    /// ```
    pub fn shared() -> Result<&'static RedisCluster, ClusterError> {
        static SHARED: Mutex<Option<&'static RedisCluster>> = Mutex::new(None);
        let mut slot = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cluster) = *slot {
            return Ok(cluster);
        }
        let cluster: &'static RedisCluster = Box::leak(Box::new(RedisCluster::start(3, 0)?));
        *slot = Some(cluster);
        Ok(cluster)
    }

    /// Seed URLs of every node, `redis://127.0.0.1:<port>`, in node order.
    pub fn nodes(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|s| format!("redis://127.0.0.1:{}", s.port()))
            .collect()
    }

    /// The port of every node, in node order (the order of [`nodes`](Self::nodes)).
    pub fn ports(&self) -> Vec<u16> {
        self.servers.iter().map(RedisServer::port).collect()
    }

    /// How many masters the cluster was created with.
    pub fn masters(&self) -> usize {
        self.masters
    }

    /// How many replicas each master was created with.
    pub fn replicas_per_master(&self) -> usize {
        self.replicas_per_master
    }

    /// Whether node `node`'s process is alive.
    pub fn is_running(&self, node: usize) -> bool {
        self.servers.get(node).is_some_and(RedisServer::is_running)
    }

    /// Ports of the nodes that serve slots now (failovers included), ordered by the first slot
    /// each serves; nodes that the cluster considers failed are left out.
    pub fn master_ports(&self) -> Result<Vec<u16>, ClusterError> {
        let port = self.any_running_port()?;
        let nodes = text_reply(port, &["CLUSTER", "NODES"])?;
        Ok(masters_by_first_slot(&nodes))
    }

    /// Kills the node that is master number `index` now (in [`master_ports`](Self::master_ports)
    /// order) and returns its node index, for [`restart`](Self::restart). With replicas, one of
    /// them takes over after the node timeout (2 s); without, the cluster reports
    /// `cluster_state:fail` until the node is back.
    pub fn kill_master(&mut self, index: usize) -> Result<usize, ClusterError> {
        let masters = self.master_ports()?;
        let port = *masters.get(index).ok_or(ClusterError::NoSuch {
            what: "master",
            index,
            count: masters.len(),
        })?;
        let node =
            self.servers
                .iter()
                .position(|s| s.port() == port)
                .ok_or(ClusterError::NoSuch {
                    what: "node with port",
                    index: usize::from(port),
                    count: self.servers.len(),
                })?;
        self.kill(node)?;
        Ok(node)
    }

    /// Kills node `node` (master or replica) and waits for the process to exit.
    pub fn kill(&mut self, node: usize) -> Result<(), ClusterError> {
        let count = self.servers.len();
        let server = self.servers.get_mut(node).ok_or(ClusterError::NoSuch {
            what: "node",
            index: node,
            count,
        })?;
        server.stop();
        // The watchdog must not kill whatever process gets this pid next.
        let _ = fs::remove_file(pid_file(&self.dir, server.port()));
        tracing::info!(node, port = server.port(), "cluster node killed");
        Ok(())
    }

    /// Starts node `node` again on its port with its cluster configuration (so it rejoins as
    /// the same node, without data) and waits until it answers `PING`. Call
    /// [`wait_until_ok`](Self::wait_until_ok) to wait for the cluster to be healthy again.
    pub fn restart(&mut self, node: usize) -> Result<(), ClusterError> {
        let count = self.servers.len();
        let server = self.servers.get_mut(node).ok_or(ClusterError::NoSuch {
            what: "node",
            index: node,
            count,
        })?;
        server.restart()?;
        tracing::info!(node, port = server.port(), "cluster node restarted");
        Ok(())
    }

    /// Waits until every running node reports `cluster_state:ok` and knows every node, and
    /// every running replica's link to its master is up.
    pub fn wait_until_ok(&self, timeout: Duration) -> Result<(), ClusterError> {
        let started = Instant::now();
        let total = self.servers.len();
        loop {
            let detail = match self.not_ok_reason(total) {
                None => return Ok(()),
                Some(detail) => detail,
            };
            if started.elapsed() >= timeout {
                return Err(ClusterError::NotReady {
                    waited: started.elapsed(),
                    detail,
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Deletes every key: `FLUSHALL` on every master (replicas follow).
    pub fn flush_all(&self) -> Result<(), ClusterError> {
        for port in self.master_ports()? {
            match command(port, &["FLUSHALL"])? {
                Reply::Error(message) => {
                    return Err(ClusterError::Command {
                        port,
                        command: "FLUSHALL".into(),
                        message,
                    })
                }
                _ => continue,
            }
        }
        Ok(())
    }

    /// Why the cluster is not healthy yet, or `None` when it is.
    fn not_ok_reason(&self, total: usize) -> Option<String> {
        let mut running = 0;
        for server in self.servers.iter().filter(|s| s.is_running()) {
            running += 1;
            let port = server.port();
            let info = match text_reply(port, &["CLUSTER", "INFO"]) {
                Ok(info) => info,
                Err(e) => return Some(e.to_string()),
            };
            if field(&info, "cluster_state") != Some("ok") {
                return Some(format!(
                    "127.0.0.1:{port} reports cluster_state:{}",
                    field(&info, "cluster_state").unwrap_or("?")
                ));
            }
            let known = field(&info, "cluster_known_nodes").and_then(|n| n.parse::<usize>().ok());
            if known != Some(total) {
                return Some(format!("127.0.0.1:{port} knows {known:?} of {total} nodes"));
            }
            let replication = match text_reply(port, &["INFO", "replication"]) {
                Ok(text) => text,
                Err(e) => return Some(e.to_string()),
            };
            if field(&replication, "role") == Some("slave")
                && field(&replication, "master_link_status") != Some("up")
            {
                return Some(format!(
                    "replica 127.0.0.1:{port} is not linked to its master yet"
                ));
            }
        }
        (running == 0).then(|| "no node is running".to_owned())
    }

    fn any_running_port(&self) -> Result<u16, ClusterError> {
        self.servers
            .iter()
            .find(|s| s.is_running())
            .map(RedisServer::port)
            .ok_or(ClusterError::NotReady {
                waited: Duration::ZERO,
                detail: "no node is running".into(),
            })
    }

    /// Starts one cluster-mode node on a fresh port whose bus port is free too.
    fn start_node(&self) -> Result<RedisServer, ClusterError> {
        let mut last_error = HarnessError::NoFreePort;
        for _ in 0..START_ATTEMPTS {
            let port = free_node_port(&self.ports())?;
            let config = self.dir.join(format!("nodes-{port}.conf"));
            let pid = pid_file(&self.dir, port);
            let config = config.to_string_lossy().into_owned();
            let pid = pid.to_string_lossy().into_owned();
            let args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &config,
                "--cluster-node-timeout",
                "2000",
                "--pidfile",
                &pid,
            ];
            match RedisServer::start_on(port, &args) {
                Ok(server) => return Ok(server),
                // Taken between the probe and the bind (port or bus port): try another.
                Err(e @ HarnessError::RedisExited { .. }) if port_was_taken(&e) => last_error = e,
                Err(e) => return Err(e.into()),
            }
        }
        Err(last_error.into())
    }

    /// `redis-cli --cluster create 127.0.0.1:P… --cluster-replicas R --cluster-yes`, bounded.
    fn create(&self, cli: &Path) -> Result<(), ClusterError> {
        let log_path = self.dir.join("cluster-create.log");
        let log = fs::File::create(&log_path)
            .map_err(|e| HarnessError::io(format!("creating {}", log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| HarnessError::io("duplicating the log file handle", e))?;
        let mut cmd = Command::new(cli);
        cmd.args(["--cluster", "create"]);
        for port in self.ports() {
            cmd.arg(format!("127.0.0.1:{port}"));
        }
        cmd.args(["--cluster-replicas", &self.replicas_per_master.to_string()])
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        let mut child = cmd
            .spawn()
            .map_err(|e| HarnessError::io(format!("spawning {}", cli.display()), e))?;
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status.to_string(),
                Ok(None) if started.elapsed() < CREATE_TIMEOUT => {
                    thread::sleep(Duration::from_millis(50))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break format!("killed after {CREATE_TIMEOUT:?}");
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(HarnessError::io("waiting for redis-cli", e).into());
                }
            }
        };
        let output = fs::read_to_string(&log_path).unwrap_or_default();
        // redis-cli exits 0 on success; its output ends with "[OK] All 16384 slots covered."
        let succeeded = status == "exit status: 0" && output.contains("All 16384 slots covered");
        if succeeded {
            Ok(())
        } else {
            Err(ClusterError::CreateFailed { status, output })
        }
    }

    /// An `sh` that waits for its stdin to close (we hold the only write end, so it closes when
    /// this process exits or the handle is dropped), then kills the nodes whose pid files are
    /// left and removes the temporary directories.
    fn start_watchdog(&self) -> Result<(Child, ChildStdin), ClusterError> {
        const SCRIPT: &str = r#"cat >/dev/null
for f in "$0"/*.pid; do
  [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
done
rm -rf -- "$0" "$@""#;
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(SCRIPT).arg(&self.dir);
        for server in &self.servers {
            if let Some(dir) = server.log_path().parent() {
                cmd.arg(dir);
            }
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| HarnessError::io("spawning the cluster watchdog (sh)", e))?;
        let stdin = child.stdin.take().ok_or_else(|| {
            HarnessError::io(
                "taking the watchdog's stdin",
                std::io::Error::other("no stdin pipe"),
            )
        })?;
        Ok((child, stdin))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            server.stop();
        }
        let _ = fs::remove_dir_all(&self.dir);
        if let Some((mut child, stdin)) = self.watchdog.take() {
            // Closing its stdin lets it run: nothing is left for it to kill.
            drop(stdin);
            let _ = child.wait();
        }
        // The servers' own directories go with `self.servers` (RedisServer's Drop).
    }
}

fn pid_file(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!("redis-{port}.pid"))
}

/// A loopback port ≤ 55535, not 6379, not in `taken`, free now together with its bus port.
fn free_node_port(taken: &[u16]) -> Result<u16, ClusterError> {
    for _ in 0..64 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| HarnessError::io("binding 127.0.0.1:0", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| HarnessError::io("reading the bound address", e))?
            .port();
        // The kernel's ephemeral range often lies above 55535: fall back to a random port.
        let port = if port <= MAX_NODE_PORT {
            port
        } else {
            rand::thread_rng().gen_range(20_000..=MAX_NODE_PORT)
        };
        if port == DEFAULT_REDIS_PORT || taken.contains(&port) {
            continue;
        }
        drop(listener);
        let free = |p: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok();
        if free(port) && free(port + BUS_PORT_OFFSET) {
            return Ok(port);
        }
    }
    Err(HarnessError::NoFreePort.into())
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn make_dir() -> Result<PathBuf, ClusterError> {
    let suffix: u64 = rand::thread_rng().gen();
    let dir = std::env::temp_dir().join(format!(
        "podium-redis-cluster-{}-{suffix:016x}",
        std::process::id()
    ));
    fs::create_dir_all(&dir)
        .map_err(|e| HarnessError::io(format!("creating {}", dir.display()), e))?;
    Ok(dir)
}

/// `name:value` out of an `INFO`-style text.
fn field<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    text.lines().find_map(|line| {
        line.trim_end()
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
    })
}

/// The ports of the slot-serving, non-failed masters in a `CLUSTER NODES` text, ordered by the
/// first slot each serves.
fn masters_by_first_slot(nodes: &str) -> Vec<u16> {
    let mut masters: Vec<(u16, u16)> = nodes
        .lines()
        .filter_map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let flags = parts.get(2)?;
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                return None;
            }
            // ip:port@busport[,hostname]
            let port = parts
                .get(1)?
                .split('@')
                .next()?
                .rsplit(':')
                .next()?
                .parse::<u16>()
                .ok()?;
            let first_slot = parts
                .iter()
                .skip(8)
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| s.split('-').next()?.parse::<u16>().ok())
                .min()?;
            Some((first_slot, port))
        })
        .collect();
    masters.sort_unstable();
    masters.into_iter().map(|(_, port)| port).collect()
}

/// One RESP reply, as far as the harness needs it.
#[derive(Debug, PartialEq)]
enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// Sends one command over a fresh connection and reads the reply.
fn command(port: u16, args: &[&str]) -> Result<Reply, ClusterError> {
    let fail = |message: String| ClusterError::Command {
        port,
        command: args.join(" "),
        message,
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream =
        TcpStream::connect_timeout(&addr, COMMAND_TIMEOUT).map_err(|e| fail(e.to_string()))?;
    stream
        .set_read_timeout(Some(COMMAND_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(COMMAND_TIMEOUT)))
        .map_err(|e| fail(e.to_string()))?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    stream
        .write_all(&request)
        .map_err(|e| fail(e.to_string()))?;
    read_reply(&mut BufReader::new(stream)).map_err(|e| fail(e.to_string()))
}

/// A command whose reply is text (a bulk or simple string); an error reply is an error.
fn text_reply(port: u16, args: &[&str]) -> Result<String, ClusterError> {
    match command(port, args)? {
        Reply::Bulk(Some(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Reply::Simple(text) => Ok(text),
        other => Err(ClusterError::Command {
            port,
            command: args.join(" "),
            message: format!("unexpected reply {other:?}"),
        }),
    }
}

fn read_reply(reader: &mut impl BufRead) -> std::io::Result<Reply> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(bad("connection closed before a reply".into()));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    let length = || {
        rest.parse::<i64>()
            .map_err(|_| bad(format!("bad length in {line:?}")))
    };
    match kind {
        "+" => Ok(Reply::Simple(rest.to_owned())),
        "-" => Ok(Reply::Error(rest.to_owned())),
        ":" => Ok(Reply::Integer(length()?)),
        "$" => match usize::try_from(length()?) {
            Err(_) => Ok(Reply::Bulk(None)),
            Ok(n) => {
                let mut data = vec![0; n + 2];
                reader.read_exact(&mut data)?;
                data.truncate(n);
                Ok(Reply::Bulk(Some(data)))
            }
        },
        "*" => match usize::try_from(length()?) {
            Err(_) => Ok(Reply::Array(None)),
            Ok(n) => (0..n)
                .map(|_| read_reply(reader))
                .collect::<Result<Vec<_>, _>>()
                .map(|items| Reply::Array(Some(items))),
        },
        _ => Err(bad(format!("unexpected reply line {line:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_parsed() {
        let mut input: &[u8] = b"*3\r\n+OK\r\n$5\r\nab\r\nc\r\n$-1\r\n:42\r\n-ERR nope\r\n";
        assert_eq!(
            read_reply(&mut input).ok(),
            Some(Reply::Array(Some(vec![
                Reply::Simple("OK".into()),
                Reply::Bulk(Some(b"ab\r\nc".to_vec())),
                Reply::Bulk(None),
            ])))
        );
        assert_eq!(read_reply(&mut input).ok(), Some(Reply::Integer(42)));
        assert_eq!(
            read_reply(&mut input).ok(),
            Some(Reply::Error("ERR nope".into()))
        );
        assert!(read_reply(&mut input).is_err(), "nothing left to read");
    }

    #[test]
    fn info_fields_are_found_by_exact_name() {
        let info = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_known_nodes:6\r\n";
        assert_eq!(field(info, "cluster_state"), Some("ok"));
        assert_eq!(field(info, "cluster_known_nodes"), Some("6"));
        assert_eq!(field(info, "cluster"), None);
    }

    #[test]
    fn masters_are_ordered_by_first_slot_and_failed_ones_left_out() {
        let nodes = "\
b1 127.0.0.1:30002@40002 master - 0 1 2 connected 5461-10922
a1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
r1 127.0.0.1:30004@40004 slave a1 0 1 1 connected
c1 127.0.0.1:30003@40003 master,fail - 0 1 3 disconnected 10923-16383
c2 127.0.0.1:30005@40005 master - 0 1 4 connected [10923->-b1] 10923-16383
";
        assert_eq!(masters_by_first_slot(nodes), [30001, 30002, 30005]);
    }

    #[test]
    fn fewer_than_three_masters_are_refused_before_anything_starts() {
        assert!(matches!(
            RedisCluster::start(2, 1),
            Err(ClusterError::InvalidShape(_))
        ));
    }

    #[test]
    fn node_ports_leave_room_for_the_bus_port() {
        for _ in 0..20 {
            let port = free_node_port(&[]).expect("a port");
            assert!((1..=MAX_NODE_PORT).contains(&port) && port != DEFAULT_REDIS_PORT);
        }
    }

    /// Needs redis-server and redis-cli; about 5-8 s (a failover waits out the node timeout).
    #[test]
    fn a_cluster_with_replicas_fails_over_and_takes_a_node_back() {
        let mut cluster = RedisCluster::start(3, 1).expect("starting a 3×2 cluster");
        assert_eq!(cluster.nodes().len(), 6);
        let before = cluster.master_ports().expect("masters");
        assert_eq!(before.len(), 3);
        let killed = cluster.kill_master(0).expect("kill master 0");
        assert_eq!(cluster.ports()[killed], before[0]);
        assert!(!cluster.is_running(killed));
        // A replica takes over master 0's slots; the other masters stay.
        let deadline = Instant::now() + Duration::from_secs(15);
        let after = loop {
            let masters = cluster.master_ports().unwrap_or_default();
            if masters.len() == 3 && !masters.contains(&before[0]) {
                break masters;
            }
            assert!(Instant::now() < deadline, "no failover: {masters:?}");
            thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(after[1..], before[1..]);
        // The old master comes back (as a replica of the new one) and the cluster is whole.
        cluster.restart(killed).expect("restart");
        cluster
            .wait_until_ok(Duration::from_secs(15))
            .expect("healthy after the restart");
        assert!(cluster.is_running(killed));
        let dir = cluster.dir.clone();
        drop(cluster);
        assert!(!dir.exists(), "drop removes the cluster's files");
    }
}
