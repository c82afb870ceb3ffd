//! Reads that keep their decoded form with the stored entry: [`Store::get_decoded`] and its
//! typed face [`get_decoded`].
//!
//! A store whose entries live in this process (the [`MemoryStore`](super::MemoryStore)) can
//! keep what a reader decoded beside the bytes it decoded them from, so the next read of an
//! unchanged entry costs no decoding: the decoded value is a function of bytes that never
//! change (a write replaces the entry, and its decoded value goes with it), so it needs no
//! invalidation of its own. Stores whose entries are read over a network decode every read
//! (the default); in front of those, the in-process tier ([`Store::typed_tier`]) is what skips
//! both the round trip and the decoding.

use std::any::Any;
use std::sync::Arc;

use bytes::Bytes;

use super::{Store, StoreError};

/// A decoded value as a store keeps it beside its entry.
pub type Decoded = Arc<dyn Any + Send + Sync>;

/// What [`Store::get_decoded`] decodes an entry's bytes with.
pub type Decoder<'a> = dyn Fn(Bytes) -> Decoded + Send + Sync + 'a;

/// The entry under `key`, decoded by `decode` into a `T`, or `None` when there is none. A
/// store that can keeps the decoded value with the entry, so reading it again before it is
/// written decodes nothing; the others decode every read. `decode` must be a function of the
/// bytes alone (it may run once for many reads).
///
/// ```
/// # async fn demo() -> Result<(), podium_cache_core::store::StoreError> {
/// use std::time::Duration;
/// use podium_cache_core::store::{get_decoded, MemoryStore, Store};
///
/// let store = MemoryStore::new(100);
/// store.set("k", "42".into(), Duration::from_secs(60)).await?;
/// let parse = |bytes: bytes::Bytes| std::str::from_utf8(&bytes).ok().and_then(|s| s.parse::<u32>().ok());
/// let first = get_decoded(&store, "k", parse).await?.expect("stored");
/// let again = get_decoded(&store, "k", parse).await?.expect("stored");
/// assert_eq!(*first, Some(42));
/// assert!(std::sync::Arc::ptr_eq(&first, &again)); // decoded once
/// # Ok(()) }
/// ```
pub async fn get_decoded<T, F>(
    store: &(impl Store + ?Sized),
    key: &str,
    decode: F,
) -> Result<Option<Arc<T>>, StoreError>
where
    T: Any + Send + Sync,
    F: Fn(Bytes) -> T + Send + Sync,
{
    // A store that can answer at once does, without the boxed future of an async call.
    if let Some(found) = get_decoded_now(store, key, &decode) {
        return found;
    }
    let erased = |bytes: Bytes| -> Decoded { Arc::new(decode(bytes)) };
    let Some(found) = store.get_decoded(key, &erased).await? else {
        return Ok(None);
    };
    match found.downcast::<T>() {
        Ok(value) => Ok(Some(value)),
        // Another reader kept a value of another type under this key: decode this read's own.
        Err(_) => Ok(store.get(key).await?.map(|bytes| Arc::new(decode(bytes)))),
    }
}

/// [`get_decoded`] answered at once, for a store whose entries live in this process
/// ([`Store::get_decoded_now`]): `None` when the store cannot answer without awaiting (or
/// keeps a value of another type under `key`), and the caller awaits [`get_decoded`]. A
/// caller that can answer a request without a future at all (an HTTP hit) uses it.
///
/// ```
/// # async fn demo() -> Result<(), podium_cache_core::store::StoreError> {
/// use std::time::Duration;
/// use podium_cache_core::store::{get_decoded_now, MemoryStore, Store};
///
/// let store = MemoryStore::new(100);
/// store.set("k", "42".into(), Duration::from_secs(60)).await?;
/// let parse = |bytes: bytes::Bytes| bytes.len();
/// let read = get_decoded_now(&store, "k", parse).expect("the memory store answers at once")?;
/// assert_eq!(read.as_deref(), Some(&2));
/// # Ok(()) }
/// ```
pub fn get_decoded_now<T, F>(
    store: &(impl Store + ?Sized),
    key: &str,
    decode: F,
) -> Option<Result<Option<Arc<T>>, StoreError>>
where
    T: Any + Send + Sync,
    F: Fn(Bytes) -> T + Send + Sync,
{
    let erased = |bytes: Bytes| -> Decoded { Arc::new(decode(bytes)) };
    match store.get_decoded_now(key, &erased)? {
        Err(err) => Some(Err(err)),
        Ok(None) => Some(Ok(None)),
        // Another reader kept a value of another type: the awaited read decodes its own.
        Ok(Some(found)) => found.downcast::<T>().ok().map(|value| Ok(Some(value))),
    }
}
