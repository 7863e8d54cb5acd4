//! One upstream's circuit: the closed / open / half-open state machine and the policy that
//! says which outcomes count. Pure apart from its metrics and one log line per transition;
//! time comes in as an argument.

use crate::config::BreakerConfig;
use crate::error::{BoxError, ProblemCode, ProxyError};
use bytes::Bytes;
use http::Response;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How an app request's final result counts for its upstream's circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered below 500 (4xx and 429 included: it is up, if unhappy).
    Success,
    /// No answer (connect failure, broken connection, timeout) or a 5xx.
    Failure,
    /// The upstream was never asked (the proxy refused the request itself).
    Neutral,
}

impl Outcome {
    /// The policy: what counts as the upstream being down.
    pub fn of(result: &Result<Response<Bytes>, BoxError>) -> Self {
        match result {
            Ok(res) if res.status().is_server_error() => Self::Failure,
            Ok(_) => Self::Success,
            Err(e) => {
                // Errors come up wrapped with their facts; the breaker judges the error inside.
                let e = match e.downcast_ref::<crate::error::Failed>() {
                    Some(failed) => &failed.source,
                    None => e,
                };
                Self::of_error(e)
            }
        }
    }

    fn of_error(e: &BoxError) -> Self {
        match e.downcast_ref::<ProxyError>() {
            Some(p) => match p.code {
                ProblemCode::ProviderUnreachable | ProblemCode::ProviderTimeout => Self::Failure,
                _ => Self::Neutral,
            },
            None if e.is::<tower::timeout::error::Elapsed>()
                || crate::upstream::transport_failure(e).is_some() =>
            {
                Self::Failure
            }
            None => Self::Neutral,
        }
    }
}

/// The phase of a circuit, as the `myinfo_proxy_breaker_state` gauge shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Requests go through; failures in a row are counted.
    Closed,
    /// Requests are answered at once with 503.
    Open,
    /// One probe request is let through; its outcome closes or reopens the circuit.
    HalfOpen,
}

impl Phase {
    fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
    fn label(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, open_for: Duration },
    HalfOpen { probing: bool, open_for: Duration },
}

impl State {
    fn phase(&self) -> Phase {
        match self {
            Self::Closed { .. } => Phase::Closed,
            Self::Open { .. } => Phase::Open,
            Self::HalfOpen { .. } => Phase::HalfOpen,
        }
    }
}

/// Permission to send one request, from the circuit's phase at the time. An outcome recorded
/// for a ticket of an earlier phase (a request that was in flight when the circuit moved) is
/// ignored, so a late answer never overrules a newer decision.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    generation: u64,
    probe: bool,
}

/// One upstream's circuit, shared by every clone of its breaker.
#[derive(Debug)]
pub struct Circuit {
    upstream: Arc<str>,
    config: BreakerConfig,
    state: Mutex<(u64, State)>,
}

/// How long a request waits for a probe in flight to decide (the `Retry-After` then).
const PROBE_WAIT: Duration = Duration::from_secs(1);

impl Circuit {
    /// A closed circuit for `upstream` (its name: the metric label and log field).
    pub fn new(upstream: &str, config: BreakerConfig) -> Self {
        crate::metrics::breaker_state(upstream, Phase::Closed.gauge());
        Self {
            upstream: upstream.into(),
            config,
            state: Mutex::new((0, State::Closed { failures: 0 })),
        }
    }

    /// The upstream's name.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.lock().1.phase()
    }

    /// A ticket for one request, or the 503 problem that answers it at once. `now` is read only
    /// while the circuit is open (a closed one admits without a clock read).
    pub fn admit(&self, now: impl FnOnce() -> Instant) -> Result<Ticket, ProxyError> {
        let mut guard = self.lock();
        let (generation, state) = &mut *guard;
        let wait = match *state {
            State::Closed { .. } => {
                return Ok(Ticket {
                    generation: *generation,
                    probe: false,
                })
            }
            State::Open { until, open_for } => {
                let now = now();
                if now < until {
                    until - now
                } else {
                    self.enter(
                        generation,
                        state,
                        State::HalfOpen {
                            probing: true,
                            open_for,
                        },
                    );
                    return Ok(Ticket {
                        generation: *generation,
                        probe: true,
                    });
                }
            }
            State::HalfOpen {
                ref mut probing, ..
            } if !*probing => {
                *probing = true;
                return Ok(Ticket {
                    generation: *generation,
                    probe: true,
                });
            }
            State::HalfOpen { .. } => PROBE_WAIT,
        };
        Err(ProxyError::new(
            ProblemCode::ProviderUnavailable,
            format!("the upstream `{}` failed {} requests in a row; the proxy answers at once instead of waiting for it, until a probe request finds it answering again (breaker)", self.upstream, self.config.failures),
        )
        .with_retry_after(wait))
    }

    /// Records how the request of `ticket` ended. `now` is read only when the circuit opens.
    pub fn record(&self, ticket: Ticket, outcome: Outcome, now: impl FnOnce() -> Instant) {
        let mut guard = self.lock();
        let (generation, state) = &mut *guard;
        if ticket.generation != *generation {
            return;
        }
        let next = match (&*state, outcome) {
            (_, Outcome::Success) if ticket.probe => State::Closed { failures: 0 },
            (State::HalfOpen { open_for, .. }, Outcome::Failure) if ticket.probe => {
                let open_for = open_for.saturating_mul(2).min(self.config.max_open_for);
                State::Open {
                    until: now() + open_for,
                    open_for,
                }
            }
            (State::HalfOpen { open_for, .. }, Outcome::Neutral) if ticket.probe => {
                // The probe never reached the upstream: let the next request probe instead.
                let open_for = *open_for;
                *state = State::HalfOpen {
                    probing: false,
                    open_for,
                };
                return;
            }
            (State::Closed { .. }, Outcome::Success) => {
                *state = State::Closed { failures: 0 };
                return;
            }
            (State::Closed { failures }, Outcome::Failure) => {
                let failures = failures + 1;
                if failures < self.config.failures {
                    *state = State::Closed { failures };
                    return;
                }
                State::Open {
                    until: now() + self.config.open_for,
                    open_for: self.config.open_for,
                }
            }
            _ => return,
        };
        self.enter(generation, state, next);
    }

    /// Moves to `next`: a new generation, the metrics, and the one log line of a transition.
    fn enter(&self, generation: &mut u64, state: &mut State, next: State) {
        let phase = next.phase();
        *generation += 1;
        *state = next;
        crate::metrics::breaker_state(&self.upstream, phase.gauge());
        crate::metrics::breaker_transition(&self.upstream, phase.label());
        match &*state {
            State::Open { open_for, .. } => tracing::warn!(
                upstream = %self.upstream,
                open_for_ms = open_for.as_millis() as u64,
                "upstream circuit opened: its requests are answered 503 PROVIDER_UNAVAILABLE at once until a probe succeeds"
            ),
            State::HalfOpen { .. } => tracing::info!(
                upstream = %self.upstream,
                "upstream circuit half-open: one probe request goes through"
            ),
            State::Closed { .. } => tracing::info!(
                upstream = %self.upstream,
                "upstream circuit closed: the probe was answered, requests flow again"
            ),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, State)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
