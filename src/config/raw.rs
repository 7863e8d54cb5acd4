//! The file's shape, exactly; every table denies unknown keys.

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    pub(crate) listen: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) max_request_body: Option<usize>,
    pub(crate) max_response_body: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) assertion_lifetime: Option<Duration>,
    pub(crate) keys: Option<Keys>,
    #[serde(default)]
    pub(crate) timeouts: Timeouts,
    #[serde(default)]
    pub(crate) tls: Tls,
    #[serde(default)]
    pub(crate) upstream: Vec<Upstream>,
    #[serde(default)]
    pub(crate) retry: Retry,
    #[serde(default)]
    pub(crate) rate_limit: RateLimit,
    pub(crate) problem_doc_url: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) drain_timeout: Option<Duration>,
    #[serde(default)]
    pub(crate) admin: Admin,
    #[serde(default)]
    pub(crate) log: Log,
    #[serde(default)]
    pub(crate) inbound: Inbound,
    #[serde(default)]
    pub(crate) listener: super::listener::RawListeners,
    #[serde(default)]
    pub(crate) breaker: super::breaker::Raw,
    #[serde(default)]
    pub(crate) redis: Option<super::redis::RawRedis>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Inbound {
    pub(crate) allow_unauthenticated: Option<bool>,
    #[serde(default)]
    pub api_key_sha256: Vec<String>,
    pub(crate) tls_cert_file: Option<PathBuf>,
    pub(crate) tls_key_file: Option<PathBuf>,
    pub(crate) client_ca_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Admin {
    pub(crate) enabled: Option<bool>,
    pub(crate) listen: Option<String>,
    pub(crate) jwks_on_main_listener: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Log {
    pub(crate) format: Option<super::LogFormat>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct Retry {
    pub(crate) max_retries: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) base_delay: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) max_delay: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) retry_after_cap: Option<Duration>,
    pub(crate) budget_percent: Option<f32>,
    pub(crate) budget_min_per_second: Option<u32>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimit {
    pub(crate) enabled: Option<bool>,
    pub(crate) per_second: Option<f64>,
    pub(crate) burst: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) max_wait: Option<Duration>,
    pub(crate) global: Option<GlobalQuota>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct GlobalQuota {
    pub(crate) per_second: f64,
    pub(crate) burst: u32,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Route {
    pub(crate) decrypt: Option<bool>,
    #[serde(default)]
    pub(crate) retry: Retry,
    #[serde(default)]
    pub(crate) rate_limit: RateLimit,
    #[serde(default)]
    pub(crate) timeouts: super::timeouts::RawRouteTimeouts,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Keys {
    pub(crate) active_sig_kid: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) reload_interval: Option<Duration>,
    pub(crate) jwks_file: Option<PathBuf>,
    pub(crate) jwks_env: Option<String>,
    pub(crate) sig_pem_file: Option<PathBuf>,
    pub(crate) sig_pem_env: Option<String>,
    pub(crate) sig_kid: Option<String>,
    pub(crate) enc_pem_file: Option<PathBuf>,
    pub(crate) enc_pem_env: Option<String>,
    pub(crate) enc_kid: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Timeouts {
    #[serde(default, with = "humantime_serde")]
    pub(crate) connect: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) attempt: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) overall: Option<Duration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tls {
    pub(crate) roots: Option<super::Roots>,
    pub(crate) extra_ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Upstream {
    pub(crate) name: Option<String>,
    pub(crate) kind: super::UpstreamKind,
    pub(crate) base_url: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) jwks_url: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) login_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) discovery_refresh: Option<Duration>,
    pub(crate) local_prefix: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) token_ttl_cap: Option<Duration>,
    #[serde(default)]
    pub(crate) routes: std::collections::BTreeMap<String, Route>,
}
