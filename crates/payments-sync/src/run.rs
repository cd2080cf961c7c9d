//! [`SourceRun`]: the state of one run of one source, advanced page by page.
//!
//! It owns the cursor, the checkpoint (with the limiter's snapshot), the incremental policy and
//! the group states it folds, and the counts. Data flows one way: the pager fetches the page at
//! [`SourceRun::cursor`], [`SourceRun::advance`] applies the policy and turns the page into the
//! facts of one commit, and [`SourceRun::committed`] tallies what the store kept.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use payments_model::{
    Cursor, Group, ListingOrder, Page, Payment, PaymentStatus, Rejected, SourceError,
};

use crate::SyncError;
use crate::feed::FeedFacts;
use crate::limiter::LimiterSnapshot;
use crate::options::SyncOptions;
use crate::store::{
    Checkpoint, Commit, CommitCounts, Failing, FeedPosition, GroupState, PendingChargeback,
    RunKind, SourceState, Summary, ToRead,
};

/// The unified statuses a payer's action can still change: what an incremental run re-reads.
pub(crate) fn unsettled_words() -> Vec<&'static str> {
    PaymentStatus::WORDS
        .into_iter()
        .filter(|word| {
            PaymentStatus::from_unified_and_raw(word, word).is_some_and(|s| s.is_unsettled())
        })
        .collect()
}

/// One run of one source.
pub(crate) struct SourceRun {
    checkpoint: Checkpoint,
    policy: Policy,
    groups: HashMap<String, GroupState>,
    summary: Summary,
    finished: bool,
    /// Pages of the re-verification walk this run may still read (newest-first sources).
    reverify_left: u32,
    /// Whether the run is in its re-verification walk.
    reverifying: bool,
    /// Whether the next fetch starts a walk of its own (the pager must forget the cursors of
    /// the walk before).
    new_walk: bool,
    /// Status words outside the status table the ledger has seen (reported once per ledger).
    unknown_words: HashSet<String>,
    /// Provider ids of the source's quarantined records, to resolve when they map again.
    quarantined: HashSet<String>,
    /// Whether this run restarted its walk already (a refused resume point restarts it once).
    restarted: bool,
}

/// How a run reads its source's change feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FeedPlan {
    /// The source has no change feed.
    NoFeed,
    /// The feed is read from the position in the checkpoint, before the walk.
    Follow,
    /// The feed was never read, but a walk of an earlier run stored the payments: the first
    /// read comes before this run's walk (within the feed's share of the run), so that the walk
    /// cannot crowd it out of every run.
    FirstReadBeforeWalk,
    /// The feed was never read and no walk was completed: the first read comes after this
    /// run's walk has stored the payments.
    FirstReadAfterWalk,
}

/// What the walk does after the fetch of its next page failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// The provider refused the resume point (an expired cursor, a vanished page): every later
    /// run would fail there too, so the walk starts again from its first page (once a run).
    RestartWalk,
    /// The provider repeats a cursor: resuming there would meet the same loop on every later
    /// run, so the walk ends here; what was read is kept, and the checkpoint (committed alone,
    /// [`SourceRun::checkpoint_only`]) makes the next run start the walk afresh.
    EndWalkAfresh,
    /// The run fails; the next one resumes from the last committed page.
    Fail,
}

/// A page turned into the facts of one commit, before it is compared with what is stored.
pub(crate) struct Prepared {
    commit: Commit,
    pub(crate) payments: usize,
    /// Payments whose chargeback the change feed stated (none, or its amount): a stored one is
    /// not carried forward onto them.
    chargebacks_stated: HashSet<String>,
}

impl SourceRun {
    /// Resumes an interrupted run, or plans a new one: full the first time (or when asked), a
    /// incremental otherwise. A run that stopped in its re-verification walk is not resumed: the
    /// next run is a new one (whose walk reads the newest pages first), and its re-verification
    /// walk continues where that one stopped.
    /// `oldest_unsettled` is the oldest unsettled payment created within `unsettled_window`.
    pub(crate) fn plan(
        name: &str,
        order: ListingOrder,
        state: SourceState,
        quarantined: HashSet<String>,
        oldest_unsettled: Option<DateTime<FixedOffset>>,
        options: &SyncOptions,
        now: DateTime<Utc>,
    ) -> SourceRun {
        if let Some(problem) = &state.unreadable_checkpoint {
            tracing::warn!(source = name, %problem, "the stored checkpoint does not read back; it is reset and this run reads everything");
        }
        let resumed = state
            .checkpoint
            .as_ref()
            .filter(|c| c.in_progress() && !options.full && c.cursor != c.reverify_cursor)
            .cloned();
        let checkpoint = match &resumed {
            Some(checkpoint) => checkpoint.clone(),
            None => new_checkpoint(state.checkpoint.as_ref(), oldest_unsettled, options, now),
        };
        let started = checkpoint.run_started_at;
        let policy = Policy {
            run: checkpoint.run,
            order,
            horizon: checkpoint.horizon,
            lookback_start: before(started, Duration::from_secs(checkpoint.lookback_secs)),
            unsettled_since: before(now, options.unsettled_window),
            reverify: match (order, checkpoint.run) {
                (ListingOrder::Groups, RunKind::Incremental) => verified_longest_ago(
                    &state.groups,
                    &quarantined,
                    state.checkpoint.as_ref().map(|c| c.run_started_at),
                    options.reverify_budget,
                ),
                _ => HashSet::new(),
            },
        };
        let reverify_left = match (order, checkpoint.run) {
            (ListingOrder::NewestFirst, RunKind::Incremental) => options.reverify_budget,
            _ => 0,
        };
        SourceRun {
            summary: Summary {
                source_name: name.to_owned(),
                run: Some(checkpoint.run),
                resumed: resumed.is_some(),
                to_read: checkpoint.to_read.len() as u64,
                ..Summary::default()
            },
            checkpoint,
            policy,
            groups: state.groups,
            finished: false,
            reverify_left,
            reverifying: false,
            new_walk: false,
            unknown_words: state.unknown_words,
            quarantined,
            restarted: false,
        }
    }

