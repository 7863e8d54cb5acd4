//! Encrypt-then-open round trips with every algorithm Singpass may use, and each failure.

use super::*;
use crate::jose::{generate_client_jwks, ClientKeys};
use josekit::jwe::{JweHeader, ECDH_ES_A128KW, ECDH_ES_A192KW, ECDH_ES_A256KW};
use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
use josekit::jwk::{Jwk, KeyPair as _};
use josekit::jws::JwsHeader;

struct Upstream {
    signing: Jwk,
    jwks: JwkSet,
}

fn upstream(kid: &str) -> Upstream {
    let pair = EcKeyPair::generate(EcCurve::P256).unwrap();
    let mut signing = pair.to_jwk_key_pair();
    signing.set_key_id(kid);
    let mut public = pair.to_jwk_public_key();
    public.set_key_id(kid);
    public.set_key_use("sig");
    let mut jwks = JwkSet::new();
    jwks.push_key(public);
    Upstream { signing, jwks }
}

fn client() -> (ClientKeys, Jwk) {
    let (private, _) = generate_client_jwks().unwrap();
    let keys = ClientKeys::from_private_jwks(private.to_string().as_bytes()).unwrap();
    let public = keys.encryption()[0].public_jwk().clone();
    (keys, public)
}

fn sign(up: &Upstream, payload: &str) -> String {
    let mut h = JwsHeader::new();
    h.set_token_type("JWT");
    h.set_key_id(up.signing.key_id().unwrap());
    let signer = ES256.signer_from_jwk(&up.signing).unwrap();
    josekit::jws::serialize_compact(payload.as_bytes(), &h, &signer).unwrap()
}

fn encrypt(
    to: &Jwk,
    alg: &josekit::jwe::alg::ecdh_es::EcdhEsJweAlgorithm,
    enc: &str,
    kid: Option<&str>,
    plain: &str,
) -> String {
    let mut h = JweHeader::new();
    h.set_content_encryption(enc);
    h.set_content_type("JWT");
    if let Some(kid) = kid {
        h.set_key_id(kid);
    }
    let mut jwk = to.clone();
    jwk.set_algorithm(alg.name());
    let encrypter = alg.encrypter_from_jwk(&jwk).unwrap();
    josekit::jwe::serialize_compact(plain.as_bytes(), &h, &encrypter).unwrap()
}

#[test]
fn opens_every_algorithm_and_encoding_singpass_may_send() {
    let (keys, enc_public) = client();
    let up = upstream("sp-1");
    let jws = sign(&up, r#"{"sub":"u-1","iss":"https://issuer"}"#);
    let kid = keys.encryption()[0].kid().to_owned();
    for alg in [&ECDH_ES_A128KW, &ECDH_ES_A192KW, &ECDH_ES_A256KW] {
        for enc in ["A256CBC-HS512", "A256GCM"] {
            for k in [Some(kid.as_str()), None] {
                let jwe = encrypt(&enc_public, alg, enc, k, &jws);
                let inner = decrypt(&jwe, keys.encryption())
                    .unwrap_or_else(|e| panic!("{} {enc}: {e}", alg.name()));
                let claims = verify(&inner, &up.jwks).unwrap();
                assert_eq!(claims["sub"], "u-1");
            }
        }
    }
}

#[test]
fn a_jwe_for_another_client_does_not_open() {
    let (keys, _) = client();
    let (_, other_public) = client();
    let up = upstream("sp-1");
    let jwe = encrypt(
        &other_public,
        &ECDH_ES_A256KW,
        "A256CBC-HS512",
        None,
        &sign(&up, "{}"),
    );
    assert!(matches!(
        decrypt(&jwe, keys.encryption()),
        Err(UnwrapError::Decrypt(_))
    ));
    assert!(matches!(
        decrypt("not.a.jwe", keys.encryption()),
        Err(UnwrapError::Decrypt(_))
    ));
}

#[test]
fn signature_checks_name_unknown_keys_and_reject_forgeries() {
    let up = upstream("sp-1");
    let other = upstream("sp-2");
    let forged_kid = {
        // Signed by another key that claims the upstream's kid.
        let mut signing = other.signing.clone();
        signing.set_key_id("sp-1");
        sign(
            &Upstream {
                signing,
                jwks: JwkSet::new(),
            },
            r#"{"sub":"x"}"#,
        )
    };
    assert!(
        matches!(verify(sign(&other, "{}").as_bytes(), &up.jwks), Err(UnwrapError::UnknownSigningKey(Some(k))) if k == "sp-2")
    );
    assert!(matches!(
        verify(forged_kid.as_bytes(), &up.jwks),
        Err(UnwrapError::Signature(_))
    ));
    assert!(matches!(
        verify(sign(&up, "[1,2]").as_bytes(), &up.jwks),
        Err(UnwrapError::Payload)
    ));
    assert!(matches!(
        verify(b"garbage", &up.jwks),
        Err(UnwrapError::Signature(_))
    ));
}

#[test]
fn decryption_tries_every_enc_key_when_the_jwe_names_none() {
    let (a, _) = generate_client_jwks().unwrap();
    let (b, _) = generate_client_jwks().unwrap();
    // One private JWKS with a's sig and enc keys and b's enc key (mid-rotation).
    let enc_b = b["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["use"] == "enc")
        .unwrap()
        .clone();
    let mut combined = a.clone();
    combined["keys"].as_array_mut().unwrap().push(enc_b.clone());
    let keys = ClientKeys::from_private_jwks(combined.to_string().as_bytes()).unwrap();
    assert_eq!(keys.encryption().len(), 2);
    let mut to_b = Jwk::from_map(enc_b.as_object().unwrap().clone())
        .unwrap()
        .to_public_key()
        .unwrap();
    to_b.set_algorithm("ECDH-ES+A256KW");
    let up = upstream("sp-1");
    let jws = sign(&up, r#"{"sub":"s"}"#);
    let unnamed = encrypt(&to_b, &ECDH_ES_A256KW, "A256CBC-HS512", None, &jws);
    assert!(verify(&decrypt(&unnamed, keys.encryption()).unwrap(), &up.jwks).is_ok());
    let named = encrypt(
        &to_b,
        &ECDH_ES_A256KW,
        "A256GCM",
        Some(enc_b["kid"].as_str().unwrap()),
        &jws,
    );
    assert!(decrypt(&named, keys.encryption()).is_ok());
    // Without b's key, neither opens.
    let only_a = ClientKeys::from_private_jwks(a.to_string().as_bytes()).unwrap();
    assert!(decrypt(&unnamed, only_a.encryption()).is_err());
}
