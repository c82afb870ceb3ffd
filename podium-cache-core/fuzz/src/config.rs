//! `config`: [`Settings::from_sources`] with any `.secrets.toml` text and environment pairs.
//!
//! Properties: it never panics; settings it accepts keep every rule `validate` states (prefix,
//! TTLs, jitter, URLs, pairs of settings); their `Debug` output does not depend on the secrets'
//! values; and no error message carries a secret value, whether the value is well placed, under
//! a misspelled key, or in a line that does not parse.
//!
//! Modes (the input's first byte, modulo 3):
//! - 0 raw: the TOML text and `NAME=value` environment lines straight from the input;
//! - 1 assembled: `key = value` lines from the input, where a value is a secret marker, a TOML
//!   value or raw text, and keys come from the settings, their misspellings or the input;
//! - 2 environment: `PODIUM_*` variables only, values from the input.

use podium_cache_core::config::{Secret, Settings};

use crate::input::{encode_text, Input};
use crate::support::toml_basic_string;

/// A secret value whose appearance in any output is a leak.
pub const MARKER: &str = "s3cr3tMARKERvalue";

const KEYS: [&str; 17] = [
    "redis_url",
    "redis_cluster_nodes",
    "airtable_api_key",
    "airtable_base_id",
    "airtable_api_url",
    "webhook_secret",
    "allow_legacy_secret",
    "airtable_webhook_id",
    "airtable_webhook_mac_secret",
    "l1_capacity",
    "memory_capacity",
    "prefix",
    "data_ttl_secs",
    "tombstone_ttl_secs",
    "ttl_jitter",
    // Misspelled secret keys: a typo must not print the secret next to it.
    "airtable_api_kye",
    "webhook_secert",
];

const SECRET_KEYS: [&str; 4] = [
    "airtable_api_key",
    "webhook_secret",
    "airtable_webhook_mac_secret",
    "redis_url",
];

const ENV: [&str; 15] = [
    "PODIUM_REDIS_URL",
    "PODIUM_REDIS_CLUSTER_NODES",
    "PODIUM_AIRTABLE_API_KEY",
    "PODIUM_AIRTABLE_BASE_ID",
    "PODIUM_AIRTABLE_API_URL",
    "PODIUM_WEBHOOK_SECRET",
    "PODIUM_ALLOW_LEGACY_SECRET",
    "PODIUM_AIRTABLE_WEBHOOK_ID",
    "PODIUM_AIRTABLE_WEBHOOK_MAC_SECRET",
    "PODIUM_L1_CAPACITY",
    "PODIUM_MEMORY_CAPACITY",
    "PODIUM_PREFIX",
    "PODIUM_DATA_TTL_SECS",
    "PODIUM_TOMBSTONE_TTL_SECS",
    "PODIUM_TTL_JITTER",
];

/// Runs one input.
pub fn check(data: &[u8]) {
    let Some(mut input) = Input::new(data) else {
        return;
    };
    let mode = input.mode() % 3;
    let (toml, env) = match mode {
        0 => {
            let toml = input.text();
            let env = input
                .texts(16)
                .into_iter()
                .map(|line| match line.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (line, String::new()),
                })
                .collect();
            (Some(toml), env)
        }
        1 => (Some(assembled(&input.texts(24))), Vec::new()),
        _ => {
            let env = input
                .texts(16)
                .into_iter()
                .map(|value| {
                    // The first character picks the variable, the rest is its value.
                    let mut chars = value.chars();
                    let pick = chars.next().map_or(0, |c| c as usize);
                    (ENV[pick % ENV.len()].to_owned(), chars.as_str().to_owned())
                })
                .collect();
            (None, env)
        }
    };
    let result = Settings::from_sources(toml.as_deref(), env);
    match result {
        Ok(settings) => check_accepted(&settings),
        Err(err) => {
            // Only assembled texts place the marker where a secret goes, and nowhere else.
            let text = err.to_string();
            if mode == 1 {
                assert!(!text.contains(MARKER), "an error shows a secret: {text}");
            }
        }
    }
}

