//! Breaker: fails fast while an upstream is down. After `failures` app requests in a row end
//! without an answer or with a 5xx, the upstream's circuit opens, and for `open_for` every
//! request is answered at once with `503 PROVIDER_UNAVAILABLE` and `Retry-After` (no connect
//! timeouts, no retries, no load on a recovering Singpass). Then one probe request goes
//! through: an answer below 500 closes the circuit; a failure reopens it for twice as long, up
//! to `max_open_for`. A 4xx, 429 included, never counts: the upstream is up.
//!
//! It sits outside retry, so it counts app requests (each after its retries), not attempts,
//! and a probe is one app request. One circuit per upstream: build one [`BreakerLayer::new`]
//! per upstream stack, or [`BreakerLayer::per_upstream`] for a stack shared by several, which
//! picks the circuit by the request's [`RequestContext`].

mod circuit;

pub use circuit::{Circuit, Outcome, Phase};

use crate::config::{BreakerConfig, Config};
use crate::error::{BoxError, ProblemCode, ProxyError};
use crate::route::RequestContext;
use bytes::Bytes;
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::Instant;

/// Which circuit a request counts against.
#[derive(Debug, Clone)]
enum Circuits {
    /// Every request: the stack serves one upstream.
    One(Arc<Circuit>),
    /// By the upstream name in the request's context.
    ByUpstream(Arc<[Arc<Circuit>]>),
}

/// Builds [`Breaker`]; its clones share the circuit(s).
#[derive(Debug, Clone)]
pub struct BreakerLayer {
    circuits: Circuits,
}

impl BreakerLayer {
    /// A breaker with one circuit, for the stack of the upstream named `upstream`.
    pub fn new(config: BreakerConfig, upstream: &str) -> Self {
        Self {
            circuits: Circuits::One(Arc::new(Circuit::new(upstream, config))),
        }
    }

    /// A breaker for a stack shared by several upstreams: one circuit per name, chosen by the
    /// request's [`RequestContext`] (a request without one, or for another upstream, is an
    /// error).
    pub fn per_upstream<'a>(
        config: BreakerConfig,
        upstreams: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let circuits = upstreams
            .into_iter()
            .map(|name| Arc::new(Circuit::new(name, config)))
            .collect();
        Self {
            circuits: Circuits::ByUpstream(circuits),
        }
    }

    /// The breaker `config` asks for: one circuit per configured upstream, or None when
    /// `breaker.enabled = false`.
    pub fn for_config(config: &Config) -> Option<Self> {
        config.breaker.enabled.then(|| {
            Self::per_upstream(
                config.breaker,
                config.upstreams.iter().map(|u| u.name.as_str()),
            )
        })
    }

    /// The circuit of `upstream`, if this breaker has one.
    pub fn circuit(&self, upstream: &str) -> Option<&Arc<Circuit>> {
        match &self.circuits {
            Circuits::One(c) => Some(c).filter(|c| c.upstream() == upstream),
            Circuits::ByUpstream(all) => all.iter().find(|c| c.upstream() == upstream),
        }
    }
}

impl<S> tower::Layer<S> for BreakerLayer {
    type Service = Breaker<S>;
    fn layer(&self, inner: S) -> Breaker<S> {
        Breaker {
            inner,
            circuits: self.circuits.clone(),
        }
    }
}

/// Answers at once while the request's upstream circuit is open; counts outcomes otherwise.
#[derive(Debug, Clone)]
pub struct Breaker<S> {
    inner: S,
    circuits: Circuits,
}

impl<S> Breaker<S> {
    fn circuit_for(&self, req: &Request<Bytes>) -> Result<Arc<Circuit>, ProxyError> {
        let all = match &self.circuits {
            Circuits::One(c) => return Ok(c.clone()),
            Circuits::ByUpstream(all) => all,
        };
        let ctx = req.extensions().get::<RequestContext>().ok_or_else(|| {
            ProxyError::new(
                ProblemCode::SystemInternalError,
                "the breaker got a request without a RequestContext",
            )
        })?;
        all.iter()
            .find(|c| c.upstream() == &*ctx.route.upstream)
            .cloned()
            .ok_or_else(|| {
                ProxyError::new(
                    ProblemCode::SystemInternalError,
                    format!(
                        "the breaker has no circuit for upstream `{}`",
                        ctx.route.upstream
                    ),
                )
            })
    }
}

impl<S> tower::Service<Request<Bytes>> for Breaker<S>
where
    S: tower::Service<Request<Bytes>, Response = Response<Bytes>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    type Response = Response<Bytes>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let admitted = self
            .circuit_for(&req)
            .and_then(|c| c.admit(Instant::now()).map(|ticket| (c, ticket)));
        let (circuit, ticket) = match admitted {
            Ok(admitted) => admitted,
            Err(refused) => return Box::pin(std::future::ready(Err(refused.into()))),
        };
        // Made here, not in the future: a future dropped before its first poll still gives
        // its ticket back (else a probe slot could stay taken for good).
        let mut pending = Pending {
            circuit,
            ticket: Some(ticket),
            deadline: req.extensions().get::<RequestContext>().map(|c| c.deadline),
        };
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let result = inner.call(req).await.map_err(Into::into);
            pending.finish(Outcome::of(&result));
            result
        })
    }
}

/// A request in flight. Dropped before it finished (the overall timeout fired, or the app
/// went away), it counts as a failure when its deadline had passed, and as nothing otherwise:
/// an app that hangs up must not be able to open the circuit for everyone.
struct Pending {
    circuit: Arc<Circuit>,
    ticket: Option<circuit::Ticket>,
    deadline: Option<Instant>,
}

impl Pending {
    fn finish(&mut self, outcome: Outcome) {
        if let Some(ticket) = self.ticket.take() {
            self.circuit.record(ticket, outcome, Instant::now());
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let now = Instant::now();
        let timed_out = self.deadline.is_some_and(|d| now >= d);
        self.finish(if timed_out {
            Outcome::Failure
        } else {
            Outcome::Neutral
        });
    }
}

#[cfg(test)]
mod tests;
