//! The client's long-lived keys (from a private JWKS or PEM) and the ephemeral DPoP keys.

use super::thumbprint::thumbprint;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use josekit::jwe::alg::ecdh_es::EcdhEsJweDecrypter;
use josekit::jwe::{ECDH_ES_A128KW, ECDH_ES_A192KW, ECDH_ES_A256KW};
use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
use josekit::jwk::{Jwk, JwkSet, KeyPair as _};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::collections::HashSet;
use std::fmt;

/// The only key-agreement algorithm Singpass registers for the client's `enc` key.
pub(crate) const ENC_ALG: &str = "ECDH-ES+A256KW";

/// Why the configured client keys cannot be used. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The JWKS is not JSON of the form `{"keys": [...]}`.
    #[error("not a JWKS (expected JSON {{\"keys\": [...]}}): {0}")]
    NotAJwks(String),
    /// A key is unusable; the string says which and why.
    #[error("{0}")]
    Invalid(String),
    /// A PEM document did not parse as an EC P-256 private key.
    #[error("{what}: not an EC P-256 private key in PEM form ({reason})")]
    BadPem {
        /// Which key (`sig` or `enc`).
        what: &'static str,
        /// What the parser said.
        reason: String,
    },
}

/// The client's ES256 signing key: signs client assertions. Its `kid` is what Singpass looks up
/// in the client's registered JWKS.
///
/// The private key is parsed into a ring key pair once, when the keys are loaded (or rotated),
/// never per request.
pub struct SigningKey {
    kid: String,
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    public: Jwk,
}

impl SigningKey {
    /// The key id published in the client JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }
    /// The public half, with `kid`, `use` and `alg`.
    pub fn public_jwk(&self) -> &Jwk {
        &self.public
    }
    /// The ring key pair and the RNG its signatures draw on.
    pub(crate) fn ring_pair(&self) -> (&EcdsaKeyPair, &SystemRandom) {
        (&self.pair, &self.rng)
    }
}

/// One of the client's ECDH-ES key-agreement keys: Singpass encrypts answers to it.
pub struct EncryptionKey {
    kid: String,
    /// For `ECDH-ES+A128KW`, `+A192KW`, `+A256KW`: the same key, one decrypter per algorithm.
    decrypters: [EcdhEsJweDecrypter; 3],
    public: Jwk,
}

impl EncryptionKey {
    /// The key id published in the client JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }
    /// The public half, with `kid`, `use` and `alg`.
    pub fn public_jwk(&self) -> &Jwk {
        &self.public
    }
    /// A decrypter for JWEs addressed to this key with key-agreement algorithm `alg`.
    pub fn decrypter(&self, alg: &str) -> Option<&EcdhEsJweDecrypter> {
        match alg {
            "ECDH-ES+A128KW" => Some(&self.decrypters[0]),
            "ECDH-ES+A192KW" => Some(&self.decrypters[1]),
            "ECDH-ES+A256KW" => Some(&self.decrypters[2]),
            _ => None,
        }
    }
}

/// The client's keys, validated: one ES256 `sig` key and at least one `enc` key, P-256,
/// distinct kids.
pub struct ClientKeys {
    /// Every signing key; `sig[active]` signs, all are published.
    sig: Vec<SigningKey>,
    active: usize,
    enc: Vec<EncryptionKey>,
}

impl fmt::Debug for ClientKeys {
    // Only key ids: private members must never reach a log line or a panic message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enc: Vec<&str> = self.enc.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("ClientKeys")
            .field("sig", &self.sig[self.active].kid)
            .field("enc", &enc)
            .finish()
    }
}

impl ClientKeys {
    /// Loads a private JWKS: one or more `use=sig` keys and one or more `use=enc` keys. The
    /// key named `active_sig_kid` signs (default: the first `sig` key); all are published.
    pub fn from_private_jwks(json: &[u8]) -> Result<Self, KeyError> {
        Self::from_private_jwks_with_active(json, None)
    }

