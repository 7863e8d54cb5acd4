//! Turns the file's raw shape into a [`Config`], naming the key and the fix for every problem.

use super::{bounds, defaults, raw, Config, ConfigError, KeySource, PemSource, Roots, TlsConfig};
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

pub(super) fn validate(file: raw::File, base: &Path) -> Result<Config, ConfigError> {
    let listen_text = file.listen.as_deref().unwrap_or(defaults::LISTEN);
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        ConfigError::new(
            "listen",
            format!("`{listen_text}` is not an IP address and port"),
            "use a form like \"127.0.0.1:8080\" or \"[::1]:8080\"",
        )
    })?;

    let client_id = file
        .client_id
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| {
            ConfigError::new(
                "client_id",
                "missing or empty",
                "set client_id to the app's Singpass client id",
            )
        })?;

    let max_request_body = positive(
        "max_request_body",
        file.max_request_body,
        defaults::MAX_REQUEST_BODY,
        bounds::MAX_REQUEST_BODY,
    )?;
    let max_response_body = positive(
        "max_response_body",
        file.max_response_body,
        defaults::MAX_RESPONSE_BODY,
        bounds::MAX_RESPONSE_BODY,
    )?;

    let assertion_lifetime = file
        .assertion_lifetime
        .unwrap_or(defaults::ASSERTION_LIFETIME);
    if assertion_lifetime < std::time::Duration::from_secs(1)
        || assertion_lifetime > bounds::ASSERTION_LIFETIME
    {
        return Err(ConfigError::new(
            "assertion_lifetime",
            format!("{} is outside 1s..=120s", bounds::show(assertion_lifetime)),
            "Singpass FAPI rejects assertions whose exp is more than 120 s after iat; use e.g. \"60s\", which leaves room for clock skew",
        ));
    }

    let raw_keys = file.keys.unwrap_or_default();
    let active_sig_kid = raw_keys.active_sig_kid.clone();
    let key_reload_interval = match raw_keys.reload_interval {
        Some(d) if d.is_zero() => None,
        Some(d) => Some(bounds::at_most(
            "keys.reload_interval",
            d,
            bounds::KEY_RELOAD_INTERVAL,
        )?),
        None => Some(defaults::KEY_RELOAD_INTERVAL),
    };
    let keys = key_source(raw_keys, base)?;
    let timeouts = super::timeouts::timeouts(file.timeouts)?;
    let listeners = super::listener::listeners(file.listener)?;
    let tls = TlsConfig {
        roots: file.tls.roots.unwrap_or(Roots::Webpki),
        extra_ca_file: file.tls.extra_ca_file.map(|p| base.join(p)),
    };

    let global_rate_limit = super::policy::check_defaults(&file.retry, &file.rate_limit)?;
    let problem_doc_url = file
        .problem_doc_url
        .unwrap_or_else(|| defaults::PROBLEM_DOC_URL.to_owned());
    let mut warnings = Vec::new();
    let drain_timeout = bounds::duration(
        "drain_timeout",
        file.drain_timeout.unwrap_or(defaults::DRAIN_TIMEOUT),
        bounds::DRAIN_TIMEOUT,
    )?;
    let admin_listen = if file.admin.enabled.unwrap_or(true) {
        let text = file
            .admin
            .listen
            .as_deref()
            .unwrap_or(defaults::ADMIN_LISTEN);
        let addr: SocketAddr = text.parse().map_err(|_| {
            ConfigError::new(
                "admin.listen",
                format!("`{text}` is not an IP address and port"),
                "use a form like \"127.0.0.1:9090\", or admin.enabled = false",
            )
        })?;
        Some(addr)
    } else {
        None
    };
    let jwks_on_main_listener = file.admin.jwks_on_main_listener.unwrap_or(false);
    let log_format = file.log.format.unwrap_or_default();
    let inbound = super::inbound::inbound(file.inbound, base, listen, &mut warnings)?;
    let redis = super::redis::redis(file.redis, base)?;
    if file.upstream.is_empty() {
        return Err(ConfigError::new(
            "upstream",
            "no [[upstream]] is configured",
            "add an [[upstream]] table (see the shipped config.toml)",
        ));
    }
    let mut upstreams = Vec::new();
    let (mut names, mut prefixes) = (HashSet::new(), HashSet::new());
    for (i, raw) in file.upstream.into_iter().enumerate() {
        let up = super::upstream::upstream(
            i,
            raw,
            &file.retry,
            &file.rate_limit,
            &timeouts,
            &mut warnings,
        )?;
        if !names.insert(up.name.clone()) {
            return Err(ConfigError::new(
                format!("upstream[{i}].name"),
                format!("`{}` is used twice", up.name),
                "give every upstream its own name",
            ));
        }
        if !prefixes.insert(up.local_prefix.clone()) {
            return Err(ConfigError::new(
                format!("upstream[{i}].local_prefix"),
                format!("`{}` is used by an earlier upstream", up.local_prefix),
                "give every upstream its own local_prefix",
            ));
        }
        upstreams.push(up);
    }

    Ok(Config {
        listen,
        client_id,
        max_request_body,
        max_response_body,
        assertion_lifetime,
        keys,
        active_sig_kid,
        key_reload_interval,
        timeouts,
        tls,
        upstreams,
        global_rate_limit,
        problem_doc_url,
        drain_timeout,
        admin_listen,
        jwks_on_main_listener,
        log_format,
        inbound,
        listeners,
        breaker: super::breaker::breaker(file.breaker)?,
        redis,
        warnings,
    })
}

