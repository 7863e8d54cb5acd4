//! Singpass-shaped rejections: the status, the `error_description`, and the JSON error body
//! (`{"id", "error", "error_description", "trace_id"}`) every refusal is answered with.
//!
//! FAPI and CIBA refusals use the same body with an OAuth `error` code instead of a class
//! (constructors in `oauth.rs`).
//!
//! Messages come from the Myinfo v4 error table where it has one (`seeds/000_*`). Where the
//! table has no entry (a wrong `aud`, a stale `iat`, a PKCE mismatch, ...) the message follows
//! the table's own "Missing/Invalid {claim} in {token}" pattern; those are marked below.

pub(crate) mod oauth;

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;
use rand::RngCore;

/// Why the emulator refused a request; turned into HTTP in exactly one place,
/// [`Rejection::to_response`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) status: StatusCode,
    pub(crate) description: String,
    /// The OAuth `error` code (FAPI, CIBA); `None` for a Singpass class chosen by status.
    pub(crate) oauth_error: Option<&'static str>,
    /// Whether the answer carries `WWW-Authenticate: DPoP error="<code>"` (a resource
    /// server's refusal, RFC 9449 section 7.1).
    pub(crate) dpop_challenge: bool,
}

/// Which signed token a claim problem was found in; decides both the wording and the status
/// (assertion problems are 400, proof problems 401, as in the seed table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenKind {
    ClientAssertion,
    DpopProof,
}

impl TokenKind {
    fn label(self) -> &'static str {
        match self {
            TokenKind::ClientAssertion => "client_assertion",
            TokenKind::DpopProof => "DPoP Proof",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            TokenKind::ClientAssertion => StatusCode::BAD_REQUEST,
            TokenKind::DpopProof => StatusCode::UNAUTHORIZED,
        }
    }

    /// "Missing {claim} in {token}".
    pub(crate) fn missing(self, claim: &str) -> Rejection {
        Rejection::new(
            self.status(),
            format!("Missing {claim} in {}", self.label()),
        )
    }

    /// "Invalid {claim} in {token}".
    pub(crate) fn invalid(self, claim: &str) -> Rejection {
        Rejection::new(
            self.status(),
            format!("Invalid {claim} in {}", self.label()),
        )
    }

    /// The token as a whole is malformed: "Invalid client_assertion" / "Invalid DPoP Proof".
    pub(crate) fn malformed(self) -> Rejection {
        Rejection::new(self.status(), format!("Invalid {}", self.label()))
    }

    /// A `jti` seen before. "Duplicate client_assertion" is from the table; the proof's
    /// wording is extrapolated from it.
    pub(crate) fn replayed(self) -> Rejection {
        Rejection::new(self.status(), format!("Duplicate {}", self.label()))
    }
}

impl Rejection {
    pub(crate) fn new(status: StatusCode, description: impl Into<String>) -> Self {
        Rejection {
            status,
            description: description.into(),
            oauth_error: None,
            dpop_challenge: false,
        }
    }

    pub(crate) fn bad_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, description)
    }

    pub(crate) fn unauthorized(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, description)
    }

    pub(crate) fn forbidden(description: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, description)
    }

    /// A signature that does not verify, or a `kid` the client's JWKS does not hold.
    pub(crate) fn bad_signature() -> Self {
        Self::unauthorized("Invalid JWS Verification")
    }

    pub(crate) fn missing_proof() -> Self {
        Self::bad_request("Missing DPoP Proof")
    }

    pub(crate) fn missing_from_body(param: &str) -> Self {
        Self::bad_request(format!("Missing {param} from body"))
    }

    pub(crate) fn missing_from_headers(param: &str) -> Self {
        Self::bad_request(format!("Missing {param} from headers"))
    }

    pub(crate) fn missing_from_query(param: &str) -> Self {
        Self::bad_request(format!("Missing {param} from query parameters"))
    }

    /// The proof's key is not the one the assertion (`cnf.jkt`) or the token is bound to.
    pub(crate) fn wrong_key_binding() -> Self {
        Self::unauthorized("Invalid jkt in DPoP Proof")
    }

    pub(crate) fn invalid_access_token() -> Self {
        Self::forbidden("DPoP-bound access_token invalid")
    }

    pub(crate) fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not found.")
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.")
    }

    pub(crate) fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error.")
    }

    /// The Singpass error body, with a fresh `id` and `trace_id` each time.
    pub(crate) fn to_response(&self) -> ErrorAnswer {
        let class = if self.status.is_server_error() {
            "SERVER_SIDE_ERROR"
        } else {
            "CLIENT_SIDE_ERROR"
        };
        let error = self.oauth_error.unwrap_or(class);
        let mut answer = error_answer(self.status, error, &self.description);
        if self.dpop_challenge {
            // Descriptions are the emulator's own ASCII texts; a quote would end the
            // parameter, so none is let through.
            let challenge = format!(
                "DPoP error=\"{error}\", error_description=\"{}\"",
                self.description.replace(['"', '\\'], "'")
            );
            if let Ok(value) = header::HeaderValue::from_str(&challenge) {
                answer
                    .response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        }
        answer
    }
}

/// An error response and the identifiers its body carries, which the request log keeps.
#[derive(Debug)]
pub(crate) struct ErrorAnswer {
    pub(crate) response: Response<Full<Bytes>>,
    pub(crate) id: String,
    pub(crate) trace_id: String,
}

/// `{"id", "error", "error_description", "trace_id"}` with a fresh `id` and `trace_id`: the
/// Singpass error body, and also the OAuth one when `error` is an OAuth code (same members).
pub(crate) fn error_answer(status: StatusCode, error: &str, description: &str) -> ErrorAnswer {
    let id = error_id();
    let trace_id = hex(&random_bytes::<16>());
    let body = serde_json::json!({
        "id": id,
        "error": error,
        "error_description": description,
        "trace_id": trace_id,
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    ErrorAnswer {
        response,
        id,
        trace_id,
    }
}

/// A version-4 UUID's shape (8-4-4-4-12 hex), as Singpass's `id` looks.
fn error_id() -> String {
    let mut bytes = random_bytes::<16>();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_ids_have_the_singpass_shapes() {
        let id = error_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_eq!(hex(&random_bytes::<16>()).len(), 32);
    }

    #[test]
    fn claim_problems_read_like_the_seed_table() {
        assert_eq!(
            TokenKind::ClientAssertion.missing("jti"),
            Rejection::bad_request("Missing jti in client_assertion")
        );
        assert_eq!(
            TokenKind::DpopProof.invalid("htu"),
            Rejection::unauthorized("Invalid htu in DPoP Proof")
        );
        assert_eq!(
            TokenKind::ClientAssertion.replayed().description,
            "Duplicate client_assertion"
        );
    }
}
