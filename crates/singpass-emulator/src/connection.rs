//! One client connection to the emulator: each request (from a connection, or in process from
//! `service.rs`) is read, put to the fault plan (quota, scripted, random), served by its
//! endpoint (v4, FAPI or CIBA) unless an injection answered it, and recorded. Every FAPI
//! answer, injected ones included, carries the current `DPoP-Nonce` while the FAPI issuer
//! requires nonces.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::errors::Rejection;
use crate::faults::injected::{peek_jtis, Action, Intercept};
use crate::request::{EmulatorRequest, Observed};
use crate::router::{self, Target};
use crate::state::EmulatorState;
use crate::Received;

/// Bodies larger than this are refused unread (413); a token form is a few KiB.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The one error the request handler returns, on purpose: hyper answers a service error by
/// closing the connection without a response, which is what [`crate::Fault::Drop`] asks for.
#[derive(Debug, thiserror::Error)]
#[error("connection closed by an injected Drop fault")]
pub(crate) struct DroppedByFault;

pub(crate) async fn serve_connection(stream: TcpStream, state: Arc<EmulatorState>) {
    let service = service_fn(move |request| handle(Arc::clone(&state), request));
    // Ends when the client closes, a Drop fault closes, or the emulator aborts the task;
    // a hung request ends with its connection.
    if let Err(error) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%error, "emulator connection ended with an error");
    }
}

/// Answers one request and records it. Every refusal is a response; the only `Err` is an
/// injected Drop.
pub(crate) async fn handle<B>(
    state: Arc<EmulatorState>,
    request: Request<B>,
) -> Result<Response<Full<Bytes>>, DroppedByFault>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map(|collected| collected.to_bytes());
    let mut record = received(&parts, &body, at);
    let target = Target::of(&state.config.base_path, parts.uri.path());
    record.route = target.and_then(Target::route);
    let injection = record
        .route
        .and_then(|route| state.faults.decide(route, at));
    if let Some(injection) = injection {
        record.fault = Some(injection.description().to_owned());
        match Action::of(&injection) {
            Action::DelayThenServe(delay) => tokio::time::sleep(delay).await,
            Action::Intercept(mut intercept) => {
                // Never reached an endpoint: nothing is verified or spent, but the log shows
                // which jtis the attempt carried.
                let observed = peek_jtis(&parts.headers, &record.body);
                record.assertion_jti = observed.assertion_jti;
                record.proof_jti = observed.proof_jti;
                if let Intercept::Answer { answer, .. } = &mut intercept {
                    hand_out_nonce(&state, target, &mut answer.response);
                }
                return intercepted(&state, record, intercept).await;
            }
        }
    }

    let mut observed = Observed::default();
    let outcome = match &body {
        Ok(body) => {
            router::serve(
                &state,
                target,
                EmulatorRequest {
                    method: &parts.method,
                    query: parts.uri.query(),
                    headers: &parts.headers,
                    body,
                },
                &mut observed,
            )
            .await
        }
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request body too large",
        )),
        Err(_) => Err(Rejection::bad_request("Request body could not be read")),
    };
    let mut response = match outcome {
        Ok(response) => response,
        Err(rejection) => {
            // Descriptions never hold tokens or assertions, only which check failed.
            tracing::debug!(
                method = %parts.method,
                path = parts.uri.path(),
                status = rejection.status.as_u16(),
                description = %rejection.description,
                "emulator refused a request"
            );
            let answer = rejection.to_response();
            record.rejection = Some(rejection.description);
            record.error_id = Some(answer.id);
            record.trace_id = Some(answer.trace_id);
            answer.response
        }
    };
    hand_out_nonce(&state, target, &mut response);
    record.status = response.status().as_u16();
    record.assertion_jti = observed.assertion_jti;
    record.proof_jti = observed.proof_jti;
    state.record(record);
    Ok(response)
}

/// Sets `DPoP-Nonce` on a FAPI answer while the issuer requires nonces.
fn hand_out_nonce(
    state: &EmulatorState,
    target: Option<Target<'_>>,
    response: &mut Response<Full<Bytes>>,
) {
    let nonce = target
        .filter(|target| target.hands_out_dpop_nonces())
        .and_then(|_| state.nonces.to_hand_out());
    // Nonces are base64url, always a valid header value.
    if let Some(value) = nonce.and_then(|nonce| HeaderValue::from_str(&nonce).ok()) {
        response.headers_mut().insert("dpop-nonce", value);
    }
}

/// Answers (or does not) as the injection says, recording the request first.
async fn intercepted(
    state: &EmulatorState,
    mut record: Received,
    intercept: Intercept,
) -> Result<Response<Full<Bytes>>, DroppedByFault> {
    tracing::debug!(
        method = %record.method,
        path = %record.path,
        fault = record.fault.as_deref().unwrap_or_default(),
        "emulator injected a fault"
    );
    match intercept {
        Intercept::Answer {
            answer,
            description,
        } => {
            record.status = answer.response.status().as_u16();
            record.rejection = Some(description);
            record.error_id = Some(answer.id);
            record.trace_id = Some(answer.trace_id);
            state.record(record);
            Ok(answer.response)
        }
        Intercept::Drop => {
            state.record(record);
            Err(DroppedByFault)
        }
        // Pending until the client closes the connection (hyper notices and drops this
        // future) or the emulator stops (aborting the connection's task): no timer involved.
        Intercept::Hang => {
            state.record(record);
            std::future::pending().await
        }
    }
}

/// The body as read, or the error reading it.
type ReadBody = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// The request as the log keeps it, before the answer is known (status 0: none sent yet).
fn received(parts: &Parts, body: &ReadBody, at: Instant) -> Received {
    Received {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.as_ref().cloned().unwrap_or_default(),
        status: 0,
        rejection: None,
        assertion_jti: None,
        proof_jti: None,
        at,
        route: None,
        fault: None,
        error_id: None,
        trace_id: None,
    }
}
