//! The listeners: HTTP/1.1 and h2c (or TLS and mTLS) from the app, with limits against slow,
//! idle and too many clients (`[listener.main]`, `[listener.admin]`); requests handed to the
//! [`Proxy`] (or any handler); graceful shutdown.
//!
//! Each listener holds at most `max_connections` connections. One more is accepted and closed
//! at once (so the kernel's backlog does not fill with connections that wait for nothing), and
//! counted in `myinfo_proxy_connections_refused_total{listener}`. The admin listener has a cap
//! of its own, so probes get in while the main listener is full.

use crate::config::ListenerLimits;
use crate::proxy::Proxy;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

mod accept;
mod body;
mod connection;
mod fd_limit;
#[cfg(test)]
mod tests;

pub use body::DeadlineBody;
pub use fd_limit::fit_open_file_limit;

/// The body of every request a listener hands on: hyper's, under the body deadline.
pub type RequestBody = DeadlineBody<hyper::body::Incoming>;

/// One listener's settings: its name in metrics, its limits, TLS, and where problems point.
#[derive(Clone)]
pub struct Server {
    name: &'static str,
    limits: ListenerLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    doc_url: Option<Arc<str>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Server {
    /// The main listener (`listener="main"` in metrics).
    pub fn main(limits: ListenerLimits) -> Self {
        Self::named("main", limits)
    }

    /// The admin listener (`listener="admin"` in metrics).
    pub fn admin(limits: ListenerLimits) -> Self {
        Self::named("admin", limits)
    }

    fn named(name: &'static str, limits: ListenerLimits) -> Self {
        Self {
            name,
            limits,
            tls: None,
            doc_url: None,
        }
    }

    /// Serves TLS (mTLS when the acceptor requires client certificates).
    pub fn tls(mut self, acceptor: tokio_rustls::TlsAcceptor) -> Self {
        self.tls = Some(acceptor);
        self
    }

    /// The `doc_url` of the problems the listener itself answers (408 for a late body).
    pub fn problem_doc_url(mut self, url: &str) -> Self {
        self.doc_url = Some(url.into());
        self
    }

    /// Serves `proxy` until `shutdown` resolves, then stops accepting and gives in-flight
    /// requests up to `drain` to finish.
    pub async fn serve_proxy(
        self,
        listener: TcpListener,
        proxy: Proxy,
        shutdown: impl Future<Output = ()>,
        drain: Duration,
    ) -> std::io::Result<()> {
        // Only the edge is needed per request (not a clone of the whole `Proxy`).
        let edge = proxy.edge().clone();
        let handler = move |req: Request<RequestBody>| {
            let answer = crate::proxy::answer(&edge, req.map(http_body_util::Either::Left));
            async move { answer.await.map(Full::new) }
        };
        self.serve(listener, handler, shutdown, drain).await
    }

    /// Serves any handler (the proxy, the admin endpoints) until `shutdown` resolves; then
    /// stops accepting and waits up to `drain` for in-flight requests.
    pub async fn serve<H, F>(
        self,
        listener: TcpListener,
        handler: H,
        shutdown: impl Future<Output = ()>,
        drain: Duration,
    ) -> std::io::Result<()>
    where
        H: Fn(Request<RequestBody>) -> F + Send + Sync + 'static,
        F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let name = self.name;
        let shared = Arc::new(connection::Shared::new(handler, self.limits, self.doc_url));
        let slots = Arc::new(Semaphore::new(self.limits.max_connections));
        let (stop, stopped) = watch::channel(false);
        let mut backoff = accept::AcceptBackoff::new(name);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _)) => stream,
                        Err(e) => {
                            let (wait, _) = backoff.failed(&e);
                            tokio::select! {
                                () = tokio::time::sleep(wait) => continue,
                                () = &mut shutdown => break,
                            }
                        }
                    };
                    backoff.succeeded();
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        crate::metrics::connection_refused(name);
                        drop(stream);
                        continue;
                    };
                    let open = crate::metrics::OpenConnection::new(name);
                    let (tls, shared, stopped) = (self.tls.clone(), shared.clone(), stopped.clone());
                    tokio::spawn(async move {
                        connection::serve(stream, tls, shared, stopped).await;
                        drop((slot, open));
                    });
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        drop(stopped);
        let _ = stop.send(true);
        // Every connection holds a receiver until it ends.
        if tokio::time::timeout(drain, stop.closed()).await.is_err() {
            tracing::warn!(
                listener = name,
                drain_s = drain.as_secs(),
                "drain deadline passed with requests still in flight"
            );
        }
        Ok(())
    }
}
