//! Prometheus metrics, every name prefixed `myinfo_proxy_`. Labels hold only fixed sets of
//! values (route labels, status codes, outcome words): never a token, key, user id or path.

use crate::config::RouteKind;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    upstream_attempts: IntCounterVec,
    upstream_errors: IntCounterVec,
    retries: IntCounterVec,
    rate_limit_waits: IntCounterVec,
    rate_limit_refusals: IntCounterVec,
    rate_limit_pauses: IntCounterVec,
    signatures: IntCounterVec,
    signing_duration: Histogram,
    key_bindings: IntGaugeVec,
    nonce_retries: IntCounterVec,
    discovery_fetches: IntCounterVec,
    jwks_fetches: IntCounterVec,
    open_connections: IntGaugeVec,
    connections_refused: IntCounterVec,
    accept_errors: IntCounterVec,
    breaker_state: IntGaugeVec,
    breaker_transitions: IntCounterVec,
    redis_operations: IntCounterVec,
    redis_duration: HistogramVec,
    redis_available: IntGauge,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let r = Registry::new();
    let latency_buckets = vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    let request_duration = HistogramVec::new(
        HistogramOpts::new(
            "myinfo_proxy_request_duration_seconds",
            "Time from an app request's arrival to its answer.",
        )
        .buckets(latency_buckets),
        &["route"],
    )
    .expect("valid metric");
    r.register(Box::new(request_duration.clone()))
        .expect("unique metric");
    let signing_duration = Histogram::with_opts(
        HistogramOpts::new(
            "myinfo_proxy_signing_duration_seconds",
            "Time to sign one client assertion or DPoP proof.",
        )
        .buckets(vec![
            0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01,
        ]),
    )
    .expect("valid metric");
    r.register(Box::new(signing_duration.clone()))
        .expect("unique metric");
    let key_bindings = IntGaugeVec::new(
        Opts::new(
            "myinfo_proxy_key_bindings",
            "Live ephemeral-key bindings, by kind.",
        ),
        &["kind"],
    )
    .expect("valid metric");
    r.register(Box::new(key_bindings.clone()))
        .expect("unique metric");
    let open_connections = IntGaugeVec::new(
        Opts::new(
            "myinfo_proxy_open_connections",
            "Connections open on a listener (main, admin).",
        ),
        &["listener"],
    )
    .expect("valid metric");
    r.register(Box::new(open_connections.clone()))
        .expect("unique metric");
    let breaker_state = IntGaugeVec::new(
        Opts::new(
            "myinfo_proxy_breaker_state",
            "Each upstream's circuit: 0 closed, 1 open (failing fast), 2 half-open (probing).",
        ),
        &["upstream"],
    )
    .expect("valid metric");
    r.register(Box::new(breaker_state.clone()))
        .expect("unique metric");
    let redis_duration = HistogramVec::new(
        HistogramOpts::new(
            "myinfo_proxy_redis_operation_duration_seconds",
            "Time of one Redis operation (shared state), by operation.",
        )
        .buckets(vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        ]),
        &["operation"],
    )
    .expect("valid metric");
    r.register(Box::new(redis_duration.clone()))
        .expect("unique metric");
    let redis_available = IntGauge::new(
        "myinfo_proxy_redis_available",
        "1 while Redis answers (or is not configured), 0 while its circuit is open.",
    )
    .expect("valid metric");
    redis_available.set(1);
    r.register(Box::new(redis_available.clone()))
        .expect("unique metric");
    Metrics {
        requests: counter(&r, "myinfo_proxy_requests_total", "App requests answered, by route and status.", &["route", "status"]),
        request_duration,
        upstream_attempts: counter(&r, "myinfo_proxy_upstream_attempts_total", "Upstream attempts, by route and status (0: no answer).", &["route", "status"]),
        upstream_errors: counter(&r, "myinfo_proxy_upstream_errors_total", "Failed upstream attempts, by route, status and error class.", &["route", "status", "class"]),
        retries: counter(&r, "myinfo_proxy_retries_total", "Retried upstream attempts, by route and reason.", &["route", "reason"]),
        rate_limit_waits: counter(&r, "myinfo_proxy_rate_limit_waits_total", "Attempts that waited for a rate-limit permit.", &["route"]),
        rate_limit_refusals: counter(&r, "myinfo_proxy_rate_limit_refusals_total", "Requests refused with 429 by the proxy, by route and reason (quota, upstream_throttle, global).", &["route", "reason"]),
        rate_limit_pauses: counter(&r, "myinfo_proxy_rate_limit_pauses_total", "Upstream throttle signals that paused a route.", &["route"]),
        signatures: counter(&r, "myinfo_proxy_signatures_total", "JWTs signed, by kind (client_assertion, dpop_proof).", &["kind"]),
        signing_duration,
        key_bindings,
        nonce_retries: counter(&r, "myinfo_proxy_dpop_nonce_retries_total", "Attempts repeated once with a server-provided DPoP nonce.", &["route"]),
        discovery_fetches: counter(&r, "myinfo_proxy_discovery_fetches_total", "FAPI discovery fetches, by outcome.", &["outcome"]),
        jwks_fetches: counter(&r, "myinfo_proxy_jwks_fetches_total", "Upstream JWKS fetches, by outcome.", &["outcome"]),
        open_connections,
        connections_refused: counter(&r, "myinfo_proxy_connections_refused_total", "Connections closed at once because the listener held max_connections.", &["listener"]),
        accept_errors: counter(&r, "myinfo_proxy_accept_errors_total", "Failed accepts (e.g. at the open-file limit), by listener.", &["listener"]),
        breaker_state,
        breaker_transitions: counter(&r, "myinfo_proxy_breaker_transitions_total", "Circuit-breaker transitions, by upstream and new state (closed, open, half_open).", &["upstream", "to"]),
        redis_operations: counter(&r, "myinfo_proxy_redis_operations_total", "Redis operations (shared state), by operation and outcome (ok, error, timeout, circuit_open).", &["operation", "outcome"]),
        redis_duration,
        redis_available,
        registry: r,
    }
});

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&METRICS.registry.gather(), &mut out)
        .expect("text encoding");
    String::from_utf8(out).expect("UTF-8")
}

