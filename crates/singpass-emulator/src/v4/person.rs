//! `GET {base}/person/{sub}`: spends a DPoP-bound access token once, checks the proof is from
//! the token's key and that `sub` and `scope` match the token, and answers the sealed person.
//!
//! When is a token spent? Real Singpass does not say whether a call refused for a proof
//! problem burns the token. This emulator takes the strict reading: **a token is spent by
//! the first call that presents it and passes token verification** (its signature, expiry and
//! audience), whatever happens after — a bad proof, a wrong sub or scope. Request-shape
//! problems found before the token is looked at (no Authorization or DPoP header, no scope)
//! spend nothing. So a client that gets any 401/403 here must start a new authorization, and
//! the proxy is tested against the harsher of the two possible upstream behaviours.

use std::collections::HashSet;

use bytes::Bytes;
use http::{header, Response};
use http_body_util::Full;

use crate::checks::dpop::{verify_dpop_proof, ProofExpectation};
use crate::checks::jose::unix_now;
use crate::errors::Rejection;
use crate::person::{person_document, seal_person};
use crate::request::{jose_response, EmulatorRequest, Observed};
use crate::state::EmulatorState;

pub(crate) fn read_person(
    state: &EmulatorState,
    request: EmulatorRequest<'_>,
    sub: &str,
    observed: &mut Observed,
) -> Result<Response<Full<Bytes>>, Rejection> {
    let now = unix_now();
    let access_token = dpop_access_token(request)?;
    let proof_absent = request
        .headers
        .get("dpop")
        .is_none_or(|proof| proof.as_bytes().trim_ascii().is_empty());
    if proof_absent {
        return Err(Rejection::missing_proof());
    }
    let scope = requested_scope(request.query)?;

    let grant = state
        .key
        .verify_access_token(access_token, &state.base_url, now)?;
    if !state.spent_tokens.first_use(&grant.jti, grant.exp, now) {
        return Err(Rejection::bad_request("Duplicated DPoP-bound access_token"));
    }

    let person_url = format!("{}/person/{sub}", state.base_url);
    let proof = verify_dpop_proof(
        request.headers,
        ProofExpectation {
            htm: "GET",
            htu: &person_url,
            access_token: Some(access_token),
            nonces: None,
        },
        &state.proof_jtis,
        now,
        &mut observed.proof_jti,
    )?;
    if proof.jkt != grant.jkt {
        return Err(Rejection::wrong_key_binding());
    }
    if sub != grant.sub {
        return Err(Rejection::forbidden(
            "DPoP-bound access_token subject doesn't match with requested sub",
        ));
    }
    let granted: HashSet<&str> = grant.scope.split_whitespace().collect();
    let requested: Vec<&str> = scope.split_whitespace().collect();
    if requested
        .iter()
        .any(|attribute| !granted.contains(attribute))
    {
        return Err(Rejection::forbidden(
            "DPoP-bound access_token scope doesn't match with requested attributes",
        ));
    }

    let person = person_document(sub, &requested);
    let sealed = seal_person(&state.key, &person, &state.config.client_jwks)?;
    Ok(jose_response(sealed))
}

/// The token of `Authorization: DPoP <token>`. The scheme must be exactly `DPoP`: a bearer
/// presentation of a DPoP-bound token is refused.
fn dpop_access_token(request: EmulatorRequest<'_>) -> Result<&str, Rejection> {
    let mut values = request.headers.get_all(header::AUTHORIZATION).iter();
    let value = values
        .next()
        .ok_or_else(|| Rejection::missing_from_headers("Authorization"))?;
    if values.next().is_some() {
        return Err(Rejection::invalid_access_token());
    }
    let value = value
        .to_str()
        .map_err(|_| Rejection::invalid_access_token())?;
    match value.split_once(' ') {
        Some(("DPoP", token)) if !token.trim().is_empty() => Ok(token.trim()),
        _ => Err(Rejection::invalid_access_token()),
    }
}

/// The `scope` query parameter: present once, not blank.
fn requested_scope(query: Option<&str>) -> Result<String, Rejection> {
    let scopes: Vec<String> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "scope")
        .map(|(_, value)| value.into_owned())
        .collect();
    match scopes.as_slice() {
        [scope] if !scope.trim().is_empty() => Ok(scope.clone()),
        [] | [_] => Err(Rejection::missing_from_query("scope")),
        // Extrapolated wording: the table has no entry for a repeated parameter.
        _ => Err(Rejection::bad_request("Invalid scope")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_is_read_from_the_query() {
        assert_eq!(
            requested_scope(Some("scope=uinfin%20name&subentity=x")),
            Ok("uinfin name".to_owned())
        );
        assert_eq!(
            requested_scope(Some("scope=uinfin+name")),
            Ok("uinfin name".to_owned())
        );
        assert_eq!(
            requested_scope(None),
            Err(Rejection::missing_from_query("scope"))
        );
        assert_eq!(
            requested_scope(Some("scope=")),
            Err(Rejection::missing_from_query("scope"))
        );
        assert!(requested_scope(Some("scope=a&scope=b")).is_err());
    }
}
