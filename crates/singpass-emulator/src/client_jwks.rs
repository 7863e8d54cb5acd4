//! Reading the client's public JWKS from a file, for the standalone emulator (this crate's
//! binary and the proxy's `emulator` command): a set holding private keys is refused, so that
//! a private JWKS handed over by mistake is not quietly accepted.

use std::path::{Path, PathBuf};

use josekit::jwk::JwkSet;

/// Why a client JWKS file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientJwksError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file named.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The file is not a JWKS.
    #[error("{}: not a JWKS: {source}", path.display())]
    NotJwks {
        /// The file named.
        path: PathBuf,
        /// What the JWKS parser said.
        source: josekit::JoseError,
    },
    /// The set holds private key members (`d`).
    #[error("{} holds private keys: give the emulator the PUBLIC JWKS", path.display())]
    HoldsPrivateKeys {
        /// The file named.
        path: PathBuf,
    },
}

/// Reads the client's PUBLIC JWKS (e.g. `public-jwks.json` from the proxy's `keygen`).
pub fn read_public_jwks(path: &Path) -> Result<JwkSet, ClientJwksError> {
    let text = std::fs::read(path).map_err(|source| ClientJwksError::Read {
        path: path.to_owned(),
        source,
    })?;
    let set = JwkSet::from_bytes(&text).map_err(|source| ClientJwksError::NotJwks {
        path: path.to_owned(),
        source,
    })?;
    if set.keys().iter().any(|key| key.parameter("d").is_some()) {
        return Err(ClientJwksError::HoldsPrivateKeys {
            path: path.to_owned(),
        });
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jws::ES256;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn a_public_set_is_read_and_a_private_one_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pair = ES256.generate_key_pair().expect("key pair");
        let public = format!(r#"{{"keys":[{}]}}"#, pair.to_jwk_public_key());
        let private = format!(r#"{{"keys":[{}]}}"#, pair.to_jwk_private_key());

        let set = read_public_jwks(&write(dir.path(), "public.json", &public)).expect("public");
        assert_eq!(set.keys().len(), 1);

        let refused = read_public_jwks(&write(dir.path(), "private.json", &private))
            .expect_err("private keys");
        assert!(refused.to_string().contains("PUBLIC JWKS"), "{refused}");

        let garbage =
            read_public_jwks(&write(dir.path(), "garbage.json", "not json")).expect_err("garbage");
        assert!(garbage.to_string().contains("not a JWKS"), "{garbage}");

        let missing = read_public_jwks(&dir.path().join("absent.json")).expect_err("missing");
        assert!(missing.to_string().starts_with("cannot read"), "{missing}");
    }
}
