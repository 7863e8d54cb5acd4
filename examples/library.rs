//! myinfo-proxy as a library: wrap hyper-util's HTTP client in the proxy's stack of layers and
//! run a Myinfo v4 token + person flow and a FAPI 2.0 login (PAR, token, userinfo) against the
//! strict emulator (the `singpass-emulator` crate), in process. Exits non-zero if any step fails.
//!
//! Run it: `cargo run --example library`

use bytes::Bytes;
use myinfo_proxy::jose::{generate_client_jwks, sha256_b64url};
use myinfo_proxy::layer::BufferBodiesLayer;
use myinfo_proxy::{Config, Proxy};
use singpass_emulator::{Emulator, EmulatorConfig};
use tower::{Layer, Service, ServiceExt};

type Error = Box<dyn std::error::Error>;

const CLIENT_ID: &str = "EXAMPLE-CLIENT";
const REDIRECT: &str = "https://app.example/callback";

#[tokio::main]
async fn main() -> Result<(), Error> {
    // 1. Client keys (in production: your private JWKS from a Secret) and the emulator.
    let (private, public) = generate_client_jwks()?;
    let dir = std::env::temp_dir().join(format!("myinfo-proxy-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("private-jwks.json"), private.to_string())?;
    let emulator = Emulator::start(
        EmulatorConfig::new(
            CLIENT_ID,
            josekit::jwk::JwkSet::from_bytes(public.to_string())?,
        ),
        "127.0.0.1:0".parse()?,
    )
    .await?;

    // 2. The same config the binary reads, here as a string.
    let config = Config::from_toml(
        &format!(
            r#"
client_id = "{CLIENT_ID}"
[keys]
jwks_file = "private-jwks.json"
[[upstream]]
kind = "myinfo-v4"
base_url = "{v4}"
[[upstream]]
kind = "singpass-fapi"
issuer = "{fapi}"
[upstream.routes.token]
decrypt = true
[upstream.routes.userinfo]
decrypt = true
"#,
            v4 = emulator.base_url(),
            fapi = emulator.fapi_issuer(),
        ),
        &dir,
    )?;

    // 3. Your HTTP client (hyper-util's legacy client), bodies buffered, under every layer.
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let mut proxy = Proxy::builder(&config)
        .upstream(BufferBodiesLayer::new(4 << 20).layer(http))
        .build()?;

    // 4. Myinfo v4: token, then person with the token's key.
    let verifier = format!("v4-{}", sha256_b64url(b"example verifier one"));
    let code = emulator.mint_code(
        "user-1",
        "uinfin name",
        &sha256_b64url(verifier.as_bytes()),
        REDIRECT,
    );
    let token = post(
        &mut proxy,
        "/com/v4/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await?;
    let access_token = field(&token, "access_token")?;
    let person = get(
        &mut proxy,
        "/com/v4/person/user-1?scope=uinfin%20name",
        &access_token,
    )
    .await?;
    println!(
        "v4 person: a JWE of {} bytes for the app to open",
        person.len()
    );

    // 5. FAPI 2.0: PAR (a new key for this login), the user's consent, token, userinfo.
    let verifier = format!("fapi-{}", sha256_b64url(b"example verifier two"));
    let par = post(
        &mut proxy,
        "/fapi/par",
        &[
            ("response_type", "code"),
            ("scope", "openid uinfin name"),
            ("state", "st"),
            ("nonce", "n-1"),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &sha256_b64url(verifier.as_bytes())),
            ("code_challenge_method", "S256"),
        ],
    )
    .await?;
    let code = emulator.authorize_par(&field(&par, "request_uri")?, "user-2")?;
    let token = post(
        &mut proxy,
        "/fapi/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("nonce", "n-1"),
        ],
    )
    .await?;
    let claims: serde_json::Value = serde_json::from_slice(&token)?;
    println!(
        "FAPI id_token claims: sub={} nonce={}",
        claims["id_token_claims"]["sub"], claims["id_token_claims"]["nonce"]
    );
    let userinfo = get(
        &mut proxy,
        "/fapi/userinfo",
        &field(&token, "access_token")?,
    )
    .await?;
    println!("FAPI userinfo: {}", String::from_utf8_lossy(&userinfo));

    let rejected: Vec<_> = emulator
        .received()
        .into_iter()
        .filter(|r| r.rejection.is_some())
        .collect();
    if !rejected.is_empty() {
        return Err(format!(
            "the emulator rejected {} calls: {:?}",
            rejected.len(),
            rejected.iter().map(|r| &r.rejection).collect::<Vec<_>>()
        )
        .into());
    }
    println!(
        "every assertion and proof was accepted ({} upstream calls)",
        emulator.received().len()
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

async fn post(proxy: &mut Proxy, path: &str, form: &[(&str, &str)]) -> Result<Bytes, Error> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let req = http::Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from(body))?;
    expect_success(path, proxy.ready().await?.call(req).await?)
}

async fn get(proxy: &mut Proxy, path: &str, token: &str) -> Result<Bytes, Error> {
    let req = http::Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Bytes::new())?;
    expect_success(path, proxy.ready().await?.call(req).await?)
}

fn expect_success(path: &str, res: http::Response<Bytes>) -> Result<Bytes, Error> {
    if res.status().is_success() {
        Ok(res.into_body())
    } else {
        Err(format!(
            "{path}: {} {}",
            res.status(),
            String::from_utf8_lossy(res.body())
        )
        .into())
    }
}

fn field(body: &Bytes, name: &str) -> Result<String, Error> {
    let v: serde_json::Value = serde_json::from_slice(body)?;
    v[name]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no {name} in {v}").into())
}
