//! What a successful answer leads to: remembering which key a token or login belongs to, and,
//! where the route asks for it, opening the encrypted answer into plain JSON.

use super::{RouteSigning, Signing};
use crate::binding::{TokenHash, TokenUse};
use crate::config::RouteKind;
use crate::discovery::{Discovery, JwksCache};
use crate::error::{ProblemCode, ProxyError};
use crate::jose::{decrypt, unix_seconds, verify, UnwrapError};
use crate::layer::{Bind, RequestFacts};
use bytes::Bytes;
use http::{header, HeaderValue, Response};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How a route's encrypted answers are opened: decrypted with the client's keys, verified
/// against the upstream's JWKS (cached), found through discovery or at a configured URL.
#[derive(Clone)]
pub struct Decrypt {
    jwks: Arc<JwksCache>,
    source: JwksSource,
}

#[derive(Clone)]
enum JwksSource {
    Discovery(Arc<Discovery>),
    Url(String),
}

impl std::fmt::Debug for Decrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decrypt").finish_non_exhaustive()
    }
}

impl Decrypt {
    /// Verifies against the issuer's `jwks_uri` (from its discovery document).
    pub(crate) fn discovered(discovery: Arc<Discovery>) -> Self {
        Self {
            jwks: discovery.jwks().clone(),
            source: JwksSource::Discovery(discovery),
        }
    }

    /// Verifies against the JWKS at `url`, cached in `jwks`.
    pub(crate) fn at(url: String, jwks: Arc<JwksCache>) -> Self {
        Self {
            jwks,
            source: JwksSource::Url(url),
        }
    }
}

/// Tolerated clock difference for `exp` checks on opened answers.
const SKEW: u64 = 60;

pub(super) async fn finish(
    mut res: Response<Bytes>,
    facts: &RequestFacts,
    route: &RouteSigning,
    signing: &Signing,
) -> Result<Response<Bytes>, ProxyError> {
    if !res.status().is_success() {
        return Ok(res);
    }
    let now = SystemTime::now();
    match (&facts.bind, &facts.key) {
        (Bind::V4Token, Some(key)) => {
            if let Some((token, lifetime)) = issued_token(&res, now, route.token_ttl_cap) {
                signing
                    .bindings
                    .bind_token(&token, key.clone(), TokenUse::Once, lifetime)
                    .await?;
            }
        }
        (Bind::Login { code_challenge }, Some(key)) => {
            signing
                .bindings
                .bind_login(code_challenge, key.clone(), route.login_ttl)
                .await?;
        }
        (Bind::FapiToken { code_challenge, .. }, Some(key)) => {
            if let Some((token, lifetime)) = issued_token(&res, now, route.token_ttl_cap) {
                signing
                    .bindings
                    .bind_token(&token, key.clone(), TokenUse::Reusable, lifetime)
                    .await?;
            }
            signing.bindings.forget_login(code_challenge).await?;
        }
        _ => {}
    }
    crate::metrics::key_bindings("token", signing.bindings.live_bindings());
    crate::metrics::key_bindings("login", signing.bindings.live_logins());
    if let Some(decrypt) = &route.decrypt {
        let open = Open {
            decrypt,
            facts,
            signing,
        };
        let opened = match route.kind {
            RouteKind::FapiToken => open.token_answer(&res).await,
            RouteKind::FapiUserinfo => open.body(&res, true).await,
            RouteKind::V4Person => open.body(&res, false).await,
            _ => return Ok(res),
        };
        let json = opened.map_err(|detail| {
            tracing::warn!(%detail, "could not open the upstream's answer");
            ProxyError::new(
                ProblemCode::ProviderUnexpectedResponse,
                format!("the upstream's answer could not be opened: {detail}"),
            )
        })?;
        *res.body_mut() = Bytes::from(json.to_string());
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res.headers_mut().remove(header::CONTENT_LENGTH);
    }
    Ok(res)
}

/// The access token of a token answer and how long to keep its binding: until the token's
/// `exp` (when it is a JWT) or `expires_in`, never longer than `cap`.
fn issued_token(
    res: &Response<Bytes>,
    now: SystemTime,
    cap: Duration,
) -> Option<(String, Duration)> {
    #[derive(serde::Deserialize)]
    struct TokenAnswer {
        access_token: String,
        expires_in: Option<u64>,
    }
    let Ok(answer) = serde_json::from_slice::<TokenAnswer>(res.body()) else {
        tracing::warn!("a 2xx token answer without an access_token: nothing to bind");
        return None;
    };
    let lifetime = jwt_exp(&answer.access_token)
        .map(|exp| Duration::from_secs(exp.saturating_sub(unix_seconds(now))))
        .or(answer.expires_in.map(Duration::from_secs))
        .map_or(cap, |d| d.min(cap));
    tracing::debug!(token = %TokenHash::of(&answer.access_token).short(), ttl_s = lifetime.as_secs(), "bound access token to its ephemeral key");
    Some((answer.access_token, lifetime))
}

