//! [`ResponseFuture`]: the future [`CacheService`](crate::CacheService) returns.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use crate::body::CacheBody;

type Boxed<B, E> = Pin<Box<dyn Future<Output = Result<Response<CacheBody<B>>, E>> + Send>>;

pin_project! {
    /// Response future of [`CacheService`](crate::CacheService): either the response a fresh
    /// entry answered in `call` itself (a hit found without awaiting: no future is allocated
    /// and the wrapped service is not cloned), or a store lookup, possibly a wait for a
    /// concurrent miss, the inner service's call and the store write, in one boxed future (the
    /// steps await the store, so a hand-written state machine would gain nothing).
    pub struct ResponseFuture<B, E> {
        #[pin]
        kind: Kind<B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B, E> {
        Ready { response: Option<Response<CacheBody<B>>> },
        Boxed { future: Boxed<B, E> },
    }
}

impl<B, E> ResponseFuture<B, E> {
    pub(crate) fn new<F>(future: F) -> Self
    where
        F: Future<Output = Result<Response<CacheBody<B>>, E>> + Send + 'static,
    {
        Self {
            kind: Kind::Boxed {
                future: Box::pin(future),
            },
        }
    }

    /// A response already made.
    pub(crate) fn ready(response: Response<CacheBody<B>>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }
}

impl<B, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Result<Response<CacheBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Ready { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled after it completed: a contract breach tower's callers never commit;
                // stay pending rather than panic in library code.
                None => Poll::Pending,
            },
            KindProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}
