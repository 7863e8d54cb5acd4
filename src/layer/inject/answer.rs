//! What a successful answer leads to: remembering which key a token or login belongs to, and,
//! where the route asks for it, opening the encrypted answer into plain JSON.

use super::plan::{After, Plan};
use super::Signing;
use crate::binding::{TokenHash, TokenUse};
use crate::error::{ProblemCode, ProxyError};
use crate::jose::{decrypt, unix_seconds, verify, UnwrapError};
use crate::route::{RequestContext, RouteKind};
use bytes::Bytes;
use http::{header, HeaderValue, Response};
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime};

/// Tolerated clock difference for `exp` checks on opened answers.
const SKEW: u64 = 60;

pub(super) async fn finish(
    mut res: Response<Bytes>,
    plan: &Plan,
    ctx: &RequestContext,
    signing: &Signing,
) -> Result<Response<Bytes>, ProxyError> {
    if !res.status().is_success() {
        return Ok(res);
    }
    let route = &ctx.route;
    let now = SystemTime::now();
    match (&plan.after, &plan.key) {
        (After::BindV4Token, Some(key)) => {
            if let Some((token, lifetime)) = issued_token(&res, now, route.token_ttl_cap) {
                signing
                    .bindings
                    .bind_token(&token, key.clone(), TokenUse::Once, lifetime)
                    .await?;
            }
        }
        (After::BindLogin { code_challenge }, Some(key)) => {
            signing
                .bindings
                .bind_login(code_challenge, key.clone(), route.login_ttl)
                .await?;
        }
        (After::BindFapiToken { code_challenge, .. }, Some(key)) => {
            if let Some((token, lifetime)) = issued_token(&res, now, route.token_ttl_cap) {
                signing
                    .bindings
                    .bind_token(&token, key.clone(), TokenUse::Reusable, lifetime)
                    .await?;
            }
            // The login expires by itself (login_ttl) if forgetting it fails.
            if let Err(e) = signing.bindings.forget_login(code_challenge).await {
                tracing::warn!(error = %e, "could not forget a used login");
            }
        }
        _ => {}
    }
    crate::metrics::key_bindings("token", signing.bindings.live_bindings());
    crate::metrics::key_bindings("login", signing.bindings.live_logins());
    if route.policy.decrypt {
        let opened = match route.kind {
            RouteKind::FapiToken => open_token_answer(&res, plan, ctx, signing).await,
            RouteKind::FapiUserinfo => open_body(&res, ctx, signing, true).await,
            RouteKind::V4Person => open_body(&res, ctx, signing, false).await,
            _ => return Ok(res),
        };
        let json = opened.map_err(|detail| {
            tracing::warn!(request_id = %ctx.request_id, route = route.kind.label(), %detail, "could not open the upstream's answer");
            ProxyError::new(ProblemCode::ProviderUnexpectedResponse, format!("the upstream's answer could not be opened: {detail}"))
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

/// The token answer with the id_token's verified claims added as `id_token_claims`.
async fn open_token_answer(
    res: &Response<Bytes>,
    plan: &Plan,
    ctx: &RequestContext,
    signing: &Signing,
) -> Result<Value, String> {
    let mut answer: Map<String, Value> = serde_json::from_slice(res.body())
        .map_err(|_| "the token answer is not a JSON object".to_owned())?;
    let id_token = answer
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or("the token answer has no id_token")?;
    let claims = open(id_token.as_bytes(), ctx, signing).await?;
    check_claims(&claims, ctx, signing, true)?;
    if let After::BindFapiToken {
        nonce: Some(nonce), ..
    } = &plan.after
    {
        if claims.get("nonce").and_then(Value::as_str) != Some(nonce.as_str()) {
            return Err("the id_token's nonce is not the one the app sent".into());
        }
    }
    answer.insert("id_token_claims".into(), Value::Object(claims));
    Ok(Value::Object(answer))
}

/// A JWE body opened into its JSON payload (userinfo, v4 person).
async fn open_body(
    res: &Response<Bytes>,
    ctx: &RequestContext,
    signing: &Signing,
    check: bool,
) -> Result<Value, String> {
    let claims = open(res.body(), ctx, signing).await?;
    if check {
        check_claims(&claims, ctx, signing, false)?;
    }
    Ok(Value::Object(claims))
}

/// Decrypts with the client's enc keys and verifies against the upstream's JWKS, refetching
/// the JWKS once when the signing key is unknown (a rotation at the upstream).
async fn open(
    jwe: &[u8],
    ctx: &RequestContext,
    signing: &Signing,
) -> Result<Map<String, Value>, String> {
    let text = std::str::from_utf8(jwe).map_err(|_| "the answer is not text".to_owned())?;
    let inner =
        decrypt(text.trim(), signing.keys.current().encryption()).map_err(|e| e.to_string())?;
    let (cache, uri) = match (&ctx.route.jwks, &ctx.route.discovery, &ctx.route.jwks_url) {
        (Some(cache), Some(discovery), _) => (
            cache,
            discovery
                .metadata()
                .await
                .map_err(|e| e.detail)?
                .jwks_uri
                .clone(),
        ),
        (Some(cache), None, Some(url)) => (cache, url.clone()),
        _ => return Err("no upstream JWKS is configured to verify the answer".into()),
    };
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
fn check_claims(
    claims: &Map<String, Value>,
    ctx: &RequestContext,
    signing: &Signing,
    required: bool,
) -> Result<(), String> {
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if iss.trim_end_matches('/') == &*ctx.aud => {}
        None if !required => {}
        other => return Err(format!("iss {other:?} is not the issuer {}", ctx.aud)),
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == signing.client_id,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&signing.client_id)),
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
