//! What the app sends that the local checks read: its form (less what the proxy replaces) and
//! the access token of a resource call.

use crate::error::{ProblemCode, ProxyError};
use bytes::Bytes;
use http::{header, HeaderMap};

const FORM: &str = "application/x-www-form-urlencoded";

/// The app's form fields, minus what the proxy replaces.
pub(super) struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Parses the body; a `client_id` other than the proxy's is refused, and one is added where
    /// the call requires it (`add_client_id`).
    pub(super) fn parse(
        body: &Bytes,
        client_id: &str,
        add_client_id: bool,
    ) -> Result<Self, ProxyError> {
        let mut pairs = Vec::new();
        let mut has_client_id = false;
        for (name, value) in form_urlencoded::parse(body) {
            match &*name {
                // Whatever the app signed itself is replaced, never forwarded; so is a
                // `dpop_jkt`, which would name a key other than the proxy's.
                "client_assertion" | "client_assertion_type" | "dpop_jkt" => continue,
                "client_id" if value != client_id => {
                    return Err(ProxyError::new(
                        ProblemCode::ValidationInvalidParameter,
                        format!(
                            "client_id `{value}` is not the client_id this proxy signs for ({client_id})"
                        ),
                    ));
                }
                "client_id" => has_client_id = true,
                _ => {}
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        if !has_client_id && add_client_id {
            pairs.push(("client_id".into(), client_id.to_owned()));
        }
        Ok(Self { pairs })
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn require(&self, name: &str) -> Result<String, ProxyError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v.to_owned()),
            _ => Err(ProxyError::new(
                ProblemCode::ValidationMissingParameter,
                format!("the form lacks `{name}`"),
            )),
        }
    }

    /// Removes a field the proxy consumes itself (it does not go upstream).
    pub(super) fn take(&mut self, name: &str) -> Option<String> {
        let i = self.pairs.iter().position(|(n, _)| n == name)?;
        Some(self.pairs.remove(i).1)
    }

    /// The form, encoded again.
    pub(super) fn finish(self) -> Bytes {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (n, v) in &self.pairs {
            out.append_pair(n, v);
        }
        Bytes::from(out.finish())
    }
}

/// The token from `Authorization: Bearer <t>` or `Authorization: DPoP <t>`.
pub(super) fn presented_token(headers: &HeaderMap) -> Result<&str, ProxyError> {
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

/// Refuses a body that is not a form.
pub(super) fn require_form(headers: &HeaderMap) -> Result<(), ProxyError> {
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
