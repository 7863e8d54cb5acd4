//! The emulator's per-route quota: a GCRA (generic cell rate algorithm, the exact form of a
//! token bucket) on the tokio clock, so paused-time tests decide when capacity comes back.

use std::time::Duration;

use tokio::time::Instant;

/// The longest emission interval: a `per_second` at or below one a day (or not a positive
/// number at all) means one request a day, which no test outlives.
const SLOWEST_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// `per_second` requests a second on average, `burst` of them at once.
#[derive(Debug)]
pub(crate) struct Quota {
    /// Time between two admissions at the sustained rate (1 / `per_second`).
    interval: Duration,
    /// How far ahead of `now` the theoretical arrival time may run: (`burst` - 1) intervals.
    /// `None` for a burst of 0: nothing is ever admitted.
    tolerance: Option<Duration>,
    /// Theoretical arrival time of the next request at the sustained rate; `None` until the
    /// first admission.
    tat: Option<Instant>,
    /// Whether refusals name the wait in a `Retry-After` header.
    pub(crate) retry_after: bool,
    pub(crate) per_second: f64,
    pub(crate) burst: u32,
}

/// A refusal, and how long until the same request would be admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OverQuota {
    pub(crate) wait: Duration,
}

impl OverQuota {
    /// The wait as `Retry-After` delta-seconds, rounded up: waiting that long always works.
    pub(crate) fn retry_after_secs(self) -> u64 {
        let whole = self.wait.as_secs();
        if self.wait.subsec_nanos() > 0 {
            whole.saturating_add(1)
        } else {
            whole
        }
    }
}

impl Quota {
    pub(crate) fn new(per_second: f64, burst: u32, retry_after: bool) -> Self {
        let interval = Duration::try_from_secs_f64(1.0 / per_second)
            .ok()
            .filter(|interval| *interval <= SLOWEST_INTERVAL)
            .unwrap_or(SLOWEST_INTERVAL);
        let tolerance = burst
            .checked_sub(1)
            .map(|extra| interval.saturating_mul(extra));
        Quota {
            interval,
            tolerance,
            tat: None,
            retry_after,
            per_second,
            burst,
        }
    }

    /// Admits the request arriving at `now` (spending capacity) or refuses it (spending
    /// nothing: a refused request does not push later ones back).
    pub(crate) fn admit(&mut self, now: Instant) -> Result<(), OverQuota> {
        let Some(tolerance) = self.tolerance else {
            return Err(OverQuota {
                wait: self.interval,
            });
        };
        let tat = self.tat.map_or(now, |tat| tat.max(now));
        let ahead = tat.saturating_duration_since(now);
        if ahead > tolerance {
            return Err(OverQuota {
                wait: ahead.saturating_sub(tolerance),
            });
        }
        // An Instant cannot overflow within any test; if it would, the quota stays spent.
        self.tat = Some(tat.checked_add(self.interval).unwrap_or(tat));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(quota: &mut Quota, now: Instant, requests: usize) -> usize {
        (0..requests).filter(|_| quota.admit(now).is_ok()).count()
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let start = Instant::now();
        let mut quota = Quota::new(10.0, 2, true);
        assert_eq!(admitted(&mut quota, start, 30), 2);
        let refused = quota.admit(start).expect_err("over quota");
        assert_eq!(refused.wait, Duration::from_millis(100));
        assert_eq!(refused.retry_after_secs(), 1);
        let per_step: usize = (1..=10)
            .map(|step| admitted(&mut quota, start + Duration::from_millis(100 * step), 5))
            .sum();
        assert_eq!(per_step, 10);
        // Idle time refills at most the burst.
        assert_eq!(admitted(&mut quota, start + Duration::from_secs(60), 30), 2);
    }

    #[test]
    fn slow_rates_round_retry_after_up_and_odd_settings_do_not_panic() {
        let start = Instant::now();
        let mut quota = Quota::new(0.4, 1, true);
        assert!(quota.admit(start).is_ok());
        let refused = quota.admit(start).expect_err("over quota");
        assert_eq!(refused.retry_after_secs(), 3);

        let mut closed = Quota::new(5.0, 0, true);
        assert!(closed.admit(start).is_err());
        for per_second in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-12] {
            let mut quota = Quota::new(per_second, 3, false);
            assert!(admitted(&mut quota, start, 10) >= 3, "{per_second}");
        }
    }
}
