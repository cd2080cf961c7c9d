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

    /// The defaults, but re-reading everything (`payments sync --full`).
    pub fn full() -> SyncOptions {
        SyncOptions {
            full: true,
            ..SyncOptions::default()
        }
    }
}
