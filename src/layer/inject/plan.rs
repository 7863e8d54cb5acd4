//! What one app request needs across all its attempts, worked out once before the first is
//! signed: the app's form without what the proxy replaces, the DPoP key, the access token, and
//! what to do with the answer.

use super::Signing;
use crate::binding::{TokenHash, TokenLookup};
use crate::error::{ProblemCode, ProxyError};
use crate::jose::{sha256_b64url, EphemeralKey};
use crate::route::{RequestContext, RouteKind};
use bytes::Bytes;
use http::{header, HeaderMap, Request};
use std::sync::Arc;

const FORM: &str = "application/x-www-form-urlencoded";

/// The request's signing plan.
#[derive(Debug)]
pub(super) struct Plan {
    /// The app's form, re-encoded without assertion fields (None: not a form route).
    pub form: Option<String>,
    /// The DPoP key (None: the route has no DPoP).
    pub key: Option<Arc<EphemeralKey>>,
    /// A resource call's access token (`Authorization: DPoP`, `ath`).
    pub token: Option<String>,
    /// What the answer leads to.
    pub after: After,
}

/// What a successful answer leads to.
#[derive(Debug)]
pub(super) enum After {
    /// Nothing to remember.
    Nothing,
    /// A v4 token: bind it, for one use.
    BindV4Token,
    /// A PAR: bind the login's key to its `code_challenge`.
    BindLogin { code_challenge: String },
    /// A FAPI token: bind it (reusable) and forget the login; `nonce` checks the id_token.
    BindFapiToken {
        code_challenge: String,
        nonce: Option<String>,
    },
}

/// Works out the plan for `req` on its route, or the problem that stops it.
pub(super) async fn prepare(
    req: &Request<Bytes>,
    ctx: &RequestContext,
    signing: &Signing,
) -> Result<Plan, ProxyError> {
    let kind = ctx.route.kind;
    match kind {
        RouteKind::V4Person | RouteKind::FapiUserinfo => {
            let token = presented_token(req.headers())?.to_owned();
            let key = resource_key(&token, ctx, signing).await?;
            Ok(Plan {
                form: None,
                key: Some(key),
                token: Some(token),
                after: After::Nothing,
            })
        }
        _ => {
            require_form(req.headers())?;
            let mut form = Form::parse(req.body(), signing, kind)?;
            let (key, after) = match kind {
                RouteKind::V4Token => (Some(transaction_key(ctx, signing)?), After::BindV4Token),
                RouteKind::FapiPar => {
                    let code_challenge = form.require("code_challenge")?;
                    match form.get("code_challenge_method") {
                        Some("S256") => {}
                        other => return Err(ProxyError::new(ProblemCode::ValidationInvalidParameter, format!("code_challenge_method must be S256 (got {other:?}): the proxy finds the login's key by S256(code_verifier)"))),
                    }
                    (
                        Some(transaction_key(ctx, signing)?),
                        After::BindLogin { code_challenge },
                    )
                }
                RouteKind::FapiToken => {
                    if form.get("grant_type") != Some("authorization_code") {
                        return Err(ProxyError::new(
                            ProblemCode::ValidationInvalidParameter,
                            "grant_type must be authorization_code on the FAPI token route",
                        ));
                    }
                    let verifier = form.require("code_verifier")?;
                    let code_challenge = sha256_b64url(verifier.as_bytes());
                    let nonce = form.take("nonce");
                    (
                        Some(login_key(&code_challenge, ctx, signing).await?),
                        After::BindFapiToken {
                            code_challenge,
                            nonce,
                        },
                    )
                }
                _ => (None, After::Nothing),
            };
            Ok(Plan {
                form: Some(form.finish()),
                key,
                token: None,
                after,
            })
        }
    }
}

