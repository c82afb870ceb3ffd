//! The redis-server harness starts real servers on free ports and stops and restarts them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use podium_local::{free_port, RedisServer};

/// Sends one RESP command and returns the raw reply.
fn command(port: u16, args: &[&str]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes())?;
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn started_server_answers_ping_on_its_url() {
    let server = RedisServer::start().expect("redis-server starts");
    assert_ne!(server.port(), 6379);
    assert_eq!(
        server.url(),
        format!("redis://127.0.0.1:{}/", server.port())
    );
    assert!(server.is_running());
    assert_eq!(
        command(server.port(), &["PING"]).expect("reply"),
        "+PONG\r\n"
    );
    assert_eq!(
        command(server.port(), &["SET", "k", "v"]).expect("reply"),
        "+OK\r\n"
    );
    assert_eq!(
        command(server.port(), &["GET", "k"]).expect("reply"),
        "$1\r\nv\r\n"
    );
}

#[test]
fn stopped_server_refuses_connections_and_restart_serves_the_same_port_again() {
    let mut server = RedisServer::start().expect("redis-server starts");
    let port = server.port();
    server.stop();
    assert!(!server.is_running());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!server.ping());
    server.restart().expect("restarts");
    assert_eq!(server.port(), port);
    assert!(server.is_running());
    assert_eq!(command(port, &["PING"]).expect("reply"), "+PONG\r\n");
}

#[test]
fn two_servers_get_different_ports() {
    let a = RedisServer::start().expect("first starts");
    let b = RedisServer::start().expect("second starts");
    assert_ne!(a.port(), b.port());
    assert!(a.ping() && b.ping());
}

#[test]
fn extra_arguments_reach_the_server() {
    let server = RedisServer::start_with(&["--databases", "3"]).expect("starts");
    let reply = command(server.port(), &["CONFIG", "GET", "databases"]).expect("reply");
    assert!(reply.ends_with("$1\r\n3\r\n"), "{reply:?}");
}

#[test]
fn dropping_the_server_kills_it_and_removes_its_directory() {
    let server = RedisServer::start().expect("starts");
    let port = server.port();
    let dir = server.log_path().parent().expect("log dir").to_path_buf();
    assert!(server.log_path().exists());
    drop(server);
    assert!(!dir.exists());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn free_port_is_never_the_default_redis_port() {
    for _ in 0..20 {
        assert_ne!(free_port().expect("a port"), 6379);
    }
}

#[tokio::test]
async fn harness_works_inside_an_async_test() {
    let server = RedisServer::start().expect("starts");
    let port = server.port();
    let reply = tokio::task::spawn_blocking(move || command(port, &["PING"]))
        .await
        .expect("task")
        .expect("reply");
    assert_eq!(reply, "+PONG\r\n");
}
