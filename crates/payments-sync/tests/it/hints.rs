//! Hints racing runs: one ordering stamp (when a response's request left) decides which of two
//! reads of a payment is kept, whichever commits last.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use payments_model::{
    ChangePage, Cursor, Hint, ListingOrder, OneGroup, OnePayment, Page, PaymentSource,
    PaymentStatus, RateLimit, SourceError,
};
use payments_sandbox::{Sandbox, SandboxConfig};
use payments_sync::{Ledger, MemoryStore, Store, SyncOptions, Syncer};

/// A source whose listing pages arrive `delay` after the provider answered them: a page that
/// shows the provider's state when its request left, committed long after.
struct SlowPages {
    inner: Arc<dyn PaymentSource>,
    delay: Duration,
}

#[async_trait]
impl PaymentSource for SlowPages {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn order(&self) -> ListingOrder {
        self.inner.order()
    }
    fn rate_limit(&self) -> Option<RateLimit> {
        self.inner.rate_limit()
    }
    async fn page(&self, cursor: Option<&Cursor>) -> Result<Page, SourceError> {
        let page = self.inner.page(cursor).await;
        tokio::time::sleep(self.delay).await;
        page
    }
    fn has_change_feed(&self) -> bool {
        self.inner.has_change_feed()
    }
    async fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangePage, SourceError> {
        self.inner.changes(cursor).await
    }
    async fn chargebacks(&self, cursor: Option<&Cursor>) -> Result<ChangePage, SourceError> {
        self.inner.chargebacks(cursor).await
    }
    async fn payment(&self, source_id: &str) -> Result<OnePayment, SourceError> {
        self.inner.payment(source_id).await
    }
    async fn group(&self, group_id: &str) -> Result<OneGroup, SourceError> {
        self.inner.group(group_id).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_fetched_before_a_hint_s_read_and_committed_after_it_does_not_overwrite_it() {
    let sandbox = Sandbox::start(SandboxConfig {
        paypro_payments: 20,
        mkp_links: 1,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let id = sandbox
        .paypro_payments()
        .into_iter()
        .find(|p| p.state == "open" || p.state == "pending" || p.state == "created")
        .map(|p| p.id)
        .expect("an unpaid payment");
    let store = Arc::new(MemoryStore::new());
    let slow = Arc::new(SlowPages {
        inner: payments_testkit::paypro(&sandbox),
        delay: Duration::from_millis(800),
    });
    let mut syncer = Syncer::new(store.clone(), SyncOptions::default());
    syncer.add_source(slow);
    let syncer = Arc::new(syncer);

    // The run's first page is answered with the payment unpaid, and held back.
    let run = tokio::spawn({
        let syncer = syncer.clone();
        async move { syncer.run_source("paypro").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Meanwhile the payment is paid, its webhook read and committed.
    sandbox.pay_paypro_payment(&id).unwrap();
    let read = syncer
        .read_hints("paypro", &[Hint::Payment { id: id.clone() }])
        .await
        .unwrap()
        .unwrap();
    assert_eq!((read.read, read.counts.new), (1, 1));
    let key = format!("paypro:{id}");
    assert_eq!(status(&store, &key).await, PaymentStatus::Paid);

    // The page commits after the read: its older state must not replace the newer one.
    run.await.unwrap().unwrap().unwrap();
    assert_eq!(
        status(&store, &key).await,
        PaymentStatus::Paid,
        "the page fetched before the read overwrote it"
    );
    let versions = Ledger::versions(store.as_ref(), &key).await.unwrap();
    assert_eq!(
        versions.len(),
        1,
        "no older version was kept after the newer: {versions:?}"
    );
}

async fn status(store: &MemoryStore, key: &str) -> PaymentStatus {
    store.stored(vec![key.to_owned()]).await.unwrap()[key]
        .status
        .clone()
}
