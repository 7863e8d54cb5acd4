//! The proxy's own errors and the ONE place that turns them into `application/problem+json`.
//!
//! Upstream answers never come through here: they pass to the app unchanged. What does come
//! through is what the proxy itself decided (a token it never saw, a body too large) or could
//! not do (the upstream was unreachable or too slow).

use crate::layer::Outcome;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::json;
use std::time::SystemTime;

/// Any error in transit through the layers.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The stable problem-code catalogue. Each code has one status; the README lists them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemCode {
    /// A resource call without `Authorization: Bearer|DPoP <token>`.
    AuthTokenMissing,
    /// A token the proxy did not see issued, or whose binding has expired.
    AuthTokenUnknown,
    /// A one-time (Myinfo v4) token that was already used.
    AuthTokenReused,
    /// A FAPI token call whose login (PAR) did not go through this proxy (or this replica).
    AuthLoginUnknown,
    /// The caller did not present a valid inbound API key.
    AuthApiKeyInvalid,
    /// A request parameter the proxy needs is absent.
    ValidationMissingParameter,
    /// A request parameter the proxy needs is wrong.
    ValidationInvalidParameter,
    /// The request body is over `max_request_body`.
    ValidationBodyTooLarge,
    /// The request body did not arrive within the listener's `body_timeout`.
    ValidationBodyTimeout,
    /// The body is not of the media type the route takes.
    ValidationUnsupportedMediaType,
    /// An absolute-form or authority-form request target: the proxy is not an open proxy.
    ValidationInvalidTarget,
    /// No route for this path.
    ResourceNotFound,
    /// The route exists but not for this method.
    ResourceMethodNotAllowed,
    /// The upstream could not be reached, or dropped the connection before answering.
    ProviderUnreachable,
    /// The upstream did not answer in time.
    ProviderTimeout,
    /// The upstream's circuit is open: it failed repeatedly, and the proxy fails fast.
    ProviderUnavailable,
    /// The upstream's answer was larger than `max_response_body`.
    ProviderResponseTooLarge,
    /// The upstream answered something the proxy could not use (bad discovery, bad JWE).
    ProviderUnexpectedResponse,
    /// The upstream throttled this route; the proxy paused it or sends at a reduced rate.
    ProviderThrottled,
    /// The route's own configured quota is exhausted and no permit came within `max_wait`.
    ResourceRateLimited,
    /// Something inside the proxy failed (a bug, or a key that cannot sign).
    SystemInternalError,
    /// The shared binding store (several replicas) could not be reached in time.
    SystemSharedStateUnavailable,
}

