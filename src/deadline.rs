//! Instants a duration after another that cannot overflow: `Instant + Duration` panics when
//! the sum does not fit the clock, and a configured or upstream-sent duration must never take a
//! request down with it.

use std::time::Duration;

/// What tokio's own timers saturate at: about 30 years, which every platform's clock holds.
const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

/// An instant type with a checked addition (std's and tokio's).
pub(crate) trait CheckedAdd: Copy + std::ops::Add<Duration, Output = Self> {
    /// `self + d`, or None when it does not fit.
    fn checked(self, d: Duration) -> Option<Self>;
}

impl CheckedAdd for std::time::Instant {
    fn checked(self, d: Duration) -> Option<Self> {
        self.checked_add(d)
    }
}

impl CheckedAdd for tokio::time::Instant {
    fn checked(self, d: Duration) -> Option<Self> {
        self.checked_add(d)
    }
}

/// `at + d`, or about 30 years after `at` when that sum does not fit.
pub(crate) fn saturating_add<I: CheckedAdd>(at: I, d: Duration) -> I {
    at.checked(d).unwrap_or_else(|| at + FAR.min(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_durations_saturate_instead_of_panicking() {
        let now = tokio::time::Instant::now();
        let huge = Duration::from_secs(u64::MAX);
        assert_eq!(saturating_add(now, huge), now + FAR);
        assert_eq!(
            saturating_add(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let std_now = std::time::Instant::now();
        assert_eq!(saturating_add(std_now, huge), std_now + FAR);
    }
}
