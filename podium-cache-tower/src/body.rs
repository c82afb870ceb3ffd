//! [`CacheBody`]: the response body the layer answers with.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;

pin_project! {
    /// The body of a response that passed the cache layer: the stored bytes of a cached
    /// response, the service's own body streamed through, or (for a body that turned out too
    /// large to store) the part already read followed by the rest of the stream.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use http_body_util::{BodyExt, Empty};
    /// use podium_cache_tower::CacheBody;
    /// let body = CacheBody::<Empty<bytes::Bytes>>::full("cached".into());
    /// assert_eq!(body.collect().await.unwrap().to_bytes(), "cached");
    /// # }
    /// ```
    pub struct CacheBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Full { data: Option<Bytes> },
        Buffered {
            frames: VecDeque<Frame<Bytes>>,
            rest: Option<Pin<Box<B>>>,
            error: Option<BodyError>,
        },
        Inner { #[pin] body: B },
    }
}

impl<B> std::fmt::Debug for CacheBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Full { .. } => "full",
            Kind::Buffered { .. } => "buffered",
            Kind::Inner { .. } => "inner",
        };
        f.debug_struct("CacheBody").field("kind", &kind).finish()
    }
}

impl<B> CacheBody<B> {
    /// A body of exactly these bytes.
    pub fn full(data: Bytes) -> Self {
        let data = (!data.is_empty()).then_some(data);
        Self {
            kind: Kind::Full { data },
        }
    }

    /// An empty body (`HEAD`, `304`).
    pub fn empty() -> Self {
        Self {
            kind: Kind::Full { data: None },
        }
    }

    /// The service's body, streamed through.
    pub fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    fn buffered(
        frames: VecDeque<Frame<Bytes>>,
        rest: Option<Pin<Box<B>>>,
        error: Option<BodyError>,
    ) -> Self {
        Self {
            kind: Kind::Buffered {
                frames,
                rest,
                error,
            },
        }
    }
}

/// The error of a [`CacheBody`]: the service body's own error, boxed.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

fn to_bytes<D: Buf>(mut data: D) -> Bytes {
    data.copy_to_bytes(data.remaining())
}

impl<B> Body for CacheBody<B>
where
    B: Body,
    B::Error: Into<BodyError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.project().kind.project() {
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Buffered {
                frames,
                rest,
                error,
            } => {
                if let Some(frame) = frames.pop_front() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                let Some(body) = rest.as_mut() else {
                    return Poll::Ready(error.take().map(Err));
                };
                match body.as_mut().poll_frame(cx) {
                    Poll::Ready(None) => {
                        *rest = None;
                        Poll::Ready(None)
                    }
                    Poll::Ready(Some(result)) => Poll::Ready(Some(
                        result.map(|f| f.map_data(to_bytes)).map_err(Into::into),
                    )),
                    Poll::Pending => Poll::Pending,
                }
            }
            KindProj::Inner { body } => match body.poll_frame(cx) {
                Poll::Ready(Some(result)) => Poll::Ready(Some(
                    result.map(|f| f.map_data(to_bytes)).map_err(Into::into),
                )),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data } => data.is_none(),
            Kind::Buffered {
                frames,
                rest,
                error,
            } => {
                frames.is_empty()
                    && error.is_none()
                    && rest.as_ref().is_none_or(|b| b.is_end_stream())
            }
            Kind::Inner { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Buffered { frames, rest, .. } => {
                let buffered: u64 = frames
                    .iter()
                    .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
                    .sum();
                match rest {
                    None => SizeHint::with_exact(buffered),
                    Some(body) => {
                        let inner = body.size_hint();
                        let mut hint = SizeHint::new();
                        hint.set_lower(inner.lower().saturating_add(buffered));
                        if let Some(upper) = inner.upper() {
                            hint.set_upper(upper.saturating_add(buffered));
                        }
                        hint
                    }
                }
            }
            Kind::Inner { body } => body.size_hint(),
        }
    }
}

/// What reading a service body up to the storable maximum gave.
pub(crate) enum Collected<B> {
    /// The whole body, within the limit and without trailers.
    Complete(Bytes),
    /// Not storable (too large, trailers, or an error): the body to answer with instead.
    Uncacheable {
        body: CacheBody<B>,
        reason: crate::policy::NotStored,
    },
}

/// Reads `body` while it stays within `max` bytes.
pub(crate) async fn collect_limited<B>(body: B, max: usize) -> Collected<B>
where
    B: Body,
    B::Error: Into<BodyError>,
{
    use crate::policy::NotStored;
    let mut body = Box::pin(body);
    if body.size_hint().lower() > max as u64 {
        return Collected::Uncacheable {
            body: CacheBody::buffered(VecDeque::new(), Some(body), None),
            reason: NotStored::TooLarge,
        };
    }
    let mut frames: VecDeque<Frame<Bytes>> = VecDeque::new();
    let mut total = 0usize;
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    let data = to_bytes(data);
                    total = total.saturating_add(data.len());
                    frames.push_back(Frame::data(data));
                    if total > max {
                        return Collected::Uncacheable {
                            body: CacheBody::buffered(frames, Some(body), None),
                            reason: NotStored::TooLarge,
                        };
                    }
                }
                Err(frame) => {
                    // Trailers: pass them (and whatever follows) through, uncached.
                    let frame = match frame.into_trailers() {
                        Ok(trailers) => Frame::trailers(trailers),
                        Err(_) => Frame::trailers(HeaderMap::new()),
                    };
                    frames.push_back(frame);
                    return Collected::Uncacheable {
                        body: CacheBody::buffered(frames, Some(body), None),
                        reason: NotStored::Body,
                    };
                }
            },
            Some(Err(error)) => {
                tracing::debug!("service body failed while it was read for the cache");
                return Collected::Uncacheable {
                    body: CacheBody::buffered(frames, None, Some(error.into())),
                    reason: NotStored::Body,
                };
            }
        }
    }
    let bytes = match frames.len() {
        0 => Bytes::new(),
        1 => frames
            .pop_front()
            .and_then(|f| f.into_data().ok())
            .unwrap_or_default(),
        _ => {
            let mut out = BytesMut::with_capacity(total);
            for frame in frames {
                if let Some(data) = frame.data_ref() {
                    out.extend_from_slice(data);
                }
            }
            out.freeze()
        }
    };
    Collected::Complete(bytes)
}