    /// Decides how this run reads the source's change feed (`has_change_feed`: whether it has
    /// one). Until the feed is read once, a run's time goes to that, not to re-verification.
    pub(crate) fn plan_feed(&mut self, has_change_feed: bool) -> FeedPlan {
        if !has_change_feed {
            return FeedPlan::NoFeed;
        }
        if self.checkpoint.feed.is_some() {
            return FeedPlan::Follow;
        }
        self.reverify_left = 0;
        match self.checkpoint.last_completed_at {
            Some(_) => FeedPlan::FirstReadBeforeWalk,
            None => FeedPlan::FirstReadAfterWalk,
        }
    }

    /// Decides what the walk does after the fetch of its next page failed with `error` at
    /// `now` (see [`AfterFailure`]), and moves the walk accordingly.
    pub(crate) fn fetch_failed(&mut self, error: &SyncError, now: DateTime<Utc>) -> AfterFailure {
        if !self.restarted && refuses_resume_point(error) {
            self.restarted = true;
            self.restart(now);
            return AfterFailure::RestartWalk;
        }
        if matches!(error, SyncError::RepeatingCursor { .. }) {
            self.restart(now);
            return AfterFailure::EndWalkAfresh;
        }
        AfterFailure::Fail
    }

    /// Whether the next fetch starts a walk of its own, once: the pager must then forget the
    /// cursors it fetched (the re-verification walk may start at the first page again).
    pub(crate) fn take_new_walk(&mut self) -> bool {
        std::mem::take(&mut self.new_walk)
    }

    /// Starts the walk again from its first page at `now`, keeping the run's kind and horizon
    /// (its resume point was refused, or it repeats).
    fn restart(&mut self, now: DateTime<Utc>) {
        if self.reverifying {
            // The re-verification walk's resume point was refused: it starts over from the top.
            self.checkpoint.reverify_cursor = None;
            self.checkpoint.reverify_started_at = Some(now);
        }
        self.checkpoint.cursor = None;
        self.finished = false;
    }

    /// Where the next page is; `None` for the first page of a walk.
    pub(crate) fn cursor(&self) -> Option<&Cursor> {
        self.checkpoint.cursor.as_ref()
    }

    /// Whether the walk is over.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// The limiter state the last run left.
    pub(crate) fn limiter_snapshot(&self) -> Option<&LimiterSnapshot> {
        self.checkpoint.rate_limit_seen.as_ref()
    }

    /// What the run has done so far.
    pub(crate) fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Takes the page fetched at [`SourceRun::cursor`]: decides where to go next (the policy),
    /// folds the states of the groups it lists or reads, resolves the quarantine of what reads
    /// again, and returns the facts to commit with the new checkpoint.
    pub(crate) fn advance(
        &mut self,
        page: Page,
        limiter: Option<LimiterSnapshot>,
        observed_at: DateTime<Utc>,
    ) -> Prepared {
        let unknown_words = self.first_unknown_words(&page.payments);
        let fetched_at = self.checkpoint.cursor.take();
        // Decided on what the run knew before this page (the groups it lists are noted after).
        let next = self.next_cursor(&page);
        let mut groups = self.note_listed(&page.groups, observed_at);
        let mut resolved = Vec::new();
        if let Some(cursor) = &fetched_at {
            groups.extend(self.fold_group_page(
                cursor,
                &page,
                next.as_ref(),
                observed_at,
                &mut resolved,
            ));
        }
        if let Some(snapshot) = limiter {
            self.checkpoint.rate_limit_seen = Some(snapshot);
        }
        self.move_on(next, observed_at);
        self.summary.quarantined += page.rejected.len() as u64;
        resolved.extend(self.resolve_quarantined(&page.payments));
        Prepared {
            payments: page.payments.len(),
            chargebacks_stated: HashSet::new(),
            commit: Commit {
                source: self.summary.source_name.clone(),
                observed_at,
                payments: page.payments,
                rejected: page.rejected,
                resolved,
                groups,
                unknown_words,
                checkpoint: Some(self.checkpoint.clone()),
            },
        }
    }

    /// Where the walk goes after `page`: in the re-verification walk, on past any horizon while
    /// its budget lasts (this page spends one of it); else as the incremental policy says.
    fn next_cursor(&mut self, page: &Page) -> Option<Cursor> {
        if self.reverifying {
            self.reverify_left = self.reverify_left.saturating_sub(1);
            return page.next.clone().filter(|next| !next.is_exhausted());
        }
        self.policy
            .next_cursor(page, &self.groups, &self.quarantined)
    }

    /// Notes the groups a page lists (their status, when they were listed), and returns their
    /// states to commit.
    fn note_listed(
        &mut self,
        listed: &[Group],
        observed_at: DateTime<Utc>,
    ) -> Vec<(String, GroupState)> {
        listed
            .iter()
            .map(|group| {
                let state = self.groups.entry(group.id.clone()).or_default();
                state.status.clone_from(&group.status);
                state.listed_at = Some(observed_at);
                (group.id.clone(), state.clone())
            })
            .collect()
    }