fn positive(
    key: &str,
    value: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, ConfigError> {
    match value {
        None => Ok(default),
        Some(n) if n == 0 || n > max => Err(ConfigError::new(
            key,
            format!("{n} is outside 1..={max}"),
            format!("remove it for the default ({default}) or set a byte count up to {max}"),
        )),
        Some(n) => Ok(n),
    }
}

fn key_source(keys: raw::Keys, base: &Path) -> Result<KeySource, ConfigError> {
    let pem_given = keys.sig_pem_file.is_some()
        || keys.sig_pem_env.is_some()
        || keys.enc_pem_file.is_some()
        || keys.enc_pem_env.is_some();
    let sources = [keys.jwks_file.is_some(), keys.jwks_env.is_some(), pem_given]
        .iter()
        .filter(|b| **b)
        .count();
    let fix = "set exactly one of keys.jwks_file, keys.jwks_env, or the keys.sig_pem_*/keys.enc_pem_* pair with their kids (make keys with `myinfo-proxy keygen --out DIR`)";
    if sources != 1 {
        let problem = if sources == 0 {
            "no key source is configured"
        } else {
            "more than one key source is configured"
        };
        return Err(ConfigError::new("keys", problem, fix));
    }
    if let Some(path) = keys.jwks_file {
        return Ok(KeySource::JwksFile(base.join(path)));
    }
    if let Some(var) = keys.jwks_env {
        return Ok(KeySource::JwksEnv(env_name("keys.jwks_env", var)?));
    }
    let pem = |file: Option<std::path::PathBuf>, env: Option<String>, which: &str| match (file, env)
    {
        (Some(f), None) => Ok(PemSource::File(base.join(f))),
        (None, Some(e)) => Ok(PemSource::Env(env_name(
            &format!("keys.{which}_pem_env"),
            e,
        )?)),
        _ => Err(ConfigError::new(
            format!("keys.{which}_pem_file"),
            format!("set exactly one of keys.{which}_pem_file and keys.{which}_pem_env"),
            fix,
        )),
    };
    let kid = |v: Option<String>, which: &str| {
        v.filter(|k| !k.is_empty()).ok_or_else(|| {
            ConfigError::new(
                format!("keys.{which}_kid"),
                "missing: a PEM key needs the kid it is published under",
                "set it to the kid of this key in the JWKS registered with Singpass",
            )
        })
    };
    let (sig_kid, enc_kid) = (kid(keys.sig_kid, "sig")?, kid(keys.enc_kid, "enc")?);
    if sig_kid == enc_kid {
        return Err(ConfigError::new(
            "keys.enc_kid",
            "equals keys.sig_kid",
            "every key needs its own kid",
        ));
    }
    Ok(KeySource::Pem {
        sig: pem(keys.sig_pem_file, keys.sig_pem_env, "sig")?,
        sig_kid,
        enc: pem(keys.enc_pem_file, keys.enc_pem_env, "enc")?,
        enc_kid,
    })
}

fn env_name(key: &str, name: String) -> Result<String, ConfigError> {
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(name)
    } else {
        Err(ConfigError::new(
            key,
            format!("`{name}` is not an environment variable name"),
            "name the variable that holds the key (letters, digits, `_`), not the key itself",
        ))
    }
}

pub(super) fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
