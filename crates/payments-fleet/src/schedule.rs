//! When a source is due again after a run.

use std::time::Duration;

/// How long after a failed run its source is tried again: a minute, doubled for each failure
/// in a row before it, up to [`LONGEST_BACKOFF`].
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);

/// The longest a failing source waits before it is tried again: an hour (a failure is never
/// left longer; one that fails every run takes at most a run an hour of the fleet).
pub const LONGEST_BACKOFF: Duration = Duration::from_secs(3600);

/// How a run ended, as far as its next due time is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// It completed (with or without records set aside).
    Completed,
    /// It failed: the source, the key, the store or the spec.
    Failed,
}

/// How long after a run ends its source is due again.
///
/// - The worker was stopped (SIGTERM, SIGINT): due at once, so that another worker takes it
///   over without waiting.
/// - The run completed: after the source's `every`.
/// - The run failed: after [`RETRY_AFTER_FAILURE`] (a minute), doubled for each run that
///   failed in a row before it (`failed_before`), at most [`LONGEST_BACKOFF`], whatever
///   `every` says: sooner than a long `every` (a failure is not left for hours), never sooner
///   than a minute for a short one (a failing provider is not hammered), and a source that
///   fails every run cannot take the fleet's capacity. A success resets it.
pub fn next_due(end: RunEnd, every: Duration, stopped: bool, failed_before: u32) -> Duration {
    if stopped {
        return Duration::ZERO;
    }
    match end {
        RunEnd::Completed => every,
        RunEnd::Failed => RETRY_AFTER_FAILURE
            .checked_mul(2u32.saturating_pow(failed_before.min(16)))
            .unwrap_or(LONGEST_BACKOFF)
            .min(LONGEST_BACKOFF),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{RETRY_AFTER_FAILURE, RunEnd, next_due};

    #[test]
    fn next_due_table() {
        let secs = Duration::from_secs;
        let minute = RETRY_AFTER_FAILURE;
        assert_eq!(minute, secs(60));
        #[rustfmt::skip]
        let table = [
            // (how the run ended, every,     stopped, due after)
            (RunEnd::Completed, secs(300),  false, secs(300)),
            (RunEnd::Completed, secs(10),   false, secs(10)),
            (RunEnd::Completed, secs(3600), false, secs(3600)),
            // A failure: sooner than a long `every`, …
            (RunEnd::Failed,    secs(300),  false, minute),
            (RunEnd::Failed,    secs(3600), false, minute),
            (RunEnd::Failed,    secs(60),   false, minute),
            // … and never sooner than a minute for a short one.
            (RunEnd::Failed,    secs(10),   false, minute),
            (RunEnd::Failed,    secs(59),   false, minute),
            // Stopped: due at once, for the next worker.
            (RunEnd::Completed, secs(300),  true,  Duration::ZERO),
            (RunEnd::Failed,    secs(300),  true,  Duration::ZERO),
            (RunEnd::Failed,    secs(10),   true,  Duration::ZERO),
        ];
        for (end, every, stopped, due) in table {
            assert_eq!(
                next_due(end, every, stopped, 0),
                due,
                "{end:?} with every {every:?}, stopped: {stopped}"
            );
        }
    }

    #[test]
    fn a_source_that_keeps_failing_backs_off_to_an_hour_and_a_success_resets_it() {
        let secs = Duration::from_secs;
        let failed = |before| next_due(RunEnd::Failed, secs(300), false, before);
        assert_eq!(
            (0..8).map(failed).collect::<Vec<_>>(),
            [60, 120, 240, 480, 960, 1920, 3600, 3600].map(secs)
        );
        assert_eq!(failed(u32::MAX), super::LONGEST_BACKOFF);
        // Completed or stopped: the failures before do not count.
        assert_eq!(next_due(RunEnd::Completed, secs(300), false, 9), secs(300));
        assert_eq!(next_due(RunEnd::Failed, secs(300), true, 9), Duration::ZERO);
    }
}
