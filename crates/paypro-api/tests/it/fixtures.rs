//! Every PayPro fixture page mapped to unified records, as reviewed snapshots.

use std::path::Path;

use payments_model::Payment;
use paypro_api::{List, decode_page, map_payments};
use serde::Serialize;

fn read_page(path: &Path) -> List {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn payment_pages_map_to_unified_payments() {
    #[derive(Serialize)]
    struct Reason<'a> {
        source_id: Option<&'a str>,
        reason: &'a str,
    }
    #[derive(Serialize)]
    struct Snapshot<'a> {
        next: Option<&'a str>,
        count: Option<u64>,
        payments: &'a [Payment],
        rejected: Vec<Reason<'a>>,
    }
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
        // One glob per folder: `{,generated/}…` matched only the generated pages, so the
        // curated ones (every bad record) went unchecked.
        for fixtures in ["../../../../fixtures/paypro", "../../../../fixtures/paypro/generated"] {
            insta::glob!(fixtures, "payments-*.json", |path| {
                let page = read_page(path);
                let mapped = map_payments(&page.data);
                let (links, fast) = decode_page(&std::fs::read(path).unwrap()).unwrap();
                assert_eq!(fast, mapped, "the one-pass decode must equal the record-by-record one");
                assert_eq!(links, page.links);
                assert_eq!(
                    mapped.payments.len() + mapped.rejected.len(),
                    page.data.len(),
                    "a record went missing"
                );
                for r in &mapped.rejected {
                    assert!(
                        page.data.iter().any(|raw| raw.get() == r.raw),
                        "the raw record of {:?} was not kept as sent",
                        r.source_id
                    );
                }
                insta::assert_json_snapshot!(Snapshot {
                    next: page.links.next.as_deref(),
                    count: page.count,
                    payments: &mapped.payments,
                    rejected: mapped
                        .rejected
                        .iter()
                        .map(|r| Reason { source_id: r.source_id.as_deref(), reason: &r.reason })
                        .collect(),
                });
            });
        }
    });
}
