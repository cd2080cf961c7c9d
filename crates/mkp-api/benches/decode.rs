//! Target 1: decoding and mapping a page must be at least 0.8× as fast as decoding the same
//! bytes into the wire structs alone. Compare `wire_only` with `decode_and_map`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mkp_api::{PaymentLinkPayment, SimplePage, decode_payments_page};
use payments_model::Group;
use std::hint::black_box;

/// A full MKP page (15 payments) in the wire format, from the curated fixture's records.
fn page_of_15() -> String {
    let fixture = include_str!("../../../fixtures/mkp/payments-plk_open0001-page-1.json");
    let page: SimplePage<serde_json::Value> =
        serde_json::from_str(fixture).expect("the fixture parses");
    let data: Vec<serde_json::Value> = (0..15)
        .map(|i| {
            let mut record = page.data[i % page.data.len()].clone();
            record["id"] = format!("plp_bench{i:05}").into();
            record
        })
        .collect();
    serde_json::json!({
        "current_page": 1, "data": data, "first_page_url": "https://api.mijnklantportaal.nl/v1/payment-links/plk_open0001/payments?page=1",
        "from": 1, "next_page_url": null, "path": "https://api.mijnklantportaal.nl/v1/payment-links/plk_open0001/payments",
        "per_page": 15, "prev_page_url": null, "to": 15,
    })
    .to_string()
}

fn bench(c: &mut Criterion) {
    let body = page_of_15();
    let link = Group {
        id: "plk_open0001".into(),
        status: "open".into(),
        open: true,
        description: Some("Lidmaatschap 2024".into()),
        created_at: None,
    };
    let mut group = c.benchmark_group("mkp_page_of_15");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("wire_only", |b| {
        b.iter(|| {
            serde_json::from_slice::<SimplePage<PaymentLinkPayment>>(black_box(body.as_bytes()))
                .expect("decodes")
        })
    });
    group.bench_function("decode_and_map", |b| {
        b.iter(|| decode_payments_page(black_box(body.as_bytes()), Some(&link)).expect("decodes"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
