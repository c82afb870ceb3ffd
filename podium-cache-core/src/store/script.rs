//! The record write ([`RecordWrite`]) and the shared rate limiter ([`RateLimitCall`]) as Lua
//! scripts, shared by the Redis stores ([`RedisStore`](super::RedisStore) and
//! [`RedisClusterStore`](super::RedisClusterStore)), so the stale-set guard and the Airtable
//! budget are the same code on a standalone server and on a cluster.

use super::commands::Exec;
use super::{
    Condition, RateLimitCall, RateLimitReply, RecordWrite, StoreError, Version, WriteOutcome,
};

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

/// Deletes KEYS[1] only if its value is ARGV[1]; 1 when deleted.
pub(crate) const DELETE_IF_EQUALS_LUA: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// Sets KEYS[1]'s TTL to ARGV[2] ms only if its value is ARGV[1]; 1 when extended.
pub(crate) const EXPIRE_IF_EQUALS_LUA: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

/// The store-held rate limiter ([`RateLimitCall`]), atomic on the server. KEYS[1] is one sorted
/// set per limited resource (an Airtable base). Every member's score is the server time (ms)
/// until which it counts; the members are the slots (`{holder}-{n}`: one request each, busy
/// until that time), the waiting holders (`~w:{holder}`) and a pause (`~pause`). ARGV[1] is
/// the operation:
///
/// - `a` acquire (ARGV: slot, max, window ms, lease ms, holder): drops everything that ended;
///   grants `slot` (busy for `lease`, i.e. until released) and answers `{1, 0}` if fewer than
///   `max` slots are busy and, when other holders are waiting, this holder has fewer than its
///   fair share (`max` divided among the waiting holders, rounded up); else records the holder
///   as waiting and answers `{0, wait ms}`: until the earliest slot frees, at most one window
///   (a slot still in flight frees no sooner than one window after its answer), or until the
///   pause ends.
/// - `r` release (ARGV: slot, window ms): the slot's answer arrived; it is free one window
///   from now. A slot the set no longer holds (its lease ran out) is left alone.
/// - `p` pause (ARGV: duration ms): every acquire waits until then (a 429).
///
/// Time is the server's `TIME`, so instances with skewed clocks still agree on every window.
/// One key, so the script is single-slot on a cluster.
pub(crate) const RATE_LIMIT_LUA: &str = r#"
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function keep(ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
local op = ARGV[1]
if op == 'r' then
  local window = tonumber(ARGV[3])
  if redis.call('ZSCORE', key, ARGV[2]) then
    redis.call('ZADD', key, 'XX', now + window, ARGV[2])
    keep(window)
  end
  return {1, 0}
end
if op == 'p' then
  local ms = tonumber(ARGV[2])
  local current = redis.call('ZSCORE', key, '~pause')
  if (not current) or tonumber(current) < now + ms then
    redis.call('ZADD', key, now + ms, '~pause')
  end
  keep(ms)
  return {1, 0}
end
local max, window, lease = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local mine_prefix = ARGV[6] .. '-'
local me_waiting = '~w:' .. ARGV[6]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
local busy, mine, others, first, paused = 0, 0, 0, nil, nil
for i = 1, #entries, 2 do
  local member, score = entries[i], tonumber(entries[i + 1])
  if member == '~pause' then
    paused = score
  elseif string.sub(member, 1, 3) == '~w:' then
    if member ~= me_waiting then others = others + 1 end
  else
    busy = busy + 1
    if first == nil or score < first then first = score end
    if string.sub(member, 1, #mine_prefix) == mine_prefix then mine = mine + 1 end
  end
end
local function refuse(wait)
  local linger = 2 * window + 1000
  redis.call('ZADD', key, now + linger, me_waiting)
  keep(linger)
  return {0, wait}
end
if paused then return refuse(paused - now) end
local wait = window
if first and first - now < wait then wait = first - now end
if busy >= max then return refuse(wait) end
if others > 0 and mine >= math.ceil(max / (others + 1)) then return refuse(wait) end
redis.call('ZADD', key, now + lease, ARGV[2])
redis.call('ZREM', key, me_waiting)
keep(lease)
return {1, 0}
"#;

/// [`Store::claim_bounded`](super::Store::claim_bounded), atomic on the server. KEYS[1] is a
/// sorted set whose scores are the server time (ms) until which each member stays; ARGV: the
/// member, the most members, the TTL in ms. Answers 1 when the member is in the set afterwards.
/// One key, so the script is single-slot on a cluster.
pub(crate) const CLAIM_BOUNDED_LUA: &str = r#"
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if not redis.call('ZSCORE', key, ARGV[1]) then
  if redis.call('ZCARD', key) >= max then return 0 end
end
redis.call('ZADD', key, now + ttl, ARGV[1])
if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
return 1
"#;

/// One [`Store::claim_bounded`](super::Store::claim_bounded) on a Redis store or cluster: one
/// `EVAL` of [`CLAIM_BOUNDED_LUA`].
pub(crate) async fn claim_bounded(
    exec: &impl Exec,
    key: &str,
    member: &str,
    max: usize,
    ttl: std::time::Duration,
) -> Result<bool, StoreError> {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(CLAIM_BOUNDED_LUA)
        .arg(1)
        .arg(key)
        .arg(member)
        .arg(max)
        .arg(millis(ttl).max(1));
    let claimed: i64 = exec.query(&cmd).await?;
    Ok(claimed == 1)
}

/// One [`RateLimitCall`] on a Redis store or cluster: one `EVAL` of [`RATE_LIMIT_LUA`] (one
/// key, so on a cluster it runs on the master of that key's slot). The server keeps the script
/// compiled in its script cache after the first call.
pub(crate) async fn rate_limit(
    exec: &impl Exec,
    key: &str,
    call: &RateLimitCall,
) -> Result<RateLimitReply, StoreError> {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(RATE_LIMIT_LUA).arg(1).arg(key);
    for arg in rate_limit_args(call) {
        cmd.arg(arg);
    }
    let reply: (i64, i64) = exec.query(&cmd).await?;
    Ok(rate_limit_reply(reply))
}

/// The script's ARGV for `call`, in the order [`RATE_LIMIT_LUA`] reads them.
pub(crate) fn rate_limit_args(call: &RateLimitCall) -> Vec<Vec<u8>> {
    let text = |value: u64| value.to_string().into_bytes();
    match call {
        RateLimitCall::Acquire {
            slot,
            max,
            window,
            lease,
            holder,
        } => vec![
            b"a".to_vec(),
            slot.as_bytes().to_vec(),
            text(u64::from(*max)),
            text(millis(*window)),
            text(millis(*lease).max(millis(*window))),
            holder.as_bytes().to_vec(),
        ],
        RateLimitCall::Release { slot, window } => vec![
            b"r".to_vec(),
            slot.as_bytes().to_vec(),
            text(millis(*window)),
        ],
        RateLimitCall::Pause { duration } => vec![b"p".to_vec(), text(millis(*duration))],
    }
}

/// The script's reply `{granted, wait_ms}` as a [`RateLimitReply`].
pub(crate) fn rate_limit_reply((granted, wait_ms): (i64, i64)) -> RateLimitReply {
    if granted == 1 {
        RateLimitReply::Granted
    } else {
        let wait = u64::try_from(wait_ms).unwrap_or(0).max(1);
        RateLimitReply::Wait(std::time::Duration::from_millis(wait))
    }
}

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

/// A TTL in whole milliseconds, at least 1 (Redis refuses `PX 0`).
pub(crate) fn millis(ttl: std::time::Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
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
    fn rate_limit_calls_follow_the_script_layout() {
        let text = |args: Vec<Vec<u8>>| -> Vec<String> {
            args.into_iter()
                .map(|a| String::from_utf8(a).expect("utf-8"))
                .collect()
        };
        let acquire = RateLimitCall::Acquire {
            slot: "h1-7".into(),
            max: 5,
            window: Duration::from_secs(1),
            lease: Duration::from_millis(300),
            holder: "h1".into(),
        };
        assert_eq!(
            text(rate_limit_args(&acquire)),
            ["a", "h1-7", "5", "1000", "1000", "h1"],
            "a lease shorter than the window is sent as one window"
        );
        let release = RateLimitCall::Release {
            slot: "h1-7".into(),
            window: Duration::from_secs(1),
        };
        assert_eq!(text(rate_limit_args(&release)), ["r", "h1-7", "1000"]);
        let pause = RateLimitCall::Pause {
            duration: Duration::from_secs(30),
        };
        assert_eq!(text(rate_limit_args(&pause)), ["p", "30000"]);
    }

    #[test]
    fn the_rate_limit_reply_grants_or_says_how_long_to_wait() {
        assert_eq!(rate_limit_reply((1, 0)), RateLimitReply::Granted);
        assert_eq!(
            rate_limit_reply((0, 250)),
            RateLimitReply::Wait(Duration::from_millis(250))
        );
        assert_eq!(
            rate_limit_reply((0, -3)),
            RateLimitReply::Wait(Duration::from_millis(1)),
            "a slot that frees now is waited for a millisecond, never zero"
        );
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
