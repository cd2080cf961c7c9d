//! A run that meets a bad answer narrows it and goes on, and the next run makes progress: never
//! the same failure on every future run.

use std::sync::Arc;
use std::time::Duration;

use payments_model::RateLimit;
use payments_sandbox::{Api, Burst, Faults, RetryAfterForm, Sandbox, SandboxConfig};
use payments_sync::{MemoryStore, RunKind, StopReason, StopSignal, SyncError, SyncOptions, Syncer};
use payments_testkit::{data_set, paypro};

/// Incremental runs without re-verification: they read only what can have changed.
fn only_what_can_have_changed() -> SyncOptions {
    SyncOptions {
        reverify_budget: 0,
        ..SyncOptions::default()
    }
}

fn paypro_only(seed: u64, payments: usize) -> SandboxConfig {
    SandboxConfig {
        seed,
        mkp_links: 0,
        paypro_payments: payments,
        anchor: chrono::Utc::now(),
        mkp_rate_limit: None,
        ..SandboxConfig::default()
    }
}

#[tokio::test]
async fn a_resume_point_the_provider_refuses_restarts_the_walk_from_the_top() {
    let first = Sandbox::start(paypro_only(1, 500)).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let mut stopped = Syncer::new(
        store.clone(),
        SyncOptions {
            max_pages: Some(2),
            ..SyncOptions::default()
        },
    );
    stopped.add_source(paypro(&first));
    assert!(matches!(
        stopped.run().await.remove(0),
        Err(SyncError::PageBudget { pages: 2, .. })
    ));
    assert!(store.checkpoint("paypro").unwrap().in_progress());

    // The same account, but the stored cursor names a payment the provider no longer knows:
    // PayPro answers 422 "Invalid cursor". Before, every later run failed right there.
    let second = Sandbox::start(paypro_only(2, 500)).await.unwrap();
    let mut syncer = Syncer::new(store.clone(), SyncOptions::default());
    syncer.add_source(paypro(&second));
    let summary = syncer.run().await.remove(0).unwrap();
    assert!(summary.resumed);
    assert_eq!(second.count_status(Api::PayPro, 422), 1, "one refusal");
    assert_eq!(summary.counts.new, 500, "then every page from the top");
    let stored = store.payments();
    for payment in data_set(&second) {
        assert!(stored.contains(&payment), "{} is missing", payment.id);
    }
    assert!(!store.checkpoint("paypro").unwrap().in_progress());
}

#[tokio::test]
async fn a_429_that_only_says_retry_after_waits_that_long_not_a_whole_window() {
    let sandbox = Sandbox::start(SandboxConfig {
        faults: Faults {
            burst_429: Some(Burst {
                every: 3,
                length: 1,
                retry_after: Duration::from_secs(1),
                form: RetryAfterForm::Seconds,
            }),
            ..Faults::default()
        },
        ..paypro_only(3, 400)
    })
    .await
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    let mut syncer = Syncer::new(store.clone(), SyncOptions::default());
    // Paced by a limit of 60 per minute: a 429 without `X-RateLimit-Remaining` used to be read as
    // "the window is full", which cost a whole minute for a `Retry-After: 1`.
    syncer.add_source_with_rate_limit(
        paypro(&sandbox),
        Some(RateLimit::per(60, Duration::from_secs(60))),
    );
    let summary = syncer.run().await.remove(0).unwrap();
    assert_eq!(summary.counts.new, 400);
    assert!(sandbox.count_status(Api::PayPro, 429) >= 1);
    assert!(
        summary.waited < Duration::from_secs(10),
        "waited {:?} for {} × `Retry-After: 1`",
        summary.waited,
        sandbox.count_status(Api::PayPro, 429)
    );
}

