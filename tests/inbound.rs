//! Safe egress: API keys and mTLS on the main listener. Requests without valid inbound
//! credentials get a 401 problem (or no TLS session) and never reach Singpass.

mod common;

use bytes::Bytes;
use common::*;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use myinfo_proxy::Proxy;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha2::Digest;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn api_keys_are_checked_by_hash_and_never_forwarded() {
    let hash = hex::encode(sha2::Sha256::digest(b"app-key-1"));
    let other = hex::encode(sha2::Sha256::digest(b"app-key-2"));
    let h = Harness::start_with(
        |b| b.to_owned(),
        &format!("[inbound]\napi_key_sha256 = [\"{hash}\", \"{other}\"]"),
    )
    .await;
    let (verifier, challenge) = pkce();
    let code = h.emulator.mint_code("u-1", "name", &challenge, REDIRECT);
    let form = token_form(&code, &verifier);

    for key in [None, Some("wrong-key"), Some("")] {
        let headers: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
        let res = h.post_form("/com/v4/token", &form, &headers).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        res.problem("AUTH_API_KEY_INVALID");
    }
    assert!(
        h.emulator.received().is_empty(),
        "an unauthenticated request reached upstream"
    );

    for key in ["app-key-1", "app-key-2"] {
        let (verifier, challenge) = pkce();
        let code = h.emulator.mint_code("u-1", "name", &challenge, REDIRECT);
        let ok = h
            .post_form(
                "/com/v4/token",
                &token_form(&code, &verifier),
                &[("x-api-key", key)],
            )
            .await;
        assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    }
    assert!(
        h.emulator
            .received()
            .iter()
            .all(|r| !r.headers.iter().any(|(k, _)| k == "x-api-key")),
        "the app's API key went upstream"
    );
}

struct Pki {
    dir: tempfile::TempDir,
    ca_issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
}

fn pki() -> Pki {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let ca = params.self_signed(&key).unwrap();
    Pki {
        dir: tempfile::tempdir().unwrap(),
        ca_pem: ca.pem(),
        ca_issuer: Issuer::new(params, key),
    }
}

impl Pki {
    fn leaf(&self, name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &self.ca_issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Sends one token request over TLS, presenting `client` (cert, key) if given.
async fn tls_token(
    addr: std::net::SocketAddr,
    server_ca: &str,
    client: Option<(String, String)>,
    form: String,
) -> Result<StatusCode, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(server_ca.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::post("/com/v4/token")
        .header("host", "localhost")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .unwrap();
    let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = res.status();
    res.into_body().collect().await.map_err(|e| e.to_string())?;
    Ok(status)
}

use rustls_pki_types::pem::PemObject;

#[tokio::test]
async fn mtls_admits_only_clients_with_a_certificate_from_the_configured_ca() {
    let keys = ClientKeyFiles::new();
    let emulator = keys.emulator().await;
    let server_pki = pki();
    let client_pki = pki();
    let stranger_pki = pki();
    let (server_cert, server_key) = server_pki.leaf("localhost");
    let dir = server_pki.dir.path();
    std::fs::write(dir.join("server.pem"), &server_cert).unwrap();
    std::fs::write(dir.join("server-key.pem"), &server_key).unwrap();
    std::fs::write(dir.join("clients-ca.pem"), &client_pki.ca_pem).unwrap();
    let text = format!(
        "listen = \"0.0.0.0:0\"\nclient_id = \"{CLIENT_ID}\"\n[inbound]\ntls_cert_file = \"{d}/server.pem\"\ntls_key_file = \"{d}/server-key.pem\"\nclient_ca_file = \"{d}/clients-ca.pem\"\n[keys]\njwks_file = \"{k}\"\n[[upstream]]\nkind = \"myinfo-v4\"\nbase_url = \"{b}\"\n",
        d = dir.display(),
        k = keys.private_path().display(),
        b = emulator.base_url()
    );
    let config = myinfo_proxy::config::Config::from_toml(&text, keys.dir.path()).unwrap();
    assert!(
        config.warnings.is_empty(),
        "mTLS counts as inbound authentication"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The proxy serves TLS (and requires client certificates) because its config says so.
    let proxy = Proxy::from_config(&config).unwrap();
    tokio::spawn(proxy.serve(listener, std::future::pending(), Duration::from_secs(1)));

    let form = |emulator: &singpass_emulator::Emulator| {
        let (verifier, challenge) = pkce();
        token_form(
            &emulator.mint_code("u-1", "name", &challenge, REDIRECT),
            &verifier,
        )
    };
    // No client certificate, or one from another CA: no request gets through.
    assert!(tls_token(addr, &server_pki.ca_pem, None, form(&emulator))
        .await
        .is_err());
    assert!(tls_token(
        addr,
        &server_pki.ca_pem,
        Some(stranger_pki.leaf("app")),
        form(&emulator)
    )
    .await
    .is_err());
    assert!(emulator.received().is_empty());
    // A client certificate from the configured CA: the flow works.
    let status = tls_token(
        addr,
        &server_pki.ca_pem,
        Some(client_pki.leaf("app")),
        form(&emulator),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(emulator.received().len(), 1);
}
