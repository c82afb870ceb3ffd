//! A real source whose listings a test watches: every call goes to the inner source, and a
//! [`ListWatch`] hears when a listing starts and when its answer is in (before the caller
//! sees it): to count listings in flight, or to act at an exact point of a sweep.

use std::sync::Arc;

use async_trait::async_trait;
use podium_cache_core::source::{ListQuery, Source, SourceError, SourceRecord, SourceStats};

/// What a test does around each listing of a [`WatchedSource`].
pub trait ListWatch: Send + Sync + 'static {
    /// A listing of `table` is about to be sent.
    fn started(&self, _table: &str) {}
    /// A listing of `table` answered (or failed); the caller has not seen it yet.
    fn answered(&self, _table: &str) {}
}

/// `inner`, with its listings reported to `watch`.
pub struct WatchedSource {
    pub inner: Arc<dyn Source>,
    pub watch: Arc<dyn ListWatch>,
}

#[async_trait]
impl Source for WatchedSource {
    async fn get(&self, table: &str, id: &str) -> Result<Option<SourceRecord>, SourceError> {
        self.inner.get(table, id).await
    }
    async fn get_many(
        &self,
        table: &str,
        ids: &[String],
    ) -> Result<Vec<SourceRecord>, SourceError> {
        self.inner.get_many(table, ids).await
    }
    async fn list(&self, table: &str, query: &ListQuery) -> Result<Vec<SourceRecord>, SourceError> {
        self.watch.started(table);
        let answer = self.inner.list(table, query).await;
        self.watch.answered(table);
        answer
    }
    async fn delete(&self, table: &str, ids: &[String]) -> Result<Vec<String>, SourceError> {
        self.inner.delete(table, ids).await
    }
    fn stats(&self) -> SourceStats {
        self.inner.stats()
    }
    async fn ready(&self) {
        self.inner.ready().await;
    }
}
