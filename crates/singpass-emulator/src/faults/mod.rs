//! The emulator's scripted misbehaviour: which faults exist ([`Fault`]), and the per-route
//! plan (quota, scripted queue, seeded random failure) that decides whether a request meets
//! one.
//!
//! Order, as if a gateway stood in front of Singpass: **the quota first** (a refused request
//! spends nothing else), **then the scripted queue**, **then the random failure** (its RNG is
//! drawn only by requests that reach it, so a seed replays the same sequence for the same
//! traffic). A request that passes the quota spends quota even when a fault then answers it.

pub(crate) mod injected;
pub(crate) mod quota;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::state::lock;
use quota::{OverQuota, Quota};

/// Which endpoint a fault or quota applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EmulatorRoute {
    /// `POST {base}/token` (Myinfo v4)
    Token,
    /// `GET {base}/person/{sub}` (Myinfo v4)
    Person,
    /// `POST /fapi/par`
    Par,
    /// `POST /fapi/token`
    FapiToken,
    /// `GET /fapi/userinfo`
    Userinfo,
    /// `POST /bc-auth` (CIBA)
    CibaAuth,
    /// `POST /token` at the root (CIBA polling)
    CibaToken,
    /// `GET /fapi/.well-known/openid-configuration` and `GET /.well-known/openid-configuration`
    Discovery,
    /// The signing JWKS: `GET /fapi/jwks`, `GET /jwks` and `GET {base}/jwks`
    Jwks,
}

/// One scripted misbehaviour.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status and a Singpass error body (`error` = "SERVER_SIDE_ERROR" for 5xx,
    /// "CLIENT_SIDE_ERROR" for 4xx, except 429 -> "TOO_MANY_REQUESTS"), optional `Retry-After`
    /// header (sent verbatim, so tests can use delta-seconds or an HTTP-date).
    ///
    /// A status outside 200–599 is answered as 500; a `retry_after` that is not a valid header
    /// value is left out.
    Status {
        /// The status to answer.
        status: u16,
        /// A `Retry-After` value, sent verbatim.
        retry_after: Option<String>,
    },
    /// 400 with a Singpass body whose `error` is "TOO_MANY_REQUESTS" (throttling signalled in
    /// the body, not the status), optional Retry-After.
    TooManyRequestsBody {
        /// A `Retry-After` value, sent verbatim.
        retry_after: Option<String>,
    },
    /// An OAuth-style error body `{"error": <code>, "error_description": ..., "id", "trace_id"}`
    /// with this status, e.g. (503, "temporarily_unavailable") or (500, "server_error").
    OAuthError {
        /// The status to answer.
        status: u16,
        /// The OAuth `error` code.
        error: String,
    },
    /// Wait this long (tokio::time::sleep, so paused-time tests control it), then handle the
    /// request normally.
    Delay(Duration),
    /// Never answer: hold the connection open until the client gives up.
    Hang,
    /// Close the connection without any response.
    Drop,
}

impl Fault {
    /// A short label for the request log, e.g. "status 503" or "delay 2s".
    pub(crate) fn describe(&self) -> String {
        let with_retry_after = |label: String, retry_after: &Option<String>| match retry_after {
            Some(value) => format!("{label}, Retry-After {value}"),
            None => label,
        };
        match self {
            Fault::Status {
                status,
                retry_after,
            } => with_retry_after(format!("status {status}"), retry_after),
            Fault::TooManyRequestsBody { retry_after } => {
                with_retry_after("TOO_MANY_REQUESTS body".to_owned(), retry_after)
            }
            Fault::OAuthError { status, error } => format!("oauth {status} {error}"),
            Fault::Delay(delay) => format!("delay {delay:?}"),
            Fault::Hang => "hang".to_owned(),
            Fault::Drop => "drop".to_owned(),
        }
    }
}

/// What the plan decided for one request.
#[derive(Clone, Debug)]
pub(crate) enum Injection {
    /// Refused by the quota.
    OverQuota {
        refusal: OverQuota,
        retry_after: bool,
        description: String,
    },
    /// Met a scripted or random fault.
    Fault { fault: Fault, description: String },
}

impl Injection {
    /// What the request log's `fault` says, e.g. "scripted: status 503".
    pub(crate) fn description(&self) -> &str {
        match self {
            Injection::OverQuota { description, .. } | Injection::Fault { description, .. } => {
                description
            }
        }
    }
}

/// Each request fails with probability `fraction`, with a fault drawn from `faults`.
#[derive(Debug)]
struct RandomFailure {
    fraction: f64,
    faults: Vec<Fault>,
    rng: StdRng,
}

impl RandomFailure {
    fn draw(&mut self) -> Option<Fault> {
        // The draw is in [0, 1): a fraction of 0 never fails, 1 always does, and comparing
        // this way round a NaN fraction never fails (`gen_bool` would panic on either).
        let draw: f64 = self.rng.gen();
        if draw < self.fraction {
            self.faults.choose(&mut self.rng).cloned()
        } else {
            None
        }
    }
}

/// Everything set up for one route.
#[derive(Debug, Default)]
struct RoutePlan {
    quota: Option<Quota>,
    scripted: VecDeque<Fault>,
    random: Option<RandomFailure>,
}

