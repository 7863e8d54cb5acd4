//! Inbound authentication: who may call the main listener. Off loopback the proxy refuses to
//! start without it (static API keys stored as SHA-256, or mTLS), unless the config says
//! `allow_unauthenticated = true`, which is warned about at every start.

use super::{raw, ConfigError, Inbound, InboundTls};
use std::net::SocketAddr;
use std::path::Path;

/// SHA-256 of the empty string: what `printf %s "$KEY" | sha256sum` prints when KEY is unset.
const EMPTY_SHA256: [u8; 32] = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

pub(super) fn inbound(
    raw: raw::Inbound,
    base: &Path,
    listen: SocketAddr,
    warnings: &mut Vec<String>,
) -> Result<Inbound, ConfigError> {
    let mut api_key_sha256 = Vec::new();
    for (i, text) in raw.api_key_sha256.iter().enumerate() {
        let mut hash = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut hash).map_err(|_| {
            ConfigError::new(
                format!("inbound.api_key_sha256[{i}]"),
                "is not 64 hexadecimal digits",
                "store the SHA-256 of each key, never the key: `printf %s \"$KEY\" | sha256sum`",
            )
        })?;
        if hash == EMPTY_SHA256 {
            return Err(ConfigError::new(
                format!("inbound.api_key_sha256[{i}]"),
                "is the SHA-256 of the empty string: an unset variable was hashed, and an empty X-Api-Key would be let in",
                "hash the real key (`printf %s \"$KEY\" | sha256sum` with KEY set), or remove the entry",
            ));
        }
        api_key_sha256.push(hash);
    }
    let tls = match (raw.tls_cert_file, raw.tls_key_file) {
        (Some(cert), Some(key)) => Some(InboundTls {
            cert_file: base.join(cert),
            key_file: base.join(key),
            client_ca_file: raw.client_ca_file.map(|p| base.join(p)),
        }),
        (None, None) if raw.client_ca_file.is_some() => {
            return Err(ConfigError::new(
                "inbound.client_ca_file",
                "mTLS needs the listener's own certificate",
                "set inbound.tls_cert_file and inbound.tls_key_file too",
            ));
        }
        (None, None) => None,
        _ => {
            return Err(ConfigError::new(
                "inbound.tls_cert_file",
                "tls_cert_file and tls_key_file go together",
                "set both, or neither",
            ))
        }
    };
    let allow_unauthenticated = raw.allow_unauthenticated.unwrap_or(false);
    let mtls = tls.as_ref().is_some_and(|t| t.client_ca_file.is_some());
    let authenticated = mtls || !api_key_sha256.is_empty();
    if !listen.ip().is_loopback() {
        if !authenticated && !allow_unauthenticated {
            return Err(ConfigError::new(
                "inbound",
                format!("listen {listen} is reachable from other hosts, and no inbound authentication is configured"),
                "set inbound.api_key_sha256 (SHA-256 of static API keys) or inbound.client_ca_file with tls_cert_file/tls_key_file (mTLS); or, knowing the risk, inbound.allow_unauthenticated = true",
            ));
        }
        if !authenticated {
            warnings.push(format!("inbound.allow_unauthenticated = true: anyone who can reach {listen} can have this proxy sign Singpass calls as your client"));
        }
    }
    Ok(Inbound {
        api_key_sha256,
        tls,
        allow_unauthenticated,
    })
}
