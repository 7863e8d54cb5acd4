//! What an injected fault or quota refusal does to a request: the error answers (Singpass or
//! OAuth body, fresh `id`/`trace_id`, `Retry-After`), and the `jti`s read from a request that
//! never reaches an endpoint — decoded, not verified, and not spent.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::errors::{error_answer, ErrorAnswer};
use crate::faults::{Fault, Injection};
use crate::request::Observed;

const TOO_MANY_REQUESTS: &str = "TOO_MANY_REQUESTS";

/// What happens to a request that met an [`Injection`].
#[derive(Debug)]
pub(crate) enum Action {
    /// Wait, then serve normally.
    DelayThenServe(Duration),
    /// Never reach an endpoint.
    Intercept(Intercept),
}

/// How a request that never reaches an endpoint ends.
#[derive(Debug)]
pub(crate) enum Intercept {
    /// Answer with this error.
    Answer {
        answer: Box<ErrorAnswer>,
        description: String,
    },
    /// Never answer.
    Hang,
    /// Close the connection without an answer.
    Drop,
}

impl Action {
    pub(crate) fn of(injection: &Injection) -> Action {
        match injection {
            Injection::OverQuota {
                refusal,
                retry_after,
                ..
            } => {
                let header = retry_after.then(|| refusal.retry_after_secs().to_string());
                answer(
                    StatusCode::TOO_MANY_REQUESTS,
                    TOO_MANY_REQUESTS,
                    "Too many requests, please try again later.",
                    header.as_deref(),
                )
            }
            Injection::Fault { fault, .. } => Action::of_fault(fault),
        }
    }

    fn of_fault(fault: &Fault) -> Action {
        match fault {
            Fault::Status {
                status,
                retry_after,
            } => {
                let status = error_status(*status);
                let (error, description) = if status == StatusCode::TOO_MANY_REQUESTS {
                    (
                        TOO_MANY_REQUESTS,
                        "Too many requests, please try again later.",
                    )
                } else if status.is_server_error() {
                    ("SERVER_SIDE_ERROR", "An unexpected error occurred.")
                } else {
                    ("CLIENT_SIDE_ERROR", "This is an invalid request.")
                };
                answer(status, error, description, retry_after.as_deref())
            }
            Fault::TooManyRequestsBody { retry_after } => answer(
                StatusCode::BAD_REQUEST,
                TOO_MANY_REQUESTS,
                "Too many requests, please try again later.",
                retry_after.as_deref(),
            ),
            Fault::OAuthError { status, error } => {
                let description = match error.as_str() {
                    "temporarily_unavailable" => "The service is temporarily unavailable.",
                    "server_error" => "An unexpected error occurred.",
                    _ => "The request could not be served.",
                };
                answer(error_status(*status), error, description, None)
            }
            Fault::Delay(delay) => Action::DelayThenServe(*delay),
            Fault::Hang => Action::Intercept(Intercept::Hang),
            Fault::Drop => Action::Intercept(Intercept::Drop),
        }
    }
}

/// A scripted status as a final answer: anything hyper cannot send as one (1xx, or not a
/// status at all) becomes 500.
fn error_status(status: u16) -> StatusCode {
    StatusCode::from_u16(status)
        .ok()
        .filter(|status| (200..600).contains(&status.as_u16()))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn answer(status: StatusCode, error: &str, description: &str, retry_after: Option<&str>) -> Action {
    let mut answer = error_answer(status, error, description);
    if let Some(value) = retry_after {
        match HeaderValue::from_str(value) {
            Ok(value) => {
                answer
                    .response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, value);
            }
            Err(_) => tracing::warn!(
                value,
                "scripted Retry-After is not a header value; left out"
            ),
        }
    }
    Action::Intercept(Intercept::Answer {
        answer: Box::new(answer),
        description: description.to_owned(),
    })
}

/// The `jti`s of the request's DPoP proof and client assertion, read without checking
/// anything, so that a log of faulted attempts still shows whether a `jti` was ever reused.
pub(crate) fn peek_jtis(headers: &HeaderMap, body: &Bytes) -> Observed {
    let proof_jti = headers
        .get("dpop")
        .and_then(|proof| proof.to_str().ok())
        .and_then(unverified_jti);
    let assertion_jti = form_urlencoded::parse(body)
        .find(|(name, _)| name == "client_assertion")
        .and_then(|(_, assertion)| unverified_jti(&assertion));
    Observed {
        assertion_jti,
        proof_jti,
    }
}

/// The `jti` claim of a compact JWS, from its payload alone.
fn unverified_jti(compact: &str) -> Option<String> {
    let payload = compact.trim().split('.').nth(1)?;
    let json = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    claims.get("jti")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jtis_are_read_from_payloads_without_verification() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"jti":"j-1","htm":"POST"}"#);
        let proof = format!("e30.{payload}.not-a-signature");
        let mut headers = HeaderMap::new();
        headers.insert("dpop", HeaderValue::from_str(&proof).expect("header"));
        let body = Bytes::from(format!("code=x&client_assertion=e30.{payload}.sig"));
        let observed = peek_jtis(&headers, &body);
        assert_eq!(observed.proof_jti.as_deref(), Some("j-1"));
        assert_eq!(observed.assertion_jti.as_deref(), Some("j-1"));
        for garbage in ["", "a", "a.b.c", "a.e30.c", "a.!!!.c"] {
            assert_eq!(unverified_jti(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn odd_statuses_become_500() {
        assert_eq!(error_status(503), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error_status(100), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error_status(0), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error_status(1000), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
