//! The inject layer alone, around a plain service, as a library user would wrap it: a request
//! with its facts goes out signed; one without them is refused, and nothing goes out.

use super::*;
use crate::binding::MemoryBindings;
use crate::config::Config;
use crate::error::{classify, ProxyError};
use crate::jose::EphemeralKey;
use std::sync::Mutex;
use tower::{Layer, ServiceExt};

const URL: &str = "https://myinfo.example/com/v4/token";

fn signing(dir: &std::path::Path) -> Arc<Signing> {
    let (private, _) = crate::jose::generate_client_jwks().unwrap();
    std::fs::write(dir.join("private-jwks.json"), private.to_string()).unwrap();
    let text = "client_id = \"c\"\n[keys]\njwks_file = \"private-jwks.json\"\n[[upstream]]\nkind = \"myinfo-v4\"\nbase_url = \"https://myinfo.example/com/v4\"\n";
    let config = Config::from_toml(text, dir).unwrap();
    let bindings = Arc::new(MemoryBindings::new(10));
    let nonces = Arc::new(MemoryNonces::default());
    Arc::new(Signing::new(&config, bindings, nonces).unwrap())
}

fn token_request() -> Request<Bytes> {
    Request::post(URL)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from_static(b"grant_type=authorization_code&code=c1"))
        .unwrap()
}

#[tokio::test]
async fn alone_it_signs_a_request_with_its_facts_and_refuses_one_without() {
    let dir = tempfile::tempdir().unwrap();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let upstream = {
        let sent = sent.clone();
        tower::service_fn(move |req: Request<Bytes>| {
            sent.lock().unwrap().push(req);
            std::future::ready(Ok::<_, BoxError>(Response::new(Bytes::new())))
        })
    };
    let inject = InjectLayer::new(signing(dir.path()), RouteKind::V4Token).layer(upstream);

    let err = inject.clone().oneshot(token_request()).await.unwrap_err();
    let problem = classify(&err);
    assert_eq!(problem.code.status(), 500);
    assert!(
        problem.detail.contains("RequestFacts"),
        "{}",
        problem.detail
    );
    assert!(err.is::<ProxyError>());
    assert!(sent.lock().unwrap().is_empty(), "nothing unsigned went out");

    let key = Arc::new(EphemeralKey::generate().unwrap());
    let mut facts = RequestFacts::new(URL, URL, tokio::time::Instant::now());
    facts.key = Some(key.clone());
    let mut req = token_request();
    req.extensions_mut().insert(facts);
    inject.oneshot(req).await.unwrap();
    let sent = sent.lock().unwrap();
    let signed = &sent[0];
    let form: Vec<(String, String)> = form_urlencoded::parse(signed.body()).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("code"), Some("c1"), "the app's fields go on");
    assert_eq!(
        field("client_assertion_type"),
        Some(crate::jose::CLIENT_ASSERTION_TYPE)
    );
    assert!(field("client_assertion").is_some_and(|a| a.split('.').count() == 3));
    let proof = signed.headers()["dpop"].to_str().unwrap();
    let header = proof.split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    let jwk = josekit::jwk::Jwk::from_map(header["jwk"].as_object().unwrap().clone()).unwrap();
    assert_eq!(
        crate::jose::thumbprint(&jwk).unwrap(),
        key.jkt(),
        "signed by the facts' key"
    );
}
