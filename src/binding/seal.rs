//! Sealing of the records a shared binding store keeps: AES-256-GCM (ring), with the record's
//! whole Redis key as associated data, so that a record copied to another name does not open.
//!
//! A record's name is an HMAC of its token (or code_challenge) under a key derived from the
//! seal key, and its AEAD key is HKDF(seal key, token): a Redis dump, even with the seal key,
//! opens nothing without the token itself, and names cannot be precomputed from known tokens
//! without the seal key. Seal keys form a keyring: the first seals, all open, and a lookup
//! tries the name under each key, so a rotation fails no binding in flight.

use crate::config::{ConfigError, SealKeySource};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{Salt, HKDF_SHA256};
use ring::hmac;
use ring::rand::{SecureRandom as _, SystemRandom};
use zeroize::Zeroizing;

/// The format byte every record starts with.
const VERSION: u8 = 1;
/// What the names are derived under (HKDF extract input).
const NAMES: &[u8] = b"myinfo-proxy binding record names v1";

/// A record that could not be opened (wrong name, unknown key, tampered, or truncated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the sealed record does not open with any seal key")]
pub struct SealError;

/// The seal keys: the first seals, all open.
pub struct SealKeyring {
    keys: Vec<SealKey>,
}

struct SealKey {
    /// One byte naming the key in each record (a hint: ids may collide, all matches are tried).
    id: u8,
    secret: Zeroizing<[u8; 32]>,
    names: hmac::Key,
}

impl std::fmt::Debug for SealKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealKeyring({} keys)", self.keys.len())
    }
}

/// Which kind of record: part of both the name and the key derivation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Record {
    /// token -> key
    Token,
    /// code_challenge -> key
    Login,
}

impl Record {
    fn label(self) -> &'static str {
        match self {
            Self::Token => "t",
            Self::Login => "l",
        }
    }
}

impl SealKeyring {
    /// A keyring from raw 32-byte keys (at least one).
    pub fn new(keys: Vec<[u8; 32]>) -> Result<Self, String> {
        if keys.is_empty() {
            return Err("no seal key".into());
        }
        let keys = keys
            .into_iter()
            .map(|k| {
                let secret = Zeroizing::new(k);
                let names: hmac::Key = Salt::new(HKDF_SHA256, &secret[..])
                    .extract(NAMES)
                    .expand(&[b"names"], hmac::HMAC_SHA256)
                    .expect("HMAC key length")
                    .into();
                let id = hmac::sign(&names, b"key id").as_ref()[0];
                SealKey { id, secret, names }
            })
            .collect();
        Ok(Self { keys })
    }

    /// Parses a keyring: base64url (or standard base64) 32-byte keys, one per line or as a JSON
    /// array of strings; blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let items: Vec<String> = if trimmed.starts_with('[') {
            serde_json::from_str(trimmed)
                .map_err(|_| "not a JSON array of base64url strings".to_owned())?
        } else {
            trimmed
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect()
        };
        let mut keys = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let clean = item.trim().trim_end_matches('=');
            let bytes = Zeroizing::new(
                URL_SAFE_NO_PAD
                    .decode(clean)
                    .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(clean))
                    .map_err(|_| format!("key {} is not base64url", i + 1))?,
            );
            let key: [u8; 32] = bytes[..]
                .try_into()
                .map_err(|_| format!("key {} is {} bytes, not 32", i + 1, bytes.len()))?;
            keys.push(key);
        }
        Self::new(keys)
    }

    /// Reads the keyring from its file or environment variable, naming the config key and the
    /// fix when it cannot.
    pub fn load(source: &SealKeySource) -> Result<Self, ConfigError> {
        let fix = "put one or more keys made by `myinfo-proxy seal-key` there, one per line, the sealing key first";
        let (key, text) = match source {
            SealKeySource::File(path) => (
                "redis.seal_keys_file",
                std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(
                        "redis.seal_keys_file",
                        format!("cannot read {}: {e}", path.display()),
                        fix,
                    )
                })?,
            ),
            SealKeySource::Env(name) => (
                "redis.seal_keys_env",
                std::env::var(name).map_err(|_| {
                    ConfigError::new(
                        "redis.seal_keys_env",
                        format!("the environment variable {name} is not set (or not UTF-8)"),
                        fix,
                    )
                })?,
            ),
        };
        let text = Zeroizing::new(text);
        Self::parse(&text).map_err(|problem| ConfigError::new(key, problem, fix))
    }

    /// A new random seal key, base64url (what `myinfo-proxy seal-key` prints).
    pub fn generate_key() -> String {
        let mut key = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(&mut key[..])
            .expect("the system's random source");
        URL_SAFE_NO_PAD.encode(&key[..])
    }

    /// The record's name under each seal key, the sealing key's first (without the prefix).
    pub(crate) fn names(&self, kind: Record, secret: &str) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| {
                let mut ctx = hmac::Context::with_key(&k.names);
                ctx.update(kind.label().as_bytes());
                ctx.update(&[0]);
                ctx.update(secret.as_bytes());
                format!(
                    "{}:{}",
                    kind.label(),
                    URL_SAFE_NO_PAD.encode(ctx.sign().as_ref())
                )
            })
            .collect()
    }

    /// Seals `plain` for the record named `aad`, under a key derived from the first seal key
    /// and `secret` (the token or code_challenge).
    pub(crate) fn seal(&self, kind: Record, secret: &str, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system's random source");
        let mut out = Vec::with_capacity(2 + NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(&[VERSION, key.id]);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        aead(key, kind, secret)
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .expect("AES-GCM seals any length we use");
        out.extend_from_slice(&body);
        body.iter_mut().for_each(|b| *b = 0);
        out
    }

    /// Opens a record sealed by [`SealKeyring::seal`] under any key of the ring.
    pub(crate) fn open(
        &self,
        kind: Record,
        secret: &str,
        aad: &[u8],
        record: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let [VERSION, id, rest @ ..] = record else {
            return Err(SealError);
        };
        if rest.len() < NONCE_LEN + 16 {
            return Err(SealError);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        for key in self.keys.iter().filter(|k| k.id == *id) {
            let mut body = Zeroizing::new(sealed.to_vec());
            let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError)?;
            if let Ok(plain) =
                aead(key, kind, secret).open_in_place(nonce, Aad::from(aad), &mut body)
            {
                return Ok(Zeroizing::new(plain.to_vec()));
            }
        }
        Err(SealError)
    }
}

