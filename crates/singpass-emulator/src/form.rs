//! The `application/x-www-form-urlencoded` bodies of the POST endpoints (v4 and FAPI token,
//! PAR, CIBA): read with `form_urlencoded`, each field present at most once.

use http::header;

use crate::errors::Rejection;
use crate::request::EmulatorRequest;

/// The decoded form body.
#[derive(Debug)]
pub(crate) struct FormBody {
    fields: Vec<(String, String)>,
}

impl FormBody {
    /// A form body, or "No body found for POST request" for an empty or non-form body (a form
    /// parser would find nothing in it).
    pub(crate) fn parse(request: EmulatorRequest<'_>) -> Result<Self, Rejection> {
        let is_form = request
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|essence| {
                essence
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form || request.body.is_empty() {
            return Err(Rejection::bad_request("No body found for POST request"));
        }
        let fields = form_urlencoded::parse(request.body)
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        Ok(FormBody { fields })
    }

    /// The single non-empty value of `name`.
    pub(crate) fn required(&self, name: &str) -> Result<&str, Rejection> {
        self.optional(name)?
            .ok_or_else(|| Rejection::missing_from_body(name))
    }

    /// The single value of `name`, `None` when absent or empty.
    pub(crate) fn optional(&self, name: &str) -> Result<Option<&str>, Rejection> {
        let mut values = self
            .fields
            .iter()
            .filter(|(field, _)| field == name)
            .map(|(_, value)| value.as_str());
        match (values.next(), values.next()) {
            (None, _) | (Some(""), None) => Ok(None),
            (Some(value), None) => Ok(Some(value)),
            // Extrapolated wording: the table has no entry for a repeated field.
            (Some(_), Some(_)) => Err(Rejection::bad_request(format!("Invalid {name}"))),
        }
    }

    /// Whether `name` appears at all, even empty.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.fields.iter().any(|(field, _)| field == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue, Method};

    fn form(body: &'static str) -> Result<FormBody, Rejection> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        let body = Bytes::from_static(body.as_bytes());
        FormBody::parse(EmulatorRequest {
            method: &Method::POST,
            query: None,
            headers: &headers,
            body: &body,
        })
    }

    #[test]
    fn fields_are_single_and_non_empty() {
        let body = form("a=1&b=&c=x&c=y").expect("form");
        assert_eq!(body.required("a"), Ok("1"));
        assert_eq!(body.optional("b"), Ok(None));
        assert_eq!(body.required("b"), Err(Rejection::missing_from_body("b")));
        assert!(body.required("c").is_err());
        assert_eq!(body.optional("d"), Ok(None));
        assert!(body.contains("b") && !body.contains("d"));
        assert!(form("").is_err());
    }
}
