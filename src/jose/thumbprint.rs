//! RFC 7638 JWK thumbprints (the `jkt` that binds tokens and codes to a DPoP key).

use super::sha256_b64url;
use josekit::jwk::Jwk;
use std::collections::BTreeMap;

/// Why a JWK has no thumbprint.
#[derive(Debug, thiserror::Error)]
pub enum ThumbprintError {
    /// The key type has no defined set of required members here.
    #[error("unsupported key type `{0}` for a thumbprint")]
    UnsupportedKeyType(String),
    /// A required member is absent or not a string.
    #[error("JWK member `{0}` is missing or not a string")]
    MissingMember(&'static str),
}

/// The RFC 7638 thumbprint: SHA-256 over the JSON object of exactly the required public
/// members, in lexicographic order, without whitespace, base64url without padding.
pub fn thumbprint(jwk: &Jwk) -> Result<String, ThumbprintError> {
    let required: &[&'static str] = match jwk.key_type() {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        other => return Err(ThumbprintError::UnsupportedKeyType(other.to_owned())),
    };
    // A BTreeMap serialises its keys in lexicographic order, and serde_json's compact writer
    // adds no whitespace: exactly the canonical form RFC 7638 section 3 asks for.
    let mut members = BTreeMap::new();
    for &name in required {
        let value = jwk
            .parameter(name)
            .and_then(|v| v.as_str())
            .ok_or(ThumbprintError::MissingMember(name))?;
        members.insert(name, value);
    }
    let canonical = serde_json::to_vec(&members).expect("a map of strings always serialises");
    Ok(sha256_b64url(&canonical))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 section 3.1: the example RSA key and its thumbprint.
    #[test]
    fn matches_the_rfc_7638_example() {
        let jwk = Jwk::from_bytes(
            br#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .unwrap();
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn ignores_optional_members_and_order() {
        let a = Jwk::from_bytes(br#"{"kty":"EC","crv":"P-256","x":"AAAA","y":"BBBB"}"#).unwrap();
        let b = Jwk::from_bytes(
            br#"{"y":"BBBB","use":"sig","x":"AAAA","kid":"k1","crv":"P-256","kty":"EC"}"#,
        )
        .unwrap();
        assert_eq!(thumbprint(&a).unwrap(), thumbprint(&b).unwrap());
        // The canonical input for this key, hashed independently of the function above.
        assert_eq!(
            thumbprint(&a).unwrap(),
            sha256_b64url(br#"{"crv":"P-256","kty":"EC","x":"AAAA","y":"BBBB"}"#)
        );
    }

    #[test]
    fn missing_member_is_an_error() {
        let jwk = Jwk::from_bytes(br#"{"kty":"EC","crv":"P-256","x":"AAAA"}"#).unwrap();
        assert!(matches!(
            thumbprint(&jwk),
            Err(ThumbprintError::MissingMember("y"))
        ));
        let oct = Jwk::from_bytes(br#"{"kty":"oct","k":"AAA"}"#).unwrap();
        assert!(matches!(
            thumbprint(&oct),
            Err(ThumbprintError::UnsupportedKeyType(_))
        ));
    }
}