impl ProblemCode {
    /// The stable code string, e.g. `AUTH_TOKEN_REUSED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthTokenMissing => "AUTH_TOKEN_MISSING",
            Self::AuthTokenUnknown => "AUTH_TOKEN_UNKNOWN",
            Self::AuthTokenReused => "AUTH_TOKEN_REUSED",
            Self::AuthLoginUnknown => "AUTH_LOGIN_UNKNOWN",
            Self::AuthApiKeyInvalid => "AUTH_API_KEY_INVALID",
            Self::ValidationMissingParameter => "VALIDATION_MISSING_PARAMETER",
            Self::ValidationInvalidParameter => "VALIDATION_INVALID_PARAMETER",
            Self::ValidationBodyTooLarge => "VALIDATION_BODY_TOO_LARGE",
            Self::ValidationBodyTimeout => "VALIDATION_BODY_TIMEOUT",
            Self::ValidationUnsupportedMediaType => "VALIDATION_UNSUPPORTED_MEDIA_TYPE",
            Self::ValidationInvalidTarget => "VALIDATION_INVALID_TARGET",
            Self::ResourceNotFound => "RESOURCE_NOT_FOUND",
            Self::ResourceMethodNotAllowed => "RESOURCE_METHOD_NOT_ALLOWED",
            Self::ProviderUnreachable => "PROVIDER_UNREACHABLE",
            Self::ProviderTimeout => "PROVIDER_TIMEOUT",
            Self::ProviderUnavailable => "PROVIDER_UNAVAILABLE",
            Self::ProviderResponseTooLarge => "PROVIDER_RESPONSE_TOO_LARGE",
            Self::ProviderThrottled => "PROVIDER_THROTTLED",
            Self::ProviderUnexpectedResponse => "PROVIDER_UNEXPECTED_RESPONSE",
            Self::ResourceRateLimited => "RESOURCE_RATE_LIMITED",
            Self::SystemInternalError => "SYSTEM_INTERNAL_ERROR",
            Self::SystemSharedStateUnavailable => "SYSTEM_SHARED_STATE_UNAVAILABLE",
        }
    }

    /// The HTTP status that always goes with this code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::AuthTokenMissing
            | Self::AuthTokenUnknown
            | Self::AuthTokenReused
            | Self::AuthApiKeyInvalid => StatusCode::UNAUTHORIZED,
            Self::ValidationInvalidParameter
            | Self::ValidationMissingParameter
            | Self::AuthLoginUnknown
            | Self::ValidationInvalidTarget => StatusCode::BAD_REQUEST,
            Self::ValidationBodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ValidationBodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::ValidationUnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::ResourceNotFound => StatusCode::NOT_FOUND,
            Self::ResourceMethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::ProviderUnreachable
            | Self::ProviderResponseTooLarge
            | Self::ProviderUnexpectedResponse => StatusCode::BAD_GATEWAY,
            Self::ProviderTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::ProviderUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::ProviderThrottled | Self::ResourceRateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::SystemInternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::SystemSharedStateUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Every code, for the README table and its test.
    pub const ALL: [ProblemCode; 22] = [
        Self::AuthTokenMissing,
        Self::AuthTokenUnknown,
        Self::AuthTokenReused,
        Self::AuthLoginUnknown,
        Self::AuthApiKeyInvalid,
        Self::ValidationMissingParameter,
        Self::ValidationInvalidParameter,
        Self::ValidationBodyTooLarge,
        Self::ValidationBodyTimeout,
        Self::ValidationUnsupportedMediaType,
        Self::ValidationInvalidTarget,
        Self::ResourceNotFound,
        Self::ResourceMethodNotAllowed,
        Self::ProviderUnreachable,
        Self::ProviderTimeout,
        Self::ProviderUnavailable,
        Self::ProviderResponseTooLarge,
        Self::ProviderThrottled,
        Self::ProviderUnexpectedResponse,
        Self::ResourceRateLimited,
        Self::SystemInternalError,
        Self::SystemSharedStateUnavailable,
    ];
}

/// An error the proxy itself decided on, with a detail for the app.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {detail}", code.as_str())]
pub struct ProxyError {
    /// The catalogue code.
    pub code: ProblemCode,
    /// A human-readable sentence naming what was wrong (never a secret).
    pub detail: String,
    /// When the app may try again (sent as `Retry-After`, whole seconds rounded up).
    pub retry_after: Option<std::time::Duration>,
    /// The upstream error that caused this answer, if one did.
    pub upstream: Option<UpstreamIds>,
    /// The methods the path takes (sent as `Allow` with a 405).
    pub allow: Option<&'static str>,
}

/// The `id` and `trace_id` of an upstream error, for the problem's `context`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamIds {
    /// Singpass's `id`.
    pub id: Option<String>,
    /// Singpass's `trace_id`.
    pub trace_id: Option<String>,
}

impl ProxyError {
    /// An error with its code and detail.
    pub fn new(code: ProblemCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            retry_after: None,
            upstream: None,
            allow: None,
        }
    }
    /// Adds a `Retry-After`.
    pub fn with_retry_after(mut self, after: std::time::Duration) -> Self {
        self.retry_after = Some(after);
        self
    }
    /// Adds an `Allow` (for a 405).
    pub fn with_allow(mut self, methods: &'static str) -> Self {
        self.allow = Some(methods);
        self
    }
    /// Names the upstream error that caused this one.
    pub fn with_upstream(mut self, ids: Option<UpstreamIds>) -> Self {
        self.upstream = ids;
        self
    }
    /// True for the proxy's own decisions (an unknown token, a spent quota), as opposed to
    /// what it could not get from the upstream (the `PROVIDER_` codes).
    pub fn is_local(&self) -> bool {
        !self.code.as_str().starts_with("PROVIDER_")
    }
}