    /// As [`ClientKeys::from_private_jwks`], choosing the signing key by kid.
    pub fn from_private_jwks_with_active(
        json: &[u8],
        active_sig_kid: Option<&str>,
    ) -> Result<Self, KeyError> {
        let set = JwkSet::from_bytes(json).map_err(|e| KeyError::NotAJwks(e.to_string()))?;
        let mut kids = HashSet::new();
        let (mut sig, mut enc) = (Vec::new(), Vec::new());
        for (i, jwk) in set.keys().into_iter().enumerate() {
            let kid = jwk
                .key_id()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| KeyError::Invalid(format!("key #{i} has no `kid`")))?;
            if !kids.insert(kid.to_owned()) {
                return Err(KeyError::Invalid(format!(
                    "kid `{kid}` appears twice; every key needs its own kid"
                )));
            }
            check_private_p256(jwk, kid)?;
            match jwk.key_use() {
                Some("sig") => sig.push(signing_key(jwk, kid)?),
                Some("enc") => enc.push(encryption_key(jwk, kid)?),
                other => {
                    return Err(KeyError::Invalid(format!(
                        "key `{kid}` has use {other:?}; expected \"sig\" or \"enc\""
                    )))
                }
            }
        }
        if sig.is_empty() {
            return Err(KeyError::Invalid(
                "no `use=sig` ES256 key: the proxy needs one to sign client assertions".into(),
            ));
        }
        let active = match active_sig_kid {
            None => 0,
            Some(kid) => sig
                .iter()
                .position(|k: &SigningKey| k.kid == kid)
                .ok_or_else(|| {
                    KeyError::Invalid(format!(
                        "active_sig_kid `{kid}` is not a `use=sig` key in the JWKS"
                    ))
                })?,
        };
        if enc.is_empty() {
            return Err(KeyError::Invalid(format!(
                "no `use=enc` {ENC_ALG} key; Singpass needs one to encrypt answers"
            )));
        }
        Ok(Self { sig, active, enc })
    }

    /// Loads one signing and one encryption key from PEM (PKCS#8 or SEC1), with their kids.
    pub fn from_pems(
        sig_pem: &[u8],
        sig_kid: &str,
        enc_pem: &[u8],
        enc_kid: &str,
    ) -> Result<Self, KeyError> {
        if sig_kid == enc_kid {
            return Err(KeyError::Invalid(
                "the sig and enc keys need distinct kids".into(),
            ));
        }
        let jwk_from = |pem: &[u8], what: &'static str, kid: &str, usage: &str, alg: &str| {
            let pair =
                EcKeyPair::from_pem(pem, Some(EcCurve::P256)).map_err(|e| KeyError::BadPem {
                    what,
                    reason: short_reason(&e),
                })?;
            let mut jwk = pair.to_jwk_key_pair();
            jwk.set_key_id(kid);
            jwk.set_key_use(usage);
            jwk.set_algorithm(alg);
            Ok::<_, KeyError>(jwk)
        };
        let sig = jwk_from(sig_pem, "sig", sig_kid, "sig", "ES256")?;
        let enc = jwk_from(enc_pem, "enc", enc_kid, "enc", ENC_ALG)?;
        Ok(Self {
            sig: vec![signing_key(&sig, sig_kid)?],
            active: 0,
            enc: vec![encryption_key(&enc, enc_kid)?],
        })
    }

    /// The signing key for client assertions.
    pub fn signing(&self) -> &SigningKey {
        &self.sig[self.active]
    }

    /// Every signing key (the active one and those published for rotation).
    pub fn all_signing(&self) -> &[SigningKey] {
        &self.sig
    }

    /// Every encryption key, in configured order.
    pub fn encryption(&self) -> &[EncryptionKey] {
        &self.enc
    }

    /// The public JWKS to register with Singpass (no private members).
    pub fn public_jwks(&self) -> serde_json::Value {
        let mut keys: Vec<serde_json::Value> = self
            .sig
            .iter()
            .map(|k| serde_json::Value::Object(k.public.as_ref().clone()))
            .collect();
        keys.extend(
            self.enc
                .iter()
                .map(|k| serde_json::Value::Object(k.public.as_ref().clone())),
        );
        serde_json::json!({ "keys": keys })
    }
}

fn check_private_p256(jwk: &Jwk, kid: &str) -> Result<(), KeyError> {
    if jwk.key_type() != "EC" || jwk.curve() != Some("P-256") {
        return Err(KeyError::Invalid(format!(
            "key `{kid}` must be an EC P-256 key (kty=EC, crv=P-256)"
        )));
    }
    if jwk.parameter("d").is_none() {
        return Err(KeyError::Invalid(format!(
            "key `{kid}` has no private member `d`: the proxy needs the private JWKS"
        )));
    }
    Ok(())
}

fn public_half(jwk: &Jwk, kid: &str, alg: &str) -> Result<Jwk, KeyError> {
    let mut public = jwk
        .to_public_key()
        .map_err(|e| KeyError::Invalid(format!("key `{kid}`: {}", short_reason(&e))))?;
    public.set_key_id(kid);
    public.set_algorithm(alg);
    Ok(public)
}

