//! One `[[upstream]]` table: its kind's URL (`base_url` or `issuer`), local prefix, lifetimes
//! and route policies.

use super::validate::is_loopback;
use super::{bounds, defaults, raw, ConfigError, Timeouts, Upstream, UpstreamKind};
use std::time::Duration;

pub(super) fn upstream(
    i: usize,
    raw: raw::Upstream,
    retry: &raw::Retry,
    rate_limit: &raw::RateLimit,
    timeouts: &Timeouts,
    warnings: &mut Vec<String>,
) -> Result<Upstream, ConfigError> {
    let key = |field: &str| format!("upstream[{i}].{field}");
    let (url_key, url, other) = match raw.kind {
        UpstreamKind::MyinfoV4 | UpstreamKind::Passthrough => {
            ("base_url", raw.base_url, raw.issuer.map(|_| "issuer"))
        }
        UpstreamKind::SingpassFapi | UpstreamKind::SingpassCiba => {
            ("issuer", raw.issuer, raw.base_url.map(|_| "base_url"))
        }
    };
    if let Some(other) = other {
        return Err(ConfigError::new(
            key(other),
            format!(
                "a {:?} upstream is configured by `{url_key}`, not `{other}`",
                raw.kind
            ),
            format!("remove `{other}` and set `{url_key}`"),
        ));
    }
    let example = match raw.kind {
        UpstreamKind::MyinfoV4 | UpstreamKind::Passthrough => {
            "https://test.api.myinfo.gov.sg/com/v4"
        }
        UpstreamKind::SingpassFapi => "https://stg-id.singpass.gov.sg/fapi",
        UpstreamKind::SingpassCiba => "https://stg-id.singpass.gov.sg",
    };
    let url = url.ok_or_else(|| {
        ConfigError::new(
            key(url_key),
            "missing",
            format!("set it, e.g. {url_key} = \"{example}\""),
        )
    })?;
    let uri = http_url(&key(url_key), &url, example, warnings)?;
    if !raw.kind.has_base_url() && raw.jwks_url.is_some() {
        return Err(ConfigError::new(
            key("jwks_url"),
            "FAPI and CIBA take jwks_uri from discovery",
            "remove jwks_url",
        ));
    }
    let jwks_url = match raw.jwks_url {
        Some(u) => {
            http_url(
                &key("jwks_url"),
                &u,
                "https://test.authorise.singpass.gov.sg/.well-known/keys.json",
                warnings,
            )?;
            Some(u)
        }
        None => None,
    };
    let base_url = url.trim_end_matches('/').to_owned();
    let default_prefix = raw.kind.default_prefix().map_or_else(
        || uri.path().trim_end_matches('/').to_owned(),
        str::to_owned,
    );
    let local_prefix = match raw.local_prefix {
        None => default_prefix,
        Some(p) if p.starts_with('/') && !p.contains(['?', '#']) => {
            p.trim_end_matches('/').to_owned()
        }
        Some(p) => {
            return Err(ConfigError::new(
                key("local_prefix"),
                format!("`{p}` is not an absolute path"),
                "use a path such as \"/com/v4\", or remove it for the default",
            ))
        }
    };
    let bounded = |field: &str, value: Option<Duration>, default: Duration, max: Duration| {
        bounds::duration(&key(field), value.unwrap_or(default), max)
    };
    let token_ttl_cap = bounded(
        "token_ttl_cap",
        raw.token_ttl_cap,
        defaults::TOKEN_TTL_CAP,
        bounds::TOKEN_TTL_CAP,
    )?;
    let login_ttl = bounded(
        "login_ttl",
        raw.login_ttl,
        defaults::LOGIN_TTL,
        bounds::LOGIN_TTL,
    )?;
    let discovery_refresh = bounded(
        "discovery_refresh",
        raw.discovery_refresh,
        defaults::DISCOVERY_REFRESH,
        bounds::DISCOVERY_REFRESH,
    )?;
    let routes = super::policy::route_policies(
        raw.kind,
        &format!("upstream[{i}]"),
        retry,
        rate_limit,
        timeouts,
        raw.routes,
    )?;
    if raw.kind == UpstreamKind::MyinfoV4
        && routes.iter().any(|(_, p)| p.decrypt)
        && jwks_url.is_none()
    {
        return Err(ConfigError::new(
            key("jwks_url"),
            "routes.person.decrypt is on, but there is no JWKS to verify Myinfo's signature with",
            "set jwks_url to Myinfo's public JWKS URL, or turn decrypt off",
        ));
    }
    Ok(Upstream {
        name: raw.name.unwrap_or_else(|| format!("upstream{i}")),
        kind: raw.kind,
        base_url,
        jwks_url,
        local_prefix,
        token_ttl_cap,
        login_ttl,
        discovery_refresh,
        routes,
    })
}

/// An absolute http(s) URL without query or fragment; plain http to a non-loopback host warns.
fn http_url(
    key: &str,
    text: &str,
    example: &str,
    warnings: &mut Vec<String>,
) -> Result<http::Uri, ConfigError> {
    let bad = |problem: String| {
        ConfigError::new(
            key,
            problem,
            format!("use an absolute URL such as \"{example}\""),
        )
    };
    let uri: http::Uri = text
        .parse()
        .map_err(|_| bad(format!("`{text}` is not a URL")))?;
    let host = match (uri.scheme_str(), uri.host()) {
        (Some("https" | "http"), Some(host)) => host.to_owned(),
        _ => return Err(bad(format!("`{text}` is not an absolute http(s) URL"))),
    };
    if uri.query().is_some() || text.contains('#') {
        return Err(ConfigError::new(
            key,
            "has a query or fragment",
            "give only scheme, host, port and path",
        ));
    }
    if uri.scheme_str() == Some("http") && !is_loopback(&host) {
        warnings.push(format!("{key}: `{text}` is plain http to a non-loopback host; tokens and personal data would cross the network unencrypted"));
    }
    Ok(uri)
}
