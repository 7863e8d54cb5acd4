//! `GET {base}/authorize`: a browserless stand-in for Singpass login and consent, so the
//! standalone emulator can run a whole flow. The sample user consents at once and the browser
//! is sent back to `redirect_uri` with a fresh code (and `state`).

use bytes::Bytes;
use http::{HeaderValue, Response, Uri};
use http_body_util::Full;

use crate::errors::Rejection;
use crate::request::{redirect, EmulatorRequest};
use crate::state::{AuthorizationCode, EmulatorState};

/// The `sub` (user uuid) of the sample person who consents at `/authorize`.
pub const SAMPLE_SUB: &str = "6d2b0a3b-5e8f-4c1a-9d7e-2f4b8c6a1e30";

const REQUIRED_PARAMS: [&str; 6] = [
    "client_id",
    "redirect_uri",
    "scope",
    "response_type",
    "code_challenge",
    "code_challenge_method",
];

pub(crate) fn consent(
    state: &EmulatorState,
    request: EmulatorRequest<'_>,
) -> Result<Response<Full<Bytes>>, Rejection> {
    let params: Vec<(String, String)> =
        form_urlencoded::parse(request.query.unwrap_or_default().as_bytes())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
            .ok_or_else(|| Rejection::missing_from_query(name))
    };
    for name in REQUIRED_PARAMS {
        param(name)?;
    }
    if param("client_id")? != state.config.client_id {
        return Err(Rejection::not_found());
    }
    if param("response_type")? != "code" || param("code_challenge_method")? != "S256" {
        return Err(Rejection::bad_request("Invalid parameters"));
    }
    let redirect_uri = param("redirect_uri")?;
    let is_absolute = redirect_uri
        .parse::<Uri>()
        .is_ok_and(|uri| matches!(uri.scheme_str(), Some("http" | "https")));
    if !is_absolute {
        return Err(Rejection::bad_request("Invalid parameters"));
    }

    let code = crate::signing::random_id();
    state.register_code(
        code.clone(),
        AuthorizationCode {
            sub: SAMPLE_SUB.to_owned(),
            scope: param("scope")?.to_owned(),
            code_challenge: param("code_challenge")?.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
        },
    );
    let mut answer = form_urlencoded::Serializer::new(String::new());
    answer.append_pair("code", &code);
    if let Ok(client_state) = param("state") {
        answer.append_pair("state", client_state);
    }
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{separator}{}", answer.finish());
    let location = HeaderValue::from_str(&location)
        .map_err(|_| Rejection::bad_request("Invalid parameters"))?;
    Ok(redirect(location))
}
