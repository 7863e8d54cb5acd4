//! What the FAPI and CIBA issuers say about the user, signed by the emulator and encrypted to
//! the client (ECDH-ES+A256KW, A256CBC-HS512): the id_token, and the userinfo answer with its
//! Myinfo-v5-shaped `person_info`. Times are the wall clock's, as in every JWT.

use serde_json::{json, Map, Value};

use crate::errors::Rejection;
use crate::person::sample_attribute;
use crate::sealing::{seal_for_client, SealError, FAPI_CONTENT_ENCRYPTION};
use crate::state::EmulatorState;

/// How long an id_token is valid.
const ID_TOKEN_LIFETIME_SECS: i64 = 600;

/// The identity attributes Singpass puts in every id_token (the sample person's NRIC).
fn sub_attributes() -> Value {
    json!({"identity_number": "S9812381D", "identity_coi": "SG"})
}

/// Who the id_token is about and how they logged in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdTokenSubject<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) sub: &'a str,
    /// The PAR `nonce` (FAPI); CIBA has none.
    pub(crate) nonce: Option<&'a str>,
    pub(crate) acr: &'a str,
}

/// The sealed id_token for `subject`, issued at `now`.
pub(crate) fn sealed_id_token(
    state: &EmulatorState,
    subject: IdTokenSubject<'_>,
    now: i64,
) -> Result<String, Rejection> {
    let mut claims = json!({
        "iss": subject.issuer,
        "aud": state.config.client_id,
        "sub": subject.sub,
        "sub_attributes": sub_attributes(),
        "iat": now,
        "exp": now.saturating_add(ID_TOKEN_LIFETIME_SECS),
        "amr": ["pwd", "swk"],
        "acr": subject.acr,
    });
    if let Some(nonce) = subject.nonce {
        claims["nonce"] = Value::from(nonce);
    }
    seal(state, &claims)
}

/// The sealed userinfo answer: `person_info` holds each granted scope the sample person has.
pub(crate) fn sealed_userinfo(
    state: &EmulatorState,
    sub: &str,
    scope: &str,
    now: i64,
) -> Result<String, Rejection> {
    let mut person_info = Map::new();
    for name in scope.split_whitespace() {
        if let Some(attribute) = sample_attribute(name) {
            person_info.insert(name.to_owned(), attribute);
        }
    }
    let claims = json!({
        "iss": state.fapi_issuer(),
        "aud": state.config.client_id,
        "sub": sub,
        "iat": now,
        "person_info": person_info,
    });
    seal(state, &claims)
}

fn seal(state: &EmulatorState, claims: &Value) -> Result<String, Rejection> {
    seal_for_client(
        &state.key,
        claims,
        &state.config.client_jwks,
        FAPI_CONTENT_ENCRYPTION,
    )
    .map_err(|error| match error {
        SealError::NoEncryptionKey => {
            Rejection::invalid_client("The client JWKS has no usable use=enc P-256 key")
        }
        SealError::Jose => Rejection::server_error(),
    })
}
