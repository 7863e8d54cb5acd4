//! The middleware, one file each, all of the same shape: `FooLayer` (config) builds `Foo<S>`.

pub mod breaker;
pub mod error_log;
pub mod inject;
pub mod metrics;
pub mod rate_limit;
pub mod rescue;
pub mod retry;

pub use breaker::{Breaker, BreakerLayer};
pub use error_log::{ErrorLog, ErrorLogLayer};
pub use inject::{Inject, InjectLayer, NonceDemand, NonceStore, Signing};
pub use metrics::{Metrics, MetricsLayer};
pub use rate_limit::{RateLimit, RateLimitLayer};
pub use rescue::{Rescue, RescueLayer};
pub use retry::{Retry, RetryLayer, RetryPolicy};
