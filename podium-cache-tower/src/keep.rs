//! The store step: a response kept under its key, tagged, within its group's bounds.

use podium_cache_core::store::{BoundedSets, StoreError};

use crate::entry::{self, EntryError, StoredResponse};
use crate::policy::NotStored;
use crate::purge::CacheTags;
use crate::state::LayerState;

/// Storing failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Entry(#[from] EntryError),
}

impl LayerState {
    /// Claims a place for `variant` among the at most `max` that `group` stores, for
    /// `lifetime`, counted in the store for every instance; false when the group is full.
    pub(crate) async fn claim_place(
        &self,
        group: &str,
        variant: &str,
        max: usize,
        lifetime: std::time::Duration,
    ) -> Result<bool, StoreError> {
        if max == usize::MAX {
            return Ok(true);
        }
        let member = self.keys.keys.http(variant);
        self.store
            .claim_bounded(&self.keys.variants(group), &member, max, lifetime)
            .await
    }

    /// [`claim_place`](Self::claim_place) as the store step needs it: `None` when the
    /// response may be stored, else why not (`full` when `group` has no place left,
    /// `StoreFailed` when counting failed: the response is then served uncached).
    pub(crate) async fn place_for(
        &self,
        group: &str,
        variant: &str,
        max: usize,
        lifetime: std::time::Duration,
        full: NotStored,
    ) -> Option<NotStored> {
        match self.claim_place(group, variant, max, lifetime).await {
            Ok(true) => None,
            Ok(false) => Some(full),
            Err(err) => {
                tracing::warn!(error = %err, group, "counting a group's stored responses failed; served it uncached");
                Some(NotStored::StoreFailed)
            }
        }
    }

    /// Stores `entry` under `request_key` (and a vary marker under `key`), tagged with `tags`.
    /// `Ok(false)`: a record it read changed while it was produced, so it was not kept.
    ///
    /// Order matters for a purge racing with this: tags are added first, the entry second, the
    /// purge sequence checked last. A purge that announced itself after our check finds our tag
    /// and deletes the entry; one that announced itself before it is seen by the check.
    pub(crate) async fn keep(
        &self,
        key: &str,
        request_key: &str,
        entry: &StoredResponse,
        tags: &CacheTags,
        sequence: u64,
    ) -> Result<bool, KeepError> {
        let keys = &self.keys.keys;
        let entry_key = keys.http(request_key);
        let ttl = entry.store_ttl(self.policy.max_store_ttl());
        let tag_ttl = self.policy.max_store_ttl().max(ttl);
        self.dependents
            .register(&entry_key, &tags.records, &tags.entities, tag_ttl)
            .await?;

        let encoded = entry.encode()?;
        if entry.vary.is_empty() {
            self.store.set(&entry_key, encoded, ttl).await?;
        } else {
            let marker = entry::encode_vary(&entry.vary)?;
            self.store
                .set_many(&[
                    (keys.http(key), marker, ttl),
                    (entry_key.clone(), encoded, ttl),
                ])
                .await?;
        }
        if tags.is_empty() {
            return Ok(true);
        }

        let changed = self
            .dependents
            .changed_since(sequence, &tags.records, &tags.entities)
            .await?;
        if changed {
            tracing::debug!("a record this response read changed meanwhile; not keeping it");
            self.store.delete(&[entry_key]).await?;
            return Ok(false);
        }
        Ok(true)
    }
}
