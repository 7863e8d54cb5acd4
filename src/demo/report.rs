//! How the demo tells what happened: the claims of what reached the emulator (never the JWTs
//! themselves), the opened person answer, and what the metrics counted.

use base64::Engine as _;
use singpass_emulator::{Emulator, Received};

fn claims(jwt: &str) -> serde_json::Value {
    jwt.split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// One line (and the signed claims) of what reached the emulator.
pub(super) fn describe(r: &Received) -> String {
    let verdict = match (&r.fault, &r.rejection) {
        (Some(fault), _) => format!(
            "{} ({fault}; error id {}, trace_id {})",
            r.status,
            r.error_id.as_deref().unwrap_or("-"),
            r.trace_id.as_deref().unwrap_or("-")
        ),
        (None, None) => "accepted".to_owned(),
        (None, Some(why)) => format!("REJECTED: {why}"),
    };
    let mut out = format!("{} {} -> {verdict}", r.method, r.path);
    if let Some((_, proof)) = r.headers.iter().find(|(k, _)| k == "dpop") {
        let c = claims(proof);
        out += &format!(
            "\n     DPoP proof: htm={} htu={} ath={} nonce={} jti={}",
            c["htm"],
            c["htu"],
            if c["ath"].is_string() { "yes" } else { "no" },
            if c["nonce"].is_string() { "yes" } else { "no" },
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

/// Decrypts the person JWE with the client's enc key and verifies it with the emulator's key.
pub(super) fn open_person(
    jwe: &[u8],
    private: &serde_json::Value,
    emulator: &Emulator,
) -> Result<String, String> {
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
    let claims = crate::jose::verify(&jws, &emulator.signing_jwks()).map_err(|e| e.to_string())?;
    Ok(serde_json::Value::Object(claims).to_string())
}

/// The counters the demo moved, from `/metrics`.
pub(super) fn metrics_summary() {
    let text = crate::metrics::render();
    let total = |prefix: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    println!("\nWhat /metrics counted:");
    println!(
        "  myinfo_proxy_requests_total              {}",
        total("myinfo_proxy_requests_total")
    );
    println!(
        "  myinfo_proxy_upstream_attempts_total     {}",
        total("myinfo_proxy_upstream_attempts_total")
    );
    println!(
        "  myinfo_proxy_retries_total               {}",
        total("myinfo_proxy_retries_total")
    );
    println!(
        "  myinfo_proxy_signatures_total            {}",
        total("myinfo_proxy_signatures_total{")
    );
    println!(
        "  myinfo_proxy_rate_limit_refusals_total   {}",
        total("myinfo_proxy_rate_limit_refusals_total")
    );
}