    /// Folds a page of the payments of the group `cursor` points at (its first) into the
    /// group's state, and returns the state to commit: afresh from the group's first page (a
    /// quarantine of the group is then resolved, into `resolved`), verified once its last page is
    /// read (the walk does not go on in it, `next`). `None` for no group, or one the source set
    /// aside.
    fn fold_group_page(
        &mut self,
        cursor: &Cursor,
        page: &Page,
        next: Option<&Cursor>,
        observed_at: DateTime<Utc>,
        resolved: &mut Vec<String>,
    ) -> Option<(String, GroupState)> {
        let group = cursor.groups.first()?;
        let set_aside = page
            .rejected
            .iter()
            .any(|r| r.source_id.as_deref() == Some(group.id.as_str()));
        let state = self.groups.entry(group.id.clone()).or_default();
        if cursor.group_page.is_none() && !set_aside {
            if self.quarantined.remove(&group.id) {
                resolved.push(group.id.clone());
            }
            // The first page of the group's payments: its state is folded afresh.
            *state = GroupState {
                status: group.status.clone(),
                listed_at: state.listed_at,
                ..GroupState::default()
            };
        }
        for payment in &page.payments {
            fold_group_state(state, payment);
        }
        if set_aside {
            // The source set the group aside (its payments could not be read): nothing of it
            // is committed, so what the ledger knows of it stays as it was, and its quarantine
            // makes every run read it again.
            return None;
        }
        state.pages += 1;
        if !page.rejected.is_empty() {
            state.holds_quarantined = true;
        }
        let walk_goes_on = next
            .and_then(|c| c.groups.first())
            .is_some_and(|g| g.id == group.id);
        if !walk_goes_on {
            state.verified_at = Some(observed_at);
        }
        Some((group.id.clone(), state.clone()))
    }

    /// The provider ids of the quarantined records among `payments` (they map now): their
    /// quarantine is resolved.
    fn resolve_quarantined(&mut self, payments: &[Payment]) -> Vec<String> {
        payments
            .iter()
            .filter(|p| self.quarantined.remove(&p.source_id))
            .map(|p| p.source_id.clone())
            .collect()
    }

    /// A commit of the checkpoint alone (when the walk ends afresh, [`AfterFailure::EndWalkAfresh`]).
    pub(crate) fn checkpoint_only(&self, observed_at: DateTime<Utc>) -> Commit {
        Commit {
            source: self.summary.source_name.clone(),
            observed_at,
            payments: Vec::new(),
            rejected: Vec::new(),
            resolved: Vec::new(),
            groups: Vec::new(),
            unknown_words: Vec::new(),
            checkpoint: Some(self.checkpoint.clone()),
        }
    }

    /// Where the change feed was last read to.
    pub(crate) fn feed_position(&self) -> Option<&FeedPosition> {
        self.checkpoint.feed.as_ref()
    }

    /// The feed could not be read back to the last change applied: this run's re-verification
    /// walk starts at the top and reads the whole listing, so no change stays missed.
    pub(crate) fn fall_back_to_a_whole_walk(&mut self, now: DateTime<Utc>) {
        if self.checkpoint.run == RunKind::Incremental {
            // A full run reads the whole listing anyway.
            self.checkpoint.reverify_cursor = None;
            self.checkpoint.reverify_started_at = Some(now);
            self.reverify_left = u32::MAX;
        }
        self.summary.feed_incomplete = true;
        // A feed that shows nothing at all (its events expired) gives no new position: the next
        // run reads it afresh (noting where it stands) instead of falling back again.
        self.checkpoint.feed = None;
    }

    /// Whether this run's walk reads a payment created at `created_at` anyway (a full walk, or
    /// a newest-first walk down to its horizon), so the feed need not.
    pub(crate) fn walk_reads(&self, created_at: DateTime<FixedOffset>) -> bool {
        match (self.policy.order, self.checkpoint.run) {
            (ListingOrder::NewestFirst, RunKind::Full) => true,
            (ListingOrder::NewestFirst, _) => self
                .checkpoint
                .horizon
                .is_some_and(|horizon| created_at.with_timezone(&Utc) >= horizon),
            (ListingOrder::Groups, _) => false,
        }
    }

    /// The facts of a read of the change feed (or of the payments it named) to commit, with the
    /// queue of payments still to read as it stands now. `position` (when `Some`) is the feed's
    /// new position: it moves past changes that were applied or are kept in the queue.
    pub(crate) fn feed_read(&mut self, facts: FeedFacts, observed_at: DateTime<Utc>) -> Prepared {
        if facts.position.is_some() {
            self.checkpoint.feed = facts.position;
        }
        self.summary.quarantined += facts.rejected.len() as u64;
        self.summary.to_read = self.checkpoint.to_read.len() as u64;
        let resolved = facts
            .readable
            .into_iter()
            .filter(|id| self.quarantined.remove(id))
            .collect();
        let mut commit = self.checkpoint_only(observed_at);
        commit.unknown_words = self.first_unknown_words(&facts.payments);
        Prepared {
            payments: facts.payments.len(),
            chargebacks_stated: facts.stated,
            commit: Commit {
                payments: facts.payments,
                rejected: facts.rejected,
                resolved,
                ..commit
            },
        }
    }

    /// The chargebacks not completed when last seen.
    pub(crate) fn pending_chargebacks(&mut self) -> &mut Vec<PendingChargeback> {
        &mut self.checkpoint.pending_chargebacks
    }

    /// The payments the change feed named that are still to be read by id.
    pub(crate) fn queue(&mut self) -> &mut Vec<ToRead> {
        &mut self.checkpoint.to_read
    }

    /// Part of the change feed (its pages, the provider's chargebacks) could not be read by
    /// this run, for `error`; said in the summary, and recorded by
    /// [`SourceRun::settle_feed_health`].
    pub(crate) fn feed_trouble(&mut self, error: String) {
        match &mut self.summary.feed_error {
            Some(errors) => {
                errors.push_str("; ");
                errors.push_str(&error);
            }
            None => self.summary.feed_error = Some(error),
        }
    }

    /// Records how this run's read of the change feed went, once a run: one more run in a row
    /// that failed, or a feed that reads again.
    pub(crate) fn settle_feed_health(&mut self, now: DateTime<Utc>) {
        self.checkpoint.feed_failing = self.summary.feed_error.clone().map(|error| {
            match self.checkpoint.feed_failing.take() {
                Some(failing) => Failing {
                    since: failing.since,
                    runs: failing.runs.saturating_add(1),
                    error,
                },
                None => Failing {
                    since: now,
                    runs: 1,
                    error,
                },
            }
        });
    }