/// The app's form fields, minus what the proxy replaces.
struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    fn parse(body: &Bytes, signing: &Signing, kind: RouteKind) -> Result<Self, ProxyError> {
        let mut pairs = Vec::new();
        let mut has_client_id = false;
        for (name, value) in form_urlencoded::parse(body) {
            match &*name {
                // Whatever the app signed itself is replaced, never forwarded; so is a
                // `dpop_jkt`, which would name a key other than the proxy's.
                "client_assertion" | "client_assertion_type" | "dpop_jkt" => continue,
                "client_id" if value != signing.client_id => {
                    return Err(ProxyError::new(
                        ProblemCode::ValidationInvalidParameter,
                        format!(
                            "client_id `{value}` is not the client_id this proxy signs for ({})",
                            signing.client_id
                        ),
                    ));
                }
                "client_id" => has_client_id = true,
                _ => {}
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        // v4 token and PAR require client_id; the proxy knows it.
        if !has_client_id && matches!(kind, RouteKind::V4Token | RouteKind::FapiPar) {
            pairs.push(("client_id".into(), signing.client_id.clone()));
        }
        Ok(Self { pairs })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn require(&self, name: &str) -> Result<String, ProxyError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v.to_owned()),
            _ => Err(ProxyError::new(
                ProblemCode::ValidationMissingParameter,
                format!("the form lacks `{name}`"),
            )),
        }
    }

    /// Removes a field the proxy consumes itself (it does not go upstream).
    fn take(&mut self, name: &str) -> Option<String> {
        let i = self.pairs.iter().position(|(n, _)| n == name)?;
        Some(self.pairs.remove(i).1)
    }

    fn finish(self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (n, v) in &self.pairs {
            out.append_pair(n, v);
        }
        out.finish()
    }
}

/// The transaction's ephemeral key: the one an earlier attempt used, or a fresh one.
fn transaction_key(
    ctx: &RequestContext,
    signing: &Signing,
) -> Result<Arc<EphemeralKey>, ProxyError> {
    if let Some(key) = ctx.key.get() {
        return Ok(key.clone());
    }
    let fresh = Arc::new(signing.pool.take().map_err(super::sign::internal)?);
    Ok(ctx.key.get_or_init(|| fresh).clone())
}

/// The key of the login whose PAR carried S256(code_verifier).
async fn login_key(
    code_challenge: &str,
    ctx: &RequestContext,
    signing: &Signing,
) -> Result<Arc<EphemeralKey>, ProxyError> {
    if let Some(key) = ctx.key.get() {
        return Ok(key.clone());
    }
    let key = signing.bindings.login_key(code_challenge).await?.ok_or_else(|| {
        ProxyError::new(
            ProblemCode::AuthLoginUnknown,
            "no PAR with S256(code_verifier) as its code_challenge went through this proxy: send the login's PAR through this proxy's /par route (with several replicas, PAR and token must reach the same one), or the login expired (upstream.login_ttl)",
        )
    })?;
    Ok(ctx.key.get_or_init(|| key).clone())
}

/// The key a resource call's token is bound to; a one-time (v4) token gives it out once.
async fn resource_key(
    token: &str,
    ctx: &RequestContext,
    signing: &Signing,
) -> Result<Arc<EphemeralKey>, ProxyError> {
    if let Some(key) = ctx.key.get() {
        return Ok(key.clone());
    }
    let hash = TokenHash::of(token);
    match signing.bindings.use_token(token).await? {
        TokenLookup::Key(key) => Ok(ctx.key.get_or_init(|| key).clone()),
        TokenLookup::Reused => {
            tracing::info!(token = %hash.short(), "one-time access token presented again");
            Err(ProxyError::new(ProblemCode::AuthTokenReused, "this Myinfo v4 access token was already used; a v4 token is good for one person call: run a new authorization"))
        }
        TokenLookup::Unknown => Err(ProxyError::new(
            ProblemCode::AuthTokenUnknown,
            "this access token was not issued through this proxy, or its binding has expired; request the token through the proxy's token route (with several replicas, token and resource calls must reach the same one)",
        )),
    }
}

/// The token from `Authorization: Bearer <t>` or `Authorization: DPoP <t>`.
fn presented_token(headers: &HeaderMap) -> Result<&str, ProxyError> {
    let missing = |detail: &str| ProxyError::new(ProblemCode::AuthTokenMissing, detail);
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            missing("send the access token as `Authorization: Bearer <token>` (or `DPoP <token>`)")
        })?
        .to_str()
        .map_err(|_| missing("the Authorization header is not ASCII"))?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
    let token = token.trim();
    if !(scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("dpop"))
        || token.is_empty()
    {
        return Err(missing(
            "the Authorization header must be `Bearer <token>` or `DPoP <token>`",
        ));
    }
    Ok(token)
}

fn require_form(headers: &HeaderMap) -> Result<(), ProxyError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(FORM));
    if ok {
        Ok(())
    } else {
        Err(ProxyError::new(
            ProblemCode::ValidationUnsupportedMediaType,
            format!("this route takes a form body: send Content-Type: {FORM}"),
        ))
    }
}
