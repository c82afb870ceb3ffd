//! Every key the cache writes, built in one place.
//!
//! A record's data, tombstone and generation keys carry the record id as a Redis Cluster hash
//! tag (`{rec…}`), so the three share one slot and the compare-and-set script stays single-slot.
//! Values that come from users (index values, query filters) are hashed when they are long or
//! contain anything but a small safe alphabet, so no input can steer which key is written.
//!
//! ```
//! use podium_cache_core::key::Keys;
//! let keys = Keys::new("podium");
//! assert_eq!(keys.data("events", "a1b2c3d4e5f6", "rec123"), "podium:events:a1b2c3d4e5f6:{rec123}");
//! assert_eq!(keys.tombstone("events", "rec123"), "podium:tomb:events:{rec123}");
//! assert_eq!(keys.generation("events", "rec123"), "podium:gen:events:{rec123}");
//! ```

use sha2::{Digest, Sha256};

/// The longest index value or id that is written into a key as it is; longer ones are hashed.
const MAX_VERBATIM: usize = 64;

/// Builds the cache's keys under one prefix (default `podium`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Default for Keys {
    fn default() -> Self {
        Self::new("podium")
    }
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix every key starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}:{entity}:{schema_hash}:{id}`: a record's data.
    pub fn data(&self, entity: &str, schema_hash: &str, id: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + entity.len() + 36);
        self.write_data(&mut key, entity, schema_hash, id);
        key
    }

    /// Writes [`Keys::data`]'s key into `buffer` (cleared first), allocating nothing when the
    /// buffer is large enough and the id goes in verbatim: the in-process tier's hit path
    /// reuses one buffer per thread.
    pub fn write_data(&self, buffer: &mut String, entity: &str, schema_hash: &str, id: &str) {
        buffer.clear();
        buffer.push_str(&self.prefix);
        buffer.push(':');
        buffer.push_str(entity);
        buffer.push(':');
        buffer.push_str(schema_hash);
        buffer.push_str(":{");
        if is_verbatim(id) {
            buffer.push_str(id);
        } else {
            buffer.push_str(&safe(id));
        }
        buffer.push('}');
    }

    /// The `SCAN` pattern matching every data key of one entity and schema.
    pub fn data_pattern(&self, entity: &str, schema_hash: &str) -> String {
        format!("{}:{entity}:{schema_hash}:{{*}}", self.prefix)
    }

    /// Extracts the record id from a data key built by [`Keys::data`].
    pub fn id_from_data_key<'k>(&self, key: &'k str) -> Option<&'k str> {
        let start = key.rfind('{')?;
        key[start + 1..].strip_suffix('}')
    }

    /// `{prefix}:tomb:{entity}:{id}`: a record known to be gone.
    pub fn tombstone(&self, entity: &str, id: &str) -> String {
        format!("{}:tomb:{entity}:{{{}}}", self.prefix, safe(id))
    }

    /// `{prefix}:gen:{entity}:{id}`: generation counter and last applied timestamp.
    pub fn generation(&self, entity: &str, id: &str) -> String {
        format!("{}:gen:{entity}:{{{}}}", self.prefix, safe(id))
    }

    /// `{prefix}:idx:{entity}:{schema_hash}:{field}:{value}`: index value (normalised) → id.
    pub fn index(&self, entity: &str, schema_hash: &str, field: &str, value: &str) -> String {
        format!(
            "{}:idx:{entity}:{schema_hash}:{field}:{}",
            self.prefix,
            safe(value)
        )
    }

    /// `{prefix}:qgen:{entity}`: bumped by every write to an entity; part of every query key.
    pub fn query_generation(&self, entity: &str) -> String {
        format!("{}:qgen:{entity}", self.prefix)
    }

    /// `{prefix}:q:{entity}:{schema_hash}:{generation}:{hash}`: a cached query result (id list).
    pub fn query(&self, entity: &str, schema_hash: &str, generation: u64, filter: &str) -> String {
        format!(
            "{}:q:{entity}:{schema_hash}:{generation}:{}",
            self.prefix,
            digest(filter)
        )
    }

    /// `{prefix}:http:{hash}`: a cached HTTP response.
    pub fn http(&self, request_key: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + ":http:".len() + DIGEST_LEN);
        self.push_http(&mut key, request_key);
        key
    }

    /// Appends [`http`](Self::http)`(request_key)` to `out`, built in place: this runs on
    /// every HTTP hit.
    fn push_http(&self, out: &mut String, request_key: &str) {
        out.push_str(&self.prefix);
        out.push_str(":http:");
        push_digest(out, request_key);
    }

    /// Calls `f` with [`http`](Self::http)`(request_key)`, built in a buffer this thread
    /// reuses rather than a new `String`: an HTTP hit needs the key only to look it up, and
    /// an allocation and a free are a noticeable part of a hit's cost.
    ///
    /// ```
    /// let keys = podium_cache_core::key::Keys::default();
    /// assert_eq!(keys.with_http("GET /a", str::len), keys.http("GET /a").len());
    /// assert_eq!(keys.with_http("GET /a", |key| key.to_owned()), keys.http("GET /a"));
    /// ```
    pub fn with_http<R>(&self, request_key: &str, f: impl FnOnce(&str) -> R) -> R {
        thread_local! {
            static BUFFER: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        BUFFER.with(|buffer| match buffer.try_borrow_mut() {
            Ok(mut key) => {
                key.clear();
                self.push_http(&mut key, request_key);
                f(&key)
            }
            // Called again from inside `f`: that call makes its own.
            Err(_) => f(&self.http(request_key)),
        })
    }

    /// `{prefix}:tag:{entity}:{id}`: the set of response keys that read a record.
    pub fn tag(&self, entity: &str, id: &str) -> String {
        format!("{}:tag:{entity}:{}", self.prefix, safe(id))
    }

    /// `{prefix}:etag:{entity}`: the set of response keys that listed an entity (a create in it
    /// changes their answer).
    pub fn entity_tag(&self, entity: &str) -> String {
        format!("{}:etag:{entity}", self.prefix)
    }

    /// `{prefix}:dep:seq`: the purge sequence of derived entries (see
    /// [`Dependents`](crate::cache::Dependents)).
    pub fn dependents_sequence(&self) -> String {
        format!("{}:dep:seq", self.prefix)
    }

    /// `{prefix}:dep:chg:{entity}:{id}`: "record changed at purge sequence N" (a version
    /// value whose timestamp is N).
    pub fn changed(&self, entity: &str, id: &str) -> String {
        format!("{}:dep:chg:{entity}:{}", self.prefix, safe(id))
    }

    /// `{prefix}:dep:echg:{entity}`: "a record of the entity changed at purge sequence N".
    pub fn entity_changed(&self, entity: &str) -> String {
        format!("{}:dep:echg:{entity}", self.prefix)
    }

    /// `{prefix}:wh:seen:{delivery id}`: replay guard for one webhook delivery.
    pub fn delivery_seen(&self, delivery_id: &str) -> String {
        format!("{}:wh:seen:{}", self.prefix, safe(delivery_id))
    }

    /// `{prefix}:wh:cursor:{webhook id}`: the payload cursor of an Airtable native webhook.
    pub fn webhook_cursor(&self, webhook_id: &str) -> String {
        format!("{}:wh:cursor:{}", self.prefix, safe(webhook_id))
    }

    /// `{prefix}:wh:{part}:{webhook id}`: the rest of a native webhook's state in the store
    /// (`pending` pings counter, `drained` mark, `gap` flag, `mac` replacement secret).
    pub fn webhook_state(&self, part: &str, webhook_id: &str) -> String {
        format!("{}:wh:{}:{}", self.prefix, safe(part), safe(webhook_id))
    }

    /// `{prefix}:rl:{scope}`: the store-held rate limiter of one source scope (an Airtable
    /// base), shared by every instance.
    ///
    /// ```
    /// use podium_cache_core::key::Keys;
    /// assert_eq!(Keys::new("p").rate_limit("appAAAAAAAAAAAAAA"), "p:rl:appAAAAAAAAAAAAAA");
    /// ```
    pub fn rate_limit(&self, scope: &str) -> String {
        format!("{}:rl:{}", self.prefix, safe(scope))
    }

    /// `{prefix}:lock:{name}`: a store-held lock (e.g. the sweep's).
    pub fn lock(&self, name: &str) -> String {
        format!("{}:lock:{}", self.prefix, safe(name))
    }
}