    /// The failures that make the source unhealthy at `now` (see
    /// [`Checkpoint::persistent_failures`]).
    pub(crate) fn persistent_failures(&self, now: DateTime<Utc>) -> Vec<String> {
        self.checkpoint.persistent_failures(now)
    }

    /// Tallies what the change feed's commit changed (it is no page of the listing).
    pub(crate) fn feed_committed(&mut self, counts: CommitCounts) {
        self.summary.counts.add(counts);
    }

    /// Tallies a committed page.
    pub(crate) fn committed(&mut self, counts: CommitCounts) {
        self.summary.pages += 1;
        self.summary.counts.add(counts);
    }

    /// Records the pager's request count and waits.
    pub(crate) fn paged(&mut self, requests: u64, waited: Duration) {
        self.summary.requests = requests;
        self.summary.waited = waited;
    }

    /// Takes the walk to `next`, and past the end of a walk: a full run has verified everything;
    /// an incremental run of a newest-first source goes on with its re-verification walk.
    fn move_on(&mut self, next: Option<Cursor>, now: DateTime<Utc>) {
        if self.reverifying {
            self.checkpoint.reverify_cursor = next.clone();
            if next.is_none() {
                // The walk reached the end of the listing: everything was read again since it
                // started.
                if let Some(started) = self.checkpoint.reverify_started_at.take() {
                    self.checkpoint.verified_through = Some(started);
                }
            }
        }
        let walk_ended = next.is_none();
        self.checkpoint.cursor = next;
        if walk_ended && !self.reverifying && self.reverify_left > 0 {
            // The main walk is done; the re-verification walk resumes where it stopped.
            self.reverifying = true;
            self.new_walk = true;
            self.checkpoint.cursor = self.checkpoint.reverify_cursor.clone();
            if self.checkpoint.cursor.is_none() {
                self.checkpoint.reverify_started_at = Some(now);
            }
            return;
        }
        if self.reverifying && self.reverify_left == 0 {
            self.checkpoint.cursor = None;
        }
        self.finished = self.checkpoint.cursor.is_none();
        if !self.finished {
            return;
        }
        self.checkpoint.last_completed_at = Some(now);
        match self.policy.order {
            ListingOrder::Groups => {
                // Every listed group's last complete read; one never read to the end means not
                // yet. Groups this run did not list are gone from the provider.
                let started = self.checkpoint.run_started_at;
                self.checkpoint.verified_through = self
                    .groups
                    .values()
                    .filter(|g| g.listed_at.is_none_or(|listed| listed >= started))
                    .map(|g| g.verified_at)
                    .min()
                    .flatten();
            }
            ListingOrder::NewestFirst if self.checkpoint.run == RunKind::Full => {
                self.checkpoint.verified_through = Some(self.checkpoint.run_started_at);
                self.checkpoint.reverify_cursor = None;
                self.checkpoint.reverify_started_at = None;
            }
            ListingOrder::NewestFirst => {}
        }
    }

    /// The status words outside the status table that this ledger sees for the first time,
    /// each logged once: they are committed with the page, so later runs stay quiet about them.
    fn first_unknown_words(&mut self, payments: &[Payment]) -> Vec<String> {
        let mut first = Vec::new();
        for payment in payments {
            if let PaymentStatus::Unknown(word) = &payment.status
                && self.unknown_words.insert(word.clone())
            {
                tracing::warn!(source = %self.summary.source_name, word = %word, "a status word the status table does not know; its payments are stored as `unknown` with the word in provider_status (`payments status` lists such words)");
                first.push(word.clone());
            }
        }
        first
    }
}

impl Prepared {
    /// What a read that a webhook asked for commits ([`crate::Syncer::read_hints`]): the
    /// payments and records read at `observed_at`, and the quarantines they resolve. It runs
    /// beside the source's run, so it commits no checkpoint and no group state: those are the
    /// run's.
    pub(crate) fn read(
        source: &str,
        observed_at: DateTime<Utc>,
        payments: Vec<Payment>,
        rejected: Vec<Rejected>,
        resolved: Vec<String>,
    ) -> Prepared {
        Prepared {
            payments: payments.len(),
            chargebacks_stated: HashSet::new(),
            commit: Commit {
                source: source.to_owned(),
                observed_at,
                payments,
                rejected,
                resolved,
                groups: Vec::new(),
                unknown_words: Vec::new(),
                checkpoint: None,
            },
        }
    }

    /// The ids of the page's payments, to look up what is stored.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.commit.payments.iter().map(|p| p.id.clone()).collect()
    }

    /// Compares the page with the stored versions: keeps the new and changed payments, and
    /// counts (status moves backwards among them too).
    pub(crate) fn compare(mut self, stored: &HashMap<String, Payment>) -> (Commit, CommitCounts) {
        let mut counts = CommitCounts::default();
        // A page that lists a payment twice keeps its last copy, once.
        let mut seen = HashSet::new();
        let payments = std::mem::take(&mut self.commit.payments);
        self.commit.payments = payments
            .into_iter()
            .rev()
            .filter(|p| seen.insert(p.id.clone()))
            .collect();
        self.commit.payments.reverse();
        // A chargeback known from a change feed stays with its payment when a listing that does
        // not show chargebacks reads the payment again.
        for fetched in &mut self.commit.payments {
            if fetched.charged_back_amount.is_none()
                && !self.chargebacks_stated.contains(&fetched.id)
                && let Some(amount) = stored.get(&fetched.id).and_then(|s| s.charged_back_amount)
                && let Err(problem) = fetched.charge_back(amount)
            {
                // It was checked when it was applied: a refund since (or an amount corrected)
                // does not undo it. It is kept, and said.
                fetched.charged_back_amount = Some(amount);
                fetched.status = PaymentStatus::ChargedBack;
                tracing::warn!(%problem, "a stored chargeback no longer fits its payment as read now; it is kept (`payments show` has both)");
            }
        }
        self.commit
            .payments
            .retain(|fetched| match stored.get(&fetched.id) {
                None => {
                    counts.new += 1;
                    true
                }
                Some(before) if before == fetched => {
                    counts.unchanged += 1;
                    false
                }
                Some(before) => {
                    counts.changed += 1;
                    counts.backwards += u64::from(before.status.is_backwards_to(&fetched.status));
                    true
                }
            });
        (self.commit, counts)
    }
}

