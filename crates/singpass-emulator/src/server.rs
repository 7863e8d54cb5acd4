//! Where the emulator serves: the accept loop that owns every connection (so aborting it
//! closes them all), and the addresses and base path a client must use.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::connection::serve_connection;
use crate::state::EmulatorState;

/// "/com/v4/" and "com/v4" both become "/com/v4"; "" and "/" become "".
pub(crate) fn normalize_base_path(base_path: &str) -> String {
    let trimmed = base_path.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

/// The address a client on this machine reaches: a wildcard bind is reached on loopback.
pub(crate) fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// Accepts until aborted. Connections live in a `JoinSet` owned here, so aborting this task
/// closes them too.
pub(crate) async fn accept_loop(listener: TcpListener, state: Arc<EmulatorState>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&state)));
                }
                Err(error) => {
                    tracing::warn!(%error, "emulator accept failed");
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_finished) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths_are_normalized() {
        assert_eq!(normalize_base_path("/com/v4"), "/com/v4");
        assert_eq!(normalize_base_path("com/v4/"), "/com/v4");
        assert_eq!(normalize_base_path("/"), "");
    }

    #[test]
    fn wildcard_binds_are_reached_on_loopback() {
        let wildcard: SocketAddr = "0.0.0.0:8080".parse().expect("addr");
        assert_eq!(reachable(wildcard).to_string(), "127.0.0.1:8080");
    }
}
