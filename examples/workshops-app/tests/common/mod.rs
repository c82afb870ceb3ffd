//! Shared helpers of the workshops app's tests: the services a user's app talks to (the local
//! Airtable server, in this process so its calls can be counted, and a real redis-server), and
//! the crate's two binaries run as separate processes, the way a user runs them, configured
//! only through `PODIUM_*` variables.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use podium_cache_core::webhook::WebhookSecret;
use podium_local::airtable::{AirtableServer, RunningAirtable};
use podium_local::redis::{free_port, RedisServer};

/// The Airtable base of `seed.json` (the README's offline development runs on it too).
pub const BASE: &str = "appWORKSHOPS00001";
/// Members: Ada hosts the first workshop, Grace the second, Linus none.
pub const ADA: &str = "recMEMBERADA00001";
pub const GRACE: &str = "recMEMBERGRACE001";
pub const LINUS: &str = "recMEMBERLINUS001";
pub const RUST: &str = "recWORKSHOPRUST01";
pub const COBOL: &str = "recWORKSHOPCOBOL1";
pub const GIT: &str = "recWORKSHOPGIT001";

/// How long a process may take to start or finish.
const PROCESS_DEADLINE: Duration = Duration::from_secs(60);

/// The local Airtable server with the two tables of `seed.json`, and a redis-server.
pub struct World {
    pub airtable: RunningAirtable,
    pub redis: RedisServer,
    pub webhook_secret: String,
    pub dir: TempDir,
}

impl World {
    pub async fn start(name: &str) -> World {
        let airtable = AirtableServer::builder()
            .seed_file(concat!(env!("CARGO_MANIFEST_DIR"), "/seed.json"))
            .start()
            .await
            .expect("the local Airtable server starts");
        World {
            airtable,
            redis: RedisServer::start().expect("redis-server starts"),
            webhook_secret: WebhookSecret::generate().expose(),
            dir: TempDir::new(name),
        }
    }

    /// The settings of the app and of its task runner, as a user sets them in production.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PODIUM_REDIS_URL", self.redis.url()),
            ("PODIUM_AIRTABLE_API_URL", self.airtable.url()),
            ("PODIUM_AIRTABLE_API_KEY", self.airtable.api_key()),
            ("PODIUM_AIRTABLE_BASE_ID", BASE.to_owned()),
            ("PODIUM_WEBHOOK_SECRET", self.webhook_secret.clone()),
        ]
    }

    /// A command for `binary` with the world's settings only (none of this process's
    /// `PODIUM_*` variables), run in the world's directory (no `.secrets.toml` there).
    pub fn command(&self, binary: &str) -> Command {
        let mut command = Command::new(binary);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PODIUM_") {
                command.env_remove(name);
            }
        }
        command.envs(self.env()).env("RUST_LOG", "warn").current_dir(&self.dir.0);
        command
    }

    /// Runs the task runner to its end: (exit status, stdout, stderr).
    pub async fn tasks(&self, args: &[&str]) -> (ExitStatus, String, String) {
        let mut command = self.command(env!("CARGO_BIN_EXE_podium-tasks"));
        command.args(args);
        let mut process = Process::spawn(command, &self.dir.0, "podium-tasks");
        let status = process.wait(PROCESS_DEADLINE).await;
        (status, process.stdout(), process.stderr())
    }

    /// Starts the app on a free port and waits until it answers.
    pub async fn app(&self) -> App {
        let port = free_port().expect("a free port");
        let mut command = self.command(env!("CARGO_BIN_EXE_workshops-app"));
        command.env("PODIUM_BIND", format!("127.0.0.1:{port}"));
        let mut process = Process::spawn(command, &self.dir.0, "workshops-app");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let health = format!("{base}/api/webhooks/health");
        let deadline = Instant::now() + PROCESS_DEADLINE;
        loop {
            if let Ok(response) = http.get(&health).send().await {
                if response.status().is_success() {
                    break;
                }
            }
            if let Some(status) = process.try_wait() {
                panic!("the app exited at start ({status}): {}", process.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "the app did not answer {health} within {PROCESS_DEADLINE:?}: {}",
                process.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        App { process, base, http }
    }
}

/// The running app; killed when dropped.
pub struct App {
    process: Process,
    pub base: String,
    pub http: reqwest::Client,
}

/// One answer of the app.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub x_cache: String,
    pub cache_status: String,
    pub body: serde_json::Value,
}

impl App {
    pub async fn get(&self, path: &str) -> Answer {
        let response =
            self.http.get(format!("{}{path}", self.base)).send().await.unwrap_or_else(|e| {
                panic!("GET {path}: {e}; the app said: {}", self.process.stderr())
            });
        let header = |name: &str| {
            response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
        };
        let (x_cache, cache_status) = (header("x-cache"), header("cache-status"));
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Answer { status, x_cache, cache_status, body }
    }

    /// What the app wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }

    /// Sends the app Ctrl-C (SIGINT) and waits for it to exit.
    pub async fn interrupt(mut self) -> ExitStatus {
        let pid = self.process.child.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status().expect("kill runs");
        assert!(sent.success(), "kill -INT {pid}: {sent}");
        self.process.wait(PROCESS_DEADLINE).await
    }
}

/// A child process whose output goes to files (read at any time, never a full pipe); killed
/// when dropped.
pub struct Process {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    name: &'static str,
}

impl Process {
    fn spawn(mut command: Command, dir: &Path, name: &'static str) -> Process {
        let unique = format!("{name}-{}", free_port().expect("a free port"));
        let stdout = dir.join(format!("{unique}.stdout"));
        let stderr = dir.join(format!("{unique}.stderr"));
        let child = command
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("stdout file"))
            .stderr(File::create(&stderr).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        Process { child, stdout, stderr, name }
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("the child's status")
    }

    /// Waits for the process to exit; past `deadline` it is killed and the test fails.
    async fn wait(&mut self, deadline: Duration) -> ExitStatus {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            if Instant::now() >= until {
                let _ = self.child.kill();
                panic!("{} did not finish within {deadline:?}: {}", self.name, self.stderr());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory of its own, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let port = free_port().expect("a free port");
        let dir = std::env::temp_dir()
            .join(format!("workshops-app-{name}-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
