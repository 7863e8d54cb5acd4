//! Retry, rate-limit and timeout settings: file defaults (`[retry]`, `[rate_limit]`,
//! `[timeouts]`) merged field by field with each route's overrides
//! (`[upstream.routes.<name>]`), then checked.

use super::{
    bounds, defaults, raw, ConfigError, Quota, RateLimitSettings, RetrySettings, RouteKind,
    RoutePolicy, Timeouts, UpstreamKind,
};
use std::collections::BTreeMap;

/// The policy of every route of one upstream, keyed by the route its name names.
pub(super) fn route_policies(
    kind: UpstreamKind,
    prefix: &str,
    retry: &raw::Retry,
    rate_limit: &raw::RateLimit,
    timeouts: &Timeouts,
    routes: BTreeMap<String, raw::Route>,
) -> Result<BTreeMap<RouteKind, RoutePolicy>, ConfigError> {
    let names = |filter: fn(RouteKind) -> bool| {
        RouteKind::of(kind)
            .iter()
            .filter(|r| filter(**r))
            .map(|r| r.config_name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut own = BTreeMap::new();
    for (name, table) in routes {
        let Some(route) = RouteKind::named(kind, &name) else {
            return Err(ConfigError::new(
                format!("{prefix}.routes.{name}"),
                format!("this upstream kind has no route `{name}`"),
                format!("use one of: {}", names(|_| true)),
            ));
        };
        own.insert(route, table);
    }
    RouteKind::of(kind)
        .iter()
        .map(|&route| {
            let name = route.config_name();
            let mut own = own.remove(&route).unwrap_or_default();
            let key = format!("{prefix}.routes.{name}");
            let decrypt = own.decrypt.unwrap_or(false);
            if decrypt && !route.decryptable() {
                return Err(ConfigError::new(
                    format!("{key}.decrypt"),
                    format!("route `{name}` has no encrypted answer to decrypt"),
                    format!("decrypt is for: {}", names(RouteKind::decryptable)),
                ));
            }
            // A CIBA poll is the app's to repeat; the proxy never retries CIBA calls unless told.
            if kind == UpstreamKind::SingpassCiba && own.retry.max_retries.is_none() {
                own.retry.max_retries = Some(0);
            }
            let timeouts =
                super::timeouts::route_timeouts(&key, kind, name, timeouts, &own.timeouts)?;
            let rate_limit =
                rate_limit_settings(&format!("{key}.rate_limit"), rate_limit, &own.rate_limit)?;
            if rate_limit.max_wait > timeouts.overall {
                let set_at = match own.rate_limit.max_wait {
                    Some(_) => format!("{key}.rate_limit.max_wait"),
                    None => "rate_limit.max_wait".to_owned(),
                };
                return Err(ConfigError::new(
                    set_at,
                    format!(
                        "{} is longer than route `{name}`'s overall deadline ({})",
                        bounds::show(rate_limit.max_wait),
                        bounds::show(timeouts.overall)
                    ),
                    "a request cannot wait for a permit longer than it may take in all: shorten max_wait",
                ));
            }
            let policy = RoutePolicy {
                retry: retry_settings(&format!("{key}.retry"), retry, &own.retry)?,
                rate_limit,
                decrypt,
                timeouts,
            };
            Ok((route, policy))
        })
        .collect()
}

/// The file-level defaults alone (also what a route without overrides gets).
pub(super) fn check_defaults(
    retry: &raw::Retry,
    rate_limit: &raw::RateLimit,
) -> Result<Option<Quota>, ConfigError> {
    retry_settings("retry", retry, &raw::Retry::default())?;
    rate_limit_settings("rate_limit", rate_limit, &raw::RateLimit::default())?;
    rate_limit
        .global
        .as_ref()
        .map(|g| quota("rate_limit.global", g.per_second, g.burst))
        .transpose()
}

fn retry_settings(
    key: &str,
    base: &raw::Retry,
    own: &raw::Retry,
) -> Result<RetrySettings, ConfigError> {
    let s = RetrySettings {
        max_retries: own
            .max_retries
            .or(base.max_retries)
            .unwrap_or(defaults::MAX_RETRIES),
        base_delay: own
            .base_delay
            .or(base.base_delay)
            .unwrap_or(defaults::BASE_DELAY),
        max_delay: own
            .max_delay
            .or(base.max_delay)
            .unwrap_or(defaults::MAX_DELAY),
        retry_after_cap: own
            .retry_after_cap
            .or(base.retry_after_cap)
            .unwrap_or(defaults::RETRY_AFTER_CAP),
        budget_percent: own
            .budget_percent
            .or(base.budget_percent)
            .unwrap_or(defaults::BUDGET_PERCENT),
        budget_min_per_second: own
            .budget_min_per_second
            .or(base.budget_min_per_second)
            .unwrap_or(defaults::BUDGET_MIN_PER_SECOND),
    };
    if s.max_retries > 10 {
        return Err(ConfigError::new(
            format!("{key}.max_retries"),
            format!(
                "{} retries would multiply the load on Singpass",
                s.max_retries
            ),
            "use 0 (off) to 10; the default is 3",
        ));
    }
    bounds::at_most(
        &format!("{key}.max_delay"),
        s.max_delay,
        bounds::RETRY_DELAY,
    )?;
    bounds::at_most(
        &format!("{key}.retry_after_cap"),
        s.retry_after_cap,
        bounds::RETRY_DELAY,
    )?;
    if s.base_delay.is_zero() || s.max_delay < s.base_delay {
        return Err(ConfigError::new(
            format!("{key}.max_delay"),
            "base_delay must be more than 0 and max_delay at least base_delay",
            "e.g. base_delay = \"100ms\", max_delay = \"2s\"",
        ));
    }
    if !(0.0..=1000.0).contains(&s.budget_percent) {
        return Err(ConfigError::new(
            format!("{key}.budget_percent"),
            format!("{} is outside 0..=1000", s.budget_percent),
            "use a percentage of requests, e.g. 20",
        ));
    }
    Ok(s)
}

fn rate_limit_settings(
    key: &str,
    base: &raw::RateLimit,
    own: &raw::RateLimit,
) -> Result<RateLimitSettings, ConfigError> {
    if own.global.is_some() {
        return Err(ConfigError::new(
            format!("{key}.global"),
            "a global quota is set once, under [rate_limit.global]",
            "move it to [rate_limit.global]",
        ));
    }
    let enabled = own.enabled.or(base.enabled).unwrap_or(true);
    let per_second = own
        .per_second
        .or(base.per_second)
        .unwrap_or(defaults::RATE_PER_SECOND);
    let burst = own.burst.or(base.burst).unwrap_or(defaults::RATE_BURST);
    let max_wait = own.max_wait.or(base.max_wait).unwrap_or(defaults::MAX_WAIT);
    bounds::at_most(&format!("{key}.max_wait"), max_wait, bounds::TIMEOUT)?;
    let quota = if enabled {
        Some(quota(key, per_second, burst)?)
    } else {
        None
    };
    Ok(RateLimitSettings { quota, max_wait })
}

fn quota(key: &str, per_second: f64, burst: u32) -> Result<Quota, ConfigError> {
    if !(0.001..=1e6).contains(&per_second) {
        return Err(ConfigError::new(
            format!("{key}.per_second"),
            format!("{per_second} is not a usable rate"),
            "use a rate between 0.001 and 1000000 requests per second, or enabled = false",
        ));
    }
    if burst == 0 {
        return Err(ConfigError::new(
            format!("{key}.burst"),
            "must be at least 1",
            "use the number of requests that may go at once, e.g. 20",
        ));
    }
    Ok(Quota { per_second, burst })
}
