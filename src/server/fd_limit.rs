//! Keeps the connection caps inside the process's open-file limit, so that the admin listener
//! still has descriptors for probes when the main one is full: each main connection may need
//! one upstream connection too, and the process needs a few more for its own files.

use crate::config::Listeners;

/// Descriptors kept for everything but app connections: listeners, key files, DNS, logs.
const RESERVE: u64 = 64;

/// Lowers `listeners`' caps to fit the soft open-file limit (`ulimit -n`); says what it did.
pub fn fit_open_file_limit(listeners: &mut Listeners) -> Option<String> {
    let limit = open_file_limit()?;
    fit(listeners, limit)
}

fn fit(listeners: &mut Listeners, limit: u64) -> Option<String> {
    let available = usize::try_from(limit.saturating_sub(RESERVE)).unwrap_or(usize::MAX);
    let admin = listeners.admin.max_connections.min(available / 4).max(1);
    // A main connection can hold an upstream connection as well.
    let main = listeners
        .main
        .max_connections
        .min(available.saturating_sub(admin) / 2)
        .max(1);
    let before = (
        listeners.main.max_connections,
        listeners.admin.max_connections,
    );
    if (main, admin) == before {
        return None;
    }
    listeners.main.max_connections = main;
    listeners.admin.max_connections = admin;
    Some(format!(
        "the open-file limit ({limit}, `ulimit -n`) is too low for listener.main.max_connections = {} and listener.admin.max_connections = {}: using {main} and {admin}; raise the limit to allow more",
        before.0, before.1
    ))
}

#[cfg(unix)]
fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_shrink_to_the_limit_and_stay_when_it_is_high() {
        let mut l = Listeners::default();
        assert_eq!(fit(&mut l, 1_048_576), None);
        assert_eq!(
            (l.main.max_connections, l.admin.max_connections),
            (4096, 64)
        );
        let warning = fit(&mut l, 512).unwrap();
        assert!(warning.contains("ulimit -n"), "{warning}");
        assert_eq!((l.main.max_connections, l.admin.max_connections), (192, 64));
        // Both together, with an upstream connection each, stay under the limit.
        assert!(2 * 192 + 64 + RESERVE as usize <= 512);
    }
}
