//! The configuration: serde structs for `config.toml`, validated into a typed [`Config`].
//!
//! Parsing is separate from where the text came from (tests parse strings). The only I/O is in
//! [`Config::load`], which reads the file. Key material is never in the file: only where to
//! find it.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A config problem: which key, what is wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The dotted path of the offending key, e.g. `upstream[0].base_url`.
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
}

impl ConfigError {
    pub(crate) fn new(
        key: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "config key `{}`: {}\n  fix: {}",
            self.key, self.problem, self.fix
        )
    }
}

impl std::error::Error for ConfigError {}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the proxy listens for the app.
    pub listen: SocketAddr,
    /// The Singpass client id (`iss`/`sub` of every client assertion).
    pub client_id: String,
    /// Request bodies larger than this get 413.
    pub max_request_body: usize,
    /// Upstream answers larger than this become a 502 problem.
    pub max_response_body: usize,
    /// `exp` - `iat` of client assertions.
    pub assertion_lifetime: Duration,
    /// Where the client's private keys are.
    pub keys: KeySource,
    /// The kid of the signing key that signs (default: the first `sig` key of the JWKS).
    pub active_sig_kid: Option<String>,
    /// How often key files are re-read for rotation (None: never).
    pub key_reload_interval: Option<Duration>,
    /// Connect, per-attempt and overall deadlines.
    pub timeouts: Timeouts,
    /// Trust roots for upstream TLS.
    pub tls: TlsConfig,
    /// The upstream APIs and the local paths the app calls them on.
    pub upstreams: Vec<Upstream>,
    /// A quota over all routes together, if any.
    pub global_rate_limit: Option<Quota>,
    /// Where problem answers point for documentation (`doc_url`).
    pub problem_doc_url: String,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    pub drain_timeout: Duration,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`, JWKS); None when disabled.
    pub admin_listen: Option<SocketAddr>,
    /// Also serve `/.well-known/jwks.json` on the main listener.
    pub jwks_on_main_listener: bool,
    /// Log output format.
    pub log_format: LogFormat,
    /// Who may call the main listener.
    pub inbound: Inbound,
    /// Header, body and idle timeouts and connection caps of the main and admin listeners.
    pub listeners: Listeners,
    /// The circuit breaker of each upstream.
    pub breaker: BreakerConfig,
    /// Shared state for several replicas; None: everything in process memory.
    pub redis: Option<RedisConfig>,
    /// Things that are allowed but probably not meant (printed at start-up).
    pub warnings: Vec<String>,
}

/// Where the client's private keys come from. Never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A private JWKS file with one `sig` and one or more `enc` keys.
    JwksFile(PathBuf),
    /// An environment variable holding the private JWKS JSON.
    JwksEnv(String),
    /// PEM-encoded keys with their kids.
    Pem {
        /// The ES256 signing key.
        sig: PemSource,
        /// The kid published for the signing key.
        sig_kid: String,
        /// The ECDH-ES+A256KW encryption key.
        enc: PemSource,
        /// The kid published for the encryption key.
        enc_kid: String,
    },
}

/// A PEM document in a file or an environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemSource {
    /// A file path.
    File(PathBuf),
    /// The name of an environment variable.
    Env(String),
}

/// Deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect to the upstream.
    pub connect: Duration,
    /// One upstream attempt, from sending to the whole answer.
    pub attempt: Duration,
    /// Everything the proxy does for one app request.
    pub overall: Duration,
}

/// Inbound authentication of the main listener (required off loopback).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inbound {
    /// SHA-256 of each accepted `X-Api-Key` value.
    pub api_key_sha256: Vec<[u8; 32]>,
    /// TLS on the main listener (and mTLS when `client_ca_file` is set).
    pub tls: Option<InboundTls>,
    /// Accept unauthenticated callers on a non-loopback listener (warned at every start).
    pub allow_unauthenticated: bool,
}

/// TLS for the main listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundTls {
    /// The server certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PEM).
    pub key_file: PathBuf,
    /// Client certificates must chain to these CAs (mTLS); None: TLS without client auth.
    pub client_ca_file: Option<PathBuf>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (terminals).
    #[default]
    Text,
    /// One JSON object per line (containers).
    Json,
}

/// Which trust roots verify upstream TLS certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Roots {
    /// Mozilla's roots, compiled in (webpki-roots).
    Webpki,
    /// The operating system's store.
    System,
    /// Both.
    Both,
}

/// Upstream TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Base trust roots.
    pub roots: Roots,
    /// An extra PEM bundle of CA certificates (for a corporate TLS-inspecting egress, say).
    pub extra_ca_file: Option<PathBuf>,
}

/// The kinds of upstream API the proxy knows how to sign for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum UpstreamKind {
    /// Myinfo v4: `/token` and `/person/{sub}`.
    #[serde(rename = "myinfo-v4")]
    MyinfoV4,
    /// Singpass FAPI 2.0 (Login and Myinfo v5): PAR, token, userinfo, from discovery.
    #[serde(rename = "singpass-fapi")]
    SingpassFapi,
    /// Singpass CIBA (government apps): backchannel authentication and the CIBA token grant.
    #[serde(rename = "singpass-ciba")]
    SingpassCiba,
    /// Forwards every path under its prefix to `base_url` unsigned, with the same retries, rate
    /// limits, logs and metrics (for unsigned endpoints behind the same egress, and benchmarks).
    #[serde(rename = "passthrough")]
    Passthrough,
}

impl UpstreamKind {
    /// Whether the upstream is configured by `base_url` (else by `issuer`).
    pub fn has_base_url(self) -> bool {
        matches!(self, Self::MyinfoV4 | Self::Passthrough)
    }
}

/// One upstream API.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// A short name for logs and metrics.
    pub name: String,
    /// What the upstream speaks.
    pub kind: UpstreamKind,
    /// The upstream base URL (v4) or issuer (FAPI, CIBA), without a trailing slash, e.g.
    /// `https://test.api.myinfo.gov.sg/com/v4` or `https://stg-id.singpass.gov.sg/fapi`.
    pub base_url: String,
    /// Where the upstream's signing keys are (v4 only; FAPI and CIBA take `jwks_uri` from
    /// discovery). Needed to verify decrypted v4 person answers.
    pub jwks_url: Option<String>,
    /// How long a FAPI login's key waits for its token call after PAR.
    pub login_ttl: Duration,
    /// How often discovery (and the upstream JWKS) are refreshed.
    pub discovery_refresh: Duration,
    /// The local path prefix the app calls, without a trailing slash (empty for `/`).
    pub local_prefix: String,
    /// Upper bound on how long an access-token binding is kept.
    pub token_ttl_cap: Duration,
    /// The settings of each route of this upstream: every route of its kind has one.
    pub routes: BTreeMap<RouteKind, RoutePolicy>,
}

