//! Runs the local Airtable-compatible server standalone.
//!
//! ```text
//! airtable-local --bind 127.0.0.1:8081 --seed seed.json --latency-ms 100-500 --rate-limit 5 \
//!     --api-key keyLocalDev --token patReadOnly=data.records:read
//! ```
//!
//! See `examples/podium-local/README.md` for the seed format and the tokens' scopes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use podium_local::airtable::{AirtableServer, Token, DEFAULT_API_KEY};

/// A local Airtable-compatible REST server (the /v0 records API subset).
#[derive(Debug, Parser)]
#[command(name = "airtable-local", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081", env = "AIRTABLE_LOCAL_BIND")]
    bind: SocketAddr,
    /// Seed file: {"bases": {"app…": {"Table": [{"id", "createdTime", "fields"}]}}}.
    #[arg(long)]
    seed: Vec<PathBuf>,
    /// Latency added to every request, in milliseconds: `200` or a range `100-500`.
    #[arg(long, default_value = "0", value_parser = parse_latency)]
    latency_ms: (Duration, Duration),
    /// Requests per second per base; 0 turns the limit off.
    #[arg(long, default_value_t = 5)]
    rate_limit: u32,
    /// The key of the default token (every scope), sent as `Authorization: Bearer <key>`.
    #[arg(long, default_value = DEFAULT_API_KEY, env = "AIRTABLE_LOCAL_API_KEY")]
    api_key: String,
    /// One more token with only the scopes listed: `KEY=scope,scope` (`KEY=` for none), e.g.
    /// `patReadOnly=data.records:read`. Repeatable.
    #[arg(long, value_parser = parse_token)]
    token: Vec<Token>,
}

fn parse_token(text: &str) -> Result<Token, String> {
    let (key, scopes) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected KEY=scope,scope"))?;
    let scopes = scopes
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    Ok(Token::new(key.trim()).scopes(scopes))
}

fn parse_latency(text: &str) -> Result<(Duration, Duration), String> {
    let ms = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|e| format!("{s:?}: {e}"))
    };
    match text.split_once('-') {
        Some((min, max)) => {
            let (min, max) = (ms(min)?, ms(max)?);
            if max < min {
                return Err(format!("{text:?}: the maximum is below the minimum"));
            }
            Ok((min, max))
        }
        None => ms(text).map(|d| (d, d)),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut builder = AirtableServer::builder()
        .bind(args.bind)
        .api_key(args.api_key)
        .latency(args.latency_ms.0, args.latency_ms.1)
        .rate_limit((args.rate_limit > 0).then_some(args.rate_limit));
    for token in args.token {
        builder = builder.token(token);
    }
    for seed in args.seed {
        builder = builder.seed_file(seed);
    }
    let server = match builder.start().await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("airtable-local: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", server.url());
    for base in server.bases() {
        for table in server.tables(&base) {
            eprintln!("  {base}/{table}: {} records", server.len(&base, &table));
        }
    }
    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("airtable-local: waiting for Ctrl-C failed: {error}");
    }
    server.shutdown().await;
    ExitCode::SUCCESS
}
