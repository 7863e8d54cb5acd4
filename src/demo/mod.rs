//! `myinfo-proxy demo`: the strict emulator and the proxy on loopback with throwaway keys; a
//! whole Myinfo v4 flow and a whole FAPI login through the proxy, with one injected 503 that is
//! retried and one throttled burst; a readable account; then curl lines until Ctrl-C.

mod fapi;
mod report;
mod v4;

use crate::config::Config;
use crate::jose::{generate_client_jwks, sha256_b64url};
use crate::proxy::Proxy;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use singpass_emulator::{Emulator, EmulatorConfig};
use std::net::SocketAddr;
use std::time::Duration;

const CLIENT_ID: &str = "DEMO-CLIENT";
const REDIRECT: &str = "http://localhost:3001/callback";

/// The app's side of the demo: a plain HTTP client pointed at the proxy.
struct App {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl App {
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        form: Option<String>,
    ) -> Result<(u16, Bytes), String> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if form.is_some() {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        let req = req
            .body(Full::new(Bytes::from(form.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let res = self.client.request(req).await.map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    }
}

/// Runs the demo until `stop` resolves. The proxy listens on `listen` and its admin endpoints
/// on `admin` (each falls back to an ephemeral port when taken).
pub async fn run(
    listen: SocketAddr,
    admin: SocketAddr,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("myinfo-proxy-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (private, public) = generate_client_jwks().map_err(|e| e.to_string())?;
    let key_path = dir.join("private-jwks.json");
    std::fs::write(&key_path, private.to_string()).map_err(|e| e.to_string())?;
    let jwks = josekit::jwk::JwkSet::from_bytes(public.to_string()).map_err(|e| e.to_string())?;

    let emulator = Emulator::start(
        EmulatorConfig::new(CLIENT_ID, jwks),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .map_err(|e| format!("emulator: {e}"))?;
    // The person route gets a small quota so that the demo's burst shows the rate limiter.
    let text = format!(
        "client_id = \"{CLIENT_ID}\"\n[retry]\nbase_delay = \"50ms\"\n[keys]\njwks_file = \"{}\"\n[[upstream]]\nname = \"myinfo-v4\"\nkind = \"myinfo-v4\"\nbase_url = \"{}\"\n[upstream.routes.person.rate_limit]\nper_second = 2\nburst = 2\nmax_wait = \"100ms\"\n[[upstream]]\nname = \"singpass-fapi\"\nkind = \"singpass-fapi\"\nissuer = \"{}\"\n[upstream.routes.token]\ndecrypt = true\n[upstream.routes.userinfo]\ndecrypt = true\n",
        key_path.display(),
        emulator.base_url(),
        emulator.fapi_issuer(),
    );
    let config = Config::from_toml(&text, &dir).map_err(|e| e.to_string())?;
    let proxy = Proxy::from_config(&config).map_err(|e| e.to_string())?;
    let bind = |addr: SocketAddr| async move {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Ok(l),
            Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| e.to_string()),
        }
    };
    let (listener, admin_listener) = (bind(listen).await?, bind(admin).await?);
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = admin_listener.local_addr().map_err(|e| e.to_string())?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (admin_stop_tx, admin_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let admin_proxy = proxy.clone();
    let admin_task = tokio::spawn(async move {
        let stopped = async {
            let _ = admin_stop_rx.await;
        };
        admin_proxy
            .serve_admin(admin_listener, stopped, Duration::from_secs(1))
            .await
    });
    let stopped = async {
        let _ = stop_rx.await;
    };
    let server = tokio::spawn(proxy.serve(listener, stopped, Duration::from_secs(5)));

    println!("myinfo-proxy demo");
    println!(
        "  emulator (strict Myinfo v4 + FAPI 2.0)  {}",
        emulator.base_url().trim_end_matches("/com/v4")
    );
    println!(
        "  proxy                                   http://{addr}   (admin: http://{admin_addr})"
    );
    println!(
        "  throwaway client keys                   {}\n",
        dir.display()
    );

    let app = App {
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: format!("http://{addr}"),
    };
    v4::flow(&app, &emulator, &private).await?;
    v4::burst(&app, &emulator).await?;
    fapi::login(&app, &emulator).await?;
    report::metrics_summary();

    let verifier = "demo-verifier-0123456789-0123456789-0123456789";
    let code = emulator.mint_code(
        "S9812381D-uuid",
        "uinfin name",
        &sha256_b64url(verifier.as_bytes()),
        REDIRECT,
    );
    println!("\nTry it yourself (Ctrl-C to stop). A code minted for you:");
    println!(
        "  curl -s http://{addr}/com/v4/token -d grant_type=authorization_code -d code={code} \\"
    );
    println!(
        "       -d redirect_uri={REDIRECT} -d client_id={CLIENT_ID} -d code_verifier={verifier}"
    );
    println!("  curl -s 'http://{addr}/com/v4/person/S9812381D-uuid?scope=uinfin%20name' -H 'Authorization: Bearer <access_token>'");
    println!("  (run the person call twice: the second is refused locally with AUTH_TOKEN_REUSED)");
    println!("  curl -s http://{admin_addr}/metrics | grep '^myinfo_proxy_'");

    stop.await;
    let _ = stop_tx.send(());
    let _ = server.await;
    let _ = admin_stop_tx.send(());
    let _ = admin_task.await;
    emulator.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
