//! The connect deadline: TCP connect and TLS handshake together under `timeouts.connect`, so
//! that an upstream (or a middlebox) that accepts and then stalls the handshake fails as a
//! connect failure, which is retried, instead of using up the whole attempt.

use crate::error::BoxError;
use http::Uri;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Wraps a connector (TCP, or TLS over TCP) so that each connection must be ready in time.
#[derive(Debug, Clone)]
pub(crate) struct ConnectTimeout<C> {
    inner: C,
    timeout: Duration,
}

impl<C> ConnectTimeout<C> {
    /// Connections of `inner` fail after `timeout`.
    pub(crate) fn new(inner: C, timeout: Duration) -> Self {
        Self { inner, timeout }
    }
}

/// A connection (TCP and TLS) that was not ready within `timeouts.connect`.
#[derive(Debug, thiserror::Error)]
#[error("TCP connect and TLS handshake took longer than timeouts.connect ({})", humantime::format_duration(*.0))]
pub(crate) struct ConnectTimedOut(pub Duration);

impl<C> tower::Service<Uri> for ConnectTimeout<C>
where
    C: tower::Service<Uri>,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
    C::Response: Send + 'static,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(done) => done.map_err(Into::into),
                Err(_) => Err(ConnectTimedOut(timeout).into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Service as _, ServiceExt as _};

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_never_gets_ready_fails_at_the_deadline() {
        let stalled = tower::service_fn(|_: Uri| std::future::pending::<Result<(), BoxError>>());
        let mut connect = ConnectTimeout::new(stalled, Duration::from_secs(3));
        let started = tokio::time::Instant::now();
        let err = connect
            .ready()
            .await
            .unwrap()
            .call(Uri::from_static("https://upstream.example/"))
            .await
            .unwrap_err();
        assert!(err.is::<ConnectTimedOut>(), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        let quick = tower::service_fn(|_: Uri| async { Ok::<_, BoxError>(7) });
        let got = ConnectTimeout::new(quick, Duration::from_secs(3))
            .oneshot(Uri::from_static("https://upstream.example/"))
            .await
            .unwrap();
        assert_eq!(got, 7);
    }
}