/// An error on its way up, with the [`Outcome`] facts the layers it passed have added (the
/// error's counterpart of the response extension). Displays as the error it carries.
#[derive(Debug)]
pub struct Failed {
    /// What is known about the request so far.
    pub outcome: Outcome,
    /// The error itself.
    pub source: BoxError,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for Failed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

/// Adds facts to an error on its way up (wrapping it in [`Failed`] the first time).
pub(crate) fn annotate(err: BoxError, add: impl FnOnce(&mut Outcome)) -> BoxError {
    match err.downcast::<Failed>() {
        Ok(mut failed) => {
            add(&mut failed.outcome);
            failed
        }
        Err(source) => {
            let mut outcome = Outcome::default();
            add(&mut outcome);
            Box::new(Failed { outcome, source })
        }
    }
}

/// The facts an error carries up, if any.
pub(crate) fn outcome_of(err: &BoxError) -> Option<&Outcome> {
    err.downcast_ref::<Failed>().map(|f| &f.outcome)
}

impl From<crate::binding::BindingError> for ProxyError {
    /// The store is down or slow: a short wait may help, so the app is told to try again in 1 s.
    fn from(err: crate::binding::BindingError) -> Self {
        // Not a warning per request: the Redis circuit logs each outage once.
        tracing::debug!(error = %err, "the binding store failed");
        Self::new(
            ProblemCode::SystemSharedStateUnavailable,
            "the proxy's shared binding store is unavailable; try again shortly",
        )
        .with_retry_after(std::time::Duration::from_secs(1))
    }
}

/// What a problem answer says about the request it answers.
#[derive(Debug, Clone, Default)]
pub struct ProblemContext<'a> {
    /// The request path (`instance`).
    pub instance: &'a str,
    /// The proxy's request id.
    pub request_id: Option<&'a str>,
    /// Where the codes are documented (`problem_doc_url`); the default when None.
    pub doc_url: Option<&'a str>,
}

/// Renders a problem+json answer.
pub fn problem_response(err: &ProxyError, ctx: &ProblemContext<'_>) -> Response<Bytes> {
    let code = err.code.as_str();
    let mut context = serde_json::Map::new();
    if let Some(id) = ctx.request_id {
        context.insert("request_id".into(), id.into());
    }
    if let Some(up) = &err.upstream {
        if let Some(id) = &up.id {
            context.insert("upstream_id".into(), id.as_str().into());
        }
        if let Some(trace) = &up.trace_id {
            context.insert("upstream_trace_id".into(), trace.as_str().into());
        }
    }
    let body = json!({
        "type": format!("urn:myinfo-proxy:problem:{code}"),
        "title": code,
        "status": err.code.status().as_u16(),
        "detail": err.detail,
        "instance": ctx.instance,
        "timestamp": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        "context": context,
        "doc_url": ctx.doc_url.unwrap_or(crate::config::defaults::PROBLEM_DOC_URL),
    });
    let mut res = Response::new(Bytes::from(body.to_string()));
    *res.status_mut() = err.code.status();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(after) = err.retry_after {
        let secs = after
            .as_secs()
            .saturating_add(u64::from(after.subsec_nanos() > 0));
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    if let Some(allow) = err.allow {
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    res
}

/// Classifies any error that reached the edge of the stack. This is the one mapping: the last
/// branch logs what it did not recognise and answers 500.
pub fn classify(err: &BoxError) -> ProxyError {
    if let Some(failed) = err.downcast_ref::<Failed>() {
        return classify(&failed.source);
    }
    if let Some(e) = err.downcast_ref::<ProxyError>() {
        return e.clone();
    }
    if err.is::<tower::timeout::error::Elapsed>() {
        return ProxyError::new(
            ProblemCode::ProviderTimeout,
            "the upstream did not answer within the attempt timeout",
        );
    }
    if crate::upstream::transport_failure(err).is_some() {
        return ProxyError::new(
            ProblemCode::ProviderUnreachable,
            format!(
                "the upstream could not be reached: {}",
                error_chain(err.as_ref())
            ),
        );
    }
    tracing::error!(error = %error_chain(err.as_ref()), "unclassified error inside the proxy");
    ProxyError::new(
        ProblemCode::SystemInternalError,
        "an internal error occurred; see the proxy's log",
    )
}

/// `a: b: c` from an error and its sources.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
