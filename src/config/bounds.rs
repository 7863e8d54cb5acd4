//! Upper bounds of every duration and size in the file, and the check that names the key.
//!
//! A value past its bound is refused at start-up, because it cannot work: a deadline of
//! thousands of years overflows `Instant + Duration` on the request path, a key reload once a
//! year is no reload. The README's "Limits" table lists the same bounds.

use super::ConfigError;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(60 * 60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// `timeouts.connect`, `timeouts.attempt`, `timeouts.overall` (and per route).
pub const TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// `retry.base_delay`, `retry.max_delay`, `retry.retry_after_cap` (and per route).
pub const RETRY_DELAY: Duration = Duration::from_secs(10 * 60);
/// `assertion_lifetime`: Singpass rejects assertions whose `exp` is more than 120 s after `iat`.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(120);
/// `upstream.login_ttl`
pub const LOGIN_TTL: Duration = HOUR;
/// `upstream.token_ttl_cap`
pub const TOKEN_TTL_CAP: Duration = DAY;
/// `upstream.discovery_refresh`
pub const DISCOVERY_REFRESH: Duration = DAY;
/// `keys.reload_interval`
pub const KEY_RELOAD_INTERVAL: Duration = DAY;
/// `drain_timeout`
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// `listener.*.header_read_timeout`, `listener.*.body_timeout`
pub const LISTENER_READ: Duration = Duration::from_secs(10 * 60);
/// `listener.*.idle_timeout`
pub const LISTENER_IDLE: Duration = HOUR;
/// `listener.*.max_connections`
pub const MAX_CONNECTIONS: usize = 1_000_000;
/// `max_request_body` (16 MiB: request bodies are forms and small JSON, held in memory).
pub const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;
/// `max_response_body` (256 MiB).
pub const MAX_RESPONSE_BODY: usize = 256 * 1024 * 1024;

/// `d` when it is more than zero and at most `max`; otherwise an error naming `key`.
pub(super) fn duration(key: &str, d: Duration, max: Duration) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        return Err(ConfigError::new(
            key,
            "must be more than 0",
            format!(
                "use a duration such as \"3s\" or \"500ms\" (at most {})",
                show(max)
            ),
        ));
    }
    at_most(key, d, max)
}

/// `d` when it is at most `max` (zero allowed); otherwise an error naming `key`.
pub(super) fn at_most(key: &str, d: Duration, max: Duration) -> Result<Duration, ConfigError> {
    if d > max {
        return Err(ConfigError::new(
            key,
            format!("{} is longer than the maximum {}", show(d), show(max)),
            format!(
                "use at most \"{}\", or remove the key for its default",
                show(max)
            ),
        ));
    }
    Ok(d)
}

/// A duration as the config writes it (`"1h 30m"`), also for absurd ones.
pub(super) fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn bounds_refuse_zero_and_too_long_naming_the_key() {
        assert_eq!(duration("k", MINUTE, HOUR), Ok(MINUTE));
        let zero = duration("timeouts.connect", Duration::ZERO, HOUR).unwrap_err();
        assert_eq!(zero.key, "timeouts.connect");
        let huge = Duration::from_secs(u64::MAX);
        let long = duration("upstream[0].login_ttl", huge, HOUR).unwrap_err();
        assert_eq!(long.key, "upstream[0].login_ttl");
        assert!(long.fix.contains("\"1h\""), "{long}");
        assert_eq!(at_most("k", Duration::ZERO, DAY), Ok(Duration::ZERO));
    }
}
