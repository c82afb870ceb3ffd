//! `podium-example`: the podium app on podium-cache.
//!
//! `cargo run -p podium-example` starts it on the embedded defaults: the in-memory store and,
//! with no Airtable key configured, the local Airtable-compatible server seeded with demo data
//! (Airtable-like latency and the 5 requests/s limit). Configuration: `.secrets.toml` and
//! `PODIUM_*` environment variables (see `.secrets.example.toml`); `PODIUM_BIND` sets the address
//! (default `127.0.0.1:8000`); `RUST_LOG` the log level.

use std::net::SocketAddr;
use std::process::ExitCode;

use podium_example::server::{self, RunOptions};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,podium_local=warn".into()),
        )
        .init();
    let bind: SocketAddr = match std::env::var("PODIUM_BIND")
        .unwrap_or_else(|_| "127.0.0.1:8000".into())
        .parse()
    {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("invalid PODIUM_BIND: {err} (expected e.g. 127.0.0.1:8000)");
            return ExitCode::FAILURE;
        }
    };
    let dir = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let options = RunOptions {
        bind,
        config_dir: dir,
        ..RunOptions::default()
    };
    match server::run(options, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("podium-example: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