#[tokio::test]
async fn a_stopped_run_is_recorded_as_interrupted_and_the_next_run_resumes() {
    let sandbox = Sandbox::start(SandboxConfig {
        faults: Faults {
            latency: Duration::from_millis(30),
            ..Faults::default()
        },
        ..paypro_only(4, 2000)
    })
    .await
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    let stop = StopSignal::new();
    let mut syncer = Syncer::new(store.clone(), SyncOptions::default());
    syncer.add_source(paypro(&sandbox)).with_stop(stop.clone());
    let running = tokio::spawn(async move { syncer.run().await.remove(0) });
    while store.payments().len() < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.stop(StopReason::Terminate);
    let err = running.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, SyncError::Interrupted { reason, .. } if *reason == StopReason::Terminate),
        "{err}"
    );
    let kept = store.payments().len();
    assert!(
        kept < 2000 && kept.is_multiple_of(100),
        "{kept}: whole pages only"
    );
    let run = store.runs().pop().unwrap();
    assert!(run.error.unwrap().contains("interrupted (SIGTERM)"));

    let mut next = Syncer::new(store.clone(), SyncOptions::default());
    next.add_source(paypro(&sandbox));
    let summary = next.run().await.remove(0).unwrap();
    assert!(summary.resumed);
    assert_eq!(summary.counts.new as usize, 2000 - kept);
    assert_eq!(store.payments(), data_set(&sandbox));
}

#[tokio::test]
async fn a_run_past_its_time_budget_stops_at_a_page_and_the_next_run_resumes() {
    let sandbox = Sandbox::start(SandboxConfig {
        faults: Faults {
            latency: Duration::from_millis(40),
            ..Faults::default()
        },
        ..paypro_only(5, 3000)
    })
    .await
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    let mut runs = 0;
    let mut resumed = 0;
    loop {
        runs += 1;
        let mut syncer = Syncer::new(
            store.clone(),
            SyncOptions {
                max_duration: Some(Duration::from_millis(500)),
                // A run that resumes its walk and then re-verifies 10 pages would never fit in
                // half a second: this test is about the walk resuming.
                reverify_budget: 0,
                ..SyncOptions::default()
            },
        );
        syncer.add_source(paypro(&sandbox));
        match syncer.run().await.remove(0) {
            Ok(summary) => {
                resumed += u32::from(summary.resumed);
                break;
            }
            Err(SyncError::OutOfTime { budget, .. }) => {
                assert_eq!(budget, Duration::from_millis(500));
                let checkpoint = store.checkpoint("paypro").unwrap();
                // Stopped in the walk, which resumes; or in a read of the feed (its first one
                // after the walk, or one before the walk of a later run), which the next run
                // makes again before it walks.
                resumed += u32::from(checkpoint.in_progress());
            }
            Err(error) => panic!("{error}"),
        }
        assert!(runs < 100, "every run makes progress");
    }
    assert!(runs > 1, "30 pages at 40 ms do not fit in 500 ms");
    assert!(
        resumed > 0,
        "a run stopped in the walk and the next resumed it"
    );
    assert_eq!(store.payments(), data_set(&sandbox));
    assert!(store.checkpoint("paypro").unwrap().feed.is_some());
}

