//! Reading what webhooks name ([`Hint`]s): the payment by id, or the group and its payments,
//! through the same [`Pager`] as a run (the credential's limiter, the retries, the guards), each
//! committed like a page, with versions, stamped with when its request left. A hint is never
//! applied as data, and a read never moves the source's checkpoint: it runs beside the
//! source's run, and the store keeps the newer of two states ([`crate::Store::commit`]).

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use payments_model::{Cursor, Hint, Payment, PaymentSource, Rejected, SourceError};

use crate::pager::Pager;
use crate::run::Prepared;
use crate::store::{CommitCounts, Store};
use crate::{StopSignal, SyncError, SyncOptions};

/// What reading a batch of hints for one source did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HintsRead {
    /// The source.
    pub source_name: String,
    /// Distinct payments and groups read (hints for the same one are read once).
    pub read: u64,
    /// Of those, the ones the provider does not know (nothing is committed for them).
    pub unknown: u64,
    /// Requests made, retries included.
    pub requests: u64,
    /// New, changed and unchanged payments the reads committed.
    pub counts: CommitCounts,
    /// Records quarantined.
    pub quarantined: u64,
    /// Hints whose read failed, with why: the next run of the source reads them (its change
    /// feed or its walk), so the caller runs it soon.
    pub failed: Vec<(Hint, String)>,
    /// Some hint asked for the change feed ([`Hint::Feed`]): the caller runs the source now.
    pub feed: bool,
}

/// Reads `hints` of one source and commits what it reads.
pub(crate) struct HintReader<'a, S: Store> {
    pub(crate) store: &'a S,
    pub(crate) source: &'a dyn PaymentSource,
    pub(crate) options: &'a SyncOptions,
    pub(crate) stop: &'a StopSignal,
}

