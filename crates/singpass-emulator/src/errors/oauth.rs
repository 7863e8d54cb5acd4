//! OAuth-style refusals of the FAPI 2.0 and CIBA endpoints: the `error` codes of RFC 6749,
//! RFC 9449 (DPoP) and OpenID CIBA, their statuses, and how a proof problem reads at an
//! authorization server (400) versus a resource server (401 with a `WWW-Authenticate: DPoP`
//! challenge).
//!
//! The body is the Singpass one (`{"error", "error_description", "id", "trace_id"}`): real
//! Singpass FAPI errors are documented only as `{"error", "error_description"}` and may lack
//! `id` and `trace_id`; the emulator sends them so that the proxy's error logs can be tested.

use http::StatusCode;

use crate::errors::Rejection;

impl Rejection {
    /// A refusal with an OAuth `error` code.
    pub(crate) fn oauth(
        status: StatusCode,
        code: &'static str,
        description: impl Into<String>,
    ) -> Self {
        let mut rejection = Rejection::new(status, description);
        rejection.oauth_error = Some(code);
        rejection
    }

    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        Self::oauth(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// Client authentication failed: no or a bad client assertion, or an unknown client.
    pub(crate) fn invalid_client(description: impl Into<String>) -> Self {
        Self::oauth(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    /// The code, request or auth_req_id is unknown, spent, expired or bound elsewhere.
    pub(crate) fn invalid_grant(description: impl Into<String>) -> Self {
        Self::oauth(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    pub(crate) fn invalid_scope(description: impl Into<String>) -> Self {
        Self::oauth(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    pub(crate) fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::oauth(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            description,
        )
    }

    /// A DPoP proof problem, as an authorization server answers it.
    pub(crate) fn invalid_dpop_proof(description: impl Into<String>) -> Self {
        Self::oauth(StatusCode::BAD_REQUEST, "invalid_dpop_proof", description)
    }

    /// The proof lacks the server's current nonce (RFC 9449 section 8), as an authorization
    /// server answers it.
    pub(crate) fn use_dpop_nonce() -> Self {
        Self::oauth(
            StatusCode::BAD_REQUEST,
            "use_dpop_nonce",
            "Authorization server requires nonce in DPoP proof",
        )
    }

    /// The access token is missing, unknown, expired or presented the wrong way (401 with a
    /// DPoP challenge).
    pub(crate) fn invalid_token(description: impl Into<String>) -> Self {
        let mut rejection = Self::oauth(StatusCode::UNAUTHORIZED, "invalid_token", description);
        rejection.dpop_challenge = true;
        rejection
    }

    /// CIBA: the user has not answered yet.
    pub(crate) fn authorization_pending() -> Self {
        Self::oauth(
            StatusCode::BAD_REQUEST,
            "authorization_pending",
            "The authorization request is still pending",
        )
    }

    /// CIBA: polled sooner than `interval` after the previous poll.
    pub(crate) fn slow_down() -> Self {
        Self::oauth(
            StatusCode::BAD_REQUEST,
            "slow_down",
            "Polling too fast; wait the interval between polls",
        )
    }

    /// CIBA: polled while another poll of the same auth_req_id is still held. CIBA names no
    /// code for it; it is polling too fast, so `slow_down`.
    pub(crate) fn overlapping_poll() -> Self {
        Self::oauth(
            StatusCode::BAD_REQUEST,
            "slow_down",
            "A poll for this auth_req_id is still being held; wait for its answer",
        )
    }

    /// CIBA: the auth_req_id has expired.
    pub(crate) fn expired_token() -> Self {
        Self::oauth(
            StatusCode::BAD_REQUEST,
            "expired_token",
            "The auth_req_id has expired",
        )
    }

    /// CIBA: the user denied the request.
    pub(crate) fn access_denied() -> Self {
        Self::oauth(
            StatusCode::BAD_REQUEST,
            "access_denied",
            "The user denied the authorization request",
        )
    }

    /// Something the emulator itself could not do (signing, encrypting).
    pub(crate) fn server_error() -> Self {
        Self::oauth(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "An unexpected error occurred.",
        )
    }

    /// Discovery switched off by the test.
    pub(crate) fn temporarily_unavailable() -> Self {
        Self::oauth(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "The service is temporarily unavailable.",
        )
    }

    /// A refusal from a shared check (form, proof) under an OAuth code, keeping its wording;
    /// one that already has a code keeps it.
    pub(crate) fn or_oauth(self, code: &'static str) -> Self {
        if self.oauth_error.is_some() {
            return self;
        }
        let status = if code == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        Self::oauth(status, code, self.description)
    }

    /// The same refusal as a resource server (userinfo) answers it: 401 with a
    /// `WWW-Authenticate: DPoP` challenge for proof and token problems; request-shape
    /// problems stay 400 but carry the challenge too.
    pub(crate) fn at_resource_server(mut self) -> Self {
        if matches!(
            self.oauth_error,
            Some("use_dpop_nonce" | "invalid_dpop_proof" | "invalid_token")
        ) {
            self.status = StatusCode::UNAUTHORIZED;
        }
        if self.oauth_error.is_some() {
            self.dpop_challenge = true;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_check_wording_is_kept_under_the_oauth_code() {
        let proof =
            Rejection::unauthorized("Invalid htu in DPoP Proof").or_oauth("invalid_dpop_proof");
        assert_eq!(proof.status, StatusCode::BAD_REQUEST);
        assert_eq!(proof.oauth_error, Some("invalid_dpop_proof"));
        assert_eq!(proof.description, "Invalid htu in DPoP Proof");
        let nonce = Rejection::use_dpop_nonce().or_oauth("invalid_dpop_proof");
        assert_eq!(nonce.oauth_error, Some("use_dpop_nonce"));
        let client =
            Rejection::bad_request("Duplicate client_assertion").or_oauth("invalid_client");
        assert_eq!(client.status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn resource_server_refusals_are_401_challenges() {
        let nonce = Rejection::use_dpop_nonce().at_resource_server();
        assert_eq!(nonce.status, StatusCode::UNAUTHORIZED);
        assert!(nonce.dpop_challenge);
        let shape = Rejection::invalid_request("query").at_resource_server();
        assert_eq!(shape.status, StatusCode::BAD_REQUEST);
        let answer = Rejection::invalid_token("unknown").to_response();
        let challenge = answer.response.headers().get("www-authenticate");
        assert_eq!(
            challenge.and_then(|value| value.to_str().ok()),
            Some(r#"DPoP error="invalid_token", error_description="unknown""#)
        );
    }
}
