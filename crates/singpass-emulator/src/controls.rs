//! The test controls of the FAPI 2.0 and CIBA issuers: their URLs, the user's part of a login
//! (consent to a pushed request, approval of a CIBA request), DPoP nonces, discovery
//! availability, and the count of overlapping CIBA polls.

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use crate::Emulator;

impl Emulator {
    /// "http://127.0.0.1:PORT/fapi": the FAPI issuer (client assertion `aud`, id_token `iss`);
    /// its discovery document is at `{issuer}/.well-known/openid-configuration`.
    pub fn fapi_issuer(&self) -> String {
        self.state.fapi_issuer()
    }

    /// "http://127.0.0.1:PORT": the non-FAPI (CIBA) issuer.
    pub fn ciba_issuer(&self) -> String {
        self.state.origin.clone()
    }

    /// Simulates the user at the authorization endpoint for a pushed request: returns the
    /// authorization code for `request_uri` as user `sub`, or an error text if the request_uri
    /// is unknown/expired/used. The code is bound to the PAR's DPoP key thumbprint.
    pub fn authorize_par(&self, request_uri: &str, sub: &str) -> Result<String, String> {
        self.state
            .fapi
            .consent(request_uri, sub, Instant::now())
            .map(|(code, _pushed)| code)
            .map_err(str::to_owned)
    }

    /// FAPI DPoP-nonce mode: when on, PAR and token answer 400 {"error":"use_dpop_nonce",...}
    /// with a `DPoP-Nonce` header to a proof without the current nonce; userinfo answers 401
    /// with `WWW-Authenticate: DPoP error="use_dpop_nonce"` and `DPoP-Nonce`. Every FAPI answer
    /// (success or error) carries the current nonce in `DPoP-Nonce` while on.
    pub fn require_dpop_nonce(&self, on: bool) {
        self.state.nonces.require(on);
    }

    /// Starts a new nonce; the previous one stays valid for one more use window (accept current
    /// and previous), as servers do. The window ends at the next rotation.
    pub fn rotate_dpop_nonce(&self) {
        self.state.nonces.rotate();
    }

    /// Discovery (both issuers) answers 503 while false.
    pub fn set_discovery_available(&self, available: bool) {
        self.state
            .discovery_available
            .store(available, Ordering::SeqCst);
    }

    /// CIBA: the user approves the auth request `auth_req_id` as `sub`; polls then succeed.
    /// `Err` when it is unknown, expired or already answered.
    pub fn approve_ciba(&self, auth_req_id: &str, sub: &str) -> Result<(), String> {
        self.state
            .ciba
            .decide(auth_req_id, Some(sub), Instant::now())
    }

    /// CIBA: the user denies the auth request; polls then get `access_denied`.
    pub fn deny_ciba(&self, auth_req_id: &str) -> Result<(), String> {
        self.state.ciba.decide(auth_req_id, None, Instant::now())
    }

    /// CIBA: how many token polls arrived while another poll of the same `auth_req_id` was
    /// still held (each was refused with `slow_down`). Singpass forbids overlapping polls, so
    /// a well-behaved client, and a proxy in front of one, keeps this at 0.
    pub fn ciba_overlapping_polls(&self) -> u64 {
        self.state.ciba.overlapping_polls()
    }
}
