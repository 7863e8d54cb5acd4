//! Accept errors back off instead of spinning: at the file-descriptor limit (EMFILE) `accept`
//! fails at once, again and again, until a descriptor is free. The wait doubles from 10 ms to
//! 1 s, and the log says so at most once per second, with how many failed meanwhile.

use std::time::Duration;
use tokio::time::Instant;

const FIRST: Duration = Duration::from_millis(10);
const MAX: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(1);

/// The accept loop's backoff and log limiter.
#[derive(Debug)]
pub(super) struct AcceptBackoff {
    listener: &'static str,
    next_wait: Duration,
    unlogged: u64,
    last_log: Option<Instant>,
}

impl AcceptBackoff {
    pub(super) fn new(listener: &'static str) -> Self {
        Self {
            listener,
            next_wait: FIRST,
            unlogged: 0,
            last_log: None,
        }
    }

    /// An accept failed: counts it, logs it if none was logged this second, and says how long
    /// to wait before the next accept (and whether it logged).
    pub(super) fn failed(&mut self, error: &std::io::Error) -> (Duration, bool) {
        crate::metrics::accept_error(self.listener);
        self.unlogged += 1;
        let wait = self.next_wait;
        let now = Instant::now();
        let log = self
            .last_log
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY);
        if log {
            tracing::warn!(
                listener = self.listener,
                %error,
                failures = self.unlogged,
                retry_in_ms = wait.as_millis() as u64,
                "accept failed; backing off (at the open-file limit, raise `ulimit -n` or lower max_connections)"
            );
            self.last_log = Some(now);
            self.unlogged = 0;
        }
        self.next_wait = (wait * 2).min(MAX);
        (wait, log)
    }

    /// An accept succeeded: the next failure waits the shortest time again.
    pub(super) fn succeeded(&mut self) {
        self.next_wait = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_double_to_a_second_and_reset_after_a_success() {
        let mut backoff = AcceptBackoff::new("main");
        let emfile = std::io::Error::from_raw_os_error(24);
        let waits: Vec<u64> = (0..9)
            .map(|_| backoff.failed(&emfile).0.as_millis() as u64)
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.succeeded();
        assert_eq!(backoff.failed(&emfile).0, FIRST);
    }

    #[tokio::test(start_paused = true)]
    async fn logs_at_most_once_per_second() {
        let mut backoff = AcceptBackoff::new("main");
        let emfile = std::io::Error::from_raw_os_error(24);
        let mut logged = 0;
        // Ten seconds of failures at the fastest pace a success in between would allow.
        for _ in 0..1000 {
            logged += u32::from(backoff.failed(&emfile).1);
            backoff.succeeded();
            tokio::time::sleep(FIRST).await;
        }
        assert_eq!(logged, 10, "one warning per second");
    }
}
