//! The `[redis]` table: where the state shared by several replicas lives, how long a call to it
//! may take, and where the seal keys are. Without it everything stays in process memory.

use super::ConfigError;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::defaults::{REDIS_KEY_PREFIX as KEY_PREFIX, REDIS_TIMEOUT as TIMEOUT};

/// The file's `[redis]` table, exactly.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedis {
    url: Option<String>,
    url_env: Option<String>,
    key_prefix: Option<String>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    fallback_replicas: Option<u32>,
    seal_keys_file: Option<PathBuf>,
    seal_keys_env: Option<String>,
}

/// Shared state in Redis (or Valkey), for several replicas of one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// Where Redis is: `redis://` or `rediss://` (TLS, rustls).
    pub url: RedisUrl,
    /// Every key the proxy writes starts with `<key_prefix>:`.
    pub key_prefix: String,
    /// The deadline of each Redis call.
    pub timeout: Duration,
    /// How many replicas may run at most: while Redis is unreachable each one limits itself to
    /// `per_second / fallback_replicas`, so that together they stay within the quota.
    pub fallback_replicas: u32,
    /// Where the seal keys are (never in the config file itself).
    pub seal_keys: SealKeySource,
}

/// The Redis URL, or the environment variable that holds it (a URL with a password).
#[derive(Clone, PartialEq, Eq)]
pub enum RedisUrl {
    /// Given in the config (no password allowed there).
    Literal(String),
    /// The name of an environment variable.
    Env(String),
}

impl std::fmt::Debug for RedisUrl {
    // The env var's value may hold a password: only its name is ever shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Literal(url) => write!(f, "Literal({url})"),
            Self::Env(name) => write!(f, "Env({name})"),
        }
    }
}

/// Where the seal keyring comes from: one base64url 32-byte key per line (or a JSON array of
/// them); the first seals, all open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealKeySource {
    /// A file (a Kubernetes Secret mount).
    File(PathBuf),
    /// The name of an environment variable.
    Env(String),
}

impl RedisConfig {
    /// The URL to connect to, read from its environment variable when `url_env` names one.
    pub fn resolve_url(&self) -> Result<String, ConfigError> {
        match &self.url {
            RedisUrl::Literal(url) => Ok(url.clone()),
            RedisUrl::Env(name) => {
                let url = std::env::var(name).map_err(|_| {
                    ConfigError::new(
                        "redis.url_env",
                        format!("the environment variable {name} is not set (or not UTF-8)"),
                        format!("set {name} to the Redis URL, e.g. rediss://:PASSWORD@redis.example:6380"),
                    )
                })?;
                check_url("redis.url_env", &url, false)?;
                Ok(url)
            }
        }
    }
}

pub(super) fn redis(
    raw: Option<RawRedis>,
    base: &Path,
) -> Result<Option<RedisConfig>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let url = match (raw.url, raw.url_env) {
        (Some(url), None) => {
            check_url("redis.url", &url, true)?;
            RedisUrl::Literal(url)
        }
        (None, Some(name)) if !name.trim().is_empty() => RedisUrl::Env(name),
        _ => {
            return Err(ConfigError::new(
                "redis.url",
                "set exactly one of redis.url and redis.url_env",
                "use url = \"redis://host:6379\", or url_env = \"REDIS_URL\" when the URL carries a password",
            ))
        }
    };
    let key_prefix = raw.key_prefix.unwrap_or_else(|| KEY_PREFIX.to_owned());
    if key_prefix.is_empty()
        || key_prefix.len() > 64
        || !key_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return Err(ConfigError::new(
            "redis.key_prefix",
            format!("`{key_prefix}` is not 1 to 64 letters, digits, `-`, `_`, `.` or `:`"),
            format!(
                "use a short name such as \"{KEY_PREFIX}\" (one per client id sharing a Redis)"
            ),
        ));
    }
    let timeout = raw.timeout.unwrap_or(TIMEOUT);
    if timeout.is_zero() || timeout > Duration::from_secs(5) {
        return Err(ConfigError::new(
            "redis.timeout",
            format!(
                "{} is outside 1ms..=5s",
                humantime::format_duration(timeout)
            ),
            "use a few times Redis's round trip, e.g. \"50ms\"",
        ));
    }
    let fallback_replicas = match raw.fallback_replicas {
        Some(n) if n >= 1 => n,
        other => return Err(ConfigError::new(
            "redis.fallback_replicas",
            match other {
                Some(_) => "must be at least 1",
                None => {
                    "missing: it says how far each replica limits itself while Redis is unreachable"
                }
            },
            "set it to the most replicas that may run (the HPA's maxReplicas, or replicaCount)",
        )),
    };
    let seal_keys = match (raw.seal_keys_file, raw.seal_keys_env) {
        (Some(file), None) => SealKeySource::File(base.join(file)),
        (None, Some(name)) if !name.trim().is_empty() => SealKeySource::Env(name),
        _ => {
            return Err(ConfigError::new(
                "redis.seal_keys_file",
                "set exactly one of redis.seal_keys_file and redis.seal_keys_env",
                "make a key with `myinfo-proxy seal-key`, keep it in a Secret, and name the file (or env var) here",
            ))
        }
    };
    Ok(Some(RedisConfig {
        url,
        key_prefix,
        timeout,
        fallback_replicas,
        seal_keys,
    }))
}