/// Folds a payment into its group's state.
fn fold_group_state(state: &mut GroupState, payment: &Payment) {
    if payment.status.is_unsettled() {
        state.newest_unsettled_at = state.newest_unsettled_at.max(Some(payment.created_at));
    }
    state.newest_payment_at = state.newest_payment_at.max(Some(payment.created_at));
    if matches!(
        payment.status,
        PaymentStatus::Paid | PaymentStatus::PartiallyRefunded
    ) {
        state.newest_paid_at = state.newest_paid_at.max(Some(payment.created_at));
    }
}

fn new_checkpoint(
    previous: Option<&Checkpoint>,
    oldest_unsettled: Option<DateTime<FixedOffset>>,
    options: &SyncOptions,
    now: DateTime<Utc>,
) -> Checkpoint {
    let completed = previous.and_then(|c| c.last_completed_at);
    let run = if options.full || completed.is_none() {
        RunKind::Full
    } else {
        RunKind::Incremental
    };
    let window = match run {
        RunKind::Full => None,
        RunKind::DeepSweep | RunKind::Incremental => Some(options.lookback),
    };
    let oldest_unsettled = oldest_unsettled.map(|t| t.with_timezone(&Utc));
    let horizon = window.map(|w| {
        let start = before(now, w);
        oldest_unsettled.map_or(start, |t| t.min(start))
    });
    Checkpoint {
        cursor: None,
        run,
        run_started_at: now,
        horizon,
        lookback_secs: options.lookback.as_secs(),
        last_completed_at: completed,
        reverify_cursor: previous.and_then(|c| c.reverify_cursor.clone()),
        reverify_started_at: previous.and_then(|c| c.reverify_started_at),
        verified_through: previous.and_then(|c| c.verified_through),
        feed: previous.and_then(|c| c.feed.clone()),
        rate_limit_seen: previous.and_then(|c| c.rate_limit_seen.clone()),
        to_read: previous.map(|c| c.to_read.clone()).unwrap_or_default(),
        feed_failing: previous.and_then(|c| c.feed_failing.clone()),
        pending_chargebacks: previous
            .map(|c| c.pending_chargebacks.clone())
            .unwrap_or_default(),
    }
}

