//! Keeps one request's secrets out of what is logged about its upstream's error answer: an
//! upstream (or a gateway before it) may echo the form or headers it got, and the log must not
//! become a store of codes, verifiers, assertions, proofs and tokens.
//!
//! A request's secret-bearing parts are captured cheaply ([`Sent`]: reference-counted clones)
//! on every attempt, and only turned into a [`Secrets`] list when an error answer is logged.
//! The app's answer is never touched: only the logged fields are scrubbed.

use crate::upstream_answer::{ErrorBody, BODY_PREFIX};
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Request, Response, Uri};
use std::borrow::Cow;

/// What replaces a secret in a logged text.
pub(crate) const REDACTED: &str = "[redacted]";
/// What replaces an upstream `id` or `trace_id` that is too long or has odd characters.
pub(crate) const INVALID_ID: &str = "[invalid]";
/// Longest `id`/`trace_id` logged as it is.
pub(crate) const MAX_ID_LEN: usize = 128;
/// Values shorter than this are not secrets worth the name (and redacting them would shred the
/// text); at this length a redaction never makes the text longer.
pub(crate) const MIN_SECRET_LEN: usize = REDACTED.len();

/// Form and query fields whose values are secret (or personal: a CIBA `login_hint` is an NRIC).
const SECRET_FIELDS: [&str; 9] = [
    "code",
    "code_verifier",
    "client_assertion",
    "client_secret",
    "access_token",
    "refresh_token",
    "id_token",
    "auth_req_id",
    "login_hint",
];

/// Headers whose values are secret.
static SECRET_HEADERS: [HeaderName; 4] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("dpop"),
    HeaderName::from_static("x-api-key"),
];

/// The secret-bearing parts of one request, kept by reference-counted clones (no parsing, no
/// copies) until an error answer needs them.
#[derive(Clone)]
pub(crate) struct Sent {
    uri: Uri,
    headers: Vec<HeaderValue>,
    body: Bytes,
}

impl std::fmt::Debug for Sent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sent { .. }")
    }
}

impl Sent {
    /// The parts of `req` that may carry a secret.
    pub(crate) fn capture(req: &Request<Bytes>) -> Self {
        // One pass over the (few) headers instead of a lookup per secret header name.
        let headers = req
            .headers()
            .iter()
            .filter(|(name, _)| SECRET_HEADERS.contains(name))
            .map(|(_, value)| value.clone())
            .collect();
        Self {
            uri: req.uri().clone(),
            headers,
            body: req.body().clone(),
        }
    }

    /// Rides up on an error answer (status >= 400), for the error log to scrub with.
    pub(crate) fn attach_to_error(self, res: &mut Response<Bytes>) {
        if res.status().as_u16() >= 400 {
            res.extensions_mut().insert(self);
        }
    }

    fn secrets_into(&self, secrets: &mut Secrets) {
        for value in &self.headers {
            let Ok(text) = value.to_str() else { continue };
            secrets.add(text);
            // `Bearer <token>`, `DPoP <token>`: the credential alone, too.
            if let Some((_, credential)) = text.trim().split_once(' ') {
                secrets.add(credential.trim());
            }
        }
        let fields = form_urlencoded::parse(self.uri.query().unwrap_or("").as_bytes())
            .chain(form_urlencoded::parse(&self.body));
        for (name, value) in fields {
            if SECRET_FIELDS.contains(&&*name) {
                secrets.add(&value);
            }
        }
    }
}

/// The secret values of a request, in every form an echo may take them.
#[derive(Clone, Default)]
pub(crate) struct Secrets {
    /// Raw, percent-encoded and JSON-escaped forms, longest first.
    forms: Vec<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} forms)", self.forms.len())
    }
}