#[tokio::test]
async fn an_mkp_429_with_retry_after_costs_that_wait_even_when_it_says_none_remain() {
    // The sandbox's MKP 429 says `Retry-After: 1` and `X-RateLimit-Remaining: 0`; DESIGN's
    // target 3: the next request goes out within Retry-After + 1 s, not a window later.
    let sandbox = Sandbox::start(SandboxConfig {
        seed: 6,
        mkp_links: 20,
        paypro_payments: 0,
        anchor: chrono::Utc::now(),
        mkp_rate_limit: None,
        faults: Faults {
            burst_429: Some(Burst {
                every: 5,
                length: 1,
                retry_after: Duration::from_secs(1),
                form: RetryAfterForm::Seconds,
            }),
            ..Faults::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    let mut syncer = Syncer::new(store.clone(), SyncOptions::default());
    syncer.add_source_with_rate_limit(
        payments_testkit::mkp(&sandbox),
        Some(RateLimit::per(60, Duration::from_secs(60))),
    );
    let summary = syncer.run().await.remove(0).unwrap();
    let refused = sandbox.count_status(Api::Mkp, 429) as u64;
    assert!(refused >= 2);
    assert!(
        summary.waited <= Duration::from_secs(2) * refused as u32,
        "waited {:?} for {refused} × `Retry-After: 1`",
        summary.waited
    );
    assert_eq!(store.payments().len(), data_set(&sandbox).len());
}

/// A source with one closed group whose payments cannot be read (the source sets the group
/// aside, as `MkpSource` does with a link over the body cap) until `fixed` is set.
struct OneGroup {
    fixed: std::sync::atomic::AtomicBool,
    requests: std::sync::atomic::AtomicU64,
}

#[payments_model::async_trait]
impl payments_model::PaymentSource for OneGroup {
    fn name(&self) -> &str {
        "groups"
    }

    fn order(&self) -> payments_model::ListingOrder {
        payments_model::ListingOrder::Groups
    }

    async fn page(
        &self,
        cursor: Option<&payments_model::Cursor>,
    ) -> Result<payments_model::Page, payments_model::SourceError> {
        use std::sync::atomic::Ordering;
        self.requests.fetch_add(1, Ordering::SeqCst);
        let group = payments_model::Group {
            id: "g1".into(),
            status: "closed".into(),
            open: false,
            description: None,
            created_at: None,
        };
        let Some(cursor) = cursor else {
            return Ok(payments_model::Page {
                groups: vec![group.clone()],
                next: Some(payments_model::Cursor {
                    listing: None,
                    groups: vec![group],
                    group_page: None,
                }),
                ..payments_model::Page::default()
            });
        };
        assert_eq!(cursor.groups[0].id, "g1");
        if !self.fixed.load(Ordering::SeqCst) {
            return Ok(payments_model::Page {
                rejected: vec![payments_model::Rejected {
                    source_id: Some("g1".into()),
                    reason: "group g1: its payments page is over the body cap; set aside".into(),
                    raw: String::new(),
                }],
                ..payments_model::Page::default()
            });
        }
        let payment: payments_model::Payment = serde_json::from_value(serde_json::json!({
            "id": "mkp:p1", "source": "mkp", "source_id": "p1", "status": "paid",
            "provider_status": "paid", "amount": "10.00", "currency": "EUR",
            "refunded_amount": null, "created_at": "2020-01-01T00:00:00Z", "paid_at": null,
            "payer_name": null, "description": null, "method": null, "processor": "x",
            "processor_reference": null, "payment_link_id": "g1", "customer_id": null,
            "fail_reason": null
        }))
        .unwrap();
        Ok(payments_model::Page {
            payments: vec![payment],
            ..payments_model::Page::default()
        })
    }
}

#[tokio::test]
async fn a_group_set_aside_is_read_again_by_every_run_until_it_reads_and_then_resolves() {
    use std::sync::atomic::Ordering;
    let source = Arc::new(OneGroup {
        fixed: false.into(),
        requests: 0.into(),
    });
    let store = Arc::new(MemoryStore::new());
    let run = || async {
        // Without re-verification: only what must be read is.
        let mut syncer = Syncer::new(store.clone(), only_what_can_have_changed());
        syncer.add_source(source.clone());
        let before = source.requests.load(Ordering::SeqCst);
        let summary = syncer.run().await.remove(0).unwrap();
        (summary, source.requests.load(Ordering::SeqCst) - before)
    };
    let (full, _) = run().await;
    assert_eq!((full.run, full.quarantined), (Some(RunKind::Full), 1));
    // A closed group with nothing recent would be skipped; one set aside is read again.
    let (incremental, requests) = run().await;
    assert_eq!(incremental.run, Some(RunKind::Incremental));
    assert_eq!(requests, 2, "the listing and the set-aside group");
    assert_eq!(store.rejected().len(), 1);

    source.fixed.store(true, Ordering::SeqCst);
    let (fixed, requests) = run().await;
    assert_eq!((fixed.counts.new, requests), (1, 2));
    assert!(store.rejected().is_empty(), "resolved");
    let (_, requests) = run().await;
    assert_eq!(requests, 1, "a closed, settled, old group is skipped again");
}

#[tokio::test]
async fn after_a_repeating_cursor_the_next_run_starts_the_walk_afresh_instead_of_resuming_into_it()
{
    let sandbox = Sandbox::start(SandboxConfig {
        faults: Faults {
            repeat_cursor: true,
            ..Faults::default()
        },
        ..paypro_only(7, 300)
    })
    .await
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    let sync = || async {
        let mut syncer = Syncer::new(store.clone(), SyncOptions::default());
        syncer.add_source(paypro(&sandbox));
        syncer.run().await.remove(0)
    };
    let err = sync().await.unwrap_err();
    assert!(matches!(err, SyncError::RepeatingCursor { .. }), "{err}");
    assert!(!store.payments().is_empty(), "what was read is kept");
    assert!(
        !store.checkpoint("paypro").unwrap().in_progress(),
        "no resume point inside the loop"
    );
    sandbox.set_faults(Faults::default());
    let summary = sync().await.unwrap();
    assert!(!summary.resumed);
    assert_eq!(store.payments(), data_set(&sandbox));
}

/// Two pages; the cursor of the second is refused once (it expired while the run was going).
struct ExpiringCursor {
    refused: std::sync::atomic::AtomicBool,
}

#[payments_model::async_trait]
impl payments_model::PaymentSource for ExpiringCursor {
    fn name(&self) -> &str {
        "expiring"
    }

    fn order(&self) -> payments_model::ListingOrder {
        payments_model::ListingOrder::NewestFirst
    }

    async fn page(
        &self,
        cursor: Option<&payments_model::Cursor>,
    ) -> Result<payments_model::Page, payments_model::SourceError> {
        let Some(_) = cursor else {
            return Ok(payments_model::Page {
                next: Some(payments_model::Cursor {
                    listing: Some("/page-2".into()),
                    ..payments_model::Cursor::default()
                }),
                ..payments_model::Page::default()
            });
        };
        if !self.refused.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(payments_model::SourceError::Invalid {
                provider: "Example",
                status: 422,
                message: "Invalid cursor".into(),
            });
        }
        Ok(payments_model::Page::default())
    }
}

#[tokio::test]
async fn a_cursor_refused_in_the_middle_of_a_fresh_walk_restarts_it_from_the_first_page() {
    let store = Arc::new(MemoryStore::new());
    let mut syncer = Syncer::new(store.clone(), SyncOptions::default());
    syncer.add_source(Arc::new(ExpiringCursor {
        refused: false.into(),
    }));
    let summary = syncer.run().await.remove(0).unwrap();
    assert!(!summary.resumed);
    assert_eq!(
        (summary.pages, summary.requests),
        (3, 4),
        "page 1, the refusal, page 1 again, page 2"
    );
}

#[tokio::test]
async fn payments_quarantined_inside_closed_links_are_read_again_until_they_map() {
    // Before, a closed link whose only paid or pending payment was quarantined looked settled,
    // so no incremental run (not even a deep sweep) read it again: only `--full` healed it.
    let sandbox = Sandbox::start(SandboxConfig {
        seed: 3,
        mkp_links: 20,
        paypro_payments: 0,
        anchor: chrono::Utc::now(),
        mkp_rate_limit: None,
        content_faults: payments_sandbox::ContentFaults {
            mkp_invalid_utf8_every: Some(2),
            ..payments_sandbox::ContentFaults::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    payments_testkit::close_and_settle_all_links_but(&sandbox, 0);
    let store = Arc::new(MemoryStore::new());
    let sync = || async {
        let mut syncer = Syncer::new(store.clone(), only_what_can_have_changed());
        syncer.add_source(payments_testkit::mkp(&sandbox));
        syncer.run().await.remove(0).unwrap()
    };
    assert_eq!(sync().await.run, Some(RunKind::Full));
    assert!(!store.rejected().is_empty());

    sandbox.set_content_faults(payments_sandbox::ContentFaults::default());
    let healed = sync().await;
    assert_eq!(healed.run, Some(RunKind::Incremental));
    assert!(store.rejected().is_empty(), "{:?}", store.rejected());
    assert_eq!(store.payments(), data_set(&sandbox));
    let before = sandbox.requests().len();
    sync().await;
    assert_eq!(
        sandbox.requests().len() - before,
        2,
        "then the closed, settled links are skipped again (20 links: two listing pages)"
    );
}

/// One page that lists a payment twice (and another payment twice, unchanged).
struct ListsTwice;

fn listed(id: &str, amount: &str) -> payments_model::Payment {
    use payments_model::{Currency, Money, PaymentStatus, Source, parse_timestamp};
    payments_model::Payment {
        id: Source::PayPro.payment_id(id),
        source: Source::PayPro,
        source_id: id.to_owned(),
        status: PaymentStatus::Paid,
        provider_status: "paid".to_owned(),
        amount: Money::parse(amount, Currency::EUR).unwrap(),
        refunded_amount: None,
        created_at: parse_timestamp("2026-10-01T10:00:00Z").unwrap(),
        paid_at: None,
        payer_name: None,
        description: None,
        method: None,
        processor: "paypro".to_owned(),
        processor_reference: None,
        payment_link_id: None,
        customer_id: None,
        fail_reason: None,
        charged_back_amount: None,
    }
}

#[payments_model::async_trait]
impl payments_model::PaymentSource for ListsTwice {
    fn name(&self) -> &str {
        "twice"
    }

    fn order(&self) -> payments_model::ListingOrder {
        payments_model::ListingOrder::NewestFirst
    }

    async fn page(
        &self,
        _: Option<&payments_model::Cursor>,
    ) -> Result<payments_model::Page, payments_model::SourceError> {
        Ok(payments_model::Page {
            payments: vec![
                listed("PP1", "2.00"),
                listed("PP2", "5.00"),
                listed("PP1", "3.00"),
                listed("PP2", "5.00"),
            ],
            ..payments_model::Page::default()
        })
    }
}

#[tokio::test]
async fn a_payment_listed_twice_on_a_page_is_kept_once_in_its_last_copy() {
    let store = Arc::new(MemoryStore::new());
    let mut syncer = Syncer::new(store.clone(), SyncOptions::default());
    syncer.add_source(Arc::new(ListsTwice));
    let summary = syncer.run().await.remove(0).unwrap();
    assert_eq!(
        (
            summary.counts.new,
            summary.counts.changed,
            summary.counts.unchanged
        ),
        (2, 0, 0)
    );
    let amounts: Vec<String> = store
        .payments()
        .iter()
        .map(|p| format!("{} {}", p.source_id, p.amount.amount_string()))
        .collect();
    assert_eq!(amounts, ["PP1 3.00", "PP2 5.00"]);
    assert_eq!(
        store.versions("paypro:PP1").len(),
        1,
        "no version that changes nothing"
    );
}

/// A newest-first source with a change feed whose second read names a payment that cannot be
/// read by id.
struct UnreadableInFeed {
    feed_reads: std::sync::atomic::AtomicUsize,
}

#[payments_model::async_trait]
impl payments_model::PaymentSource for UnreadableInFeed {
    fn name(&self) -> &str {
        "unreadable"
    }

    fn order(&self) -> payments_model::ListingOrder {
        payments_model::ListingOrder::NewestFirst
    }

    async fn page(
        &self,
        _: Option<&payments_model::Cursor>,
    ) -> Result<payments_model::Page, payments_model::SourceError> {
        Ok(payments_model::Page {
            payments: vec![listed("PP1", "1.00")],
            ..payments_model::Page::default()
        })
    }

    fn has_change_feed(&self) -> bool {
        true
    }

    async fn changes(
        &self,
        _: Option<&payments_model::Cursor>,
    ) -> Result<payments_model::ChangePage, payments_model::SourceError> {
        use payments_model::{Change, ChangeKind, parse_timestamp};
        let read = self
            .feed_reads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut changes = vec![Change {
            id: "EV1".into(),
            at: parse_timestamp("2026-11-01T10:00:00Z").unwrap(),
            record: None,
            kind: ChangeKind::Other {
                kind: "payout.paid".into(),
            },
        }];
        if read > 0 {
            changes.insert(
                0,
                Change {
                    id: "EV2".into(),
                    at: parse_timestamp("2026-11-02T10:00:00Z").unwrap(),
                    record: None,
                    kind: ChangeKind::Touched {
                        source_id: "PP/../x".into(),
                    },
                },
            );
        }
        Ok(payments_model::ChangePage {
            changes,
            ..payments_model::ChangePage::default()
        })
    }

    async fn payment(
        &self,
        source_id: &str,
    ) -> Result<payments_model::OnePayment, payments_model::SourceError> {
        Err(payments_model::SourceError::Refused(format!(
            "`{source_id}` cannot go in a URL path"
        )))
    }
}

#[tokio::test]
async fn a_payment_the_feed_names_that_cannot_be_read_stops_neither_the_feed_nor_the_walk() {
    let store = Arc::new(MemoryStore::new());
    let source = Arc::new(UnreadableInFeed {
        feed_reads: 0.into(),
    });
    for run in 0..2 {
        let mut syncer = Syncer::new(store.clone(), SyncOptions::default());
        syncer.add_source(source.clone());
        let summary = syncer.run().await.remove(0).unwrap();
        assert!(summary.pages >= 1, "run {run}: the walk went on");
    }
    let checkpoint = store.checkpoint("unreadable").unwrap();
    assert_eq!(
        checkpoint.feed.map(|f| f.id).as_deref(),
        Some("EV2"),
        "the feed moves on"
    );
    // Retrying cannot read it: it is quarantined with the reason (named, `status` exits 3), not
    // asked for on every run.
    assert!(checkpoint.to_read.is_empty(), "{:?}", checkpoint.to_read);
    let rejected = store.rejected();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].source_id.as_deref(), Some("PP/../x"));
    assert!(
        rejected[0].reason.contains("cannot go in a URL path"),
        "{}",
        rejected[0].reason
    );
}

/// A source whose first change is stamped a century ahead; on the second read a refund names
/// PP1, whose amount the provider corrected.
struct StampedAhead {
    feed_reads: std::sync::atomic::AtomicUsize,
}

#[payments_model::async_trait]
impl payments_model::PaymentSource for StampedAhead {
    fn name(&self) -> &str {
        "ahead"
    }

    fn order(&self) -> payments_model::ListingOrder {
        payments_model::ListingOrder::NewestFirst
    }

    async fn page(
        &self,
        cursor: Option<&payments_model::Cursor>,
    ) -> Result<payments_model::Page, payments_model::SourceError> {
        // Two old pages: an incremental walk stops after the first, so only the feed can bring
        // the change to PP1, on the second.
        let mut old = match cursor {
            None => listed("PP0", "5.00"),
            Some(_) => listed("PP1", "1.00"),
        };
        old.created_at = payments_model::parse_timestamp("2025-01-01T10:00:00Z").unwrap();
        Ok(payments_model::Page {
            payments: vec![old],
            next: cursor.is_none().then(|| payments_model::Cursor {
                listing: Some("/page-2".into()),
                ..payments_model::Cursor::default()
            }),
            ..payments_model::Page::default()
        })
    }

    fn has_change_feed(&self) -> bool {
        true
    }

    async fn changes(
        &self,
        _: Option<&payments_model::Cursor>,
    ) -> Result<payments_model::ChangePage, payments_model::SourceError> {
        use payments_model::{Change, ChangeKind, parse_timestamp};
        let read = self
            .feed_reads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut changes = vec![Change {
            id: "EV1".into(),
            at: parse_timestamp("2126-01-01T00:00:00Z").unwrap(),
            record: None,
            kind: ChangeKind::Other {
                kind: "payout.paid".into(),
            },
        }];
        if read > 0 {
            changes.insert(
                0,
                Change {
                    id: "EV2".into(),
                    at: chrono::Utc::now().fixed_offset(),
                    record: None,
                    kind: ChangeKind::Touched {
                        source_id: "PP1".into(),
                    },
                },
            );
        }
        Ok(payments_model::ChangePage {
            changes,
            ..payments_model::ChangePage::default()
        })
    }

    async fn payment(
        &self,
        _: &str,
    ) -> Result<payments_model::OnePayment, payments_model::SourceError> {
        let mut corrected = listed("PP1", "9.00");
        corrected.created_at = payments_model::parse_timestamp("2025-01-01T10:00:00Z").unwrap();
        Ok(payments_model::OnePayment {
            payment: Some(Ok(corrected)),
            ..payments_model::OnePayment::default()
        })
    }
}

#[tokio::test]
async fn a_change_stamped_a_century_ahead_does_not_hide_the_changes_after_it() {
    let store = Arc::new(MemoryStore::new());
    let source = Arc::new(StampedAhead {
        feed_reads: 0.into(),
    });
    for _ in 0..2 {
        let mut syncer = Syncer::new(store.clone(), only_what_can_have_changed());
        syncer.add_source(source.clone());
        syncer.run().await.remove(0).unwrap();
    }
    let amounts: Vec<String> = store
        .payments()
        .iter()
        .map(|p| format!("{} {}", p.source_id, p.amount.amount_string()))
        .collect();
    assert_eq!(
        amounts,
        ["PP0 5.00", "PP1 9.00"],
        "the refund after it was applied"
    );
    let position = store.checkpoint("ahead").unwrap().feed.unwrap();
    assert_eq!(position.id, "EV2");
}
