//! The record write ([`RecordWrite`]) as one Lua script, shared by the Redis stores
//! ([`RedisStore`](super::RedisStore) and [`RedisClusterStore`](super::RedisClusterStore)), so
//! the stale-set guard is the same code on a standalone server and on a cluster.

use super::commands::millis;
use super::{Condition, RecordWrite, Version, WriteOutcome};

/// The record write, atomic on the server. KEYS[1] is the version key, then the keys to set,
/// then the keys to delete. ARGV: condition kind (0 always, 1 generation equals, 2 newer than),
/// condition value, bump (0/1), new timestamp ("" for none), version TTL ms, number of keys to
/// set, then value and TTL ms for each key to set.
///
/// On a cluster every key must hash to one slot: the cache's keys of one record carry the
/// record id as a hash tag (see [`crate::key`]).
pub(crate) const WRITE_RECORD_LUA: &str = r#"
local raw = redis.call('GET', KEYS[1])
local gen, ts = 0, 0
if raw then
  local sep = string.find(raw, ':', 1, true)
  gen = tonumber(string.sub(raw, 1, sep - 1))
  ts = tonumber(string.sub(raw, sep + 1))
end
local kind = ARGV[1]
if kind == '1' and gen ~= tonumber(ARGV[2]) then return {0, gen, ts} end
if kind == '2' and tonumber(ARGV[2]) <= ts then return {0, gen, ts} end
local ngen, nts = gen, ts
if ARGV[3] == '1' then ngen = gen + 1 end
if ARGV[4] ~= '' then
  local t = tonumber(ARGV[4])
  if t > nts then nts = t end
end
if ngen ~= gen or nts ~= ts then
  redis.call('SET', KEYS[1], string.format('%d:%d', ngen, nts), 'PX', ARGV[5])
end
local nset = tonumber(ARGV[6])
for i = 1, nset do
  redis.call('SET', KEYS[1 + i], ARGV[5 + 2 * i], 'PX', ARGV[6 + 2 * i])
end
for i = 2 + nset, #KEYS do
  redis.call('DEL', KEYS[i])
end
return {1, ngen, nts}
"#;

/// The script's KEYS for `write`, in the order [`WRITE_RECORD_LUA`] reads them.
pub(crate) fn record_write_keys(write: &RecordWrite) -> Vec<&str> {
    std::iter::once(write.version_key.as_str())
        .chain(write.set.iter().map(|(key, _, _)| key.as_str()))
        .chain(write.delete.iter().map(String::as_str))
        .collect()
}

/// The script's ARGV for `write`, in the order [`WRITE_RECORD_LUA`] reads them.
pub(crate) fn record_write_args(write: &RecordWrite) -> Vec<Vec<u8>> {
    let (kind, value) = match write.condition {
        Condition::Always => ("0", 0),
        Condition::GenerationIs(generation) => ("1", i64::try_from(generation).unwrap_or(i64::MAX)),
        Condition::NewerThan(ts) => ("2", ts),
    };
    let mut args: Vec<Vec<u8>> = vec![
        kind.into(),
        value.to_string().into_bytes(),
        if write.bump_generation { "1" } else { "0" }.into(),
        write
            .timestamp_ms
            .map(|t| t.to_string())
            .unwrap_or_default()
            .into_bytes(),
        millis(write.version_ttl).to_string().into_bytes(),
        write.set.len().to_string().into_bytes(),
    ];
    for (_, value, ttl) in &write.set {
        args.push(value.to_vec());
        args.push(millis(*ttl).to_string().into_bytes());
    }
    args
}

/// The script's reply `{applied, generation, timestamp_ms}` as a [`WriteOutcome`].
pub(crate) fn record_write_outcome(
    (applied, generation, timestamp_ms): (i64, u64, i64),
) -> WriteOutcome {
    let version = Version {
        generation,
        timestamp_ms,
    };
    if applied == 1 {
        WriteOutcome::Applied(version)
    } else {
        WriteOutcome::Rejected(version)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;

    #[test]
    fn keys_and_args_follow_the_script_layout() {
        let write = RecordWrite {
            version_key: "p:gen:e:{r1}".into(),
            condition: Condition::GenerationIs(7),
            bump_generation: true,
            timestamp_ms: Some(1_764_098_645_123),
            version_ttl: Duration::from_secs(2),
            set: vec![(
                "p:e:h:{r1}".into(),
                Bytes::from_static(b"data"),
                Duration::from_millis(1500),
            )],
            delete: vec!["p:tomb:e:{r1}".into()],
        };
        assert_eq!(
            record_write_keys(&write),
            ["p:gen:e:{r1}", "p:e:h:{r1}", "p:tomb:e:{r1}"]
        );
        let args: Vec<String> = record_write_args(&write)
            .into_iter()
            .map(|a| String::from_utf8(a).expect("utf-8"))
            .collect();
        assert_eq!(
            args,
            ["1", "7", "1", "1764098645123", "2000", "1", "data", "1500"]
        );
    }

    #[test]
    fn an_unconditional_write_without_timestamp_sends_empty_timestamp() {
        let write = RecordWrite {
            version_key: "v".into(),
            condition: Condition::Always,
            bump_generation: false,
            timestamp_ms: None,
            version_ttl: Duration::ZERO,
            set: vec![],
            delete: vec![],
        };
        let args = record_write_args(&write);
        assert_eq!(args[0], b"0");
        assert_eq!(args[2], b"0");
        assert!(args[3].is_empty());
        assert_eq!(args[4], b"1", "a zero TTL is sent as 1 ms, never PX 0");
    }

    #[test]
    fn the_reply_becomes_applied_or_rejected() {
        assert!(record_write_outcome((1, 2, 3)).applied());
        assert_eq!(
            record_write_outcome((0, 2, 3)),
            WriteOutcome::Rejected(Version {
                generation: 2,
                timestamp_ms: 3
            })
        );
    }
}
