//! `POST {base}/token`: the authorization-code exchange, with the form, DPoP proof, client
//! assertion and PKCE checks Myinfo v4 applies, answering a DPoP-bound access token.

use crate::checks::assertion::{
    verify_client_assertion, AssertionExpectation, V4_MAX_ASSERTION_LIFETIME_SECS,
};
use crate::checks::dpop::{verify_dpop_proof, ProofExpectation};
use crate::checks::jose::{s256, unix_now};
use crate::errors::Rejection;
use crate::form::FormBody;
use crate::request::{json_response, EmulatorRequest, Observed};
use crate::signing::{random_id, AccessGrant};
use crate::state::EmulatorState;

pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The form fields every token request must carry, in the order they are checked.
const REQUIRED_FIELDS: [&str; 7] = [
    "grant_type",
    "code",
    "redirect_uri",
    "client_id",
    "code_verifier",
    "client_assertion_type",
    "client_assertion",
];

/// RFC 7636: 43 to 128 characters from the unreserved set.
pub(crate) fn is_valid_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~'))
}

pub(crate) fn exchange_code(
    state: &EmulatorState,
    request: EmulatorRequest<'_>,
    observed: &mut Observed,
) -> Result<http::Response<http_body_util::Full<bytes::Bytes>>, Rejection> {
    let now = unix_now();
    let form = FormBody::parse(request)?;
    for field in REQUIRED_FIELDS {
        form.required(field)?;
    }
    if form.required("grant_type")? != "authorization_code" {
        return Err(Rejection::bad_request("Invalid grant_type"));
    }
    if form.required("client_assertion_type")? != JWT_BEARER {
        return Err(Rejection::bad_request("Invalid client_assertion_type"));
    }
    let client_id = form.required("client_id")?;
    if client_id != state.config.client_id {
        // The table's answer to an unknown client_id.
        return Err(Rejection::not_found());
    }

    let token_url = state.token_url();
    let proof = verify_dpop_proof(
        request.headers,
        ProofExpectation {
            htm: "POST",
            htu: &token_url,
            access_token: None,
            nonces: None,
        },
        &state.proof_jtis,
        now,
        &mut observed.proof_jti,
    )?;
    verify_client_assertion(
        form.required("client_assertion")?,
        AssertionExpectation {
            client_id,
            audience: &token_url,
            client_jwks: &state.config.client_jwks,
            proof_jkt: Some(&proof.jkt),
            max_lifetime_secs: V4_MAX_ASSERTION_LIFETIME_SECS,
        },
        &state.assertion_jtis,
        now,
        &mut observed.assertion_jti,
    )?;

    // The code is spent by any authenticated attempt, successful or not, so a retry after a
    // PKCE or redirect_uri mistake fails as it would upstream. Wordings are extrapolated.
    let code = state
        .take_code(form.required("code")?)
        .ok_or_else(|| Rejection::bad_request("Invalid authorization code"))?;
    if form.required("redirect_uri")? != code.redirect_uri {
        return Err(Rejection::bad_request("Invalid redirect_uri"));
    }
    let verifier = form.required("code_verifier")?;
    if !is_valid_code_verifier(verifier) || s256(verifier) != code.code_challenge {
        return Err(Rejection::bad_request("Invalid code_verifier"));
    }

    let lifetime = i64::try_from(state.config.token_lifetime.as_secs()).unwrap_or(i64::MAX);
    let grant = AccessGrant {
        sub: code.sub,
        scope: code.scope,
        jkt: proof.jkt,
        jti: random_id(),
        exp: now.saturating_add(lifetime),
    };
    let access_token = state
        .key
        .issue_access_token(&grant, &state.base_url, now)
        .map_err(|_| Rejection::internal())?;
    Ok(json_response(&serde_json::json!({
        "access_token": access_token,
        "token_type": "DPoP",
        "expires_in": lifetime,
        "scope": grant.scope,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_verifiers_follow_rfc_7636() {
        assert!(is_valid_code_verifier(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!is_valid_code_verifier("short"));
        assert!(!is_valid_code_verifier(&"a".repeat(129)));
        assert!(!is_valid_code_verifier(&format!("{}+", "a".repeat(43))));
    }
}