impl Secrets {
    /// The secrets of every captured request.
    pub(crate) fn of<'a>(sent: impl IntoIterator<Item = &'a Sent>) -> Self {
        let mut secrets = Self::default();
        for s in sent {
            s.secrets_into(&mut secrets);
        }
        secrets
    }

    /// Adds one secret value, with its encoded forms.
    pub(crate) fn add(&mut self, value: &str) {
        if value.len() < MIN_SECRET_LEN {
            return;
        }
        let form: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
        let lower_hex = lowercase_escapes(&form);
        let json = serde_json::to_string(value).unwrap_or_default();
        let json = json.trim_matches('"').to_owned();
        let json_slashes = json.replace('/', "\\/");
        for f in [value.to_owned(), form, lower_hex, json, json_slashes] {
            if !self.forms.contains(&f) {
                self.forms.push(f);
            }
        }
        // The longest first, so that a secret containing another is redacted whole.
        self.forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    }

    /// `text` with every form of every secret, and anything shaped like a JWS or JWE, replaced
    /// by [`REDACTED`].
    pub(crate) fn scrub<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for form in &self.forms {
            if out.contains(form.as_str()) {
                out = Cow::Owned(out.replace(form.as_str(), REDACTED));
            }
        }
        match redact_jose(&out) {
            Some(redacted) => Cow::Owned(redacted),
            None => out,
        }
    }

    /// An upstream `id` or `trace_id` fit for a log line: at most [`MAX_ID_LEN`] characters of
    /// `A-Z a-z 0-9 . _ : -`, else [`INVALID_ID`]; [`REDACTED`] if it holds a secret.
    pub(crate) fn safe_id(&self, id: &str) -> String {
        let scrubbed = self.scrub(id);
        if scrubbed.contains(REDACTED) {
            return REDACTED.to_owned();
        }
        let plain = !id.is_empty()
            && id.len() <= MAX_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if plain {
            id.to_owned()
        } else {
            INVALID_ID.to_owned()
        }
    }
}

/// The ids of an upstream error fit for any problem answer, also one given to another app's
/// request (a throttle pauses every request of its route): each checked like
/// [`Secrets::safe_id`], with every JOSE-shaped run redacted. The error log's scrubbed ids pass
/// through unchanged; raw ones (a layer used without the error log) are checked here.
pub(crate) fn checked_ids(id: Option<&str>, trace_id: Option<&str>) -> crate::error::UpstreamIds {
    let none = Secrets::default();
    crate::error::UpstreamIds {
        id: id.map(|id| none.safe_id(id)),
        trace_id: trace_id.map(|id| none.safe_id(id)),
    }
}

/// The fields of an upstream error answer as they may be logged: parsed from a copy of the
/// body's first [`BODY_PREFIX`] bytes in which the secrets of the app's request (`app`) and of
/// the signed attempt (`attempt`: the [`Sent`] the inject layer attached to the answer) are
/// redacted, with `id`/`trace_id` checked. The answer itself is not changed.
pub(crate) fn loggable_error_body(
    res: &Response<Bytes>,
    app: &Sent,
    attempt: Option<&Sent>,
) -> ErrorBody {
    let secrets = Secrets::of(std::iter::once(app).chain(attempt));
    let prefix = &res.body()[..res.body().len().min(BODY_PREFIX)];
    let text = String::from_utf8_lossy(prefix);
    let scrubbed = secrets.scrub(&text);
    let mut body = ErrorBody::parse(&Bytes::from(scrubbed.into_owned()));
    body.id = body.id.map(|id| secrets.safe_id(&id));
    body.trace_id = body.trace_id.map(|id| secrets.safe_id(&id));
    body
}

/// `%2f` for `%2F`: some servers echo percent-encoding in lower case.
fn lowercase_escapes(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut hex_left = 0;
    for c in encoded.chars() {
        if c == '%' {
            hex_left = 2;
            out.push(c);
        } else if hex_left > 0 {
            hex_left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A run that starts like a JOSE header (`eyJ`, base64url of `{"`) and goes on for at least
/// this many base64url characters or dots is a JWS or JWE (or a part of one): proofs and
/// assertions of other attempts, tokens, id_tokens.
const JOSE_MIN_RUN: usize = 20;

/// `text` with every JOSE-shaped run replaced, or None when there is none.
fn redact_jose(text: &str) -> Option<String> {
    let is_run = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let (mut copied, mut i) = (0, 0);
    while let Some(found) = text[i..].find("eyJ") {
        let start = i + found;
        let starts_run = start == 0 || !is_run(bytes[start - 1]);
        let end = start + bytes[start..].iter().take_while(|b| is_run(**b)).count();
        if starts_run && end - start >= JOSE_MIN_RUN {
            let o = out.get_or_insert_with(String::new);
            o.push_str(&text[copied..start]);
            o.push_str(REDACTED);
            copied = end;
        }
        i = end.max(start + 3);
    }
    out.map(|mut o| {
        o.push_str(&text[copied..]);
        o
    })
}

#[cfg(test)]
mod tests;
