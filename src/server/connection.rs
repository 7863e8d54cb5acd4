//! One accepted connection: the TLS handshake, hyper's HTTP/1.1 + h2c (or h2) serving, and the
//! timers around it that hyper does not have.
//!
//! - First request: from accept, a connection has `header_read_timeout` to finish its TLS
//!   handshake and the headers of its first request. hyper-util's protocol detection (h1 or
//!   h2 preface) has no timer of its own, and neither has the h2 handshake, so a connection
//!   that sends nothing, or one byte of a preface, would otherwise stay open forever.
//! - HTTP/1 headers: hyper's `header_read_timeout` (with a tokio timer). hyper starts it each
//!   time a kept-alive connection goes idle, so on HTTP/1 it also closes idle connections.
//! - Idle: hyper has no idle timeout (its HTTP/2 keep-alive pings find dead peers, not idle
//!   ones). A timer around the connection, reset when a request starts and when one ends,
//!   shuts down a connection with no request in flight for `idle_timeout` (GOAWAY on h2), and
//!   drops it if it has not closed `header_read_timeout` later.
//! - Body: each request body is wrapped in a [`DeadlineBody`]; a request whose body was not in
//!   by `body_timeout` is answered 408 and its connection closed.

use super::body::{body_timeout, DeadlineBody};
use super::RequestBody;
use crate::config::ListenerLimits;
use crate::error::{problem_response, ProblemContext};
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

/// What every connection of one listener shares.
pub(super) struct Shared<H> {
    pub(super) handler: H,
    pub(super) limits: ListenerLimits,
    pub(super) builder: auto::Builder<TokioExecutor>,
    pub(super) doc_url: Option<Arc<str>>,
}

impl<H> Shared<H> {
    pub(super) fn new(handler: H, limits: ListenerLimits, doc_url: Option<Arc<str>>) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        Self {
            handler,
            limits,
            builder,
            doc_url,
        }
    }
}

/// Serves one accepted connection until it closes, times out, or `stop` asks it to finish.
pub(super) async fn serve<H, F>(
    stream: tokio::net::TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared<H>>,
    stop: watch::Receiver<bool>,
) where
    H: Fn(Request<RequestBody>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let _ = stream.set_nodelay(true);
    let first_request_by =
        crate::deadline::saturating_add(Instant::now(), shared.limits.header_read_timeout);
    match tls {
        None => drive(stream, shared, first_request_by, stop).await,
        Some(acceptor) => {
            match tokio::time::timeout_at(first_request_by, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => drive(stream, shared, first_request_by, stop).await,
                Ok(Err(e)) => tracing::info!(error = %e, "TLS handshake refused"),
                Err(_) => tracing::debug!("TLS handshake not done within header_read_timeout"),
            }
        }
    }
}

pub(super) async fn drive<S, H, F>(
    stream: S,
    shared: Arc<Shared<H>>,
    first_request_by: Instant,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<RequestBody>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let activity = Arc::new(Activity::new(shared.limits.idle_timeout));
    let service = {
        let (shared, activity) = (shared.clone(), activity.clone());
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let in_flight = activity.begin();
            let (parts, body) = req.into_parts();
            // A body still to come gets a deadline, and its request keeps the URI and the
            // problem link for a 408; a request without one (a GET) costs neither.
            let (body, expired) = DeadlineBody::new(body, shared.limits.body_timeout);
            let for_408 = expired
                .is_some()
                .then(|| (parts.uri.clone(), shared.doc_url.clone()));
            let answer = (shared.handler)(Request::from_parts(parts, body));
            async move {
                let res = answer.await;
                drop(in_flight);
                let late = expired.is_some_and(|e| e.load(Ordering::Relaxed));
                Ok::<_, std::convert::Infallible>(match for_408 {
                    Some((uri, doc_url)) if late => timed_out(&res, uri.path(), doc_url.as_deref()),
                    _ => res,
                })
            }
        })
    };
    let conn = shared
        .builder
        .serve_connection(TokioIo::new(stream), service)
        .into_owned();
    tokio::pin!(conn);
    let idle = shared.limits.idle_timeout;
    let mut next = first_request_by;
    let mut closing = false;
    loop {
        activity.arm(next);
        let sleep = tokio::time::sleep_until(next);
        let ended = activity.ended.notified();
        let stopped = stop.changed();
        tokio::pin!(sleep, ended, stopped);
        let mut registered = false;
        let event = std::future::poll_fn(|cx| {
            if let Poll::Ready(ended) = conn.as_mut().poll(cx) {
                return Poll::Ready(Event::Closed(ended));
            }
            // The connection wakes this task for every request; the timer and the end-of-request
            // signal rarely: each of those two is polled once to register, then again only once
            // it may be ready. The stop signal (a watch, cheap to poll) is polled every time.
            let first = !std::mem::replace(&mut registered, true);
            if (first || sleep.is_elapsed()) && sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Due);
            }
            if (first || activity.ended_early.load(Ordering::Acquire))
                && ended.as_mut().poll(cx).is_ready()
            {
                activity.ended_early.store(false, Ordering::Release);
                return Poll::Ready(Event::RequestEnded);
            }
            if !closing && stopped.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Stop);
            }
            Poll::Pending
        })
        .await;
        match event {
            Event::Closed(ended) => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            Event::Due => match activity.due(first_request_by, idle) {
                // Nothing ever started, or nothing since the shutdown began: drop it.
                Due::Now if closing || !activity.started() => return,
                Due::Now => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    next = crate::deadline::saturating_add(
                        Instant::now(),
                        shared.limits.header_read_timeout,
                    );
                }
                Due::At(at) => next = at,
            },
            // A request ended and the idle deadline now comes before the one slept for.
            Event::RequestEnded => {
                next = match activity.due(first_request_by, idle) {
                    Due::At(at) => at,
                    Due::Now => Instant::now(),
                };
            }
            Event::Stop => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// What woke the connection's loop.
