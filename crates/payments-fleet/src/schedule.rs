//! When a source is due again after a run.

use std::time::Duration;

/// How long after a failed run its source is tried again: a minute.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);

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
/// - The run failed: after [`RETRY_AFTER_FAILURE`] (a minute), whatever `every` says: sooner
///   than a long `every` (a failure is not left for hours), and never sooner than a minute for
///   a short one (a failing provider is not hammered).
pub fn next_due(end: RunEnd, every: Duration, stopped: bool) -> Duration {
    if stopped {
        return Duration::ZERO;
    }
    match end {
        RunEnd::Completed => every,
        RunEnd::Failed => RETRY_AFTER_FAILURE,
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
                next_due(end, every, stopped),
                due,
                "{end:?} with every {every:?}, stopped: {stopped}"
            );
        }
    }
}
