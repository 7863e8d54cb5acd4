//! Deadlines: `[timeouts]` for every route, and `[upstream.routes.<name>.timeouts]` for one.
//!
//! The CIBA token route has defaults of its own: Singpass holds a pending poll for about 30 s
//! before it answers `authorization_pending`, and forbids overlapping polls of one
//! `auth_req_id`. An attempt timeout below that would answer the app 504 while Singpass still
//! holds the poll, and the app's next poll would overlap it.

use super::{bounds, defaults, raw, ConfigError, Timeouts, UpstreamKind};
use serde::Deserialize;
use std::time::Duration;

/// The deadlines of one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteTimeouts {
    /// One upstream attempt, from sending to the whole answer.
    pub attempt: Duration,
    /// Everything the proxy does for one app request to this route.
    pub overall: Duration,
}

/// `[upstream.routes.<name>.timeouts]` as written (the connect timeout is the client's, global).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouteTimeouts {
    #[serde(default, with = "humantime_serde")]
    attempt: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    overall: Option<Duration>,
}

/// `[timeouts]`, checked.
pub(super) fn timeouts(raw: raw::Timeouts) -> Result<Timeouts, ConfigError> {
    let t = Timeouts {
        connect: bounds::duration(
            "timeouts.connect",
            raw.connect.unwrap_or(defaults::CONNECT),
            bounds::TIMEOUT,
        )?,
        attempt: bounds::duration(
            "timeouts.attempt",
            raw.attempt.unwrap_or(defaults::ATTEMPT),
            bounds::TIMEOUT,
        )?,
        overall: bounds::duration(
            "timeouts.overall",
            raw.overall.unwrap_or(defaults::OVERALL),
            bounds::TIMEOUT,
        )?,
    };
    if t.overall < t.attempt {
        return Err(ConfigError::new(
            "timeouts.overall",
            format!(
                "{} is shorter than timeouts.attempt ({})",
                bounds::show(t.overall),
                bounds::show(t.attempt)
            ),
            "make timeouts.overall at least as long as one attempt",
        ));
    }
    Ok(t)
}

/// The deadlines of route `name` under `key` (`upstream[0].routes.token`): its own values,
/// else the kind's default for the route, else `[timeouts]`.
pub(super) fn route_timeouts(
    key: &str,
    kind: UpstreamKind,
    name: &str,
    global: &Timeouts,
    own: &RawRouteTimeouts,
) -> Result<RouteTimeouts, ConfigError> {
    let attempt = match own.attempt {
        Some(d) => bounds::duration(&format!("{key}.timeouts.attempt"), d, bounds::TIMEOUT)?,
        None if is_ciba_poll(kind, name) => global.attempt.max(defaults::CIBA_TOKEN_ATTEMPT),
        None => global.attempt,
    };
    let overall = match own.overall {
        Some(d) => bounds::duration(&format!("{key}.timeouts.overall"), d, bounds::TIMEOUT)?,
        None if is_ciba_poll(kind, name) => global
            .overall
            .max(attempt.saturating_add(defaults::CIBA_TOKEN_MARGIN))
            .min(bounds::TIMEOUT),
        None => global.overall,
    };
    if overall < attempt {
        let (which, fix) = if own.overall.is_some() {
            ("overall", "make it at least as long as the route's attempt")
        } else {
            (
                "attempt",
                "shorten it, or set the route's timeouts.overall at least as long",
            )
        };
        return Err(ConfigError::new(
            format!("{key}.timeouts.{which}"),
            format!(
                "the route's attempt ({}) is longer than its overall deadline ({})",
                bounds::show(attempt),
                bounds::show(overall)
            ),
            fix,
        ));
    }
    Ok(RouteTimeouts { attempt, overall })
}

/// The CIBA token poll, which Singpass holds open while the user has not yet answered.
fn is_ciba_poll(kind: UpstreamKind, name: &str) -> bool {
    kind == UpstreamKind::SingpassCiba && name == "token"
}