/// TOML lines `key = value` from pairs of texts: the first picks a key (a digit indexes
/// [`KEYS`], anything else is the key), the second the value (`!` a secret marker string, a
/// leading `=` raw text after it, else a TOML string of it).
fn assembled(texts: &[String]) -> String {
    let mut out = String::new();
    for pair in texts.chunks(2) {
        let key = match pair[0].parse::<usize>() {
            Ok(n) => KEYS[n % KEYS.len()].to_owned(),
            Err(_) => without_marker(&pair[0]),
        };
        let value = pair.get(1).map(String::as_str).unwrap_or("");
        let secret_key =
            SECRET_KEYS.contains(&key.as_str()) || key.ends_with("kye") || key.ends_with("secert");
        let value = match value {
            "!" if secret_key => format!("\"redis://:{MARKER}@127.0.0.1:6379/0\""),
            "!" => "\"not-a-secret\"".to_owned(),
            // Raw text may hold the marker only as part of a secret key's broken value.
            raw if raw.starts_with('=') => {
                let raw = &raw[1..];
                if secret_key {
                    format!("\"{MARKER}{raw}")
                } else {
                    without_marker(raw)
                }
            }
            text => toml_basic_string(&without_marker(text)),
        };
        out.push_str(&format!("{key} = {value}\n"));
    }
    out
}

fn without_marker(text: &str) -> String {
    let mut text = text.to_owned();
    while text.contains(MARKER) {
        text = text.replace(MARKER, "");
    }
    text
}

fn check_accepted(settings: &Settings) {
    let prefix = &settings.prefix;
    let unfit = |c: char| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, ':' | '{' | '}' | '*' | '?' | '[' | ']' | '\\')
    };
    assert!(!prefix.is_empty() && !prefix.contains(unfit), "{prefix:?}");
    assert!(settings.tombstone_ttl_secs > settings.data_ttl_secs);
    assert!((0.0..0.5).contains(&settings.ttl_jitter));
    assert!(
        settings.airtable_api_url.starts_with("http://")
            || settings.airtable_api_url.starts_with("https://")
    );
    assert!(settings.redis_url.is_none() || settings.redis_cluster_nodes.is_empty());
    assert_eq!(
        settings.airtable_webhook_id.is_some(),
        settings.airtable_webhook_mac_secret.is_some()
    );
    if let Some(url) = &settings.redis_url {
        let url = url.expose();
        assert!(
            url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("valkey://")
        );
    }

    // Debug output is the same whatever the secrets are.
    let blank = |s: &Option<Secret>| s.as_ref().map(|_| Secret::new("x"));
    let mut other = settings.clone();
    other.airtable_api_key = blank(&settings.airtable_api_key);
    other.webhook_secret = blank(&settings.webhook_secret);
    other.airtable_webhook_mac_secret = blank(&settings.airtable_webhook_mac_secret);
    other.redis_url = blank(&settings.redis_url);
    other.redis_cluster_nodes = vec![Secret::new("x"); settings.redis_cluster_nodes.len()];
    let shown = format!("{settings:?}");
    assert_eq!(shown, format!("{other:?}"), "Debug shows a secret");
}

/// Inputs to start from.
pub fn seeds() -> Vec<Vec<u8>> {
    vec![
        encode_text(
            0,
            &[
                "redis_url = \"redis://:pw@127.0.0.1:6379/0\"\nprefix = \"demo\"\nttl_jitter = 0.1\n",
                "PODIUM_PREFIX=fromenv",
                "PODIUM_L1_CAPACITY=100",
            ],
        ),
        encode_text(0, &["data_ttl_secs = 10\ntombstone_ttl_secs = 5\n", "PODIUM_TTL_JITTER=0.7"]),
        encode_text(0, &["", "PODIUM_AIRTABLE_WEBHOOK_ID=achX", "PODIUM_AIRTABLE_WEBHOOK_MAC_SECRET=c2VjcmV0"]),
        encode_text(1, &["2", "!", "5", "!", "11", "tenant-a"]),
        encode_text(1, &["15", "!"]),
        encode_text(1, &["2", "=unterminated"]),
        encode_text(1, &["9", "=\"many\""]),
        encode_text(2, &["\u{0}redis://a:1/", "\u{1}redis://b:1,redis://c:1"]),
        encode_text(2, &["\u{b}  ", "\u{e}1e3"]),
    ]
}
