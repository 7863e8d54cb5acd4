//! Reads the client's private keys from where the config says (files or environment), and
//! keeps them current: key files are re-read every `keys.reload_interval` (which also follows
//! Kubernetes' symlink swap of Secret mounts); a changed, valid set replaces the old one
//! atomically; a bad one is logged and the old keys stay.

use crate::config::{Config, ConfigError, KeySource, PemSource};
use crate::jose::ClientKeys;
use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The client's current keys, swapped atomically on rotation.
pub(crate) struct KeyStore {
    source: KeySource,
    active_sig_kid: Option<String>,
    current: ArcSwap<ClientKeys>,
    /// SHA-256 of the raw material last loaded (to notice changes without parsing).
    loaded: Mutex<[u8; 32]>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("current", &self.current.load())
            .finish()
    }
}

impl KeyStore {
    /// Loads and validates the configured keys.
    pub(crate) fn load(config: &Config) -> Result<Self, ConfigError> {
        let material = read_material(&config.keys)?;
        let keys = parse(&config.keys, &material, config.active_sig_kid.as_deref())?;
        Ok(Self {
            source: config.keys.clone(),
            active_sig_kid: config.active_sig_kid.clone(),
            current: ArcSwap::from_pointee(keys),
            loaded: Mutex::new(digest(&material)),
        })
    }

    /// The keys to use now.
    pub(crate) fn current(&self) -> Arc<ClientKeys> {
        self.current.load_full()
    }

    /// Re-reads the key material; swaps in a changed set if it is valid. Returns whether the
    /// keys changed; an unreadable or invalid new set is an error and changes nothing.
    pub(crate) fn reload(&self) -> Result<bool, ConfigError> {
        let material = read_material(&self.source)?;
        let fingerprint = digest(&material);
        if *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) == fingerprint {
            return Ok(false);
        }
        let keys = parse(&self.source, &material, self.active_sig_kid.as_deref())?;
        let kids: Vec<&str> = keys
            .all_signing()
            .iter()
            .map(|k| k.kid())
            .chain(keys.encryption().iter().map(|k| k.kid()))
            .collect();
        tracing::info!(active_sig_kid = keys.signing().kid(), kids = ?kids, "client keys rotated");
        self.current.store(Arc::new(keys));
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = fingerprint;
        Ok(true)
    }

    /// Re-reads the key files every `every` until the returned task is aborted. Keys from
    /// environment variables cannot change while the process runs and are not watched.
    pub(crate) fn watch(self: &Arc<Self>, every: Duration) -> Option<tokio::task::JoinHandle<()>> {
        if matches!(self.source, KeySource::JwksEnv(_)) {
            return None;
        }
        let store = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = store.reload() {
                    tracing::error!(error = %e, "new client keys are not usable; keeping the current keys");
                }
            }
        }))
    }
}

const JWKS_FIX: &str = "give a private JWKS with ES256 `use=sig` keys and ECDH-ES+A256KW `use=enc` keys, P-256, distinct kids (`myinfo-proxy keygen --out DIR` writes one)";

/// The raw bytes of every key source, concatenated (JWKS, or sig PEM then enc PEM).
fn read_material(source: &KeySource) -> Result<Vec<u8>, ConfigError> {
    match source {
        KeySource::JwksFile(path) => read_file("keys.jwks_file", path),
        KeySource::JwksEnv(var) => read_env("keys.jwks_env", var).map(String::into_bytes),
        KeySource::Pem { sig, enc, .. } => {
            let mut out = read_pem("sig", sig)?;
            out.push(0);
            out.extend(read_pem("enc", enc)?);
            Ok(out)
        }
    }
}

fn parse(
    source: &KeySource,
    material: &[u8],
    active: Option<&str>,
) -> Result<ClientKeys, ConfigError> {
    match source {
        KeySource::JwksFile(path) => ClientKeys::from_private_jwks_with_active(material, active)
            .map_err(|e| {
                ConfigError::new(
                    "keys.jwks_file",
                    format!("{}: {e}", path.display()),
                    JWKS_FIX,
                )
            }),
        KeySource::JwksEnv(var) => ClientKeys::from_private_jwks_with_active(material, active)
            .map_err(|e| ConfigError::new("keys.jwks_env", format!("${var}: {e}"), JWKS_FIX)),
        KeySource::Pem {
            sig_kid, enc_kid, ..
        } => {
            let split = material
                .iter()
                .position(|b| *b == 0)
                .unwrap_or(material.len());
            let (sig_pem, enc_pem) = (
                &material[..split],
                material.get(split + 1..).unwrap_or_default(),
            );
            ClientKeys::from_pems(sig_pem, sig_kid, enc_pem, enc_kid).map_err(|e| {
                ConfigError::new("keys", e.to_string(), "give EC P-256 private keys in PEM (PKCS#8 or SEC1); make new ones with `myinfo-proxy keygen`")
            })
        }
    }
}

fn digest(material: &[u8]) -> [u8; 32] {
    Sha256::digest(material).into()
}

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
