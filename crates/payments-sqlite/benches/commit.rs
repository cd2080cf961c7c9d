//! Target 6: the SQLite store commits at least 100,000 payments/s in page-sized transactions
//! (100 payments per commit, each a new row, with the checkpoint), the engine's lookup of the
//! stored versions included.

use std::sync::Arc;

use chrono::Utc;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use payments_model::{Currency, Money, Payment, PaymentStatus, Source, parse_timestamp};
use payments_sqlite::SqliteStore;
use payments_sync::{Checkpoint, Commit, RunKind, Store};

fn payment(i: u64) -> Payment {
    Payment {
        id: Source::PayPro.payment_id(&format!("PP{i:016}")),
        source: Source::PayPro,
        source_id: format!("PP{i:016}"),
        status: PaymentStatus::Paid,
        provider_status: "paid".into(),
        amount: Money::from_minor(1000 + i as i64 % 5000, Currency::EUR),
        refunded_amount: Some(Money::zero(Currency::EUR)),
        created_at: parse_timestamp("2024-06-30T12:40:10Z").expect("a timestamp"),
        paid_at: Some(parse_timestamp("2024-06-30T12:44:35Z").expect("a timestamp")),
        payer_name: None,
        description: Some(format!("Order #{i}")),
        method: Some("ideal".into()),
        processor: "paypro".into(),
        processor_reference: None,
        payment_link_id: None,
        customer_id: Some("CU7JRN6W6K3DA9".into()),
        fail_reason: None,
        charged_back_amount: None,
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(SqliteStore::open(dir.path().join("bench.db")).expect("a database"));
    let checkpoint = Checkpoint {
        lookback_secs: 86_400,
        ..Checkpoint::started(RunKind::Full, Utc::now())
    };
    let mut next = 0u64;
    let mut group = c.benchmark_group("sqlite_commit");
    group.throughput(Throughput::Elements(100));
    group.bench_function("page_of_100_new_payments", |b| {
        b.iter_batched(
            || {
                let page: Vec<Payment> = (next..next + 100).map(payment).collect();
                next += 100;
                page
            },
            |page| {
                runtime.block_on(async {
                    // As the engine does: ask what is stored, then commit the new payments.
                    let ids = page.iter().map(|p| p.id.clone()).collect();
                    let stored = store.stored(ids).await.expect("a lookup");
                    assert!(stored.is_empty());
                    store
                        .commit(Commit {
                            source: "paypro".into(),
                            observed_at: Utc::now(),
                            payments: page,
                            rejected: Vec::new(),
                            resolved: Vec::new(),
                            groups: Vec::new(),
                            unknown_words: Vec::new(),
                            checkpoint: Some(checkpoint.clone()),
                        })
                        .await
                })
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