/// An app request answered (`route` None: refused before routing, `route="none"`).
pub(crate) fn request(route: Option<RouteKind>, status: u16, took: Duration) {
    let series = RouteSeries::of(route);
    series
        .requests
        .get(&METRICS.requests, series.label, status)
        .inc();
    series
        .duration
        .get_or_init(|| METRICS.request_duration.with_label_values(&[series.label]))
        .observe(took.as_secs_f64());
}

/// One upstream attempt finished (status 0: no answer).
pub(crate) fn upstream_attempt(route: RouteKind, status: u16) {
    let series = RouteSeries::of(Some(route));
    series
        .attempts
        .get(&METRICS.upstream_attempts, series.label, status)
        .inc();
}

/// The per-request series of one route, resolved once: counting a request hashes no label
/// and takes no lock (prometheus's `with_label_values` does both).
struct RouteSeries {
    label: &'static str,
    duration: OnceLock<Histogram>,
    requests: ByStatus,
    attempts: ByStatus,
}

/// Every route, and "none" last.
static ROUTES: LazyLock<Vec<RouteSeries>> = LazyLock::new(|| {
    RouteKind::ALL
        .iter()
        .map(|r| r.label())
        .chain(["none"])
        .map(|label| RouteSeries {
            label,
            duration: OnceLock::new(),
            requests: ByStatus::default(),
            attempts: ByStatus::default(),
        })
        .collect()
});

impl RouteSeries {
    fn of(route: Option<RouteKind>) -> &'static Self {
        let index = route.map_or(RouteKind::ALL.len(), |r| r as usize);
        &ROUTES[index]
    }
}

/// One counter per status label (0, 100..=599, other), made when first used; the table is
/// allocated the first time the route counts anything.
#[derive(Default)]
struct ByStatus(OnceLock<Box<[OnceLock<IntCounter>]>>);

impl ByStatus {
    fn get(&self, vec: &IntCounterVec, route: &str, status: u16) -> &IntCounter {
        let cells = self
            .0
            .get_or_init(|| (0..=600).map(|_| OnceLock::new()).collect());
        let label = status_label(status);
        let index = match status {
            0 | 100..=599 => usize::from(status),
            _ => 600,
        };
        cells[index].get_or_init(|| vec.with_label_values(&[route, label]))
    }
}

