//! `POST /fapi/par` (RFC 9126 as Singpass FAPI 2.0 applies it): the authorization request,
//! authenticated by a client assertion for the issuer and bound to a DPoP key (a proof, or a
//! `dpop_jkt` field), answered `201 {"request_uri", "expires_in": 60}`.

use bytes::Bytes;
use http::{Response, StatusCode, Uri};
use http_body_util::Full;
use tokio::time::Instant;

use crate::checks::client_auth::{require_fields, verify_proof_for_post, PresentedClient};
use crate::checks::jose::unix_now;
use crate::discovery::ACR_VALUES;
use crate::errors::Rejection;
use crate::fapi::grants::{PushedRequest, REQUEST_URI_LIFETIME, REQUEST_URI_PREFIX};
use crate::form::FormBody;
use crate::request::{json_response_with, EmulatorRequest, Observed};
use crate::signing::random_id;
use crate::state::EmulatorState;

/// The authorization parameters PAR must carry (client authentication comes on top).
const REQUIRED_FIELDS: [&str; 8] = [
    "response_type",
    "scope",
    "state",
    "nonce",
    "client_id",
    "redirect_uri",
    "code_challenge",
    "code_challenge_method",
];

pub(crate) fn push_authorization_request(
    state: &EmulatorState,
    request: EmulatorRequest<'_>,
    observed: &mut Observed,
) -> Result<Response<Full<Bytes>>, Rejection> {
    let now = unix_now();
    let form =
        FormBody::parse(request).map_err(|rejection| rejection.or_oauth("invalid_request"))?;
    require_fields(&form, &REQUIRED_FIELDS)?;
    if form.contains("request_uri") {
        // RFC 9126 section 2.1: a pushed request cannot point at another.
        return Err(Rejection::invalid_request(
            "request_uri is not allowed at PAR",
        ));
    }
    let client = PresentedClient::read(&form, state, true)?;
    let dpop_jkt = form
        .optional("dpop_jkt")
        .map_err(|rejection| rejection.or_oauth("invalid_request"))?;
    let jkt = if request.headers.contains_key("dpop") {
        let proof = verify_proof_for_post(
            state,
            request.headers,
            &state.fapi_url("/par"),
            now,
            observed,
        )?;
        // RFC 9449 section 10.1: both given, they must name the same key.
        if dpop_jkt.is_some_and(|jkt| jkt != proof.jkt) {
            return Err(Rejection::invalid_dpop_proof(
                "dpop_jkt does not match the DPoP proof's key",
            ));
        }
        proof.jkt
    } else {
        let jkt = dpop_jkt
            .ok_or_else(|| Rejection::invalid_request("A DPoP proof or a dpop_jkt is required"))?;
        if !is_sha256_base64url(jkt) {
            return Err(Rejection::invalid_request("Invalid dpop_jkt"));
        }
        jkt.to_owned()
    };
    client.authenticate(state, &state.fapi_issuer(), now, observed)?;

    let pushed = authorization_parameters(&form, jkt)?;
    let request_uri = format!("{REQUEST_URI_PREFIX}{}", random_id());
    let at = Instant::now();
    state
        .fapi
        .pushed
        .insert(request_uri.clone(), pushed, REQUEST_URI_LIFETIME, at);
    Ok(json_response_with(
        StatusCode::CREATED,
        &serde_json::json!({
            "request_uri": request_uri,
            "expires_in": REQUEST_URI_LIFETIME.as_secs(),
        }),
    ))
}

/// The request's authorization parameters, checked the way the authorization endpoint would.
fn authorization_parameters(form: &FormBody, jkt: String) -> Result<PushedRequest, Rejection> {
    let field = |name: &str| {
        form.required(name)
            .map_err(|rejection| rejection.or_oauth("invalid_request"))
    };
    if field("response_type")? != "code" {
        return Err(Rejection::invalid_request("Unsupported response_type"));
    }
    let scope = field("scope")?;
    if !scope.split_whitespace().any(|value| value == "openid") {
        return Err(Rejection::invalid_scope("scope must contain openid"));
    }
    if field("code_challenge_method")? != "S256" {
        return Err(Rejection::invalid_request(
            "Unsupported code_challenge_method",
        ));
    }
    let code_challenge = field("code_challenge")?;
    if !is_sha256_base64url(code_challenge) {
        return Err(Rejection::invalid_request("Invalid code_challenge"));
    }
    let redirect_uri = field("redirect_uri")?;
    let is_absolute = redirect_uri
        .parse::<Uri>()
        .is_ok_and(|uri| matches!(uri.scheme_str(), Some("http" | "https")));
    if !is_absolute {
        return Err(Rejection::invalid_request("Invalid redirect_uri"));
    }
    let acr_values = form
        .optional("acr_values")
        .map_err(|rejection| rejection.or_oauth("invalid_request"))?;
    let acr = match acr_values.and_then(|values| values.split_whitespace().next()) {
        Some(acr) if ACR_VALUES.contains(&acr) => acr.to_owned(),
        Some(_) => return Err(Rejection::invalid_request("Unsupported acr_values")),
        None => ACR_VALUES[0].to_owned(),
    };
    Ok(PushedRequest {
        scope: scope.to_owned(),
        state: field("state")?.to_owned(),
        nonce: field("nonce")?.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        code_challenge: code_challenge.to_owned(),
        acr,
        jkt,
    })
}

/// A base64url SHA-256 without padding (a PKCE S256 challenge, a JWK thumbprint): 43
/// characters of the URL-safe alphabet.
fn is_sha256_base64url(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_and_thumbprints_have_the_sha256_shape() {
        assert!(is_sha256_base64url(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!is_sha256_base64url(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"
        ));
        assert!(!is_sha256_base64url(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"
        ));
    }
}
