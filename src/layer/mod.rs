//! The middleware, one file each, all of the same shape: `FooLayer::new(config)` builds
//! `Foo<S>`. One module of the crate, `stack`, orders them (see the crate docs).

mod api_key;
mod attempt_timeout;
mod breaker;
mod error_log;
mod facts;
mod inject;
mod jwks;
mod local_checks;
mod metrics;
mod rate_limit;
mod read_body;
mod request_id;
mod rescue;
mod retry;
mod trace;

pub use crate::upstream::{BufferBodies, BufferBodiesFuture, BufferBodiesLayer};
pub(crate) use api_key::ApiKeyLayer;
pub use attempt_timeout::{AttemptTimeout, AttemptTimeoutFuture, AttemptTimeoutLayer};
pub use breaker::{Breaker, BreakerFuture, BreakerLayer};
pub use error_log::{ErrorLog, ErrorLogFuture, ErrorLogLayer};
pub use facts::{Bind, Outcome, RequestFacts};
pub use inject::{
    Decrypt, Inject, InjectLayer, MemoryNonces, NonceDemand, NonceFuture, NonceStore, Signing,
};
pub(crate) use jwks::PublicJwksLayer;
pub use local_checks::{LocalChecks, LocalChecksLayer};
pub use metrics::{Metrics, MetricsFuture, MetricsLayer};
pub use rate_limit::{
    GlobalLimiter, LocalQuota, QuotaFuture, RateLimit, RateLimitLayer, RouteLimiter, RouteQuota,
    ThrottleFuture,
};
pub(crate) use read_body::ReadBodyLayer;
pub(crate) use request_id::MakeRequestIds;
pub use rescue::{Rescue, RescueFuture, RescueLayer};
pub use retry::{Decision, Now, Retry, RetryLayer, RetryPolicy, RetryReason, Stop, Tally};
pub use trace::ACCESS;
pub(crate) use trace::{AccessLog, RequestSpan};
