//! What an upstream answer says beyond its status: the error body's `id`, `trace_id`, `error`
//! and `error_description`, a `Retry-After`, and whether it is a throttle signal.

use bytes::Bytes;
use http::{header, HeaderMap, Response};
use std::time::{Duration, SystemTime};

/// Only this much of an error body is parsed or quoted.
pub(crate) const BODY_PREFIX: usize = 8 * 1024;

/// The fields of a Singpass or OAuth error body that support and the retry policy need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    /// Singpass's `id` of this error.
    pub id: Option<String>,
    /// Singpass's `trace_id`.
    pub trace_id: Option<String>,
    /// The class or OAuth code, e.g. `SERVER_SIDE_ERROR`, `temporarily_unavailable`.
    pub error: Option<String>,
    /// The human-readable text.
    pub error_description: Option<String>,
    /// For a body that is not JSON: a short excerpt with control characters removed.
    pub excerpt: Option<String>,
}

impl ErrorBody {
    /// Reads the error fields from the first [`BODY_PREFIX`] bytes of a body.
    pub(crate) fn parse(body: &Bytes) -> Self {
        #[derive(serde::Deserialize)]
        struct Fields {
            id: Option<serde_json::Value>,
            trace_id: Option<serde_json::Value>,
            error: Option<serde_json::Value>,
            error_description: Option<serde_json::Value>,
        }
        let prefix = &body[..body.len().min(BODY_PREFIX)];
        match serde_json::from_slice::<Fields>(prefix) {
            Ok(f) => Self {
                id: f.id.and_then(short_text),
                trace_id: f.trace_id.and_then(short_text),
                error: f.error.and_then(short_text),
                error_description: f.error_description.and_then(short_text),
                excerpt: None,
            },
            Err(_) if body.is_empty() => Self::default(),
            Err(_) => Self {
                excerpt: Some(excerpt(prefix)),
                ..Self::default()
            },
        }
    }

    /// The error fields of an answer of status 400 or more (empty below): those a layer below
    /// parsed (see [`error_body`]), else parsed now.
    pub(crate) fn of(res: &Response<Bytes>) -> std::borrow::Cow<'_, ErrorBody> {
        match res.extensions().get::<ErrorBody>() {
            Some(body) => std::borrow::Cow::Borrowed(body),
            None if res.status().as_u16() >= 400 => {
                std::borrow::Cow::Owned(ErrorBody::parse(res.body()))
            }
            None => std::borrow::Cow::Owned(ErrorBody::default()),
        }
    }

    /// True for the OAuth errors that Singpass says may be retried.
    pub(crate) fn is_retryable_oauth(&self) -> bool {
        matches!(
            self.error.as_deref(),
            Some("server_error" | "temporarily_unavailable" | "upstream_depedency_error")
        )
    }
}

/// A JSON string (or number) as text of at most 200 characters; anything else is dropped.
fn short_text(v: serde_json::Value) -> Option<String> {
    let text = match v {
        serde_json::Value::String(s) => s,
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some(text.chars().filter(|c| !c.is_control()).take(200).collect())
}

/// At most 120 printable characters of a non-JSON body.
fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(480)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect()
}

/// The error fields of an upstream answer of status 400 or more, parsed once per attempt: the
/// first layer that asks parses them and keeps them in the answer's extensions for the layers
/// above. A successful answer has none (its body is not an error body).
pub(crate) fn error_body(res: &mut Response<Bytes>) -> &ErrorBody {
    if res.extensions().get::<ErrorBody>().is_none() {
        let parsed = if res.status().as_u16() >= 400 {
            ErrorBody::parse(res.body())
        } else {
            ErrorBody::default()
        };
        res.extensions_mut().insert(parsed);
    }
    res.extensions_mut().get_or_insert_default()
}

/// True when the answer asks the client to slow down: HTTP 429, or a body whose `error` is
/// `TOO_MANY_REQUESTS`.
pub(crate) fn is_throttle(res: &Response<Bytes>, body: &ErrorBody) -> bool {
    res.status() == http::StatusCode::TOO_MANY_REQUESTS
        || body.error.as_deref() == Some("TOO_MANY_REQUESTS")
}

/// `Retry-After` in either form (RFC 9110 section 10.2.3): delta-seconds or an HTTP-date
/// (measured from `now`; a date in the past means zero).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_singpass_error_body() {
        let body = Bytes::from_static(br#"{"id":"bcba4bc3","error":"SERVER_SIDE_ERROR","error_description":"An unexpected error occurred.","trace_id":"66f4d6c9"}"#);
        let e = ErrorBody::parse(&body);
        assert_eq!(e.id.as_deref(), Some("bcba4bc3"));
        assert_eq!(e.trace_id.as_deref(), Some("66f4d6c9"));
        assert_eq!(e.error.as_deref(), Some("SERVER_SIDE_ERROR"));
        assert!(!e.is_retryable_oauth());
        assert!(ErrorBody::parse(&Bytes::from_static(
            br#"{"error":"upstream_depedency_error"}"#
        ))
        .is_retryable_oauth());
    }

    #[test]
    fn non_json_body_becomes_a_sanitised_excerpt() {
        let e = ErrorBody::parse(&Bytes::from_static(
            b"<html>\r\n<b>502 Bad Gateway</b>\x1b[31m</html>",
        ));
        let x = e.excerpt.unwrap();
        assert!(
            x.contains("502 Bad Gateway") && !x.contains('\n') && !x.contains('\x1b'),
            "{x}"
        );
        assert_eq!(e.id, None);
    }

    #[test]
    fn oversized_body_is_not_parsed_past_the_prefix() {
        let mut big = br#"{"id":"x","pad":""#.to_vec();
        big.extend(std::iter::repeat_n(b'a', BODY_PREFIX * 2));
        big.extend(br#""}"#);
        let e = ErrorBody::parse(&Bytes::from(big));
        assert_eq!(e.id, None);
        assert!(e.excerpt.unwrap().len() <= 120);
    }

    #[test]
    fn retry_after_in_both_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        h.insert(header::RETRY_AFTER, later.parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        h.insert(header::RETRY_AFTER, past.parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
    }
}