fn signing_key(jwk: &Jwk, kid: &str) -> Result<SigningKey, KeyError> {
    if let Some(alg) = jwk.algorithm().filter(|a| *a != "ES256") {
        return Err(KeyError::Invalid(format!(
            "sig key `{kid}` has alg `{alg}`; expected ES256"
        )));
    }
    let rng = SystemRandom::new();
    let pair =
        ring_pair(jwk, &rng).map_err(|why| KeyError::Invalid(format!("sig key `{kid}`: {why}")))?;
    Ok(SigningKey {
        kid: kid.to_owned(),
        pair,
        rng,
        public: public_half(jwk, kid, "ES256")?,
    })
}

/// A ring ES256 key pair from a private P-256 JWK: the scalar `d` and the public point
/// 0x04 || `x` || `y`, which ring checks belong together.
fn ring_pair(jwk: &Jwk, rng: &SystemRandom) -> Result<EcdsaKeyPair, &'static str> {
    let member = |name: &'static str| -> Result<[u8; 32], &'static str> {
        let text = jwk
            .parameter(name)
            .and_then(|v| v.as_str())
            .ok_or("a P-256 member (d, x or y) is missing")?;
        // The base64 crate wants room for its estimate (33 bytes for 43 characters).
        let mut out = [0u8; 36];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut out) {
            Ok(32) => Ok(out[..32].try_into().expect("32 bytes")),
            _ => Err("a P-256 member (d, x or y) is not 32 bytes of base64url"),
        }
    };
    let d = member("d")?;
    let mut point = [4u8; 65];
    point[1..33].copy_from_slice(&member("x")?);
    point[33..].copy_from_slice(&member("y")?);
    EcdsaKeyPair::from_private_key_and_public_key(&ECDSA_P256_SHA256_FIXED_SIGNING, &d, &point, rng)
        .map_err(|_| "d, x and y are not one valid P-256 key pair")
}

fn encryption_key(jwk: &Jwk, kid: &str) -> Result<EncryptionKey, KeyError> {
    if let Some(alg) = jwk.algorithm().filter(|a| *a != ENC_ALG) {
        return Err(KeyError::Invalid(format!(
            "enc key `{kid}` has alg `{alg}`; expected {ENC_ALG}"
        )));
    }
    // josekit checks `alg` against the decrypter it builds; the key itself is the same.
    let decrypter = |alg: &josekit::jwe::alg::ecdh_es::EcdhEsJweAlgorithm| {
        let mut for_decrypt = jwk.clone();
        for_decrypt.set_algorithm(alg.name());
        // Without a kid here, josekit also opens JWEs that name none; `unwrap::decrypt`
        // matches kids itself (by kid, else each key in turn).
        let _ = for_decrypt.set_parameter("kid", None);
        alg.decrypter_from_jwk(&for_decrypt)
            .map_err(|e| KeyError::Invalid(format!("enc key `{kid}`: {}", short_reason(&e))))
    };
    let decrypters = [
        decrypter(&ECDH_ES_A128KW)?,
        decrypter(&ECDH_ES_A192KW)?,
        decrypter(&ECDH_ES_A256KW)?,
    ];
    Ok(EncryptionKey {
        kid: kid.to_owned(),
        decrypters,
        public: public_half(jwk, kid, ENC_ALG)?,
    })
}

/// The first line of a josekit error, which names the problem but never the key's value.
pub(super) fn short_reason(err: &josekit::JoseError) -> String {
    err.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Generates a new client key set: `(private JWKS, public JWKS)`, an ES256 `sig` key and an
/// ECDH-ES+A256KW `enc` key on P-256, kids derived from their thumbprints.
pub fn generate_client_jwks() -> Result<(serde_json::Value, serde_json::Value), KeyError> {
    let make = |usage: &str, alg: &str| -> Result<Jwk, KeyError> {
        let pair =
            EcKeyPair::generate(EcCurve::P256).map_err(|e| KeyError::Invalid(short_reason(&e)))?;
        let mut jwk = pair.to_jwk_key_pair();
        let tp = thumbprint(&jwk).map_err(|e| KeyError::Invalid(e.to_string()))?;
        jwk.set_key_id(format!("{usage}-{}", &tp[..16]));
        jwk.set_key_use(usage);
        jwk.set_algorithm(alg);
        Ok(jwk)
    };
    let private = [make("sig", "ES256")?, make("enc", ENC_ALG)?];
    let private_json = serde_json::json!({
        "keys": private.iter().map(|k| k.as_ref().clone()).collect::<Vec<_>>()
    });
    // Round-trip through the loader so that keygen never writes a set the proxy would refuse.
    let keys = ClientKeys::from_private_jwks(private_json.to_string().as_bytes())?;
    Ok((private_json, keys.public_jwks()))
}