/// One upstream attempt failed.
pub(crate) fn upstream_error(route: &str, status: u16, class: &str) {
    METRICS
        .upstream_errors
        .with_label_values(&[route, status_label(status), class])
        .inc();
}

/// A retry was made.
pub(crate) fn retry(route: &str, reason: &str) {
    METRICS.retries.with_label_values(&[route, reason]).inc();
}

/// An attempt waited for a permit.
pub(crate) fn rate_limit_wait(route: &str) {
    METRICS.rate_limit_waits.with_label_values(&[route]).inc();
}

/// A request was refused with 429.
pub(crate) fn rate_limit_refusal(route: &str, reason: &str) {
    METRICS
        .rate_limit_refusals
        .with_label_values(&[route, reason])
        .inc();
}

/// An upstream throttle paused a route.
pub(crate) fn rate_limit_pause(route: &str) {
    METRICS.rate_limit_pauses.with_label_values(&[route]).inc();
}

/// A JWT was signed (`client_assertion` or `dpop_proof`).
pub(crate) fn signed(kind: &'static str, took: Duration) {
    METRICS.signatures.with_label_values(&[kind]).inc();
    METRICS.signing_duration.observe(took.as_secs_f64());
}

/// The number of live bindings of a kind.
pub(crate) fn key_bindings(kind: &str, live: u64) {
    METRICS
        .key_bindings
        .with_label_values(&[kind])
        .set(i64::try_from(live).unwrap_or(i64::MAX));
}

/// A DPoP-nonce retry.
pub(crate) fn nonce_retry(route: &str) {
    METRICS.nonce_retries.with_label_values(&[route]).inc();
}

/// A discovery fetch finished (`ok` or `error`).
pub(crate) fn discovery_fetch(outcome: &str) {
    METRICS
        .discovery_fetches
        .with_label_values(&[outcome])
        .inc();
}

/// A JWKS fetch finished (`ok` or `error`).
pub(crate) fn jwks_fetch(outcome: &str) {
    METRICS.jwks_fetches.with_label_values(&[outcome]).inc();
}

/// A connection was refused: the listener held `max_connections`.
pub(crate) fn connection_refused(listener: &str) {
    METRICS
        .connections_refused
        .with_label_values(&[listener])
        .inc();
}

/// An accept failed.
pub(crate) fn accept_error(listener: &str) {
    METRICS.accept_errors.with_label_values(&[listener]).inc();
}

/// One open connection of a listener, counted in `myinfo_proxy_open_connections` until
/// dropped.
#[derive(Debug)]
pub(crate) struct OpenConnection(prometheus::IntGauge);

impl OpenConnection {
    /// Counts a new connection of `listener`.
    pub(crate) fn new(listener: &str) -> Self {
        let gauge = METRICS.open_connections.with_label_values(&[listener]);
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// An upstream's circuit is now in `state` (0 closed, 1 open, 2 half-open).
pub(crate) fn breaker_state(upstream: &str, state: i64) {
    METRICS
        .breaker_state
        .with_label_values(&[upstream])
        .set(state);
}

/// An upstream's circuit moved to `to` (`closed`, `open`, `half_open`).
pub(crate) fn breaker_transition(upstream: &str, to: &str) {
    METRICS
        .breaker_transitions
        .with_label_values(&[upstream, to])
        .inc();
}

/// A Redis operation finished (`ok`, `error`, `timeout`) or was not tried (`circuit_open`).
pub(crate) fn redis_operation(operation: &str, outcome: &str, took: Option<Duration>) {
    METRICS
        .redis_operations
        .with_label_values(&[operation, outcome])
        .inc();
    if let Some(took) = took {
        METRICS
            .redis_duration
            .with_label_values(&[operation])
            .observe(took.as_secs_f64());
    }
}

/// Whether Redis is answering (its circuit is closed).
pub(crate) fn redis_available(up: bool) {
    METRICS.redis_available.set(i64::from(up));
}

/// Status codes as static labels (bounded: 0 and 100..=599, anything else "other").
fn status_label(status: u16) -> &'static str {
    static LABELS: LazyLock<Vec<String>> =
        LazyLock::new(|| (0..600).map(|s| s.to_string()).collect());
    match status {
        0 | 100..=599 => LABELS[usize::from(status)].as_str(),
        _ => "other",
    }
}
