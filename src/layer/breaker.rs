//! Breaker: fails fast while an upstream is down. After `failures` app requests in a row end
//! without an answer or with a 5xx, the upstream's circuit opens, and for `open_for` every
//! request is answered at once with `503 PROVIDER_UNAVAILABLE` and `Retry-After` (no connect
//! timeouts, no retries, no load on a recovering Singpass). Then one probe request goes
//! through: an answer below 500 closes the circuit; a failure reopens it for twice as long, up
//! to `max_open_for`. A 4xx, 429 included, never counts: the upstream is up.
//!
//! It sits outside retry, so it counts app requests (each after its retries), not attempts,
//! and a probe is one app request. One circuit per upstream: `stack.rs` builds one
//! [`BreakerLayer`] per upstream and clones it into each of that upstream's route stacks.

mod circuit;

#[cfg(test)]
use circuit::Phase;
pub(crate) use circuit::{Circuit, Outcome};

use crate::config::BreakerConfig;
use crate::error::BoxError;
use crate::layer::RequestFacts;
use bytes::Bytes;
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::Instant;
use tower::util::Oneshot;
use tower::ServiceExt as _;

/// Builds [`Breaker`]; its clones share the circuit.
#[derive(Debug, Clone)]
pub struct BreakerLayer {
    circuit: Arc<Circuit>,
}

impl BreakerLayer {
    /// A breaker with one circuit, for the routes of the upstream named `upstream` (build one
    /// per upstream and clone it into each of its route stacks).
    pub fn new(config: BreakerConfig, upstream: &str) -> Self {
        Self {
            circuit: Arc::new(Circuit::new(upstream, config)),
        }
    }

    /// The circuit this breaker counts against.
    pub fn circuit(&self) -> &Arc<Circuit> {
        &self.circuit
    }
}

impl<S> tower::Layer<S> for BreakerLayer {
    type Service = Breaker<S>;
    fn layer(&self, inner: S) -> Breaker<S> {
        Breaker {
            inner,
            circuit: self.circuit.clone(),
        }
    }
}

/// Answers at once while its upstream's circuit is open; counts outcomes otherwise.
#[derive(Debug, Clone)]
pub struct Breaker<S> {
    inner: S,
    circuit: Arc<Circuit>,
}

impl<S> tower::Service<Request<Bytes>> for Breaker<S>
where
    S: tower::Service<Request<Bytes>, Response = Response<Bytes>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = Response<Bytes>;
    type Error = BoxError;
    type Future = BreakerFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let ticket = match self.circuit.admit(Instant::now) {
            Ok(ticket) => ticket,
            Err(refused) => {
                return BreakerFuture {
                    state: State::Refused {
                        refused: std::future::ready(Err(refused.into())),
                    },
                }
            }
        };
        // Made before the call: a future dropped before its first poll still gives its ticket
        // back (else a probe slot could stay taken for good).
        let pending = Pending {
            circuit: self.circuit.clone(),
            ticket: Some(ticket),
            deadline: req.extensions().get::<RequestFacts>().map(|f| f.deadline),
        };
        // The inner service is called when the future is first polled, as an async block would.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        BreakerFuture {
            state: State::Admitted {
                answer: inner.oneshot(req),
                pending,
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Breaker`]: a refusal at once, or the inner answer, counted when it comes
    /// (a named future, not a boxed one: every request passes here).
    pub struct BreakerFuture<S: tower::Service<Request<Bytes>>> {
        #[pin]
        state: State<S>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<S: tower::Service<Request<Bytes>>> {
        Refused { #[pin] refused: std::future::Ready<Result<Response<Bytes>, BoxError>> },
        Admitted { #[pin] answer: Oneshot<S, Request<Bytes>>, pending: Pending },
    }
}

impl<S> Future for BreakerFuture<S>
where
    S: tower::Service<Request<Bytes>, Response = Response<Bytes>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<Bytes>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Refused { refused } => refused.poll(cx),
            StateProj::Admitted { answer, pending } => {
                let result = std::task::ready!(answer.poll(cx)).map_err(Into::into);
                pending.finish(Outcome::of(&result));
                Poll::Ready(result)
            }
        }
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
            self.circuit.record(ticket, outcome, Instant::now);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.ticket.is_none() {
            return; // finished: its outcome is recorded
        }
        let timed_out = self.deadline.is_some_and(|d| Instant::now() >= d);
        self.finish(if timed_out {
            Outcome::Failure
        } else {
            Outcome::Neutral
        });
    }
}

#[cfg(test)]
mod tests;