impl<S: Store> HintReader<'_, S> {
    /// Reads each distinct hint once, in a stable order (payments, then groups). A read that
    /// fails is named in [`HintsRead::failed`] and the others go on; a store failure or a stop
    /// ends the batch.
    pub(crate) async fn read(
        &self,
        pager: &mut Pager<'_>,
        hints: &[Hint],
    ) -> Result<HintsRead, SyncError> {
        let name = self.source.name();
        let mut done = HintsRead {
            source_name: name.to_owned(),
            ..HintsRead::default()
        };
        let distinct: BTreeSet<&Hint> = hints.iter().collect();
        let mut quarantined = self
            .store
            .quarantined(name)
            .await
            .map_err(SyncError::Store)?;
        for hint in distinct {
            let read = match hint {
                Hint::Feed => {
                    done.feed = true;
                    continue;
                }
                Hint::Payment { id } => self.payment(pager, id, &mut quarantined).await,
                Hint::Group { id } => self.group(pager, id, &mut quarantined).await,
            };
            match read {
                Ok(Some((counts, rejected))) => {
                    done.read += 1;
                    done.counts.add(counts);
                    done.quarantined += rejected;
                }
                Ok(None) => {
                    done.read += 1;
                    done.unknown += 1;
                }
                Err(error @ (SyncError::Store(_) | SyncError::Interrupted { .. })) => {
                    done.requests = pager.requests();
                    return Err(error);
                }
                Err(error) => {
                    tracing::warn!(source = %name, hint = %hint.describe(), %error, "a webhook's read failed; the next run reads it");
                    done.failed.push((hint.clone(), error.to_string()));
                }
            }
        }
        done.requests = pager.requests();
        Ok(done)
    }

    /// Reads one payment by id and commits it; `None` when the provider does not know it.
    async fn payment(
        &self,
        pager: &mut Pager<'_>,
        id: &str,
        quarantined: &mut HashSet<String>,
    ) -> Result<Option<(CommitCounts, u64)>, SyncError> {
        let wait = self.options.read_by_id_wait();
        let answer = self.guarded(pager.payment_within(id, wait)).await?;
        let observed_at = sent_at(pager);
        let (payments, rejected) = match answer.payment {
            None => return Ok(None),
            Some(Ok(payment)) => (vec![payment], Vec::new()),
            Some(Err(rejected)) => (Vec::new(), vec![rejected]),
        };
        self.commit(observed_at, payments, rejected, quarantined)
            .await
            .map(Some)
    }

    /// Reads one group, then its payments page by page, committing each page; `None` when the
    /// provider does not know the group.
    async fn group(
        &self,
        pager: &mut Pager<'_>,
        id: &str,
        quarantined: &mut HashSet<String>,
    ) -> Result<Option<(CommitCounts, u64)>, SyncError> {
        let wait = self.options.read_by_id_wait();
        let answer = self.guarded(pager.group_within(id, wait)).await?;
        let group = match answer.group {
            None => return Ok(None),
            Some(Ok(group)) => group,
            Some(Err(rejected)) => {
                let observed_at = sent_at(pager);
                return self
                    .commit(observed_at, Vec::new(), vec![rejected], quarantined)
                    .await
                    .map(Some);
            }
        };
        let mut at = Cursor {
            listing: None,
            groups: vec![group],
            group_page: None,
        };
        let mut counts = CommitCounts::default();
        let mut rejected_count = 0;
        pager.new_walk();
        loop {
            let page = self.guarded(pager.fetch(Some(&at))).await?;
            let observed_at = sent_at(pager);
            let set_aside = page
                .rejected
                .iter()
                .any(|r| r.source_id.as_deref() == Some(id));
            // The group reads again: its quarantine is resolved with its first page.
            let group_resolved =
                (!set_aside && at.group_page.is_none() && quarantined.remove(id)).then_some(id);
            let (page_counts, page_rejected) = self
                .commit_resolving(
                    observed_at,
                    page.payments,
                    page.rejected,
                    quarantined,
                    group_resolved,
                )
                .await?;
            counts.add(page_counts);
            rejected_count += page_rejected;
            match page.next {
                Some(next) if next.groups.first().is_some_and(|g| g.id == id) => at = next,
                _ => return Ok(Some((counts, rejected_count))),
            }
        }
    }

    /// Commits what one read gave, stamped `observed_at`, resolving the quarantines of
    /// records that map now.
    async fn commit(
        &self,
        observed_at: DateTime<Utc>,
        payments: Vec<Payment>,
        rejected: Vec<Rejected>,
        quarantined: &mut HashSet<String>,
    ) -> Result<(CommitCounts, u64), SyncError> {
        self.commit_resolving(observed_at, payments, rejected, quarantined, None)
            .await
    }

    /// [`HintReader::commit`], resolving the quarantine of `group` too (its payments read).
    async fn commit_resolving(
        &self,
        observed_at: DateTime<Utc>,
        payments: Vec<Payment>,
        rejected: Vec<Rejected>,
        quarantined: &mut HashSet<String>,
        group: Option<&str>,
    ) -> Result<(CommitCounts, u64), SyncError> {
        let resolved: Vec<String> = payments
            .iter()
            .filter(|p| quarantined.remove(&p.source_id))
            .map(|p| p.source_id.clone())
            .chain(group.map(str::to_owned))
            .collect();
        let rejected_count = rejected.len() as u64;
        let prepared = Prepared::read(
            self.source.name(),
            observed_at,
            payments,
            rejected,
            resolved,
        );
        let stored = self
            .store
            .stored(prepared.ids())
            .await
            .map_err(SyncError::Store)?;
        let (commit, counts) = prepared.compare(&stored);
        self.store.commit(commit).await.map_err(SyncError::Store)?;
        Ok((counts, rejected_count))
    }

    /// Runs `work` unless the caller is asked to stop first.
    async fn guarded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, SyncError>>,
    ) -> Result<T, SyncError> {
        let cut_off = self.options.read_by_id_cut_off();
        let name = self.source.name();
        tokio::select! {
            biased;
            reason = self.stop.raised() => Err(SyncError::Interrupted { source_name: name.to_owned(), reason }),
            answer = tokio::time::timeout(cut_off, work) => match answer {
                Ok(answer) => answer,
                Err(_elapsed) => Err(SyncError::Source {
                    source_name: name.to_owned(),
                    at: None,
                    error: SourceError::Transport {
                        provider: "the provider",
                        kind: payments_model::TransportKind::Timeout,
                        message: format!(
                            "no answer within {:.1} s, a read by id's share of a run",
                            cut_off.as_secs_f64()
                        ),
                    },
                }),
            },
        }
    }
}

/// The stamp of the answer the pager just gave: when its request left.
fn sent_at(pager: &Pager<'_>) -> DateTime<Utc> {
    pager.sent_at().unwrap_or_else(Utc::now)
}