/// HKDF(seal key, secret) -> the record's own AES-256-GCM key.
fn aead(key: &SealKey, kind: Record, secret: &str) -> LessSafeKey {
    let unbound: UnboundKey = Salt::new(HKDF_SHA256, &key.secret[..])
        .extract(secret.as_bytes())
        .expand(
            &[b"myinfo-proxy record key v1", kind.label().as_bytes()],
            &AES_256_GCM,
        )
        .expect("AES-256 key length")
        .into();
    LessSafeKey::new(unbound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::EphemeralKey;

    fn ring(keys: &[u8]) -> SealKeyring {
        SealKeyring::new(keys.iter().map(|b| [*b; 32]).collect()).unwrap()
    }

    #[test]
    fn a_sealed_key_opens_with_its_token_and_name_only() {
        let r = ring(&[1]);
        let key = EphemeralKey::generate().unwrap();
        let name = &r.names(Record::Token, "tok")[0];
        let sealed = r.seal(Record::Token, "tok", name.as_bytes(), &key.export_secret());
        let plain = r
            .open(Record::Token, "tok", name.as_bytes(), &sealed)
            .unwrap();
        let back = EphemeralKey::import_secret(&plain).unwrap();
        assert_eq!(back.jkt(), key.jkt());
        assert_eq!(
            r.open(Record::Token, "other", name.as_bytes(), &sealed),
            Err(SealError),
            "another token"
        );
        assert_eq!(
            r.open(Record::Token, "tok", b"p:t:elsewhere", &sealed),
            Err(SealError),
            "another name"
        );
        assert_eq!(
            r.open(Record::Login, "tok", name.as_bytes(), &sealed),
            Err(SealError),
            "another kind"
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            r.open(Record::Token, "tok", name.as_bytes(), &tampered),
            Err(SealError)
        );
        assert_eq!(
            r.open(Record::Token, "tok", name.as_bytes(), &sealed[..10]),
            Err(SealError)
        );
        assert!(EphemeralKey::import_secret(&plain[..96]).is_err());
    }

    #[test]
    fn rotation_keeps_old_records_open_and_seals_with_the_first_key() {
        let old = ring(&[1]);
        let sealed = old.seal(Record::Login, "c", b"n", b"secret");
        let rotated = ring(&[2, 1]);
        assert_eq!(
            &rotated.open(Record::Login, "c", b"n", &sealed).unwrap()[..],
            b"secret"
        );
        assert_eq!(
            rotated.names(Record::Login, "c")[1],
            old.names(Record::Login, "c")[0]
        );
        let fresh = rotated.seal(Record::Login, "c", b"n", b"secret");
        assert!(
            old.open(Record::Login, "c", b"n", &fresh).is_err(),
            "sealed with the new key"
        );
        assert!(ring(&[3]).open(Record::Login, "c", b"n", &sealed).is_err());
    }

    #[test]
    fn keyrings_parse_from_lines_or_json_and_name_bad_keys() {
        let a = SealKeyring::generate_key();
        let b = SealKeyring::generate_key();
        assert_eq!(
            SealKeyring::parse(&format!("# seal keys\n{a}\n\n{b}\n"))
                .unwrap()
                .keys
                .len(),
            2
        );
        assert_eq!(
            SealKeyring::parse(&format!("[\"{a}\", \"{b}\"]"))
                .unwrap()
                .keys
                .len(),
            2
        );
        assert_eq!(
            SealKeyring::parse(&format!("{a}\nAAAA")).unwrap_err(),
            "key 2 is 3 bytes, not 32"
        );
        assert_eq!(
            SealKeyring::parse("not base64!").unwrap_err(),
            "key 1 is not base64url"
        );
        assert_eq!(SealKeyring::parse("\n").unwrap_err(), "no seal key");
        assert!(!format!("{:?}", SealKeyring::parse(&a).unwrap()).contains(&a));
    }
}
