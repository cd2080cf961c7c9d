//! What a run is allowed to do: [`SyncOptions`] (what to read, how long and how much), and the
//! shares of a run's time that the change feed and each read by id may take.

use std::time::Duration;

use crate::retry::RetryPolicy;

/// How a run decides what to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncOptions {
    /// Re-read everything, whatever the checkpoints say.
    pub full: bool,
    /// The short lookback of incremental runs (a day by default).
    pub lookback: Duration,
    /// Unsettled payments created within this window (7 days) are re-read by every run, even
    /// past the lookback; older ones are left to re-verification, so that one abandoned `open`
    /// payment cannot make every run re-read months of pages.
    pub unsettled_window: Duration,
    /// Continuous re-verification: what every incremental run reads beyond what can have
    /// changed, so that every payment ever seen is read again within a bounded time, smoothly,
    /// without a daily spike. For a newest-first source (PayPro) it is pages of a walk over the
    /// whole listing that resumes where the last run left it; for a source of groups (MKP) it
    /// is the groups verified longest ago, as many as fit (each costs the pages its last read
    /// took; one group is read even when it alone costs more). 0 turns it off.
    pub reverify_budget: u32,
    /// Retries.
    pub retry: RetryPolicy,
    /// The most pages one run of one source may read.
    pub max_pages: Option<u64>,
    /// The longest one run may take: past it, the run stops at the next page boundary with its
    /// checkpoint ([`SyncError::OutOfTime`](crate::SyncError::OutOfTime)), so a scheduled run never overlaps the next one.
    pub max_duration: Option<Duration>,
}

/// The default [`SyncOptions::reverify_budget`]: 10 requests a run. From cron every five
/// minutes that re-reads 2,880 MKP links or 288,000 PayPro payments a day, and keeps an
/// incremental MKP run of a thousand links (67 pages of links) within MKP's 60 a minute plus
/// one window's wait.
pub const DEFAULT_REVERIFY_BUDGET: u32 = 10;

impl Default for SyncOptions {
    fn default() -> SyncOptions {
        SyncOptions {
            full: false,
            lookback: Duration::from_secs(24 * 3600),
            unsettled_window: Duration::from_secs(7 * 24 * 3600),
            reverify_budget: DEFAULT_REVERIFY_BUDGET,
            retry: RetryPolicy::default(),
            max_pages: None,
            max_duration: None,
        }
    }
}

/// The share of a run's time ([`SyncOptions::max_duration`]) that reading the payments the
/// change feed names may take; the rest is the walk's.
pub const FEED_SHARE: f64 = 0.5;

/// The share of a run's time that one read by id may spend waiting on retries before it is put
/// off to a later run; at most [`MAX_READ_BY_ID_WAIT`].
pub const READ_BY_ID_SHARE: f64 = 0.05;

/// The longest one read by id may wait on retries (also without a time budget).
pub const MAX_READ_BY_ID_WAIT: Duration = Duration::from_secs(30);

impl SyncOptions {
    /// How long one read by id may wait on retries before it is put off: a small share of the
    /// run's time ([`READ_BY_ID_SHARE`]), at most [`MAX_READ_BY_ID_WAIT`].
    pub fn read_by_id_wait(&self) -> Duration {
        self.max_duration
            .map_or(MAX_READ_BY_ID_WAIT, |budget| {
                budget.mul_f64(READ_BY_ID_SHARE)
            })
            .min(MAX_READ_BY_ID_WAIT)
    }

    /// How long one read by id may take before it is cut off (a read that hangs is put off like
    /// one that would wait too long): [`SyncOptions::read_by_id_wait`], at least a second.
    pub(crate) fn read_by_id_cut_off(&self) -> Duration {
        self.read_by_id_wait().max(Duration::from_secs(1))
    }

    /// The defaults, but re-reading everything (`payments sync --full`).
    pub fn full() -> SyncOptions {
        SyncOptions {
            full: true,
            ..SyncOptions::default()
        }
    }
}

