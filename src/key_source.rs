//! Reads the client's private keys from where the config says (files or environment).

use crate::config::{ConfigError, KeySource, PemSource};
use crate::jose::ClientKeys;
use std::path::Path;

/// Loads and validates the client keys. Errors name the config key and never echo key material.
pub fn load_client_keys(source: &KeySource) -> Result<ClientKeys, ConfigError> {
    match source {
        KeySource::JwksFile(path) => {
            let bytes = read_file("keys.jwks_file", path)?;
            ClientKeys::from_private_jwks(&bytes).map_err(|e| {
                ConfigError::new(
                    "keys.jwks_file",
                    format!("{}: {e}", path.display()),
                    JWKS_FIX,
                )
            })
        }
        KeySource::JwksEnv(var) => {
            let text = read_env("keys.jwks_env", var)?;
            ClientKeys::from_private_jwks(text.as_bytes())
                .map_err(|e| ConfigError::new("keys.jwks_env", format!("${var}: {e}"), JWKS_FIX))
        }
        KeySource::Pem {
            sig,
            sig_kid,
            enc,
            enc_kid,
        } => {
            let sig_pem = read_pem("sig", sig)?;
            let enc_pem = read_pem("enc", enc)?;
            ClientKeys::from_pems(&sig_pem, sig_kid, &enc_pem, enc_kid).map_err(|e| {
                ConfigError::new(
                    "keys",
                    e.to_string(),
                    "give EC P-256 private keys in PEM (PKCS#8 or SEC1); make new ones with `myinfo-proxy keygen`",
                )
            })
        }
    }
}

const JWKS_FIX: &str = "give a private JWKS with one ES256 `use=sig` key and an ECDH-ES+A256KW `use=enc` key, P-256, distinct kids (`myinfo-proxy keygen --out DIR` writes one)";

fn read_file(key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| {
        ConfigError::new(
            key,
            format!("cannot read {}: {e}", path.display()),
            "point it at the key file (paths are relative to the config file), or make keys with `myinfo-proxy keygen --out DIR`",
        )
    })
}

fn read_env(key: &str, var: &str) -> Result<String, ConfigError> {
    std::env::var(var).map_err(|_| {
        ConfigError::new(
            key,
            format!("environment variable {var} is not set (or not UTF-8)"),
            format!("export {var} with the key, or name another variable"),
        )
    })
}

fn read_pem(which: &str, source: &PemSource) -> Result<Vec<u8>, ConfigError> {
    match source {
        PemSource::File(path) => read_file(&format!("keys.{which}_pem_file"), path),
        PemSource::Env(var) => {
            read_env(&format!("keys.{which}_pem_env"), var).map(String::into_bytes)
        }
    }
}