/// The `exp` claim of a JWS access token, read without verifying it (Singpass verifies it;
/// the proxy only needs to know how long to remember the binding).
fn jwt_exp(token: &str) -> Option<u64> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_u64()
}

/// What opening an answer needs: the route's JWKS, the request's facts, the client's keys.
struct Open<'a> {
    decrypt: &'a Decrypt,
    facts: &'a RequestFacts,
    signing: &'a Signing,
}

impl Open<'_> {
    /// The token answer with the id_token's verified claims added as `id_token_claims`.
    async fn token_answer(&self, res: &Response<Bytes>) -> Result<Value, String> {
        let mut answer: Map<String, Value> = serde_json::from_slice(res.body())
            .map_err(|_| "the token answer is not a JSON object".to_owned())?;
        let id_token = answer
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or("the token answer has no id_token")?;
        let claims = self.open(id_token.as_bytes()).await?;
        self.check_claims(&claims, true)?;
        if let Bind::FapiToken {
            nonce: Some(nonce), ..
        } = &self.facts.bind
        {
            if claims.get("nonce").and_then(Value::as_str) != Some(nonce.as_str()) {
                return Err("the id_token's nonce is not the one the app sent".into());
            }
        }
        answer.insert("id_token_claims".into(), Value::Object(claims));
        Ok(Value::Object(answer))
    }

    /// A JWE body opened into its JSON payload (userinfo, v4 person).
    async fn body(&self, res: &Response<Bytes>, check: bool) -> Result<Value, String> {
        let claims = self.open(res.body()).await?;
        if check {
            self.check_claims(&claims, false)?;
        }
        Ok(Value::Object(claims))
    }

    /// Decrypts with the client's enc keys and verifies against the upstream's JWKS, refetching
    /// the JWKS once when the signing key is unknown (a rotation at the upstream).
    async fn open(&self, jwe: &[u8]) -> Result<Map<String, Value>, String> {
        let text = std::str::from_utf8(jwe).map_err(|_| "the answer is not text".to_owned())?;
        let inner = decrypt(text.trim(), self.signing.keys.current().encryption())
            .map_err(|e| e.to_string())?;
        let uri = match &self.decrypt.source {
            JwksSource::Discovery(discovery) => discovery
                .metadata()
                .await
                .map_err(|e| e.detail)?
                .jwks_uri
                .clone(),
            JwksSource::Url(url) => url.clone(),
        };
        let cache = &self.decrypt.jwks;
        let jwks = cache.get(&uri, false).await.map_err(|e| e.detail)?;
        match verify(&inner, &jwks) {
            Err(UnwrapError::UnknownSigningKey(_)) => {
                let jwks = cache.get(&uri, true).await.map_err(|e| e.detail)?;
                verify(&inner, &jwks).map_err(|e| e.to_string())
            }
            other => other.map_err(|e| e.to_string()),
        }
    }

    /// `iss` is the issuer, `aud` names the client, `exp` has not passed (id_tokens must have
    /// all three; userinfo is checked for those it carries).
    fn check_claims(&self, claims: &Map<String, Value>, required: bool) -> Result<(), String> {
        let (issuer, client_id) = (&*self.facts.aud, self.signing.client_id.as_str());
        match claims.get("iss").and_then(Value::as_str) {
            Some(iss) if iss.trim_end_matches('/') == issuer => {}
            None if !required => {}
            other => return Err(format!("iss {other:?} is not the issuer {issuer}")),
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == client_id,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(client_id)),
            None => !required,
            _ => false,
        };
        if !aud_ok {
            return Err("aud does not name this client".into());
        }
        match claims.get("exp").and_then(Value::as_u64) {
            Some(exp) if exp + SKEW >= unix_seconds(SystemTime::now()) => Ok(()),
            None if !required => Ok(()),
            Some(_) => Err("the answer has expired (exp)".into()),
            None => Err("the id_token has no exp".into()),
        }
    }
}
