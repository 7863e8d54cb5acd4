//! `POST {base}/token`: the authorization-code exchange, with the form, DPoP proof, client
//! assertion and PKCE checks Myinfo v4 applies, answering a DPoP-bound access token.

use http::header;

use super::assertion::{verify_client_assertion, AssertionExpectation};
use super::dpop::{verify_dpop_proof, ProofExpectation};
use super::errors::Rejection;
use super::jose::{s256, unix_now};
use super::signing::{random_id, AccessGrant};
use super::state::EmulatorState;
use super::v4::{json_response, Observed, V4Request};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

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

/// The decoded `application/x-www-form-urlencoded` body.
struct TokenForm {
    fields: Vec<(String, String)>,
}

impl TokenForm {
    /// A form body, or "No body found for POST request" for an empty or non-form body (a form
    /// parser would find nothing in it).
    fn parse(request: V4Request<'_>) -> Result<Self, Rejection> {
        let is_form = request
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|essence| {
                essence
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form || request.body.is_empty() {
            return Err(Rejection::bad_request("No body found for POST request"));
        }
        let fields = form_urlencoded::parse(request.body)
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        Ok(TokenForm { fields })
    }

    /// The single non-empty value of `name`.
    fn required(&self, name: &str) -> Result<&str, Rejection> {
        let mut values = self
            .fields
            .iter()
            .filter(|(field, _)| field == name)
            .map(|(_, value)| value.as_str());
        match (values.next(), values.next()) {
            (None, _) => Err(Rejection::missing_from_body(name)),
            (Some(""), None) => Err(Rejection::missing_from_body(name)),
            (Some(value), None) => Ok(value),
            // Extrapolated wording: the table has no entry for a repeated field.
            (Some(_), Some(_)) => Err(Rejection::bad_request(format!("Invalid {name}"))),
        }
    }
}

/// RFC 7636: 43 to 128 characters from the unreserved set.
fn is_valid_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~'))
}

pub(crate) fn exchange_code(
    state: &EmulatorState,
    request: V4Request<'_>,
    observed: &mut Observed,
) -> Result<http::Response<http_body_util::Full<bytes::Bytes>>, Rejection> {
    let now = unix_now();
    let form = TokenForm::parse(request)?;
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
            proof_jkt: &proof.jkt,
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
