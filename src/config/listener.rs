//! `[listener.main]` and `[listener.admin]`: how long a client may take to send a request,
//! how long an idle connection stays open, and how many connections each listener holds.

use super::{bounds, defaults, ConfigError};
use serde::Deserialize;
use std::time::Duration;

/// The limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// From accept to the end of the first request's headers (TLS handshake included), and on
    /// HTTP/1 from each idle moment of a kept-alive connection to the end of the next request's
    /// headers. Past it, the connection is closed.
    pub header_read_timeout: Duration,
    /// From the end of a request's headers to the end of its body. Past it, the request gets
    /// `408 VALIDATION_BODY_TIMEOUT` and its connection is closed.
    pub body_timeout: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/2 with GOAWAY).
    pub idle_timeout: Duration,
    /// Connections open at once; one more is accepted and closed at once, and counted.
    pub max_connections: usize,
}

impl ListenerLimits {
    /// The documented defaults of the main listener.
    pub const MAIN: Self = Self {
        header_read_timeout: defaults::HEADER_READ_TIMEOUT,
        body_timeout: defaults::BODY_TIMEOUT,
        idle_timeout: defaults::IDLE_TIMEOUT,
        max_connections: defaults::MAX_CONNECTIONS,
    };
    /// The documented defaults of the admin listener: the same timeouts, a cap of its own.
    pub const ADMIN: Self = Self {
        max_connections: defaults::ADMIN_MAX_CONNECTIONS,
        ..Self::MAIN
    };
}

/// The limits of both listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listeners {
    /// The main listener (`listen`).
    pub main: ListenerLimits,
    /// The admin listener (`admin.listen`), capped apart so that probes still get in while the
    /// main listener is full.
    pub admin: ListenerLimits,
}

impl Default for Listeners {
    fn default() -> Self {
        Self {
            main: ListenerLimits::MAIN,
            admin: ListenerLimits::ADMIN,
        }
    }
}

/// `[listener]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListeners {
    #[serde(default)]
    main: RawLimits,
    #[serde(default)]
    admin: RawLimits,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(default, with = "humantime_serde")]
    header_read_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    body_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    idle_timeout: Option<Duration>,
    max_connections: Option<usize>,
}

pub(super) fn listeners(raw: RawListeners) -> Result<Listeners, ConfigError> {
    Ok(Listeners {
        main: limits("listener.main", raw.main, ListenerLimits::MAIN)?,
        admin: limits("listener.admin", raw.admin, ListenerLimits::ADMIN)?,
    })
}

fn limits(
    table: &str,
    raw: RawLimits,
    default: ListenerLimits,
) -> Result<ListenerLimits, ConfigError> {
    let key = |k: &str| format!("{table}.{k}");
    let max_connections = raw.max_connections.unwrap_or(default.max_connections);
    if !(1..=bounds::MAX_CONNECTIONS).contains(&max_connections) {
        return Err(ConfigError::new(
            key("max_connections"),
            format!(
                "{max_connections} is outside 1..={}",
                bounds::MAX_CONNECTIONS
            ),
            format!(
                "use the number of connections the listener may hold at once (default {})",
                default.max_connections
            ),
        ));
    }
    Ok(ListenerLimits {
        header_read_timeout: bounds::duration(
            &key("header_read_timeout"),
            raw.header_read_timeout
                .unwrap_or(default.header_read_timeout),
            bounds::LISTENER_READ,
        )?,
        body_timeout: bounds::duration(
            &key("body_timeout"),
            raw.body_timeout.unwrap_or(default.body_timeout),
            bounds::LISTENER_READ,
        )?,
        idle_timeout: bounds::duration(
            &key("idle_timeout"),
            raw.idle_timeout.unwrap_or(default.idle_timeout),
            bounds::LISTENER_IDLE,
        )?,
        max_connections,
    })
}
