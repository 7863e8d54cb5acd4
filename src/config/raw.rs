//! The file's shape, exactly; every table denies unknown keys.

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub listen: Option<String>,
    pub client_id: Option<String>,
    pub max_request_body: Option<usize>,
    pub max_response_body: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    pub assertion_lifetime: Option<Duration>,
    pub keys: Option<Keys>,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub tls: Tls,
    #[serde(default)]
    pub upstream: Vec<Upstream>,
    #[serde(default)]
    pub retry: Retry,
    #[serde(default)]
    pub rate_limit: RateLimit,
    pub problem_doc_url: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub drain_timeout: Option<Duration>,
    #[serde(default)]
    pub admin: Admin,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub inbound: Inbound,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Inbound {
    pub allow_unauthenticated: Option<bool>,
    #[serde(default)]
    pub api_key_sha256: Vec<String>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub enabled: Option<bool>,
    pub listen: Option<String>,
    pub jwks_on_main_listener: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub format: Option<super::LogFormat>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    pub max_retries: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub base_delay: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub max_delay: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub retry_after_cap: Option<Duration>,
    pub budget_percent: Option<f32>,
    pub budget_min_per_second: Option<u32>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub enabled: Option<bool>,
    pub per_second: Option<f64>,
    pub burst: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub max_wait: Option<Duration>,
    pub global: Option<GlobalQuota>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct GlobalQuota {
    pub per_second: f64,
    pub burst: u32,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub decrypt: Option<bool>,
    #[serde(default)]
    pub retry: Retry,
    #[serde(default)]
    pub rate_limit: RateLimit,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Keys {
    pub active_sig_kid: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub reload_interval: Option<Duration>,
    pub jwks_file: Option<PathBuf>,
    pub jwks_env: Option<String>,
    pub sig_pem_file: Option<PathBuf>,
    pub sig_pem_env: Option<String>,
    pub sig_kid: Option<String>,
    pub enc_pem_file: Option<PathBuf>,
    pub enc_pem_env: Option<String>,
    pub enc_kid: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default, with = "humantime_serde")]
    pub connect: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub attempt: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub overall: Option<Duration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub roots: Option<super::Roots>,
    pub extra_ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub name: Option<String>,
    pub kind: super::UpstreamKind,
    pub base_url: Option<String>,
    pub issuer: Option<String>,
    pub jwks_url: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub login_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub discovery_refresh: Option<Duration>,
    pub local_prefix: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub token_ttl_cap: Option<Duration>,
    #[serde(default)]
    pub routes: std::collections::BTreeMap<String, Route>,
}
