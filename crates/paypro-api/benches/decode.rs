//! Target 1: decoding and mapping a page must be at least 0.8× as fast as decoding the same
//! bytes into the wire structs alone. Compare `wire_only` with `decode_and_map`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use paypro_api::{List, PayProPayment, decode_page};
use std::hint::black_box;

/// A page of 100 payments in PayPro's wire format, from the curated fixture's valid records.
fn page_of_100() -> String {
    let fixture = include_str!("../../../fixtures/paypro/payments-page-1.json");
    let list: List<serde_json::Value> = serde_json::from_str(fixture).expect("the fixture parses");
    let data: Vec<serde_json::Value> = (0..100)
        .map(|i| {
            let mut record = list.data[i % list.data.len()].clone();
            record["id"] = format!("PPBENCH{i:011}").into();
            record
        })
        .collect();
    serde_json::json!({ "type": "list", "data": data, "count": 100, "_links": {} }).to_string()
}

fn bench(c: &mut Criterion) {
    let body = page_of_100();
    let mut group = c.benchmark_group("paypro_page_of_100");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("wire_only", |b| {
        b.iter(|| {
            serde_json::from_slice::<List<PayProPayment>>(black_box(body.as_bytes()))
                .expect("decodes")
        })
    });
    group.bench_function("decode_and_map", |b| {
        b.iter(|| decode_page(black_box(body.as_bytes())).expect("decodes"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
