//! Defaults, named once so that the README and `config.toml` can quote them.

use std::time::Duration;
/// `listen`
pub const LISTEN: &str = "127.0.0.1:8080";
/// `max_request_body` (64 KiB)
pub const MAX_REQUEST_BODY: usize = 64 * 1024;
/// `max_response_body` (4 MiB)
pub const MAX_RESPONSE_BODY: usize = 4 * 1024 * 1024;
/// `assertion_lifetime` (Singpass's maximum is 120 s; half of it leaves room for clock skew)
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);
/// `timeouts.connect`
pub const CONNECT: Duration = Duration::from_secs(3);
/// `timeouts.attempt`
pub const ATTEMPT: Duration = Duration::from_secs(10);
/// `timeouts.overall`
pub const OVERALL: Duration = Duration::from_secs(30);
/// `upstream.routes.token.timeouts.attempt` of a CIBA upstream, at least: Singpass holds a
/// pending CIBA poll for about 30 s before it answers.
pub const CIBA_TOKEN_ATTEMPT: Duration = Duration::from_secs(35);
/// The CIBA token route's overall deadline is at least its attempt plus this.
pub const CIBA_TOKEN_MARGIN: Duration = Duration::from_secs(10);
/// `listener.*.header_read_timeout`
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// `listener.*.body_timeout`
pub const BODY_TIMEOUT: Duration = Duration::from_secs(15);
/// `listener.*.idle_timeout`
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `listener.main.max_connections`
pub const MAX_CONNECTIONS: usize = 4096;
/// `listener.admin.max_connections`
pub const ADMIN_MAX_CONNECTIONS: usize = 64;
/// `upstream.token_ttl_cap`
pub const TOKEN_TTL_CAP: Duration = Duration::from_secs(30 * 60);
/// `upstream.login_ttl`
pub const LOGIN_TTL: Duration = Duration::from_secs(10 * 60);
/// `upstream.discovery_refresh`
pub const DISCOVERY_REFRESH: Duration = Duration::from_secs(60 * 60);
/// `retry.max_retries`
pub const MAX_RETRIES: u32 = 3;
/// `retry.base_delay`
pub const BASE_DELAY: Duration = Duration::from_millis(100);
/// `retry.max_delay`
pub const MAX_DELAY: Duration = Duration::from_secs(2);
/// `retry.retry_after_cap`
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(5);
/// `retry.budget_percent`
pub const BUDGET_PERCENT: f32 = 20.0;
/// `retry.budget_min_per_second`
pub const BUDGET_MIN_PER_SECOND: u32 = 1;
/// `rate_limit.per_second`
pub const RATE_PER_SECOND: f64 = 20.0;
/// `rate_limit.burst`
pub const RATE_BURST: u32 = 20;
/// `rate_limit.max_wait`
pub const MAX_WAIT: Duration = Duration::from_millis(250);
/// `keys.reload_interval`
pub const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(10);
/// `drain_timeout`
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// `admin.listen`
pub const ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// `problem_doc_url`
pub const PROBLEM_DOC_URL: &str =
    "https://github.com/myinfo-proxy/myinfo-proxy/blob/main/README.md#problem-codes";
/// `redis.key_prefix`
pub const REDIS_KEY_PREFIX: &str = "myinfo-proxy";
/// `redis.timeout`
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(50);
