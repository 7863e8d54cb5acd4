//! What tower-http's `TraceLayer` is given: the request's span (request id, method, and the
//! route once the router knows it), in which every event of the request happens, and what is
//! done once per request when its answer is ready: the access event and the request metrics,
//! from tower-http's one latency measurement (the proxy's stack needs no metrics layer and no
//! second pair of clock reads; a panic answered by the catch-panic layer is counted too).

use crate::layer::Outcome;
use http::{Request, Response};
use std::time::Duration;
use tower_http::request_id::RequestId;
use tracing::Span;

/// The tracing target of the access events.
pub const ACCESS: &str = "myinfo_proxy::access";

/// Makes each request's `request` span.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestSpan;

impl<B> tower_http::trace::MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, req: &Request<B>) -> Span {
        // Below the subscriber's level (RUST_LOG=warn, say) the span is disabled: skip the id.
        if !tracing::level_enabled!(tracing::Level::INFO) {
            return Span::none();
        }
        let id = req
            .extensions()
            .get::<RequestId>()
            .and_then(|id| id.header_value().to_str().ok())
            .unwrap_or("");
        tracing::info_span!(
            "request",
            request_id = id,
            method = %req.method(),
            route = tracing::field::Empty,
        )
    }
}

/// Counts each answered request in the metrics (as [`crate::layer::MetricsLayer`] would) and
/// logs its access event.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AccessLog;

impl<B> tower_http::trace::OnResponse<B> for AccessLog {
    fn on_response(self, res: &Response<B>, latency: Duration, _: &Span) {
        let outcome = res.extensions().get::<Outcome>();
        crate::metrics::request(
            outcome.and_then(|o| o.route),
            res.status().as_u16(),
            latency,
        );
        let upstream = outcome.and_then(|o| o.upstream.as_ref());
        tracing::info!(
            target: ACCESS,
            status = res.status().as_u16(),
            latency_ms = latency.as_secs_f64() * 1000.0,
            attempts = outcome.map_or(0, |o| o.attempts),
            upstream_id = upstream.and_then(|u| u.id.as_deref()).unwrap_or(""),
            trace_id = upstream.and_then(|u| u.trace_id.as_deref()).unwrap_or(""),
            stop = outcome.and_then(|o| o.stop).map_or("", |s| s.label()),
            "request"
        );
    }
}
