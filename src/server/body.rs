//! The body deadline: a request's body must be in within `body_timeout` of its headers. A
//! wrapper around the body, so that whoever reads it (the proxy, a layer, a library user's
//! handler) gets an error at the deadline instead of waiting on a client that stopped sending.

use crate::error::{BoxError, ProblemCode, ProxyError};
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// A request body that fails with `VALIDATION_BODY_TIMEOUT` once its deadline passes before
/// its end. The timer is made only when the body is not all there at the first read; a body
/// that is complete from the start (a GET, say) has no deadline at all and costs no clock read.
#[derive(Debug)]
pub struct DeadlineBody<B = Incoming> {
    inner: B,
    /// None for a body complete from the start (it never waits).
    deadline: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
    expired: Option<Arc<AtomicBool>>,
}

impl<B: Body> DeadlineBody<B> {
    /// `inner` must end within `timeout` from now; the flag (None for a body that is already
    /// complete) turns true if it did not.
    pub(super) fn new(inner: B, timeout: Duration) -> (Self, Option<Arc<AtomicBool>>) {
        let expired = (!inner.is_end_stream()).then(Arc::default);
        let deadline = expired
            .is_some()
            .then(|| crate::deadline::saturating_add(Instant::now(), timeout));
        let body = Self {
            inner,
            deadline,
            sleep: None,
            expired: expired.clone(),
        };
        (body, expired)
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(sleep) = &mut this.sleep {
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Some(Err(this.expire())));
            }
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                let Some(deadline) = this.deadline else {
                    return Poll::Pending;
                };
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(this.expire())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> DeadlineBody<B> {
    fn expire(&mut self) -> BoxError {
        if let Some(flag) = &self.expired {
            flag.store(true, Ordering::Relaxed);
        }
        body_timeout().into()
    }
}

/// The problem a request gets when its body was not in by the deadline.
pub(super) fn body_timeout() -> ProxyError {
    ProxyError::new(
        ProblemCode::ValidationBodyTimeout,
        "the request body did not arrive within the listener's body_timeout; send the whole body at once",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt as _, StreamBody};

    type Frames = futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, BoxError>>>;

    fn stalled_after(first: &'static [u8]) -> impl Body<Data = Bytes, Error = BoxError> + Unpin {
        let head: Frames =
            futures_util::stream::iter(vec![Ok(Frame::data(Bytes::from_static(first)))]);
        StreamBody::new(futures_util::StreamExt::chain(
            head,
            futures_util::stream::pending(),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_coming_fails_at_its_deadline() {
        let started = Instant::now();
        let (body, expired) = DeadlineBody::new(stalled_after(b"code="), Duration::from_secs(15));
        let err = body.collect().await.unwrap_err();
        let err = err.downcast::<ProxyError>().unwrap();
        assert_eq!(err.code, ProblemCode::ValidationBodyTimeout);
        assert_eq!(started.elapsed(), Duration::from_secs(15));
        assert!(expired.unwrap().load(Ordering::Relaxed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_whole_body_passes_and_an_empty_one_needs_no_timer() {
        let (body, expired) = DeadlineBody::new(
            http_body_util::Full::new(Bytes::from_static(b"code=1")),
            Duration::from_secs(15),
        );
        assert_eq!(body.collect().await.unwrap().to_bytes(), "code=1");
        assert!(!expired.unwrap().load(Ordering::Relaxed));
        let (_, none) = DeadlineBody::new(http_body_util::Empty::<Bytes>::new(), Duration::ZERO);
        assert!(none.is_none());
    }
}
