//! The checks FAPI 2.0 and CIBA endpoints share: client authentication by private_key_jwt
//! (the FAPI flavour: `aud` = the issuer exactly, at most 120 s, no `cnf`) and a DPoP proof as
//! an authorization server judges it (FAPI only), both answered with OAuth error codes.
//!
//! Order, on purpose: a request's fields are checked first (nothing is spent by a malformed
//! request), then its DPoP proof including the nonce, then the client assertion, so that a
//! `use_dpop_nonce` refusal spends neither `jti` and the same form can be resent with a new
//! proof carrying the nonce.

use http::HeaderMap;

use crate::checks::assertion::{
    verify_client_assertion, AssertionExpectation, FAPI_MAX_ASSERTION_LIFETIME_SECS,
};
use crate::checks::dpop::{verify_dpop_proof, ProofExpectation, VerifiedProof};
use crate::errors::Rejection;
use crate::form::FormBody;
use crate::request::Observed;
use crate::state::EmulatorState;
use crate::v4::token::JWT_BEARER;

/// Each of `fields` is present once and not empty, else `invalid_request` naming it.
pub(crate) fn require_fields(form: &FormBody, fields: &[&str]) -> Result<(), Rejection> {
    for field in fields {
        form.required(field)
            .map_err(|rejection| rejection.or_oauth("invalid_request"))?;
    }
    Ok(())
}

/// The client assertion a form carries, read but not yet verified.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PresentedClient<'a> {
    assertion: &'a str,
}

impl<'a> PresentedClient<'a> {
    /// `client_assertion_type` is jwt-bearer, `client_assertion` is there, and `client_id`
    /// (required where `client_id_required`, else optional) names the registered client.
    /// Anything else is `invalid_client` (401).
    pub(crate) fn read(
        form: &'a FormBody,
        state: &EmulatorState,
        client_id_required: bool,
    ) -> Result<Self, Rejection> {
        let as_client_error = |rejection: Rejection| rejection.or_oauth("invalid_client");
        let client_id = form.optional("client_id").map_err(as_client_error)?;
        match client_id {
            None if client_id_required => {
                return Err(Rejection::invalid_client("Missing client_id from body"));
            }
            Some(id) if id != state.config.client_id => {
                return Err(Rejection::invalid_client("Unknown client_id"));
            }
            _ => {}
        }
        let assertion_type = form
            .required("client_assertion_type")
            .map_err(as_client_error)?;
        if assertion_type != JWT_BEARER {
            return Err(Rejection::invalid_client("Invalid client_assertion_type"));
        }
        let assertion = form.required("client_assertion").map_err(as_client_error)?;
        Ok(PresentedClient { assertion })
    }

    /// Verifies the assertion for `issuer` (its exact `aud`), spending its `jti`.
    pub(crate) fn authenticate(
        self,
        state: &EmulatorState,
        issuer: &str,
        now: i64,
        observed: &mut Observed,
    ) -> Result<(), Rejection> {
        verify_client_assertion(
            self.assertion,
            AssertionExpectation {
                client_id: &state.config.client_id,
                audience: issuer,
                client_jwks: &state.config.client_jwks,
                proof_jkt: None,
                max_lifetime_secs: FAPI_MAX_ASSERTION_LIFETIME_SECS,
            },
            &state.assertion_jtis,
            now,
            &mut observed.assertion_jti,
        )
        .map_err(|rejection| rejection.or_oauth("invalid_client"))
    }
}

/// The request's DPoP proof for `POST {htu}` at the FAPI authorization server (PAR, token):
/// every proof check, the nonce while required; problems are 400 `invalid_dpop_proof` (or
/// `use_dpop_nonce`).
pub(crate) fn verify_proof_for_post(
    state: &EmulatorState,
    headers: &HeaderMap,
    htu: &str,
    now: i64,
    observed: &mut Observed,
) -> Result<VerifiedProof, Rejection> {
    verify_dpop_proof(
        headers,
        ProofExpectation {
            htm: "POST",
            htu,
            access_token: None,
            nonces: Some(&state.nonces),
        },
        &state.proof_jtis,
        now,
        &mut observed.proof_jti,
    )
    .map_err(|rejection| rejection.or_oauth("invalid_dpop_proof"))
}
