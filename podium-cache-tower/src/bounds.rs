//! The bounds the layer puts on the service it wraps and on that service's response body,
//! named once: the work past a hit (fills, background refreshes) moves both into boxed or
//! spawned futures, so they must be `Send + 'static`.
//!
//! [`CacheService`](crate::CacheService)'s public `Service` impl spells the same bounds out,
//! so that its documentation shows them; every internal function takes these names.

use http::{Request, Response};
use http_body::Body;
use tower::Service;

use crate::body::BodyError;

/// A service the layer can wrap: it answers `Request<ReqBody>` with `Response<ResBody>`, and
/// it, its future and its error can cross tasks.
pub(crate) trait SendService<ReqBody, ResBody>:
    Service<
        Request<ReqBody>,
        Response = Response<ResBody>,
        Future: Send + 'static,
        Error: Send + 'static,
    > + Send
    + 'static
{
}

impl<S, ReqBody, ResBody> SendService<ReqBody, ResBody> for S
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
}

/// A response body the layer can read, store and stream across tasks.
pub(crate) trait SendBody:
    Body<Data: Send, Error: Into<BodyError>> + Send + 'static
{
}

impl<B> SendBody for B
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BodyError>,
{
}
