//! [`ArcService`]: a type-erased service that clones as a reference count. The layers clone
//! the service below them for every call (tower's readiness pattern), and tower's
//! `BoxCloneSyncService` makes each clone a new box holding a deep copy of the whole stack below
//! (the upstream client and its connector included): several allocations per request. Here the
//! stack lives once behind an `Arc`; a call clones the concrete stack (reference counts only) and
//! drives it to readiness inside the returned future, like tower's `Oneshot`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::ServiceExt as _;

/// The future of an [`ArcService`] call.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

type CallFn<Req, Res, Err> = dyn Fn(Req) -> BoxFuture<Result<Res, Err>> + Send + Sync;

/// A `Clone + Send + Sync` service of any concrete type, always ready: readiness errors come
/// out of the call's future.
pub(crate) struct ArcService<Req, Res, Err> {
    call: Arc<CallFn<Req, Res, Err>>,
}

impl<Req, Res, Err> Clone for ArcService<Req, Res, Err> {
    fn clone(&self) -> Self {
        Self {
            call: self.call.clone(),
        }
    }
}

impl<Req, Res, Err> ArcService<Req, Res, Err> {
    /// Erases `service`'s type.
    pub(crate) fn new<S>(service: S) -> Self
    where
        S: tower::Service<Req, Response = Res, Error = Err> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        Req: Send + 'static,
    {
        Self {
            call: Arc::new(move |req| Box::pin(service.clone().oneshot(req))),
        }
    }
}

impl<Req, Res, Err> ArcService<Req, Res, Err> {
    /// Calls it without a clone (it is always ready).
    pub(crate) fn call_shared(&self, req: Req) -> BoxFuture<Result<Res, Err>> {
        (self.call)(req)
    }
}

impl<Req, Res, Err> tower::Service<Req> for ArcService<Req, Res, Err> {
    type Response = Res;
    type Error = Err;
    type Future = BoxFuture<Result<Res, Err>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Err>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        (self.call)(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::Service as _;
    /// A service that is ready only on its second poll.
    #[derive(Clone)]
    struct Slow {
        polls: usize,
    }

    impl tower::Service<u32> for Slow {
        type Response = u32;
        type Error = &'static str;
        type Future = std::future::Ready<Result<u32, &'static str>>;
        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), &'static str>> {
            self.polls += 1;
            if self.polls < 2 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, n: u32) -> Self::Future {
            assert!(self.polls >= 2, "called before it was ready");
            std::future::ready(if n == 0 { Err("zero") } else { Ok(n * 2) })
        }
    }

    #[tokio::test]
    async fn calls_wait_for_readiness_and_errors_come_out_of_the_call() {
        let svc = ArcService::new(Slow { polls: 0 });
        let mut other = svc.clone();
        assert_eq!(other.ready().await.unwrap().call(21).await, Ok(42));
        assert_eq!(svc.clone().oneshot(0).await, Err("zero"));
        assert!(Arc::ptr_eq(&svc.call, &other.call));
    }
}
