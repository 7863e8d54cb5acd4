//! What the FAPI issuer remembers between calls of one login: the pushed request (60 s, once),
//! the authorization code (60 s, once) and the access token (its lifetime, reusable), each
//! carrying the DPoP key thumbprint the login is bound to. Windows run on the tokio clock.

use std::time::Duration;

use tokio::time::Instant;

use crate::expiring::{Expiring, Lookup};

/// How long a `request_uri` from PAR may be used (its `expires_in`).
pub(crate) const REQUEST_URI_LIFETIME: Duration = Duration::from_secs(60);

/// How long an authorization code may wait to be exchanged.
pub(crate) const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// The `request_uri` prefix RFC 9126 suggests.
pub(crate) const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// The authorization request as PAR received it, waiting for the user.
#[derive(Clone, Debug)]
pub(crate) struct PushedRequest {
    pub(crate) scope: String,
    pub(crate) state: String,
    pub(crate) nonce: String,
    pub(crate) redirect_uri: String,
    pub(crate) code_challenge: String,
    /// `acr` the id_token will claim: the first `acr_values` entry, or the default.
    pub(crate) acr: String,
    /// Thumbprint of the DPoP key (from the proof or `dpop_jkt`).
    pub(crate) jkt: String,
}

/// A user's consent to a pushed request, waiting to be exchanged once at the token endpoint.
#[derive(Clone, Debug)]
pub(crate) struct FapiCode {
    pub(crate) sub: String,
    pub(crate) request: PushedRequest,
}

/// What a FAPI access token grants, and the key it is bound to.
#[derive(Clone, Debug)]
pub(crate) struct FapiAccess {
    pub(crate) sub: String,
    pub(crate) scope: String,
    pub(crate) jkt: String,
}

/// The FAPI issuer's records, shared by every connection.
#[derive(Debug, Default)]
pub(crate) struct FapiGrants {
    pub(crate) pushed: Expiring<PushedRequest>,
    pub(crate) codes: Expiring<FapiCode>,
    pub(crate) tokens: Expiring<FapiAccess>,
}

impl FapiGrants {
    /// The user `sub` consents to the pushed request: spends the `request_uri` and mints a
    /// code bound to the same key. `Err` says why the `request_uri` does not work.
    pub(crate) fn consent(
        &self,
        request_uri: &str,
        sub: &str,
        now: Instant,
    ) -> Result<(String, PushedRequest), &'static str> {
        let request = match self.pushed.take(request_uri, now) {
            Lookup::Live(request) => request,
            Lookup::Expired => return Err("request_uri has expired"),
            Lookup::Unknown => return Err("request_uri is unknown or already used"),
        };
        let code = crate::signing::random_id();
        let grant = FapiCode {
            sub: sub.to_owned(),
            request: request.clone(),
        };
        self.codes.insert(code.clone(), grant, CODE_LIFETIME, now);
        Ok((code, request))
    }
}
