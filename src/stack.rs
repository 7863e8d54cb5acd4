//! The one place that orders the layers (outermost first):
//!
//! ```text
//! rescue -> overall timeout -> inject -> attempt timeout -> upstream
//! ```
//!
//! Inject sits inside the overall deadline and outside the per-attempt timeout, so each attempt
//! is signed afresh; rescue sits outside everything, so the app always gets an answer.

use crate::config::Config;
use crate::layer::{InjectLayer, RescueLayer, Signing};
use crate::upstream::UpstreamClient;
use bytes::Bytes;
use http::{Request, Response};
use std::convert::Infallible;
use tower::timeout::TimeoutLayer;
use tower::util::BoxCloneSyncService;
use tower::ServiceBuilder;

/// The assembled proxy: a buffered request in, an answer out, never an error.
pub type ProxyService = BoxCloneSyncService<Request<Bytes>, Response<Bytes>, Infallible>;

/// Wraps `upstream` in every layer, in the order above.
pub fn build(config: &Config, signing: Signing, upstream: UpstreamClient) -> ProxyService {
    let service = ServiceBuilder::new()
        .layer(RescueLayer)
        .layer(TimeoutLayer::new(config.timeouts.overall))
        .layer(InjectLayer::new(signing))
        .layer(TimeoutLayer::new(config.timeouts.attempt))
        .service(upstream);
    BoxCloneSyncService::new(service)
}
