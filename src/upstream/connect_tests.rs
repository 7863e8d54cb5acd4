//! `timeouts.connect` covers the TLS handshake: an upstream that accepts TCP and then never
//! answers the ClientHello fails as a connect error at the connect deadline, not at the
//! attempt's.

use super::{tls_config, upstream_client, ConnectTimedOut};
use crate::config::{Roots, TlsConfig};
use bytes::Bytes;
use std::time::Duration;
use tower::ServiceExt as _;

#[tokio::test]
async fn a_stalled_tls_handshake_fails_as_a_connect_error_at_the_connect_deadline() {
    // Accepts, reads the ClientHello, and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted_tx, accepted_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let _ = accepted_tx.send(());
        std::future::pending::<()>().await;
        drop(socket);
    });
    let tls = tls_config(&TlsConfig {
        roots: Roots::Webpki,
        extra_ca_file: None,
    })
    .unwrap();
    let connect = Duration::from_secs(3);
    let client = upstream_client(tls, connect, 1 << 20);
    let started = tokio::time::Instant::now();
    let call = tokio::spawn(
        client.oneshot(
            http::Request::get(format!("https://{addr}/token"))
                .body(Bytes::new())
                .unwrap(),
        ),
    );
    // The TCP connection is up; from here on only the handshake is pending. Pausing the clock
    // lets it run to the next deadline at once.
    accepted_rx.await.unwrap();
    tokio::time::pause();
    let outcome = tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the attempt ended before an attempt-length wait")
        .unwrap();
    let err = outcome.unwrap_err();
    let transport = err
        .downcast_ref::<super::TransportError>()
        .expect("a transport error");
    assert!(transport.is_connect(), "{err:?}");
    let mut source = std::error::Error::source(transport);
    let mut timed_out = false;
    while let Some(e) = source {
        timed_out |= e.is::<ConnectTimedOut>();
        source = e.source();
    }
    assert!(timed_out, "{err:?}");
    assert!(started.elapsed() <= connect + Duration::from_millis(500));
}