impl RoutePlan {
    fn decide(&mut self, now: Instant) -> Option<Injection> {
        if let Some(quota) = self.quota.as_mut() {
            if let Err(refusal) = quota.admit(now) {
                return Some(Injection::OverQuota {
                    refusal,
                    retry_after: quota.retry_after,
                    description: format!(
                        "quota: over {}/s, burst {}",
                        quota.per_second, quota.burst
                    ),
                });
            }
        }
        if let Some(fault) = self.scripted.pop_front() {
            let description = format!("scripted: {}", fault.describe());
            return Some(Injection::Fault { fault, description });
        }
        let fault = self.random.as_mut()?.draw()?;
        let description = format!("random: {}", fault.describe());
        Some(Injection::Fault { fault, description })
    }
}

/// The fault plans of all routes, shared by every connection.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    routes: Mutex<HashMap<EmulatorRoute, RoutePlan>>,
}

impl FaultPlan {
    pub(crate) fn script(&self, route: EmulatorRoute, fault: Fault, n: usize) {
        let mut routes = lock(&self.routes);
        let scripted = &mut routes.entry(route).or_default().scripted;
        scripted.extend(std::iter::repeat_n(fault, n));
    }

    /// Replaces any earlier random failure on `route`.
    pub(crate) fn fail_randomly(
        &self,
        route: EmulatorRoute,
        fraction: f64,
        faults: Vec<Fault>,
        seed: u64,
    ) {
        lock(&self.routes).entry(route).or_default().random = Some(RandomFailure {
            fraction,
            faults,
            rng: StdRng::seed_from_u64(seed),
        });
    }

    /// Replaces any earlier quota on `route`, starting with a full burst.
    pub(crate) fn set_quota(&self, route: EmulatorRoute, quota: Quota) {
        lock(&self.routes).entry(route).or_default().quota = Some(quota);
    }

    pub(crate) fn clear(&self) {
        lock(&self.routes).clear();
    }

    /// Whether the request arriving on `route` at `now` is refused or faulted; `None` lets it
    /// through to the endpoint. Spends quota, a scripted fault or a random draw.
    pub(crate) fn decide(&self, route: EmulatorRoute, now: Instant) -> Option<Injection> {
        lock(&self.routes).get_mut(&route)?.decide(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(plan: &FaultPlan, route: EmulatorRoute, requests: usize) -> Vec<Option<String>> {
        let now = Instant::now();
        (0..requests)
            .map(|_| match plan.decide(route, now) {
                Some(Injection::Fault { description, .. }) => Some(description),
                Some(Injection::OverQuota { description, .. }) => Some(description),
                None => None,
            })
            .collect()
    }

    fn random_plan(seed: u64) -> FaultPlan {
        let plan = FaultPlan::default();
        let faults = vec![
            Fault::Status {
                status: 502,
                retry_after: None,
            },
            Fault::Drop,
        ];
        plan.fail_randomly(EmulatorRoute::Token, 0.3, faults, seed);
        plan
    }

    #[test]
    fn a_seed_replays_the_same_failures_at_about_the_fraction() {
        let first = outcomes(&random_plan(7), EmulatorRoute::Token, 1000);
        assert_eq!(first, outcomes(&random_plan(7), EmulatorRoute::Token, 1000));
        assert_ne!(first, outcomes(&random_plan(8), EmulatorRoute::Token, 1000));
        let failed = first.iter().flatten().count();
        assert!((250..=350).contains(&failed), "{failed} of 1000");
        assert!(first.iter().flatten().any(|d| d == "random: drop"));
        assert!(first.iter().flatten().any(|d| d == "random: status 502"));
        // Another route is untouched.
        let person = outcomes(&random_plan(7), EmulatorRoute::Person, 100);
        assert!(person.iter().all(Option::is_none));
    }

    #[test]
    fn quota_then_script_then_random() {
        let plan = random_plan(1);
        plan.fail_randomly(EmulatorRoute::Token, 1.0, vec![Fault::Hang], 1);
        plan.script(EmulatorRoute::Token, Fault::Drop, 1);
        plan.set_quota(EmulatorRoute::Token, Quota::new(1.0, 2, true));
        let seen = outcomes(&plan, EmulatorRoute::Token, 3);
        assert_eq!(
            seen,
            vec![
                Some("scripted: drop".to_owned()),
                Some("random: hang".to_owned()),
                Some("quota: over 1/s, burst 2".to_owned()),
            ]
        );
        plan.clear();
        assert!(outcomes(&plan, EmulatorRoute::Token, 3)
            .iter()
            .all(Option::is_none));
    }

    #[test]
    fn odd_random_settings_do_not_panic() {
        let plan = FaultPlan::default();
        plan.fail_randomly(EmulatorRoute::Person, 1.0, Vec::new(), 3);
        assert!(outcomes(&plan, EmulatorRoute::Person, 5)
            .iter()
            .all(Option::is_none));
        for fraction in [f64::NAN, -1.0, 0.0] {
            plan.fail_randomly(EmulatorRoute::Person, fraction, vec![Fault::Drop], 3);
            assert!(outcomes(&plan, EmulatorRoute::Person, 50)
                .iter()
                .all(Option::is_none));
        }
    }
}
