//! The README's run command, as a newcomer meets it: start the real `podium-example` binary on
//! the embedded defaults, read the "try this" commands it prints, run them, and check that they
//! behave as printed (MISS, then HIT, then the PATCHed value served; the delete with the admin
//! token it generated and printed is 204, and 401 without it).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Binary(Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Splits a printed shell command into words, honouring single quotes.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            c => {
                current.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(current);
    }
    words
}

/// A printed `curl` command, run with reqwest: (status, headers, body).
async fn run_curl(http: &reqwest::Client, line: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let command = line.split('#').next().unwrap_or(line);
    let command = command.split('|').next().unwrap_or(command);
    let words = shell_words(command);
    assert_eq!(words.first().map(String::as_str), Some("curl"), "{line}");
    let mut method = reqwest::Method::GET;
    let mut url = None;
    let mut headers = Vec::new();
    let mut data = None;
    let mut i = 1;
    while i < words.len() {
        match words[i].as_str() {
            "-X" => {
                method = words[i + 1].parse().expect("method");
                i += 1;
            }
            "-H" => {
                let (name, value) = words[i + 1].split_once(':').expect("header");
                headers.push((name.trim().to_string(), value.trim().to_string()));
                i += 1;
            }
            "-d" => {
                data = Some(words[i + 1].clone());
                i += 1;
            }
            w if w.starts_with("http") => url = Some(w.to_string()),
            _ => {}
        }
        i += 1;
    }
    let mut request = http.request(method, url.expect("a URL"));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    if let Some(data) = data {
        request = request.body(data);
    }
    let response = request.send().await.expect("the app answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn printed_try_this_commands_behave_as_printed() {
    let port = podium_local::redis::free_port().expect("free port");
    let mut child = Command::new(env!("CARGO_BIN_EXE_podium-example"))
        .env("PODIUM_BIND", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .env_remove("PODIUM_REDIS_URL")
        .env_remove("PODIUM_AIRTABLE_API_KEY")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let _guard = Binary(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let done = line.contains("/metrics");
                lines.push(line);
                if done {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(_) => break,
        }
    }
    let curls: Vec<&String> = lines
        .iter()
        .filter(|l| l.trim_start().starts_with("curl"))
        .collect();
    assert!(
        curls.len() >= 4,
        "the app prints its try-this list: {lines:#?}"
    );
    let http = reqwest::Client::new();

    let (status, headers, _) = run_curl(&http, curls[0].trim()).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-cache"], "MISS", "first read: {headers:?}");
    let (status, headers, _) = run_curl(&http, curls[1].trim()).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-cache"], "HIT", "second read: {headers:?}");

    let (status, _, body) = run_curl(&http, curls[2].trim()).await;
    assert_eq!(
        status, 200,
        "the PATCH to the local Airtable server: {body}"
    );
    // The change reaches the app by Airtable's native webhook; the printed read shows it.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, body) = run_curl(&http, curls[3].trim()).await;
        assert_eq!(status, 200);
        if body.contains("\"Renamed\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the PATCHed name never showed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let delete = curls
        .iter()
        .find(|l| l.contains("-X DELETE"))
        .expect("the app prints a delete");
    let anonymous = delete.split(" -H ").next().unwrap_or(delete).trim();
    let (status, _, body) = run_curl(&http, anonymous).await;
    assert_eq!(status, 401, "a delete without the admin token: {body}");
    let (status, _, body) = run_curl(&http, delete.trim()).await;
    assert_eq!(status, 204, "the printed delete, with its token: {body}");
}
