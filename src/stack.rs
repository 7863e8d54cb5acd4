//! The one place that orders the layers (outermost first):
//!
//! ```text
//! metrics -> rescue -> overall timeout -> breaker -> retry -> rate limit -> error log -> inject
//!   -> attempt timeout -> upstream
//! ```
//!
//! Inject sits inside retry, so every attempt gets a new assertion `jti` and a new proof; the
//! rate limiter sits inside retry, so every attempt that reaches Singpass counts against the
//! quota; the error log sits inside retry, so no attempt's `id`/`trace_id` is lost; rescue
//! sits outside everything, so the app always gets an answer.

use crate::config::Config;
use crate::layer::{
    BreakerLayer, ErrorLogLayer, InjectLayer, MetricsLayer, RateLimitLayer, RescueLayer,
    RetryLayer, Signing,
};
use crate::upstream::UpstreamService;
use bytes::Bytes;
use http::{Request, Response};
use std::convert::Infallible;
use tower::timeout::TimeoutLayer;
use tower::util::BoxCloneSyncService;
use tower::ServiceBuilder;

/// The assembled proxy: a buffered request in, an answer out, never an error.
pub type ProxyService = BoxCloneSyncService<Request<Bytes>, Response<Bytes>, Infallible>;

/// Wraps `upstream` in every layer, in the order above.
pub fn build(config: &Config, signing: Signing, upstream: UpstreamService) -> ProxyService {
    let service = ServiceBuilder::new()
        .layer(MetricsLayer)
        .layer(RescueLayer)
        .layer(TimeoutLayer::new(config.timeouts.overall))
        .option_layer(BreakerLayer::for_config(config))
        .layer(RetryLayer)
        .layer(RateLimitLayer)
        .layer(ErrorLogLayer)
        .layer(InjectLayer::new(signing))
        .layer(TimeoutLayer::new(config.timeouts.attempt))
        .service(upstream);
    BoxCloneSyncService::new(service)
}
