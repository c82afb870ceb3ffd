//! The store extensions ([`Locks`], [`Counters`], [`BoundedSets`], [`RateLimits`]) for every
//! Redis store, written once over the command layer ([`Exec`]): the same commands and Lua
//! scripts on a standalone server and on a cluster (every script touches one key, so it is
//! single-slot on a cluster).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::commands::{millis, Exec};
use super::ext::{BoundedSets, Counters, Locks, RateLimitCall, RateLimitReply, RateLimits};
use super::StoreError;

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

/// [`BoundedSets::claim_bounded`], atomic on the server. KEYS[1] is a
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

#[async_trait]
impl<E: Exec> Locks for E {
    async fn set_if_absent(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(value.as_ref())
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl));
        let reply: Option<String> = self.query(&cmd).await?;
        Ok(reply.is_some())
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(DELETE_IF_EQUALS_LUA).arg(1).arg(key).arg(expected);
        let deleted: i64 = self.query(&cmd).await?;
        Ok(deleted == 1)
    }

    async fn expire_if_equals(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(EXPIRE_IF_EQUALS_LUA)
            .arg(1)
            .arg(key)
            .arg(expected)
            .arg(millis(ttl));
        let extended: i64 = self.query(&cmd).await?;
        Ok(extended == 1)
    }
}

#[async_trait]
impl<E: Exec> Counters for E {
    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("INCR")
            .arg(key)
            .cmd("PEXPIRE")
            .arg(key)
            .arg(millis(ttl))
            .ignore();
        let (value,): (u64,) = self.run_pipeline(&pipe).await?;
        Ok(value)
    }

    async fn add_to_set(
        &self,
        key: &str,
        members: &[String],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        if members.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SADD")
            .arg(key)
            .arg(members)
            .ignore()
            .cmd("PEXPIRE")
            .arg(key)
            .arg(millis(ttl))
            .ignore();
        self.run_pipeline::<()>(&pipe).await
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        self.query(redis::cmd("SMEMBERS").arg(key)).await
    }
}

#[async_trait]
impl<E: Exec> BoundedSets for E {
    /// One `EVAL` of `CLAIM_BOUNDED_LUA`.
    async fn claim_bounded(
        &self,
        key: &str,
        member: &str,
        max: usize,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(CLAIM_BOUNDED_LUA)
            .arg(1)
            .arg(key)
            .arg(member)
            .arg(max)
            .arg(millis(ttl).max(1));
        let claimed: i64 = self.query(&cmd).await?;
        Ok(claimed == 1)
    }
}

#[async_trait]
impl<E: Exec> RateLimits for E {
    /// One `EVAL` of `RATE_LIMIT_LUA` (one key, so on a cluster it runs on the master of
    /// that key's slot). The server keeps the script compiled in its script cache after the
    /// first call.
    async fn rate_limit(
        &self,
        key: &str,
        call: &RateLimitCall,
    ) -> Result<RateLimitReply, StoreError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RATE_LIMIT_LUA).arg(1).arg(key);
        for arg in rate_limit_args(call) {
            cmd.arg(arg);
        }
        let reply: (i64, i64) = self.query(&cmd).await?;
        Ok(rate_limit_reply(reply))
    }
}

/// The script's ARGV for `call`, in the order [`RATE_LIMIT_LUA`] reads them.
fn rate_limit_args(call: &RateLimitCall) -> Vec<Vec<u8>> {
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
fn rate_limit_reply((granted, wait_ms): (i64, i64)) -> RateLimitReply {
    if granted == 1 {
        RateLimitReply::Granted
    } else {
        let wait = u64::try_from(wait_ms).unwrap_or(0).max(1);
        RateLimitReply::Wait(Duration::from_millis(wait))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
}
