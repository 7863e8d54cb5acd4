//! `GET /fapi/auth?client_id=..&request_uri=..`: a browserless stand-in for Singpass login
//! and consent on a pushed request. The sample user consents at once and the browser is sent
//! back to the pushed `redirect_uri` with a code and the pushed `state`.
//! [`crate::Emulator::authorize_par`] does the same for tests, as any user.

use bytes::Bytes;
use http::{HeaderValue, Response};
use http_body_util::Full;
use tokio::time::Instant;

use crate::errors::Rejection;
use crate::request::{query_pairs, redirect, EmulatorRequest};
use crate::state::EmulatorState;
use crate::v4::authorize::SAMPLE_SUB;

pub(crate) fn consent_to_pushed_request(
    state: &EmulatorState,
    request: EmulatorRequest<'_>,
) -> Result<Response<Full<Bytes>>, Rejection> {
    let params = query_pairs(request);
    let param = |name: &str| {
        let mut values = params
            .iter()
            .filter(|(key, value)| key == name && !value.is_empty());
        match (values.next(), values.next()) {
            (Some((_, value)), None) => Ok(value.as_str()),
            (Some(_), Some(_)) => Err(Rejection::invalid_request(format!("Invalid {name}"))),
            (None, _) => Err(Rejection::invalid_request(format!(
                "Missing {name} from query parameters"
            ))),
        }
    };
    let client_id = param("client_id")?;
    let request_uri = param("request_uri")?;
    if client_id != state.config.client_id {
        return Err(Rejection::invalid_client("Unknown client_id"));
    }
    let (code, pushed) = state
        .fapi
        .consent(request_uri, SAMPLE_SUB, Instant::now())
        .map_err(Rejection::invalid_request)?;

    let mut answer = form_urlencoded::Serializer::new(String::new());
    answer.append_pair("code", &code);
    answer.append_pair("state", &pushed.state);
    let separator = if pushed.redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    let location = format!("{}{separator}{}", pushed.redirect_uri, answer.finish());
    let location = HeaderValue::from_str(&location)
        .map_err(|_| Rejection::invalid_request("Invalid redirect_uri"))?;
    Ok(redirect(location))
}
