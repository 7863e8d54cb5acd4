//! [`WholeBody`]: a body read into one `Bytes`. A body of one data frame (what the upstream
//! client and the stack's own answers give almost always) is that frame as it is; more frames
//! are joined. `http_body_util`'s `collect` first puts every frame in a list (an allocation
//! per body, on every request).

use bytes::{Bytes, BytesMut};
use hyper::body::Body;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    /// The future of a whole body: its bytes, or the body's error. Trailers are dropped.
    pub(crate) struct WholeBody<B> {
        #[pin]
        body: B,
        first: Bytes,
        joined: Option<BytesMut>,
    }
}

impl<B> WholeBody<B> {
    pub(crate) fn new(body: B) -> Self {
        Self {
            body,
            first: Bytes::new(),
            joined: None,
        }
    }
}

impl<B: Body<Data = Bytes>> Future for WholeBody<B> {
    type Output = Result<Bytes, B::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let Some(frame) = std::task::ready!(this.body.as_mut().poll_frame(cx)) else {
                let whole = match this.joined.take() {
                    Some(all) => all.freeze(),
                    None => std::mem::take(this.first),
                };
                return Poll::Ready(Ok(whole));
            };
            let Ok(data) = frame?.into_data() else {
                continue; // trailers: nothing to keep
            };
            match this.joined {
                None if this.first.is_empty() => *this.first = data,
                None => {
                    let mut all = BytesMut::with_capacity(this.first.len() + data.len());
                    all.extend_from_slice(this.first);
                    all.extend_from_slice(&data);
                    *this.joined = Some(all);
                }
                Some(all) => all.extend_from_slice(&data),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt as _, Full, StreamBody};
    use hyper::body::Frame;

    fn frames(
        parts: &[&'static [u8]],
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn one_frame_is_kept_as_it_is_and_several_are_joined() {
        let one = Bytes::from_static(b"{\"a\":1}");
        let whole = WholeBody::new(Full::new(one.clone())).await.unwrap();
        assert_eq!(whole, one);
        assert_eq!(whole.as_ptr(), one.as_ptr(), "a single frame is not copied");
        let joined = WholeBody::new(frames(&[b"ab", b"", b"cd", b"e"]))
            .await
            .unwrap();
        assert_eq!(joined, "abcde");
        let empty = WholeBody::new(frames(&[])).await.unwrap();
        assert!(empty.is_empty());
    }

    #[tokio::test]
    async fn a_body_error_is_the_error() {
        let failing = Full::new(Bytes::from_static(b"x")).map_err(|_| "never");
        assert_eq!(WholeBody::new(failing).await.unwrap(), "x");
        let broken = StreamBody::new(futures_util::stream::iter(vec![
            Ok(Frame::data(Bytes::from_static(b"x"))),
            Err("connection reset"),
        ]));
        assert_eq!(
            WholeBody::new(broken).await.unwrap_err(),
            "connection reset"
        );
    }
}
