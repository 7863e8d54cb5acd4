//! The metadata the emulator publishes: the FAPI issuer's and the CIBA (root) issuer's
//! `openid-configuration` (503 while a test has switched discovery off), and the JWKS of the
//! emulator's signing key, the same under every issuer.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use serde_json::{json, Value};

use crate::errors::Rejection;
use crate::request::json_response;
use crate::sealing::FAPI_CONTENT_ENCRYPTION;
use crate::state::EmulatorState;

/// Key agreements the issuers may use for id_token and userinfo JWEs (Singpass's list); the
/// emulator itself always uses ECDH-ES+A256KW.
const ENCRYPTION_ALGS: [&str; 3] = ["ECDH-ES+A256KW", "ECDH-ES+A192KW", "ECDH-ES+A128KW"];

/// The `acr` values of Singpass login; the id_token claims the first unless PAR asked for one.
pub(crate) const ACR_VALUES: [&str; 3] = [
    "urn:singpass:authentication:loa:2",
    "urn:singpass:authentication:loa:3",
    "urn:singpass:authentication:loa:1",
];

/// The scopes of the sample person (beyond `openid`).
const SAMPLE_SCOPES: [&str; 12] = [
    "uinfin",
    "name",
    "aliasname",
    "sex",
    "race",
    "nationality",
    "residentialstatus",
    "dob",
    "birthcountry",
    "email",
    "mobileno",
    "regadd",
];

/// `GET /fapi/.well-known/openid-configuration`.
pub(crate) fn fapi_configuration(
    state: &EmulatorState,
) -> Result<Response<Full<Bytes>>, Rejection> {
    ensure_available(state)?;
    let issuer = state.fapi_issuer();
    let mut scopes = vec!["openid"];
    scopes.extend(SAMPLE_SCOPES);
    Ok(json_response(&json!({
        "issuer": issuer,
        "pushed_authorization_request_endpoint": format!("{issuer}/par"),
        "require_pushed_authorization_requests": true,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "scopes_supported": scopes,
        "subject_types_supported": ["public"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
        "dpop_signing_alg_values_supported": ["ES256"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "id_token_encryption_alg_values_supported": ENCRYPTION_ALGS,
        "id_token_encryption_enc_values_supported": [FAPI_CONTENT_ENCRYPTION],
        "userinfo_signing_alg_values_supported": ["ES256"],
        "userinfo_encryption_alg_values_supported": ENCRYPTION_ALGS,
        "userinfo_encryption_enc_values_supported": [FAPI_CONTENT_ENCRYPTION],
        "acr_values_supported": ACR_VALUES,
        "claims_supported": id_token_claim_names(),
    })))
}

/// `GET /.well-known/openid-configuration`: the non-FAPI issuer, offering CIBA (poll mode).
pub(crate) fn ciba_configuration(
    state: &EmulatorState,
) -> Result<Response<Full<Bytes>>, Rejection> {
    ensure_available(state)?;
    let issuer = state.origin.as_str();
    Ok(json_response(&json!({
        "issuer": issuer,
        "backchannel_authentication_endpoint": format!("{issuer}/bc-auth"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "backchannel_token_delivery_modes_supported": ["poll"],
        "backchannel_user_code_parameter_supported": false,
        "grant_types_supported": ["urn:openid:params:grant-type:ciba"],
        "scopes_supported": ["openid"],
        "subject_types_supported": ["public"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "id_token_encryption_alg_values_supported": ENCRYPTION_ALGS,
        "id_token_encryption_enc_values_supported": [FAPI_CONTENT_ENCRYPTION],
        "claims_supported": id_token_claim_names(),
    })))
}

/// `{"keys":[...]}`: the emulator's public signing key (kid, `alg` ES256, `use` sig).
pub(crate) fn signing_keys(state: &EmulatorState) -> Response<Full<Bytes>> {
    let jwks: Value = state.key.public_jwks().as_ref().clone().into();
    json_response(&jwks)
}

fn ensure_available(state: &EmulatorState) -> Result<(), Rejection> {
    if state.discovery_available.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err(Rejection::temporarily_unavailable())
    }
}

fn id_token_claim_names() -> [&'static str; 10] {
    [
        "iss",
        "aud",
        "sub",
        "sub_attributes",
        "iat",
        "exp",
        "nonce",
        "amr",
        "acr",
        "person_info",
    ]
}
