//! `myinfo-proxy demo`: the emulator and the proxy on loopback with throwaway keys, a whole
//! Myinfo v4 flow through the proxy, a readable account of what was signed, then curl lines.

use crate::config::Config;
use crate::emulator::{Emulator, EmulatorConfig, Received};
use crate::jose::{generate_client_jwks, sha256_b64url};
use crate::server::{serve, Proxy};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;

const CLIENT_ID: &str = "DEMO-CLIENT";
const REDIRECT: &str = "http://localhost:3001/callback";
const SCOPE: &str = "uinfin name email";

/// Runs the demo until `stop` resolves. `listen` is where the proxy should listen (falls back
/// to an ephemeral port when taken).
pub async fn run(
    listen: SocketAddr,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let dir = tempfile_dir()?;
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
    let text = format!(
        "client_id = \"{CLIENT_ID}\"\n[keys]\njwks_file = \"{}\"\n[[upstream]]\nname = \"myinfo-v4\"\nkind = \"myinfo-v4\"\nbase_url = \"{}\"\n",
        key_path.display(),
        emulator.base_url()
    );
    let config = Config::from_toml(&text, &dir).map_err(|e| e.to_string())?;
    let proxy = Proxy::from_config(&config).map_err(|e| e.to_string())?;
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?,
    };
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        proxy,
        async {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    ));

    println!("myinfo-proxy demo");
    println!("  emulator (strict Myinfo v4)  {}", emulator.base_url());
    println!("  proxy                        http://{addr}/com/v4  ->  emulator");
    println!("  throwaway client keys        {}\n", dir.display());

    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let base = format!("http://{addr}/com/v4");
    v4_flow(&client, &base, &emulator, &private).await?;

    let verifier = "demo-verifier-0123456789-0123456789-0123456789";
    let code = emulator.mint_code(
        "S9812381D-uuid",
        SCOPE,
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

    stop.await;
    let _ = stop_tx.send(());
    let _ = server.await;
    emulator.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn v4_flow(
    client: &Client<HttpConnector, Full<Bytes>>,
    base: &str,
    emulator: &Emulator,
    private: &serde_json::Value,
) -> Result<(), String> {
    let sub = "S9812381D-uuid";
    let verifier = format!("demo-{}", sha256_b64url(&rand::random::<[u8; 16]>()));
    let code = emulator.mint_code(sub, SCOPE, &sha256_b64url(verifier.as_bytes()), REDIRECT);
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("client_id", CLIENT_ID)
        .append_pair("code_verifier", &verifier)
        .finish();
    println!(
        "1. The app posts its usual form to the proxy: POST /com/v4/token (no assertion, no DPoP)"
    );
    let (status, body) = send(client, Method::POST, &format!("{base}/token"), None, form).await?;
    let seen = emulator.received();
    let upstream = seen.last().ok_or("the emulator saw nothing")?;
    println!("   proxy -> emulator: {}", describe(upstream));
    println!("   emulator answered {status}");
    let token = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["access_token"].as_str().map(str::to_owned))
        .ok_or("no access_token in the answer")?;

    println!("2. The app calls GET /com/v4/person/{sub} with Authorization: Bearer <token>");
    let url = format!("{base}/person/{sub}?scope=uinfin%20name");
    let (status, body) = send(client, Method::GET, &url, Some(&token), String::new()).await?;
    let seen = emulator.received();
    println!(
        "   proxy -> emulator: {}",
        describe(seen.last().ok_or("nothing")?)
    );
    println!("   emulator answered {status} with a JWE of {} bytes; decrypted with the client's enc key:", body.len());
    println!(
        "   {}",
        open_person(&body, private).unwrap_or_else(|e| format!("(could not open: {e})"))
    );

    println!("3. The app calls person again with the same one-time token");
    let before = emulator.received().len();
    let (status, body) = send(client, Method::GET, &url, Some(&token), String::new()).await?;
    let title = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .map(|v| v["title"].to_string())
        .unwrap_or_default();
    println!(
        "   proxy answered {status} {title} itself; upstream calls made: {}",
        emulator.received().len() - before
    );
    Ok(())
}

async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: String,
) -> Result<(u16, Bytes), String> {
    let mut req = Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    } else {
        req = req.header("content-type", "application/x-www-form-urlencoded");
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let res = client.request(req).await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// One line on what reached the emulator: the claims of the proof and assertion (not the JWTs).
fn describe(r: &Received) -> String {
    let claims = |jwt: &str| -> serde_json::Value {
        use base64::Engine as _;
        jwt.split('.')
            .nth(1)
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()
            })
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    };
    let mut out = format!(
        "{} {} -> {}",
        r.method,
        r.path,
        if r.rejection.is_none() {
            "accepted"
        } else {
            "REJECTED"
        }
    );
    if let Some((_, proof)) = r.headers.iter().find(|(k, _)| k == "dpop") {
        let c = claims(proof);
        out += &format!(
            "\n     DPoP proof: htm={} htu={} ath={} jti={}",
            c["htm"],
            c["htu"],
            if c["ath"].is_string() { "yes" } else { "no" },
            c["jti"]
        );
    }
    if let Some((_, a)) = form_urlencoded::parse(&r.body).find(|(k, _)| k == "client_assertion") {
        let c = claims(&a);
        out += &format!(
            "\n     client assertion: iss={} aud={} cnf.jkt={} jti={}",
            c["iss"], c["aud"], c["cnf"]["jkt"], c["jti"]
        );
    }
    out
}

fn open_person(jwe: &[u8], private: &serde_json::Value) -> Result<String, String> {
    let enc = private["keys"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["use"] == "enc"))
        .ok_or("no enc key")?;
    let jwk = josekit::jwk::Jwk::from_map(enc.as_object().cloned().unwrap_or_default())
        .map_err(|e| e.to_string())?;
    let decrypter = josekit::jwe::ECDH_ES_A256KW
        .decrypter_from_jwk(&jwk)
        .map_err(|e| e.to_string())?;
    let text = std::str::from_utf8(jwe).map_err(|e| e.to_string())?;
    let (jws, _) =
        josekit::jwe::deserialize_compact(text, &decrypter).map_err(|e| e.to_string())?;
    let payload = String::from_utf8_lossy(&jws)
        .split('.')
        .nth(1)
        .map(str::to_owned)
        .ok_or("not a JWS")?;
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn tempfile_dir() -> Result<std::path::PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("myinfo-proxy-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}
