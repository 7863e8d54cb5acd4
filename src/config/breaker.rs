//! `[breaker]`: the circuit breaker in front of each upstream (see `layer::breaker`), parsed
//! and bounded here so that a typo cannot make it open on one failure or stay open for a day.

use super::ConfigError;
use serde::Deserialize;
use std::time::Duration;

/// `breaker.enabled`
const ENABLED: bool = true;
/// `breaker.failures`
const FAILURES: u32 = 5;
/// `breaker.open_for`
const OPEN_FOR: Duration = Duration::from_secs(5);
/// `breaker.max_open_for`
const MAX_OPEN_FOR: Duration = Duration::from_secs(60);
/// The most `failures` may be (a breaker that needs more never opens in practice).
const FAILURES_MAX: u32 = 1000;
/// The longest `open_for` / `max_open_for` may be: longer would fail healthy traffic for long
/// after Singpass is back.
const OPEN_FOR_MAX: Duration = Duration::from_secs(3600);

/// The `[breaker]` table as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    enabled: Option<bool>,
    failures: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    open_for: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    max_open_for: Option<Duration>,
}

/// When a circuit opens and how long it stays open. One circuit per upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// The breaker on or off (off: every request goes to the upstream, as without it).
    pub enabled: bool,
    /// App requests in a row that fail (no answer, or a 5xx) before the circuit opens.
    pub failures: u32,
    /// How long the circuit first stays open; each failed probe doubles it...
    pub open_for: Duration,
    /// ...up to this.
    pub max_open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: ENABLED,
            failures: FAILURES,
            open_for: OPEN_FOR,
            max_open_for: MAX_OPEN_FOR,
        }
    }
}

/// Validates `[breaker]`, naming the key and the fix.
pub(crate) fn breaker(raw: Raw) -> Result<BreakerConfig, ConfigError> {
    let config = BreakerConfig {
        enabled: raw.enabled.unwrap_or(ENABLED),
        failures: raw.failures.unwrap_or(FAILURES),
        open_for: raw.open_for.unwrap_or(OPEN_FOR),
        max_open_for: raw
            .max_open_for
            .unwrap_or(MAX_OPEN_FOR.max(raw.open_for.unwrap_or(OPEN_FOR))),
    };
    if !(1..=FAILURES_MAX).contains(&config.failures) {
        return Err(ConfigError::new(
            "breaker.failures",
            format!("{} is outside 1..={FAILURES_MAX}", config.failures),
            format!("use a small count such as {FAILURES}, or breaker.enabled = false"),
        ));
    }
    for (key, d) in [
        ("breaker.open_for", config.open_for),
        ("breaker.max_open_for", config.max_open_for),
    ] {
        if d < Duration::from_millis(100) || d > OPEN_FOR_MAX {
            return Err(ConfigError::new(
                key,
                format!("{} is outside 100ms..=1h", humantime::format_duration(d)),
                "use a duration such as \"5s\" or \"1m\"",
            ));
        }
    }
    if config.max_open_for < config.open_for {
        return Err(ConfigError::new(
            "breaker.max_open_for",
            "is shorter than breaker.open_for",
            "make breaker.max_open_for at least breaker.open_for",
        ));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BreakerConfig, ConfigError> {
        breaker(toml::from_str(text).map_err(|e| ConfigError::new("?", e.to_string(), ""))?)
    }

    #[test]
    fn defaults() {
        assert_eq!(parse("").unwrap(), BreakerConfig::default());
        let c = BreakerConfig::default();
        assert!(c.enabled);
        assert_eq!(
            (c.failures, c.open_for, c.max_open_for),
            (5, OPEN_FOR, MAX_OPEN_FOR)
        );
    }

    #[test]
    fn every_key_is_read() {
        let c = parse("enabled = false\nfailures = 3\nopen_for = \"2s\"\nmax_open_for = \"30s\"")
            .unwrap();
        assert_eq!(
            c,
            BreakerConfig {
                enabled: false,
                failures: 3,
                open_for: Duration::from_secs(2),
                max_open_for: Duration::from_secs(30),
            }
        );
        // A long open_for alone raises the default ceiling with it.
        let c = parse("open_for = \"2m\"").unwrap();
        assert_eq!(c.max_open_for, Duration::from_secs(120));
    }

    #[test]
    fn absurd_values_are_refused_with_the_key() {
        for (text, key) in [
            ("failures = 0", "breaker.failures"),
            ("failures = 100000", "breaker.failures"),
            ("open_for = \"0s\"", "breaker.open_for"),
            ("open_for = \"300000000000y\"", "breaker.open_for"),
            ("max_open_for = \"2h\"", "breaker.max_open_for"),
            (
                "open_for = \"10s\"\nmax_open_for = \"5s\"",
                "breaker.max_open_for",
            ),
        ] {
            let err = parse(text).expect_err(text);
            assert_eq!(err.key, key, "{text}");
            assert!(!err.fix.is_empty());
        }
        assert!(parse("unknown = 1").is_err());
    }
}