/// A key component as it is when short and made of `[A-Za-z0-9@._+-]`, else `h.` + a hash.
/// A value that itself starts with `h.` is hashed too, so no value written as it is can equal
/// the hash of another (the two forms never meet).
fn safe(value: &str) -> String {
    if is_verbatim(value) {
        value.to_owned()
    } else {
        format!("h.{}", digest(value))
    }
}

/// Whether `value` goes into a key as it is: short, only `[A-Za-z0-9@._+-]`, and not
/// starting like a hashed component (`h.`), so no verbatim value can equal a hashed one.
fn is_verbatim(value: &str) -> bool {
    value.len() <= MAX_VERBATIM
        && !value.is_empty()
        && !value.starts_with("h.")
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'.' | b'_' | b'+' | b'-'))
}

/// Hex digits in a digest: 16 bytes of SHA-256.
const DIGEST_LEN: usize = 32;

/// 32 hex digits of SHA-256.
fn digest(value: &str) -> String {
    let mut out = String::with_capacity(DIGEST_LEN);
    push_digest(&mut out, value);
    out
}

/// Appends [`digest`]`(value)` to `out` (into a stack buffer first: no iterator of chars).
fn push_digest(out: &mut String, value: &str) {
    let mut hex = [0u8; DIGEST_LEN];
    // The buffer is exactly twice the 16 bytes, so encoding cannot fail, and hex is ASCII.
    if hex::encode_to_slice(&Sha256::digest(value.as_bytes())[..16], &mut hex).is_ok() {
        out.push_str(std::str::from_utf8(&hex).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_keys_are_the_prefix_and_32_hex_digits_of_the_request_keys_sha256() {
        // The store key format is shared by every instance on a store: a rolling deploy must
        // not move it.
        let keys = Keys::default();
        for request_key in ["GET /events", "", "ünïcode\n/x?a=1", &"x".repeat(5_000)] {
            let sha = Sha256::digest(request_key.as_bytes());
            let expected = format!("{}:http:{}", keys.prefix, hex::encode(&sha[..16]));
            assert_eq!(keys.http(request_key), expected);
            assert_eq!(keys.with_http(request_key, str::to_owned), expected);
        }
    }

    #[test]
    fn a_nested_http_key_buffer_call_builds_its_own_key() {
        let keys = Keys::default();
        let (outer, inner) = keys.with_http("GET /outer", |outer| {
            (
                outer.to_owned(),
                keys.with_http("GET /inner", str::to_owned),
            )
        });
        assert_eq!(outer, keys.http("GET /outer"));
        assert_eq!(inner, keys.http("GET /inner"));
    }

    #[test]
    fn hostile_index_values_cannot_steer_keys() {
        let keys = Keys::default();
        for hostile in ["a:b", "*", "{rec1}", "x\ny", &"z".repeat(10_000), ""] {
            let key = keys.index("users", "h", "email", hostile);
            let tail = key.rsplit(':').next().unwrap_or_default();
            assert!(tail.starts_with("h."), "{hostile:?} gave {key}");
            assert!(!key.contains('{') && !key.contains('\n') && key.len() < 120);
        }
        assert_ne!(
            keys.index("users", "h", "email", "a:b"),
            keys.index("users", "h", "email", "a;b")
        );
    }

    #[test]
    fn write_data_builds_the_same_key_as_data() {
        let keys = Keys::new("p");
        let mut buffer = String::from("left over");
        for id in [
            "recAAAAAAAAAAAAAA",
            "h.looks-hashed",
            "a:b",
            "",
            &"x".repeat(100),
        ] {
            keys.write_data(&mut buffer, "events", "abc", id);
            assert_eq!(buffer, keys.data("events", "abc", id), "{id:?}");
        }
    }

    #[test]
    fn data_key_round_trips_the_id() {
        let keys = Keys::new("p");
        let key = keys.data("events", "abc", "recXYZ");
        assert_eq!(keys.id_from_data_key(&key), Some("recXYZ"));
    }

    /// Found by the `keys` fuzz target: `h.` + the digest of a hashed value was written as it
    /// is, giving the same key as that value.
    #[test]
    fn a_value_shaped_like_a_hash_never_shares_a_key_with_the_value_it_hashes() {
        let keys = Keys::default();
        for value in ["x\ny", "", "a:b"] {
            let lookalike = format!("h.{}", digest(value));
            assert_ne!(
                keys.index("users", "h", "email", value),
                keys.index("users", "h", "email", &lookalike)
            );
            assert_ne!(
                keys.data("users", "h", value),
                keys.data("users", "h", &lookalike)
            );
        }
    }
}