/// A run's time budget ([`SyncOptions::max_duration`]) and the change feed's share of it
/// ([`FEED_SHARE`]), asked with the time elapsed since the run started (the driver keeps the
/// clock; `None` answers: the run has no budget).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimeBudget {
    run: Option<Duration>,
}

impl TimeBudget {
    /// The budget `options` give a run.
    pub(crate) fn of(options: &SyncOptions) -> TimeBudget {
        TimeBudget {
            run: options.max_duration,
        }
    }

    /// The whole run's budget, when it has one.
    pub(crate) fn run(&self) -> Option<Duration> {
        self.run
    }

    /// How long the run may still take, `elapsed` after it started; zero once it is out of
    /// time ([`SyncError::OutOfTime`](crate::SyncError::OutOfTime)).
    pub(crate) fn run_left(&self, elapsed: Duration) -> Option<Duration> {
        self.run.map(|budget| budget.saturating_sub(elapsed))
    }

    /// The change feed's share of the run: its pages, and the payments it named read by id.
    pub(crate) fn feed_share(&self) -> Option<Duration> {
        self.run.map(|budget| budget.mul_f64(FEED_SHARE))
    }

    /// How long the change feed may still take, `elapsed` after the run started; zero once its
    /// share is spent.
    pub(crate) fn feed_left(&self, elapsed: Duration) -> Option<Duration> {
        self.feed_share().map(|share| share.saturating_sub(elapsed))
    }

    /// Whether the change feed's share is spent, `elapsed` after the run started: what it named
    /// and is not read yet is left for the next run, so that the walk has the rest.
    pub(crate) fn feed_share_spent(&self, elapsed: Duration) -> bool {
        self.feed_left(elapsed) == Some(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn the_feed_has_its_share_of_the_run_and_the_run_its_budget() {
        let options = SyncOptions {
            max_duration: Some(secs(240)),
            ..SyncOptions::default()
        };
        let budget = TimeBudget::of(&options);
        assert_eq!(budget.run(), Some(secs(240)));
        assert_eq!(budget.feed_share(), Some(secs(120)));
        // (elapsed, the run's time left, the feed's left, the feed's share spent)
        for (elapsed, run_left, feed_left, spent) in [
            (0, 240, 120, false),
            (119, 121, 1, false),
            (120, 120, 0, true),
            (239, 1, 0, true),
            (240, 0, 0, true),
            (300, 0, 0, true),
        ] {
            let elapsed = secs(elapsed);
            assert_eq!(
                budget.run_left(elapsed),
                Some(secs(run_left)),
                "{elapsed:?}"
            );
            assert_eq!(
                budget.feed_left(elapsed),
                Some(secs(feed_left)),
                "{elapsed:?}"
            );
            assert_eq!(budget.feed_share_spent(elapsed), spent, "{elapsed:?}");
        }
        let unbounded = TimeBudget::of(&SyncOptions::default());
        assert_eq!(unbounded.run_left(secs(100_000)), None);
        assert_eq!(unbounded.feed_left(secs(100_000)), None);
        assert!(!unbounded.feed_share_spent(secs(100_000)));
    }

    #[test]
    fn a_read_by_id_waits_a_small_share_of_the_run_and_is_cut_off_after_at_least_a_second() {
        // (the run's budget, the read's wait, its cut-off)
        for (budget, wait, cut_off) in [
            (None, MAX_READ_BY_ID_WAIT, MAX_READ_BY_ID_WAIT),
            (Some(secs(3600)), MAX_READ_BY_ID_WAIT, MAX_READ_BY_ID_WAIT),
            (Some(secs(200)), secs(10), secs(10)),
            (Some(secs(10)), Duration::from_millis(500), secs(1)),
        ] {
            let options = SyncOptions {
                max_duration: budget,
                ..SyncOptions::default()
            };
            assert_eq!(options.read_by_id_wait(), wait, "{budget:?}");
            assert_eq!(options.read_by_id_cut_off(), cut_off, "{budget:?}");
        }
    }
}
