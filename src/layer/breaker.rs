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
        let circuit = self.circuit.clone();
        let ticket = match circuit.admit(Instant::now()) {
            Ok(ticket) => ticket,
            Err(refused) => return Box::pin(std::future::ready(Err(refused.into()))),
        };
        // Made here, not in the future: a future dropped before its first poll still gives
        // its ticket back (else a probe slot could stay taken for good).
        let mut pending = Pending {
            circuit,
            ticket: Some(ticket),
            deadline: req.extensions().get::<RequestFacts>().map(|f| f.deadline),
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
