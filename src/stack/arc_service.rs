//! [`ArcService`]: a type-erased service that clones as a reference count. The layers clone
//! the service below them for every call (tower's readiness pattern), and tower's
//! `BoxCloneSyncService` makes each clone a new box holding a deep copy of the whole stack below
//! (the upstream client and its connector included): several allocations per request. Here the
//! stack lives once behind an `Arc`. A call takes the one instance when no other call holds it
//! and it is ready at once (the proxy's stacks always are): no clone of the stack, whose every
//! layer would count a reference up and down again. Otherwise the call clones the concrete
//! stack (reference counts only) and drives it to readiness inside the returned future, like
//! tower's `Oneshot`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
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
        Res: Send + 'static,
        Err: Send + 'static,
    {
        let instance = Mutex::new(service.clone());
        Self {
            call: Arc::new(move |req| {
                // Never waits for the lock: a call that finds it taken clones instead.
                if let Ok(mut ready) = instance.try_lock() {
                    let mut cx = Context::from_waker(Waker::noop());
                    match ready.poll_ready(&mut cx) {
                        Poll::Ready(Ok(())) => return Box::pin(ready.call(req)),
                        Poll::Ready(Err(e)) => return Box::pin(std::future::ready(Err(e))),
                        Poll::Pending => {}
                    }
                }
                Box::pin(service.clone().oneshot(req))
            }),
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
    /// A service that is ready from its second poll on (each clone anew), and counts its
    /// clones.
    struct Slow {
        polls: usize,
        clones: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Slow {
        fn new() -> Self {
            Self {
                polls: 0,
                clones: Arc::default(),
            }
        }
    }

    impl Clone for Slow {
        fn clone(&self) -> Self {
            self.clones
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Self {
                polls: 0,
                clones: self.clones.clone(),
            }
        }
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
        let svc = ArcService::new(Slow::new());
        let mut other = svc.clone();
        assert_eq!(other.ready().await.unwrap().call(21).await, Ok(42));
        assert_eq!(svc.clone().oneshot(0).await, Err("zero"));
        assert!(Arc::ptr_eq(&svc.call, &other.call));
    }

    #[tokio::test]
    async fn a_ready_stack_is_called_as_it_is_and_an_unready_one_through_a_clone() {
        let slow = Slow::new();
        let clones = slow.clones.clone();
        let count = || clones.load(std::sync::atomic::Ordering::Relaxed);
        let svc = ArcService::new(slow);
        let built = count();
        // Not ready at its first poll: this call goes through a clone, driven to readiness.
        assert_eq!(svc.call_shared(1).await, Ok(2));
        assert_eq!(count(), built + 1);
        // Ready from then on: every call is made on the one instance, with no clone.
        for n in 2..6 {
            assert_eq!(svc.call_shared(n).await, Ok(n * 2));
        }
        assert_eq!(count(), built + 1);
    }
}
