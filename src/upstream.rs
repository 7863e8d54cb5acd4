//! The upstream HTTP client: pooled HTTP/1.1 and HTTP/2 over rustls. Knows nothing about auth.

use crate::config::{ConfigError, Roots, TlsConfig};
use crate::error::{BoxError, ProblemCode, ProxyError};
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// A tower service that sends a buffered request upstream and buffers the answer (up to a cap),
/// so that the layers above can inspect error bodies and replay requests.
#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    max_response_body: usize,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("max_response_body", &self.max_response_body)
            .finish()
    }
}

impl UpstreamClient {
    /// A client with the given trust roots, connect timeout and answer cap.
    pub fn new(
        tls: rustls::ClientConfig,
        connect_timeout: Duration,
        max_response_body: usize,
    ) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        Self {
            client,
            max_response_body,
        }
    }
}

impl tower::Service<Request<Bytes>> for UpstreamClient {
    type Response = Response<Bytes>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let client = self.client.clone();
        let cap = self.max_response_body;
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            if !body.is_empty() || parts.method == http::Method::POST {
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            }
            let res = client
                .request(Request::from_parts(parts, Full::new(body)))
                .await?;
            let (parts, body) = res.into_parts();
            let bytes = Limited::new(body, cap)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        ProxyError::new(
                            ProblemCode::ProviderResponseTooLarge,
                            format!("the upstream answer is larger than max_response_body ({cap} bytes)"),
                        )
                    } else {
                        ProxyError::new(
                            ProblemCode::ProviderUnreachable,
                            format!("the upstream connection failed while its answer was read: {e}"),
                        )
                    }
                })?
                .to_bytes();
            Ok(Response::from_parts(parts, bytes))
        })
    }
}

/// Builds the rustls client config from the configured roots and optional extra CA file.
pub fn tls_config(cfg: &TlsConfig) -> Result<rustls::ClientConfig, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    if matches!(cfg.roots, Roots::Webpki | Roots::Both) {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if matches!(cfg.roots, Roots::System | Roots::Both) {
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            return Err(ConfigError::new(
                "tls.roots",
                "the system trust store has no usable certificates",
                "install ca-certificates, or use roots = \"webpki\"",
            ));
        }
    }
    if let Some(path) = &cfg.extra_ca_file {
        let bad = |problem: String| {
            ConfigError::new(
                "tls.extra_ca_file",
                problem,
                "point it at a readable PEM file of CA certificates",
            )
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("{}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(bad(format!("{} holds no certificate", path.display())));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| bad(format!("{}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new("tls", e.to_string(), "report this as a bug"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