enum Event {
    /// The connection closed (hyper's result).
    Closed(Result<(), Box<dyn std::error::Error + Send + Sync>>),
    /// The timer fired.
    Due,
    /// A request ended early enough to bring the idle deadline forward.
    RequestEnded,
    /// The server is shutting down.
    Stop,
}

/// The 408 for a request whose body came too late (whatever the handler made of the error),
/// with the handler's request id, and `Connection: close`: the rest of the body is not read.
fn timed_out(
    handled: &Response<Full<Bytes>>,
    path: &str,
    doc_url: Option<&str>,
) -> Response<Full<Bytes>> {
    let request_id = handled
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok());
    let ctx = ProblemContext {
        instance: path,
        request_id,
        doc_url,
    };
    let mut res = problem_response(&body_timeout(), &ctx).map(Full::new);
    if let Some(id) = handled.headers().get("x-request-id") {
        res.headers_mut().insert("x-request-id", id.clone());
    }
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// Requests in flight on one connection, and since when it has had none.
struct Activity {
    state: Mutex<State>,
    /// Rung when a request's end brings the idle deadline before the armed timer.
    ended: tokio::sync::Notify,
    /// Set before `ended` is rung: the connection's loop polls `ended` only then.
    ended_early: AtomicBool,
    idle: std::time::Duration,
}

struct State {
    in_flight: usize,
    started: bool,
    idle_since: Instant,
    /// When the connection's timer is set to fire next.
    armed: Instant,
}

enum Due {
    Now,
    At(Instant),
}

impl Activity {
    fn new(idle: std::time::Duration) -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(State {
                in_flight: 0,
                started: false,
                idle_since: now,
                armed: now,
            }),
            ended: tokio::sync::Notify::new(),
            ended_early: AtomicBool::new(false),
            idle,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        let mut s = self.lock();
        s.in_flight += 1;
        s.started = true;
        InFlight(self.clone())
    }

    fn started(&self) -> bool {
        self.lock().started
    }

    /// The connection's timer is set to fire at `at`.
    fn arm(&self, at: Instant) {
        self.lock().armed = at;
    }

    /// When the connection is due to close: before its first request, at `first_request_by`;
    /// after, `idle` after its last request ended; never while one is in flight.
    fn due(&self, first_request_by: Instant, idle: std::time::Duration) -> Due {
        let s = self.lock();
        let now = Instant::now();
        let at = if !s.started {
            first_request_by
        } else if s.in_flight > 0 {
            return Due::At(crate::deadline::saturating_add(now, idle));
        } else {
            crate::deadline::saturating_add(s.idle_since, idle)
        };
        if now >= at {
            Due::Now
        } else {
            Due::At(at)
        }
    }
}

/// One request in flight; its end restarts the idle timer.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let earlier = {
            let mut s = self.0.lock();
            s.in_flight -= 1;
            s.idle_since = Instant::now();
            // The timer needs moving only if the idle deadline now comes before it fires (it
            // rarely does: set while a request was in flight, it fires `idle` after that).
            s.in_flight == 0 && s.armed > crate::deadline::saturating_add(s.idle_since, self.0.idle)
        };
        if earlier {
            self.0.ended_early.store(true, Ordering::Release);
            self.0.ended.notify_one();
        }
    }
}