/// `duration` before `at`, or the earliest time there is when that is out of range (a lookback
/// of four billion days means "everything", not a panic).
pub(crate) fn before(at: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|d| at.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The incremental decisions of one run.
struct Policy {
    run: RunKind,
    order: ListingOrder,
    horizon: Option<DateTime<Utc>>,
    lookback_start: DateTime<Utc>,
    unsettled_since: DateTime<Utc>,
    /// The groups this run re-verifies (read whatever else says), chosen at the start.
    reverify: HashSet<String>,
}

/// The groups verified longest ago (never verified first) whose re-reading fits in `budget`
/// requests (each costs the pages its last read took; at least one group when the budget is not
/// zero), for an incremental run to read again.
///
/// Groups read by every run anyway (set aside, `quarantined`) and groups the last run no longer
/// listed (gone from the provider: listed before `last_run_started`) are left out, so they cannot
/// take the budget of the others.
fn verified_longest_ago(
    groups: &HashMap<String, GroupState>,
    quarantined: &HashSet<String>,
    last_run_started: Option<DateTime<Utc>>,
    budget: u32,
) -> HashSet<String> {
    let listed = |g: &GroupState| match (g.listed_at, last_run_started) {
        (Some(listed), Some(started)) => listed >= started,
        // Groups from before `listed_at` was kept, or a first run: all count.
        _ => true,
    };
    let mut oldest: Vec<(&Option<DateTime<Utc>>, &String, u32)> = groups
        .iter()
        .filter(|(id, g)| !quarantined.contains(*id) && listed(g))
        .map(|(id, g)| (&g.verified_at, id, g.pages.max(1)))
        .collect();
    oldest.sort();
    let mut spent = 0;
    let mut chosen = HashSet::new();
    for (_, id, cost) in oldest {
        if budget == 0 || (spent + cost > budget && !chosen.is_empty()) {
            break;
        }
        spent += cost;
        chosen.insert(id.clone());
    }
    chosen
}

impl Policy {
    /// Where to go after `page`: the source's next cursor, minus the groups this run need not
    /// read, or nowhere once a newest-first listing is past the horizon.
    fn next_cursor(
        &self,
        page: &Page,
        known: &HashMap<String, GroupState>,
        quarantined: &HashSet<String>,
    ) -> Option<Cursor> {
        let mut next = page.next.clone()?;
        if self.order == ListingOrder::NewestFirst {
            let oldest = page.payments.iter().map(|p| p.created_at).min();
            if let (Some(horizon), Some(oldest)) = (self.horizon, oldest)
                && oldest.with_timezone(&Utc) < horizon
            {
                return None;
            }
        }
        if !page.groups.is_empty() && self.run != RunKind::Full {
            next.groups.retain(|group| {
                !page.groups.iter().any(|g| g.id == group.id)
                    || quarantined.contains(&group.id)
                    || self.must_read(group, known)
            });
        }
        (!next.is_exhausted()).then_some(next)
    }

    /// Whether a group's payments can have changed since the last run.
    fn must_read(&self, group: &Group, known: &HashMap<String, GroupState>) -> bool {
        let Some(known) = known.get(&group.id) else {
            return true;
        };
        let since = |at: Option<DateTime<FixedOffset>>, start: DateTime<Utc>| {
            at.is_some_and(|t| t.with_timezone(&Utc) >= start)
        };
        group.open
            || known.holds_quarantined
            || known.status != group.status
            || since(known.newest_unsettled_at, self.unsettled_since)
            || since(known.newest_payment_at, self.lookback_start)
            || self.reverify.contains(&group.id)
    }
}

/// Whether `error` says the provider no longer accepts a resume point (an expired cursor, a page
/// that is gone): the walk can start again from the top.
fn refuses_resume_point(error: &SyncError) -> bool {
    matches!(
        error,
        SyncError::Source {
            at: Some(_),
            error: SourceError::Invalid { .. }
                | SourceError::NotFound { .. }
                | SourceError::BadCursor(_),
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use payments_model::{Page, SourceError};

    use super::*;
    use crate::test_data::{group, listing, page, payment, rejected, utc};

    /// When the runs of these tests happen.
    const NOW: &str = "2026-12-02T12:00:00Z";

    /// The checkpoint of a `run` that started and completed at `started`, resting (no cursor).
    fn checkpoint(run: RunKind, started: &str) -> Checkpoint {
        Checkpoint {
            lookback_secs: 24 * 3600,
            last_completed_at: Some(utc(started)),
            ..Checkpoint::started(run, utc(started))
        }
    }

    /// What a store would answer for a source with `checkpoint` and `groups`.
    fn state(checkpoint: Option<Checkpoint>, groups: Vec<(&str, GroupState)>) -> SourceState {
        SourceState {
            checkpoint,
            groups: groups
                .into_iter()
                .map(|(id, state)| (id.to_owned(), state))
                .collect(),
            unreadable_checkpoint: None,
            unknown_words: HashSet::new(),
        }
    }

    /// A run planned at [`NOW`] with the default options.
    fn planned(order: ListingOrder, state: SourceState, quarantined: &[&str]) -> SourceRun {
        planned_with(order, state, quarantined, &SyncOptions::default())
    }

    fn planned_with(
        order: ListingOrder,
        state: SourceState,
        quarantined: &[&str],
        options: &SyncOptions,
    ) -> SourceRun {
        let quarantined = quarantined.iter().map(|id| (*id).to_owned()).collect();
        SourceRun::plan(
            "a source",
            order,
            state,
            quarantined,
            None,
            options,
            utc(NOW),
        )
    }

    /// A run that resumes an interrupted incremental run at `cursor`.
    fn resumed_at(order: ListingOrder, cursor: Cursor, quarantined: &[&str]) -> SourceRun {
        let mut interrupted = checkpoint(RunKind::Incremental, "2026-12-02T11:55:00Z");
        interrupted.cursor = Some(cursor);
        let run = planned(order, state(Some(interrupted), Vec::new()), quarantined);
        assert!(run.summary().resumed);
        run
    }

    /// A cursor at the first group of `groups` (its first page for `group_page` `None`).
    fn at_group(groups: &[&str], group_page: Option<&str>) -> Cursor {
        Cursor {
            listing: None,
            groups: groups.iter().map(|id| group(id, "closed", false)).collect(),
            group_page: group_page.map(str::to_owned),
        }
    }

    fn refused(at: Option<Cursor>, error: SourceError) -> SyncError {
        SyncError::Source {
            source_name: "a source".into(),
            at,
            error,
        }
    }

    fn not_found() -> SourceError {
        SourceError::NotFound {
            provider: "a provider",
            what: "page".into(),
        }
    }

    #[test]
    fn a_refused_resume_point_restarts_the_walk_once_and_a_repeating_cursor_ends_it_afresh() {
        let at = || Some(listing("p3"));
        let cases: Vec<(&str, SyncError, AfterFailure)> = vec![
            (
                "a page gone",
                refused(at(), not_found()),
                AfterFailure::RestartWalk,
            ),
            (
                "a cursor refused as invalid",
                refused(
                    at(),
                    SourceError::Invalid {
                        provider: "a provider",
                        status: 422,
                        message: "expired".into(),
                    },
                ),
                AfterFailure::RestartWalk,
            ),
            (
                "a cursor that does not read",
                refused(at(), SourceError::BadCursor("garbled".into())),
                AfterFailure::RestartWalk,
            ),
            (
                "the first page gone (nothing to restart)",
                refused(None, not_found()),
                AfterFailure::Fail,
            ),
            (
                "a key refused",
                refused(
                    at(),
                    SourceError::Auth {
                        provider: "a provider",
                        status: 401,
                        advice: "set the key".into(),
                    },
                ),
                AfterFailure::Fail,
            ),
            (
                "a repeating cursor",
                SyncError::RepeatingCursor {
                    source_name: "a source".into(),
                    at: at(),
                },
                AfterFailure::EndWalkAfresh,
            ),
            (
                "retries spent",
                SyncError::RetriesExhausted {
                    source_name: "a source".into(),
                    at: at(),
                    attempts: 5,
                    last: not_found(),
                },
                AfterFailure::Fail,
            ),
        ];
        for (what, error, expected) in cases {
            let mut run = resumed_at(ListingOrder::NewestFirst, listing("p3"), &[]);
            let after = run.fetch_failed(&error, utc(NOW));
            assert_eq!(after, expected, "{what}");
            let from_the_top = expected != AfterFailure::Fail;
            assert_eq!(run.cursor().is_none(), from_the_top, "{what}");
            assert_eq!(
                run.checkpoint_only(utc(NOW))
                    .checkpoint
                    .unwrap()
                    .cursor
                    .is_none(),
                from_the_top,
                "{what}: the checkpoint committed alone"
            );
            if expected == AfterFailure::RestartWalk {
                // Once a run: a walk whose first page is refused too fails.
                let again = refused(Some(listing("p1")), not_found());
                assert_eq!(
                    run.fetch_failed(&again, utc(NOW)),
                    AfterFailure::Fail,
                    "{what}"
                );
            }
        }
    }

    #[test]
    fn a_refused_resume_point_of_the_re_verification_walk_starts_it_over_at_now() {
        let mut last = checkpoint(RunKind::Incremental, "2026-12-02T11:55:00Z");
        last.reverify_cursor = Some(listing("r5"));
        last.reverify_started_at = Some(utc("2026-11-20T00:00:00Z"));
        let mut run = planned(
            ListingOrder::NewestFirst,
            state(Some(last), Vec::new()),
            &[],
        );
        run.advance(
            page(vec![payment("P1", "2026-12-02T11:00:00Z")], None),
            None,
            utc(NOW),
        );
        assert_eq!(
            run.cursor(),
            Some(&listing("r5")),
            "the re-verification walk resumes"
        );
        assert!(run.take_new_walk());
        let now = utc("2026-12-02T12:01:00Z");
        let error = refused(Some(listing("r5")), not_found());
        assert_eq!(run.fetch_failed(&error, now), AfterFailure::RestartWalk);
        let checkpoint = run.checkpoint_only(now).checkpoint.unwrap();
        assert_eq!(checkpoint.cursor, None);
        assert_eq!(checkpoint.reverify_cursor, None);
        assert_eq!(checkpoint.reverify_started_at, Some(now));
    }

    #[test]
    fn a_group_the_source_set_aside_keeps_what_is_known_of_it() {
        let observed_at = utc(NOW);
        // (what, the page of the group's payments, committed, pages, verified, holds quarantined)
        let cases = [
            (
                "read",
                Page {
                    payments: vec![payment("P1", "2026-12-01T10:00:00Z")],
                    ..Page::default()
                },
                true,
                1,
                true,
                false,
            ),
            (
                "read with a payment set aside",
                Page {
                    payments: vec![payment("P1", "2026-12-01T10:00:00Z")],
                    rejected: vec![rejected("P2")],
                    ..Page::default()
                },
                true,
                1,
                true,
                true,
            ),
            (
                "set aside",
                Page {
                    rejected: vec![rejected("g1")],
                    ..Page::default()
                },
                false,
                0,
                false,
                false,
            ),
        ];
        for (what, page, committed, pages, verified, holds_quarantined) in cases {
            let mut run = resumed_at(ListingOrder::Groups, at_group(&["g1"], None), &[]);
            let prepared = run.advance(page, None, observed_at);
            let states: HashMap<String, GroupState> = prepared.commit.groups.into_iter().collect();
            assert_eq!(states.contains_key("g1"), committed, "{what}");
            let state = &run.groups["g1"];
            assert_eq!(state.pages, pages, "{what}");
            assert_eq!(state.verified_at.is_some(), verified, "{what}");
            assert_eq!(state.holds_quarantined, holds_quarantined, "{what}");
        }
    }

    #[test]
    fn a_group_is_verified_once_its_last_page_is_read() {
        let mut run = resumed_at(ListingOrder::Groups, at_group(&["g1", "g2"], None), &[]);
        let goes_on = Cursor {
            group_page: Some("g1 page 2".into()),
            ..at_group(&["g1", "g2"], None)
        };
        run.advance(page(Vec::new(), Some(goes_on)), None, utc(NOW));
        assert_eq!(run.groups["g1"].verified_at, None, "g1 goes on");
        run.advance(
            page(Vec::new(), Some(at_group(&["g2"], None))),
            None,
            utc(NOW),
        );
        assert_eq!(run.groups["g1"].verified_at, Some(utc(NOW)));
        assert_eq!(run.groups["g1"].pages, 2);
    }

    #[test]
    fn a_quarantined_record_that_reads_now_is_resolved() {
        let quarantined = ["P1", "P2", "g1"];
        let mut run = resumed_at(ListingOrder::NewestFirst, listing("p2"), &quarantined);
        let prepared = run.advance(
            Page {
                payments: vec![payment("P1", "2026-12-02T11:00:00Z")],
                rejected: vec![rejected("P2")],
                next: Some(listing("p3")),
                ..Page::default()
            },
            None,
            utc(NOW),
        );
        assert_eq!(prepared.commit.resolved, ["P1"], "P2 still does not map");
        assert_eq!(run.summary().quarantined, 1);
        // A group's quarantine is resolved by a read of its first page that is not set aside.
        for (what, group_page, page_rejects, resolved) in [
            ("its first page", None, None, true),
            ("a later page", Some("page 2"), None, false),
            ("its first page, set aside again", None, Some("g1"), false),
        ] {
            let mut run = resumed_at(
                ListingOrder::Groups,
                at_group(&["g1"], group_page),
                &quarantined,
            );
            let page = Page {
                rejected: page_rejects.map(rejected).into_iter().collect(),
                ..Page::default()
            };
            let prepared = run.advance(page, None, utc(NOW));
            assert_eq!(
                prepared.commit.resolved.contains(&"g1".to_owned()),
                resolved,
                "{what}"
            );
        }
        // What the change feed reads (a payment, a chargeback) resolves its quarantine too.
        let prepared = run.feed_read(
            FeedFacts {
                readable: vec!["P2".into(), "PC9".into()],
                ..FeedFacts::default()
            },
            utc(NOW),
        );
        assert_eq!(prepared.commit.resolved, ["P2"]);
    }

    #[test]
    fn the_groups_to_re_verify_are_those_verified_longest_ago_that_fit_the_budget() {
        let verified = |at: Option<&str>, pages: u32| GroupState {
            verified_at: at.map(utc),
            listed_at: Some(utc("2026-12-02T11:55:00Z")),
            pages,
            ..GroupState::default()
        };
        let groups: HashMap<String, GroupState> = [
            ("never", verified(None, 1)),
            ("oldest", verified(Some("2026-11-01T00:00:00Z"), 2)),
            ("older", verified(Some("2026-11-15T00:00:00Z"), 5)),
            ("newer", verified(Some("2026-12-01T00:00:00Z"), 1)),
            ("quarantined", verified(None, 1)),
            (
                "gone",
                GroupState {
                    listed_at: Some(utc("2026-11-01T00:00:00Z")),
                    ..verified(None, 1)
                },
            ),
        ]
        .into_iter()
        .map(|(id, state)| (id.to_owned(), state))
        .collect();
        let quarantined = HashSet::from(["quarantined".to_owned()]);
        let last_run = Some(utc("2026-12-02T11:55:00Z"));
        for (budget, expected) in [
            (0, vec![]),
            (1, vec!["never"]),
            (3, vec!["never", "oldest"]),
            // The next one costs 5: it waits for a run with room for it.
            (7, vec!["never", "oldest"]),
            (8, vec!["never", "oldest", "older"]),
            (100, vec!["never", "oldest", "older", "newer"]),
        ] {
            let mut chosen: Vec<String> =
                verified_longest_ago(&groups, &quarantined, last_run, budget)
                    .into_iter()
                    .collect();
            chosen.sort();
            let mut expected: Vec<String> = expected.into_iter().map(str::to_owned).collect();
            expected.sort();
            assert_eq!(chosen, expected, "a budget of {budget}");
        }
        let expensive = HashMap::from([("big".to_owned(), verified(None, 50))]);
        assert_eq!(
            verified_longest_ago(&expensive, &HashSet::new(), last_run, 10).len(),
            1,
            "one group is read even when it alone costs more than the budget"
        );
    }

    #[test]
    fn the_re_verification_walk_reads_its_budget_of_pages_past_the_horizon_and_resumes_there() {
        let options = SyncOptions {
            reverify_budget: 2,
            ..SyncOptions::default()
        };
        let last = checkpoint(RunKind::Incremental, "2026-12-02T11:55:00Z");
        let mut run = planned_with(
            ListingOrder::NewestFirst,
            state(Some(last), Vec::new()),
            &[],
            &options,
        );
        let old = || vec![payment("P0", "2025-01-01T00:00:00Z")];
        // The main walk stops past its horizon (a day back).
        run.advance(page(old(), Some(listing("p2"))), None, utc(NOW));
        assert!(!run.is_finished());
        assert_eq!(
            run.cursor(),
            None,
            "the re-verification walk starts at the top"
        );
        assert!(run.take_new_walk());
        run.advance(page(old(), Some(listing("r2"))), None, utc(NOW));
        assert_eq!(
            run.cursor(),
            Some(&listing("r2")),
            "past the horizon, within its budget"
        );
        run.advance(page(old(), Some(listing("r3"))), None, utc(NOW));
        assert!(run.is_finished(), "the budget is spent");
        let checkpoint = run.checkpoint_only(utc(NOW)).checkpoint.unwrap();
        assert_eq!(checkpoint.reverify_cursor, Some(listing("r3")));
        assert_eq!(checkpoint.verified_through, None, "not at the end yet");
        // The next run resumes there, and reaching the end verifies everything since it began.
        let mut run = planned_with(
            ListingOrder::NewestFirst,
            state(Some(checkpoint), Vec::new()),
            &[],
            &options,
        );
        run.advance(page(Vec::new(), None), None, utc(NOW));
        assert_eq!(run.cursor(), Some(&listing("r3")));
        run.advance(page(old(), None), None, utc(NOW));
        let checkpoint = run.checkpoint_only(utc(NOW)).checkpoint.unwrap();
        assert!(run.is_finished());
        assert_eq!(checkpoint.reverify_cursor, None);
        assert_eq!(checkpoint.verified_through, Some(utc(NOW)));
    }

    #[test]
    fn an_incremental_newest_first_walk_stops_past_its_horizon() {
        let last = checkpoint(RunKind::Incremental, "2026-12-02T11:55:00Z");
        let options = SyncOptions {
            reverify_budget: 0,
            ..SyncOptions::default()
        };
        let mut run = planned_with(
            ListingOrder::NewestFirst,
            state(Some(last), Vec::new()),
            &[],
            &options,
        );
        run.advance(
            page(
                vec![payment("P2", "2026-12-02T10:00:00Z")],
                Some(listing("p2")),
            ),
            None,
            utc(NOW),
        );
        assert_eq!(
            run.cursor(),
            Some(&listing("p2")),
            "within the lookback of a day"
        );
        run.advance(
            page(
                vec![payment("P1", "2026-11-30T10:00:00Z")],
                Some(listing("p3")),
            ),
            None,
            utc(NOW),
        );
        assert!(
            run.is_finished(),
            "a page reaching past the horizon is the last"
        );
    }

    #[test]
    fn a_feed_never_read_is_read_first_after_a_walk_and_takes_the_re_verification_budget() {
        let with_position = || {
            let mut c = checkpoint(RunKind::Incremental, "2026-12-02T11:55:00Z");
            c.feed = Some(FeedPosition {
                id: "E1".into(),
                at: crate::test_data::at("2026-12-02T11:50:00Z"),
                recent: Vec::new(),
            });
            Some(c)
        };
        let never_walked = || {
            let mut c = checkpoint(RunKind::Full, "2026-12-02T11:55:00Z");
            c.last_completed_at = None;
            Some(c)
        };
        for (what, has_feed, checkpoint, plan, re_verifies) in [
            ("no feed", false, with_position(), FeedPlan::NoFeed, true),
            (
                "a feed read before",
                true,
                with_position(),
                FeedPlan::Follow,
                true,
            ),
            (
                "a feed never read, walked before",
                true,
                Some(checkpoint(RunKind::Incremental, "2026-12-02T11:55:00Z")),
                FeedPlan::FirstReadBeforeWalk,
                false,
            ),
            (
                "a feed never read, never walked",
                true,
                never_walked(),
                FeedPlan::FirstReadAfterWalk,
                false,
            ),
            (
                "a first run",
                true,
                None,
                FeedPlan::FirstReadAfterWalk,
                false,
            ),
        ] {
            let mut run = planned(
                ListingOrder::NewestFirst,
                state(checkpoint, Vec::new()),
                &[],
            );
            assert_eq!(run.plan_feed(has_feed), plan, "{what}");
            let incremental = run.summary().run == Some(RunKind::Incremental);
            assert_eq!(run.reverify_left > 0, re_verifies && incremental, "{what}");
        }
    }
}
