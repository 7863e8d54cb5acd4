//! `POST /token` at the root: CIBA polling (`grant_type=urn:openid:params:grant-type:ciba`).
//! Until the user answers: each poll is held (`EmulatorConfig::ciba_hold`, 30 s as Singpass)
//! and answered `authorization_pending` at its end, or at once when the user answers; sooner
//! than the interval after the last answer, or while another poll is held: `slow_down`; then
//! tokens once (`Bearer`, with a sealed id_token), `invalid_grant` after that or for an
//! unknown `auth_req_id`, `expired_token` past its 120 s.

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use tokio::time::Instant;

use crate::checks::client_auth::{require_fields, PresentedClient};
use crate::checks::jose::unix_now;
use crate::ciba::grants::{Poll, PollOutcome};
use crate::discovery::ACR_VALUES;
use crate::errors::Rejection;
use crate::form::FormBody;
use crate::id_token::{sealed_id_token, IdTokenSubject};
use crate::request::{json_response, EmulatorRequest, Observed};
use crate::signing::random_id;
use crate::state::EmulatorState;

pub(crate) const CIBA_GRANT_TYPE: &str = "urn:openid:params:grant-type:ciba";

pub(crate) async fn poll_for_tokens(
    state: &EmulatorState,
    request: EmulatorRequest<'_>,
    observed: &mut Observed,
) -> Result<Response<Full<Bytes>>, Rejection> {
    let now = unix_now();
    let form =
        FormBody::parse(request).map_err(|rejection| rejection.or_oauth("invalid_request"))?;
    require_fields(&form, &["grant_type", "auth_req_id"])?;
    let client = PresentedClient::read(&form, state, false)?;
    let field = |name: &str| {
        form.required(name)
            .map_err(|rejection| rejection.or_oauth("invalid_request"))
    };
    if field("grant_type")? != CIBA_GRANT_TYPE {
        return Err(Rejection::unsupported_grant_type("Unsupported grant_type"));
    }
    client.authenticate(state, &state.origin, now, observed)?;

    let auth_req_id = field("auth_req_id")?;
    let outcome = match state.ciba.poll(auth_req_id, Instant::now()) {
        Poll::Answer(outcome) => outcome,
        Poll::Hold(held) => {
            held.wait().await;
            state.ciba.finish_hold(auth_req_id, Instant::now())
        }
    };
    let (sub, scope) = match outcome {
        PollOutcome::Approved { sub, scope } => (sub, scope),
        PollOutcome::Pending => return Err(Rejection::authorization_pending()),
        PollOutcome::TooSoon => return Err(Rejection::slow_down()),
        PollOutcome::Overlapping => return Err(Rejection::overlapping_poll()),
        PollOutcome::Denied => return Err(Rejection::access_denied()),
        PollOutcome::Expired => return Err(Rejection::expired_token()),
        PollOutcome::Redeemed => {
            return Err(Rejection::invalid_grant("auth_req_id was already redeemed"))
        }
        PollOutcome::Unknown => return Err(Rejection::invalid_grant("Unknown auth_req_id")),
    };
    // Issued now, which may be a hold later than the poll arrived.
    let id_token = sealed_id_token(
        state,
        IdTokenSubject {
            issuer: &state.origin,
            sub: &sub,
            nonce: None,
            acr: ACR_VALUES[0],
        },
        unix_now(),
    )?;
    // Nothing at this issuer accepts the access token back; it is opaque and not stored.
    Ok(json_response(&serde_json::json!({
        "access_token": random_id(),
        "token_type": "Bearer",
        "expires_in": state.config.token_lifetime.as_secs(),
        "scope": scope,
        "id_token": id_token,
    })))
}
