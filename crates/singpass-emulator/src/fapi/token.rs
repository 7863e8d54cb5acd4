//! `POST /fapi/token`: the FAPI 2.0 authorization-code exchange. The client assertion names
//! the issuer, the DPoP proof must come from the key the pushed request was bound to, PKCE
//! must match, and the code works once within 60 s (tokio clock). Answers a reusable
//! DPoP-bound access token and a sealed id_token.
//!
//! Like Myinfo v4, a code is spent by the first exchange that passes the proof and client
//! checks, whatever happens after (a wrong verifier, redirect_uri or key): the client must
//! start a new login. A proof from a key other than the pushed request's is refused as
//! `invalid_dpop_proof` (400): the proof is valid by itself but not for this code.

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use tokio::time::Instant;

use crate::checks::client_auth::{require_fields, verify_proof_for_post, PresentedClient};
use crate::checks::jose::{s256, unix_now};
use crate::errors::Rejection;
use crate::expiring::Lookup;
use crate::fapi::grants::FapiAccess;
use crate::form::FormBody;
use crate::id_token::{sealed_id_token, IdTokenSubject};
use crate::request::{json_response, EmulatorRequest, Observed};
use crate::signing::random_id;
use crate::state::EmulatorState;
use crate::v4::token::is_valid_code_verifier;

const REQUIRED_FIELDS: [&str; 4] = ["grant_type", "code", "redirect_uri", "code_verifier"];

pub(crate) fn exchange_fapi_code(
    state: &EmulatorState,
    request: EmulatorRequest<'_>,
    observed: &mut Observed,
) -> Result<Response<Full<Bytes>>, Rejection> {
    let now = unix_now();
    let form =
        FormBody::parse(request).map_err(|rejection| rejection.or_oauth("invalid_request"))?;
    require_fields(&form, &REQUIRED_FIELDS)?;
    let client = PresentedClient::read(&form, state, false)?;
    let field = |name: &str| {
        form.required(name)
            .map_err(|rejection| rejection.or_oauth("invalid_request"))
    };
    if field("grant_type")? != "authorization_code" {
        return Err(Rejection::unsupported_grant_type("Unsupported grant_type"));
    }
    let proof = verify_proof_for_post(
        state,
        request.headers,
        &state.fapi_url("/token"),
        now,
        observed,
    )?;
    let issuer = state.fapi_issuer();
    client.authenticate(state, &issuer, now, observed)?;

    let at = Instant::now();
    let grant = match state.fapi.codes.take(field("code")?, at) {
        Lookup::Live(grant) => grant,
        Lookup::Expired => return Err(Rejection::invalid_grant("Authorization code expired")),
        Lookup::Unknown => return Err(Rejection::invalid_grant("Invalid authorization code")),
    };
    let pushed = &grant.request;
    if field("redirect_uri")? != pushed.redirect_uri {
        return Err(Rejection::invalid_grant(
            "redirect_uri does not match the request",
        ));
    }
    let verifier = field("code_verifier")?;
    if !is_valid_code_verifier(verifier) || s256(verifier) != pushed.code_challenge {
        return Err(Rejection::invalid_grant("Invalid code_verifier"));
    }
    if proof.jkt != pushed.jkt {
        return Err(Rejection::invalid_dpop_proof(
            "DPoP proof key does not match the key the authorization code is bound to",
        ));
    }

    let id_token = sealed_id_token(
        state,
        IdTokenSubject {
            issuer: &issuer,
            sub: &grant.sub,
            nonce: Some(&pushed.nonce),
            acr: &pushed.acr,
        },
        now,
    )?;
    let access_token = random_id();
    let lifetime = state.config.token_lifetime;
    state.fapi.tokens.insert(
        access_token.clone(),
        FapiAccess {
            sub: grant.sub.clone(),
            scope: pushed.scope.clone(),
            jkt: proof.jkt,
        },
        lifetime,
        at,
    );
    Ok(json_response(&serde_json::json!({
        "access_token": access_token,
        "token_type": "DPoP",
        "expires_in": lifetime.as_secs(),
        "scope": pushed.scope,
        "id_token": id_token,
    })))
}
