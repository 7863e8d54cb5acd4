//! The emulator in process: [`EmulatorService`], a `tower::Service` over buffered requests
//! that answers exactly as the socket does (same checks, faults, holds and request log), so a
//! client under test can run against it with no socket, on paused tokio time.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full};

use crate::connection::handle;
use crate::server::normalize_base_path;
use crate::signing::EmulatorKey;
use crate::state::EmulatorState;
use crate::{Emulator, EmulatorConfig};

/// What a client sees when no answer comes: an injected Drop, or a request for another host.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request addressed to another host than the emulator's origin: over a socket it would
/// never have reached the emulator, so in process it fails as a connection would.
#[derive(Debug, thiserror::Error)]
#[error("no emulator at {requested}: this one serves {origin}")]
pub struct NotThisEmulator {
    requested: String,
    origin: String,
}

/// The emulator as a `tower::Service<http::Request<Bytes>>`, from [`Emulator::service`]:
/// requests in (absolute URIs on the emulator's origin, or origin-form paths), answers out
/// with their bodies read. An injected [`Fault::Drop`](crate::Fault::Drop) is an `Err`, and
/// [`Fault::Hang`](crate::Fault::Hang) a future that never completes, as over a socket.
#[derive(Clone)]
pub struct EmulatorService {
    state: Arc<EmulatorState>,
}

impl std::fmt::Debug for EmulatorService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorService")
            .field("origin", &self.state.origin)
            .finish_non_exhaustive()
    }
}

impl tower_service::Service<Request<Bytes>> for EmulatorService {
    type Response = Response<Bytes>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            if let Some(requested) = elsewhere(&state.origin, request.uri()) {
                return Err(NotThisEmulator {
                    requested,
                    origin: state.origin.clone(),
                }
                .into());
            }
            let response = handle(state, request.map(Full::new)).await?;
            let (parts, body) = response.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            Ok(Response::from_parts(parts, body))
        })
    }
}

impl Emulator {
    /// An emulator with no socket, serving `origin` (e.g. "https://stg-id.singpass.gov.sg" or
    /// "http://emulator.test"): its URLs, issuers and the `htu`/`aud` it expects are on that
    /// origin. Reach it through [`Emulator::service`]. Needs no runtime until called.
    /// Fails (`InvalidInput`) unless `origin` is an http(s) scheme and authority, nothing more.
    pub fn in_process(config: EmulatorConfig, origin: &str) -> std::io::Result<Emulator> {
        let origin = parse_origin(origin).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("origin must be http(s)://HOST[:PORT] and nothing more, not {origin:?}"),
            )
        })?;
        let mut config = config;
        config.base_path = normalize_base_path(&config.base_path);
        let key = EmulatorKey::generate().map_err(std::io::Error::other)?;
        let base_url = format!("{origin}{}", config.base_path);
        Ok(Emulator {
            state: Arc::new(EmulatorState::new(config, origin, base_url, key)),
            local_addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            server: None,
        })
    }

    /// This emulator as a `tower::Service`, sharing its state (controls and request log) with
    /// the socket, if it has one.
    pub fn service(&self) -> EmulatorService {
        EmulatorService {
            state: Arc::clone(&self.state),
        }
    }
}

/// "scheme://authority" for an origin with nothing after the authority but an optional "/".
fn parse_origin(origin: &str) -> Option<String> {
    let uri: Uri = origin.parse().ok()?;
    let scheme = uri.scheme()?;
    let authority = uri.authority()?;
    let plain = (scheme == &Scheme::HTTP || scheme == &Scheme::HTTPS)
        && matches!(uri.path(), "" | "/")
        && uri.query().is_none()
        && authority.as_str().rsplit('@').nth(1).is_none();
    plain.then(|| format!("{scheme}://{authority}"))
}

/// The requested authority when `uri` names another host or port than `origin`.
fn elsewhere(origin: &str, uri: &Uri) -> Option<String> {
    let requested = uri.authority()?;
    let ours: Uri = origin.parse().ok()?;
    let scheme = uri.scheme().or(ours.scheme());
    let same = ours.authority().is_some_and(|authority| {
        authority.host().eq_ignore_ascii_case(requested.host())
            && effective_port(authority, ours.scheme()) == effective_port(requested, scheme)
    });
    (!same).then(|| requested.to_string())
}

/// The port, or the scheme's default.
fn effective_port(authority: &Authority, scheme: Option<&Scheme>) -> Option<u16> {
    authority.port_u16().or(match scheme {
        Some(scheme) if scheme == &Scheme::HTTPS => Some(443),
        Some(scheme) if scheme == &Scheme::HTTP => Some(80),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_a_scheme_and_an_authority() {
        assert_eq!(
            parse_origin("https://Emulator.test/").as_deref(),
            Some("https://Emulator.test")
        );
        assert_eq!(
            parse_origin("http://127.0.0.1:9000").as_deref(),
            Some("http://127.0.0.1:9000")
        );
        for bad in [
            "emulator.test",
            "ftp://emulator.test",
            "https://emulator.test/fapi",
            "https://emulator.test?x=1",
            "https://user@emulator.test",
            "/token",
        ] {
            assert_eq!(parse_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn requests_for_other_hosts_are_not_for_this_emulator() {
        let origin = "https://emulator.test";
        let at = |uri: &str| elsewhere(origin, &uri.parse().expect("uri"));
        assert_eq!(at("/token"), None);
        assert_eq!(at("https://emulator.test/token"), None);
        assert_eq!(at("https://EMULATOR.test:443/token"), None);
        assert_eq!(
            at("http://emulator.test/token").as_deref(),
            Some("emulator.test")
        );
        assert_eq!(
            at("https://emulator.test:8443/token").as_deref(),
            Some("emulator.test:8443")
        );
        assert_eq!(
            at("https://other.test/token").as_deref(),
            Some("other.test")
        );
    }
}
