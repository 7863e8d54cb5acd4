//! The PKCE values (RFC 7636) that key FAPI login bindings, checked before a PAR is sent or a
//! key is looked up: a `code_challenge` is one S256 digest, a `code_verifier` is 43 to 128
//! unreserved characters. Anything else would let one login cost the store 60 KB instead of
//! 43 bytes, or bind a key under a value no token call can ever match.

use crate::error::{ProblemCode, ProxyError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Length of an S256 `code_challenge`: base64url of 32 bytes, without padding.
pub(crate) const CODE_CHALLENGE_LEN: usize = 43;
/// Shortest `code_verifier` RFC 7636 section 4.1 allows.
pub(crate) const CODE_VERIFIER_MIN: usize = 43;
/// Longest `code_verifier` RFC 7636 section 4.1 allows.
pub(crate) const CODE_VERIFIER_MAX: usize = 128;

/// A PAR's `code_challenge`: exactly 43 base64url characters that decode to a SHA-256 digest.
pub(crate) fn check_code_challenge(value: &str) -> Result<(), ProxyError> {
    let base64url = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let digest = value.len() == CODE_CHALLENGE_LEN
        && base64url
        && URL_SAFE_NO_PAD
            .decode(value)
            .is_ok_and(|bytes| bytes.len() == 32);
    if digest {
        return Ok(());
    }
    let problem = if value.len() != CODE_CHALLENGE_LEN {
        format!("is {} characters long", value.chars().count())
    } else if !base64url {
        "has characters outside the base64url alphabet".to_owned()
    } else {
        "is not the base64url form of a 32-byte digest".to_owned()
    };
    Err(ProxyError::new(
        ProblemCode::ValidationInvalidParameter,
        format!("code_challenge {problem}; an S256 code_challenge is BASE64URL(SHA256(code_verifier)) without padding: exactly {CODE_CHALLENGE_LEN} characters of A-Z a-z 0-9 - _ (RFC 7636 section 4.2)"),
    ))
}

/// A token call's `code_verifier`: 43 to 128 characters of A-Z a-z 0-9 `-` `.` `_` `~`.
pub(crate) fn check_code_verifier(value: &str) -> Result<(), ProxyError> {
    let unreserved = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let problem = if !(CODE_VERIFIER_MIN..=CODE_VERIFIER_MAX).contains(&value.len()) {
        format!("is {} characters long", value.chars().count())
    } else if !unreserved {
        "has characters outside A-Z a-z 0-9 - . _ ~".to_owned()
    } else {
        return Ok(());
    };
    Err(ProxyError::new(
        ProblemCode::ValidationInvalidParameter,
        format!("code_verifier {problem}; RFC 7636 section 4.1 allows {CODE_VERIFIER_MIN} to {CODE_VERIFIER_MAX} characters of A-Z a-z 0-9 - . _ ~"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::sha256_b64url;

    fn detail(result: Result<(), ProxyError>) -> String {
        let err = result.expect_err("refused");
        assert_eq!(err.code, ProblemCode::ValidationInvalidParameter);
        assert_eq!(err.code.status(), http::StatusCode::BAD_REQUEST);
        err.detail
    }

    #[test]
    fn an_s256_challenge_is_accepted() {
        let challenge = sha256_b64url(b"a-code-verifier-of-at-least-43-characters-0123456789");
        assert_eq!(challenge.len(), 43);
        assert!(check_code_challenge(&challenge).is_ok());
        // The RFC 7636 appendix B example.
        assert!(check_code_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM").is_ok());
    }

    #[test]
    fn a_challenge_of_the_wrong_length_is_refused_without_echoing_it() {
        let huge = "A".repeat(60 * 1024);
        let d = detail(check_code_challenge(&huge));
        assert!(d.contains("is 61440 characters long"), "{d}");
        assert!(d.len() < 400, "the value is not echoed");
        assert!(detail(check_code_challenge("")).contains("is 0 characters long"));
        let short = &sha256_b64url(b"x")[..42];
        assert!(detail(check_code_challenge(short)).contains("42 characters"));
        let padded = format!("{}=", sha256_b64url(b"x"));
        assert!(detail(check_code_challenge(&padded)).contains("44 characters"));
    }

    #[test]
    fn a_challenge_outside_base64url_is_refused() {
        let mut plus = sha256_b64url(b"x").into_bytes();
        plus[3] = b'+';
        let d = detail(check_code_challenge(std::str::from_utf8(&plus).unwrap()));
        assert!(d.contains("outside the base64url alphabet"), "{d}");
        let dots = ".".repeat(43);
        assert!(detail(check_code_challenge(&dots)).contains("outside"));
    }

    #[test]
    fn a_challenge_with_non_canonical_trailing_bits_is_refused() {
        // 43 characters encode 258 bits; the last two must be zero for a 32-byte digest.
        let mut odd = sha256_b64url(b"x").into_bytes();
        odd[42] = b'B';
        let d = detail(check_code_challenge(std::str::from_utf8(&odd).unwrap()));
        assert!(
            d.contains("not the base64url form of a 32-byte digest"),
            "{d}"
        );
    }

    #[test]
    fn verifiers_within_rfc_7636_are_accepted() {
        for v in [
            "a".repeat(43),
            "Z".repeat(128),
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned(),
            "abc.def_ghi~jkl-0123456789-0123456789-012345".to_owned(),
        ] {
            assert!(check_code_verifier(&v).is_ok(), "{v}");
        }
    }

    #[test]
    fn verifiers_outside_rfc_7636_are_refused() {
        assert!(detail(check_code_verifier(&"a".repeat(42))).contains("42 characters"));
        assert!(detail(check_code_verifier(&"a".repeat(129))).contains("129 characters"));
        let spaced = format!("{} b", "a".repeat(45));
        assert!(detail(check_code_verifier(&spaced)).contains("outside A-Z"));
        let slash = format!("{}/b", "a".repeat(45));
        assert!(detail(check_code_verifier(&slash)).contains("outside A-Z"));
    }
}