fn check_url(key: &str, url: &str, in_file: bool) -> Result<(), ConfigError> {
    let parsed = redis::parse_redis_url(url);
    let Some(parsed) = parsed.filter(|u| matches!(u.scheme(), "redis" | "rediss")) else {
        return Err(ConfigError::new(
            key,
            "not a redis:// or rediss:// URL",
            "use a form like \"redis://10.0.0.5:6379\" or \"rediss://redis.example:6380\"",
        ));
    };
    if in_file && parsed.password().is_some() {
        return Err(ConfigError::new(
            key,
            "carries a password, and config.toml holds no secrets",
            "put the whole URL in an environment variable (from a Secret) and name it in redis.url_env",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    const BASE: &str = r#"
client_id = "c"
[keys]
jwks_file = "k.json"
[[upstream]]
kind = "myinfo-v4"
base_url = "https://test.api.myinfo.gov.sg/com/v4"
"#;

    fn parse(redis: &str) -> Result<Config, crate::config::ConfigError> {
        Config::from_toml(&format!("{BASE}\n[redis]\n{redis}"), Path::new("/etc/p"))
    }

    #[test]
    fn a_full_table_parses_with_defaults() {
        let c = parse(
            "url = \"redis://127.0.0.1:6379\"\nfallback_replicas = 3\nseal_keys_file = \"seal\"",
        )
        .unwrap()
        .redis
        .unwrap();
        assert_eq!(c.key_prefix, "myinfo-proxy");
        assert_eq!(c.timeout, std::time::Duration::from_millis(50));
        assert_eq!(c.fallback_replicas, 3);
        assert_eq!(
            c.seal_keys,
            super::SealKeySource::File("/etc/p/seal".into())
        );
        let none = Config::from_toml(BASE, Path::new("/")).unwrap();
        assert!(
            none.redis.is_none(),
            "without [redis] everything stays in memory"
        );
    }

    #[test]
    fn each_mistake_names_its_key_and_fix() {
        let cases = [
            ("fallback_replicas = 2\nseal_keys_env = \"S\"", "redis.url"),
            ("url = \"http://x\"\nfallback_replicas = 2\nseal_keys_env = \"S\"", "redis.url"),
            ("url = \"redis://:pw@x:6379\"\nfallback_replicas = 2\nseal_keys_env = \"S\"", "redis.url"),
            ("url = \"redis://x\"\nseal_keys_env = \"S\"", "redis.fallback_replicas"),
            ("url = \"redis://x\"\nfallback_replicas = 0\nseal_keys_env = \"S\"", "redis.fallback_replicas"),
            ("url = \"redis://x\"\nfallback_replicas = 2", "redis.seal_keys_file"),
            ("url = \"redis://x\"\nfallback_replicas = 2\nseal_keys_env = \"S\"\ntimeout = \"0s\"", "redis.timeout"),
            ("url = \"redis://x\"\nfallback_replicas = 2\nseal_keys_env = \"S\"\nkey_prefix = \"a b\"", "redis.key_prefix"),
            ("url = \"redis://x\"\nfallback_replicas = 2\nseal_keys_env = \"S\"\nseal_key = \"x\"", "redis.seal_key"),
        ];
        for (text, key) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.key, key, "{text}: {err}");
            assert!(!err.fix.is_empty());
        }
        let err = parse(
            "url = \"redis://:hunter2@x:6379\"\nfallback_replicas = 2\nseal_keys_env = \"S\"",
        )
        .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