impl UpstreamKind {
    /// The local path prefix when the config gives none (v4: the upstream's own path).
    pub fn default_prefix(self) -> Option<&'static str> {
        match self {
            Self::MyinfoV4 | Self::Passthrough => None,
            Self::SingpassFapi => Some("/fapi"),
            Self::SingpassCiba => Some("/ciba"),
        }
    }
}

/// How one route retries and limits its upstream attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutePolicy {
    /// Retries of failed attempts.
    pub retry: RetrySettings,
    /// The route's own quota.
    pub rate_limit: RateLimitSettings,
    /// Decrypt and verify the answer (JWE around JWS) and return plain JSON.
    pub decrypt: bool,
    /// The route's attempt and overall deadlines.
    pub timeouts: RouteTimeouts,
}

/// Retry settings; `max_retries = 0` turns retries off.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySettings {
    /// Retries after the first attempt (500/501 get at most one).
    pub max_retries: u32,
    /// The first backoff ceiling; doubles each retry (full jitter below it).
    pub base_delay: Duration,
    /// The largest backoff ceiling.
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is not waited for: the answer goes to the app.
    pub retry_after_cap: Duration,
    /// Retries may be at most this percentage of requests (over a 10 s window)...
    pub budget_percent: f32,
    /// ...plus this many retries per second regardless.
    pub budget_min_per_second: u32,
}

/// A rate + burst quota.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// Sustained requests per second.
    pub per_second: f64,
    /// How many may go at once after a quiet spell.
    pub burst: u32,
}

/// A route's rate limit.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitSettings {
    /// The quota; None turns the route's limit off (upstream throttling still pauses it).
    pub quota: Option<Quota>,
    /// How long a request may wait for a permit before it gets 429.
    pub max_wait: Duration,
}

mod breaker;
mod inbound;
mod listener;
mod policy;
mod raw;
mod redis;
mod route;
pub use self::redis::{RedisConfig, RedisUrl, SealKeySource};
#[cfg(test)]
mod tests;
mod timeouts;
mod upstream;
mod validate;

pub use listener::{ListenerLimits, Listeners};
pub use route::RouteKind;
pub use timeouts::RouteTimeouts;

/// Defaults, named once so that the README and `config.toml` can quote them.
pub mod defaults;

/// Upper bounds, named once so that the README can quote them.
pub mod bounds;
pub use breaker::BreakerConfig;

impl Config {
    /// Parses and validates config text. Relative paths are resolved against `base_dir`
    /// (the directory of the config file).
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::new(text);
        let file: raw::File =
            serde_path_to_error::deserialize(de).map_err(|e| {
                let key = e.path().to_string();
                let inner = e.into_inner();
                ConfigError::new(
                if key == "." { "(top level)".into() } else { key },
                inner.message().trim().to_owned(),
                "correct or remove this key; the README section \"Configuration\" lists every key",
            )
            })?;
        validate::validate(file, base_dir)
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                "(file)",
                format!("cannot read {}: {e}", path.display()),
                "pass --config with the path of an existing config.toml",
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, base)
    }
}
