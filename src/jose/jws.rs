//! Compact JWS serialisation of the JWTs the proxy signs itself (client assertions, DPoP
//! proofs): header and claims written by serde straight from borrowed structs, base64url by the
//! base64 crate, the ES256 signature by ring. No intermediate JSON maps and no josekit here:
//! this runs once or twice per upstream attempt.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use josekit::JoseError;
use ring::rand::SystemRandom;
use ring::signature::EcdsaKeyPair;
use serde::Serialize;

/// The length of base64url without padding of `n` bytes.
const fn b64_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// An ES256 signature in JWS form (64 bytes, r || s) is 86 base64url characters.
const SIGNATURE_B64_LEN: usize = b64_len(64);

/// `base64url(header) . base64url(claims) . base64url(ES256 signature)`, in one allocation
/// for the JSON and one for the result.
pub(crate) fn sign_es256(
    header: &impl Serialize,
    claims: &impl Serialize,
    pair: &EcdsaKeyPair,
    rng: &SystemRandom,
) -> Result<String, JoseError> {
    let mut json = Vec::with_capacity(512);
    serde_json::to_writer(&mut json, header).map_err(|e| JoseError::InvalidJson(e.into()))?;
    let header_len = json.len();
    serde_json::to_writer(&mut json, claims).map_err(|e| JoseError::InvalidJson(e.into()))?;
    let (header_json, claims_json) = json.split_at(header_len);

    let mut jws = String::with_capacity(
        b64_len(header_json.len()) + 1 + b64_len(claims_json.len()) + 1 + SIGNATURE_B64_LEN,
    );
    URL_SAFE_NO_PAD.encode_string(header_json, &mut jws);
    jws.push('.');
    URL_SAFE_NO_PAD.encode_string(claims_json, &mut jws);
    let signature = pair
        .sign(rng, jws.as_bytes())
        .map_err(|_| JoseError::InvalidSignature(anyhow::anyhow!("ES256 signing failed")))?;
    jws.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut jws);
    Ok(jws)
}

/// A base64url value of a fixed-size input, kept on the stack (`jti`, `ath`, JWK coordinates).
#[derive(Clone, Copy)]
pub(crate) struct B64<const N: usize>([u8; N]);

impl<const N: usize> B64<N> {
    /// Encodes `input`, whose base64url form must be exactly `N` characters.
    pub(crate) fn encode(input: &[u8]) -> Self {
        let mut out = [0u8; N];
        let written = URL_SAFE_NO_PAD
            .encode_slice(input, &mut out)
            .expect("the output fits by construction");
        assert_eq!(
            written,
            N,
            "base64url of {} bytes is not {N} long",
            input.len()
        );
        Self(out)
    }
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("base64url is ASCII")
    }
}

impl<const N: usize> Serialize for B64<N> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// base64url of 32 bytes (a SHA-256 digest, a P-256 coordinate): 43 characters.
pub(crate) type B64Of32 = B64<43>;

/// base64url of 16 bytes (a `jti`): 22 characters.
pub(crate) type B64Of16 = B64<22>;

/// The `jti` of a new JWT: 128 random bits.
pub(crate) fn new_jti(rng: &mut dyn rand::RngCore) -> B64Of16 {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    B64Of16::encode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn fixed_width_values_match_the_base64_crate() {
        let digest = [7u8; 32];
        assert_eq!(
            B64Of32::encode(&digest).as_str(),
            URL_SAFE_NO_PAD.encode(digest)
        );
        let jti = new_jti(&mut StdRng::seed_from_u64(1));
        let again = crate::jose::random_jti(&mut StdRng::seed_from_u64(1));
        assert_eq!(jti.as_str(), again, "the same bits as the String form");
    }

    #[test]
    fn compact_form_has_three_parts_and_verifies() {
        #[derive(Serialize)]
        struct Header {
            alg: &'static str,
        }
        #[derive(Serialize)]
        struct Claims<'a> {
            sub: &'a str,
        }
        let rng = SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let jws = sign_es256(
            &Header { alg: "ES256" },
            &Claims { sub: "a\"b/c" },
            &pair,
            &rng,
        )
        .unwrap();
        let parts: Vec<&str> = jws.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(parts[1]).unwrap(),
            br#"{"sub":"a\"b/c"}"#,
            "claims escaped by serde_json"
        );
        assert_eq!(jws.capacity(), jws.len(), "sized exactly");
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            ring::signature::KeyPair::public_key(&pair).as_ref(),
        );
        let (input, signature) = jws.rsplit_once('.').unwrap();
        public
            .verify(
                input.as_bytes(),
                &URL_SAFE_NO_PAD.decode(signature).unwrap(),
            )
            .expect("the signature covers header.claims");
    }
}
