//! Every PayPro fixture page mapped to unified records, as reviewed snapshots.

use std::path::Path;

use payments_model::{Payment, Rejected};
use paypro_api::{
    Chargeback, DecodedPage, EventPayload, List, decode_chargebacks_page, decode_events_page,
    decode_page, decode_payment, decode_refunds_page, map_payments,
};
use serde::Serialize;
use serde_json::value::RawValue;

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

/// The reason a record was set aside, as snapshotted.
#[derive(Serialize)]
struct Reason {
    source_id: Option<String>,
    reason: String,
}

fn reasons(rejected: &[Rejected]) -> Vec<Reason> {
    rejected
        .iter()
        .map(|r| Reason {
            source_id: r.source_id.clone(),
            reason: r.reason.clone(),
        })
        .collect()
}

/// What a page of one of the other listings maps to, as snapshotted.
#[derive(Serialize)]
struct ListSnapshot<T> {
    next: Option<String>,
    count: Option<u64>,
    items: Vec<T>,
    rejected: Vec<Reason>,
}

/// Checks that every record of the page at `path` was mapped or set aside as sent, and gives
/// what `decode` made of it.
fn decoded_list<T: Serialize>(
    path: &Path,
    decode: fn(&[u8]) -> Result<DecodedPage<T>, serde_json::Error>,
) -> ListSnapshot<T> {
    let page = read_page(path);
    let decoded = decode(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(decoded.links, page.links);
    assert_eq!(
        decoded.items.len() + decoded.rejected.len(),
        page.data.len(),
        "a record went missing"
    );
    for r in &decoded.rejected {
        assert!(
            page.data.iter().any(|raw| raw.get() == r.raw),
            "the raw record of {:?} was not kept as sent",
            r.source_id
        );
    }
    ListSnapshot {
        next: page.links.next,
        count: page.count,
        items: decoded.items,
        rejected: reasons(&decoded.rejected),
    }
}

/// Snapshots each fixture named `{listing}-*.json` as `decode` maps it, named after the file.
fn snapshot_listing<T: Serialize>(
    listing: &str,
    decode: fn(&[u8]) -> Result<DecodedPage<T>, serde_json::Error>,
) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/paypro");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&format!("{listing}-")) && name.ends_with(".json"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no {listing} fixtures");
    for name in names {
        let snapshot = decoded_list(&dir.join(&name), decode);
        insta::with_settings!({
            snapshot_path => "../snapshots",
            prepend_module_to_snapshot => false,
            input_file => dir.join(&name),
        }, {
            insta::assert_json_snapshot!(format!("{listing}@{name}"), snapshot);
        });
    }
}

#[test]
fn event_pages_map_to_events() {
    snapshot_listing("events", decode_events_page);
}

#[test]
fn refund_pages_map_to_refunds() {
    snapshot_listing("refunds", decode_refunds_page);
}

#[test]
fn chargeback_pages_map_to_chargebacks() {
    snapshot_listing("chargebacks", decode_chargebacks_page);
}

#[test]
fn one_payment_maps_as_it_would_in_a_list() {
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
        insta::glob!("../../../../fixtures/paypro", "payment-*.json", |path| {
            let body = std::fs::read(path).unwrap();
            let raw: Box<RawValue> = serde_json::from_slice(&body).unwrap();
            let listed = map_payments(&[raw]);
            let one = decode_payment(&body).unwrap();
            match &one {
                Ok(payment) => assert_eq!(listed.payments, std::slice::from_ref(payment)),
                Err(rejected) => assert_eq!(listed.rejected, std::slice::from_ref(rejected)),
            }
            insta::assert_json_snapshot!(match &one {
                Ok(payment) => serde_json::json!({ "payment": payment }),
                Err(rejected) => serde_json::json!({ "rejected": reasons(std::slice::from_ref(rejected)) }),
            });
        });
    });
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/paypro")
            .join(name),
    )
    .unwrap()
}

#[test]
fn every_documented_event_type_is_read_and_unknown_ones_are_never_an_error() {
    let page = decode_events_page(&fixture("events-page-1.json")).unwrap();
    assert!(page.rejected.is_empty(), "{:?}", page.rejected);
    let kind = |event_type: &str| -> Vec<&'static str> {
        page.items
            .iter()
            .filter(|e| e.event_type == event_type)
            .map(|e| match &e.payload {
                EventPayload::Payment(_) => "payment",
                EventPayload::Refund(_) => "refund",
                EventPayload::Chargeback(_) => "chargeback",
                EventPayload::Other { .. } => "other",
            })
            .collect()
    };
    for event_type in ["payment.created", "payment.started", "payment.paid"] {
        assert_eq!(kind(event_type), ["payment"], "{event_type}");
    }
    assert_eq!(kind("chargeback.created"), ["chargeback", "chargeback"]);
    assert_eq!(kind("refund.created"), ["refund"]);
    for event_type in [
        "customer.created",
        "customer.updated",
        "payout.created",
        "payout.approved",
        "payout.rejected",
        "payout.failed",
        "payout.paid",
        "mandate.revoked",
    ] {
        assert_eq!(kind(event_type), ["other"], "{event_type}");
    }
    let chargebacks: Vec<&Chargeback> = page
        .items
        .iter()
        .filter_map(|e| match &e.payload {
            EventPayload::Chargeback(c) => Some(c),
            _ => None,
        })
        .collect();
    assert!(chargebacks[0].is_completed());
    assert_eq!(chargebacks[0].amount.amount_string(), "10.00");
    assert_eq!(
        chargebacks[0].unified_payment_id(),
        "paypro:PPPAID0000000002"
    );
    assert!(!chargebacks[1].is_completed());
    assert_eq!(chargebacks[1].amount.amount_string(), "4.00");
    assert_eq!(chargebacks[1].charged_back_at, None);
    // The provider's offset is kept.
    assert_eq!(page.items[0].created_at.offset().local_minus_utc(), 7200);
    assert_eq!(
        chargebacks[0]
            .charged_back_at
            .unwrap()
            .offset()
            .local_minus_utc(),
        7200
    );
}

#[test]
fn a_payload_that_cannot_be_mapped_sets_its_event_aside_naming_the_field() {
    let page = decode_events_page(&fixture("events-page-2-last.json")).unwrap();
    let reason = |id: &str| -> &str {
        &page
            .rejected
            .iter()
            .find(|r| r.source_id.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("{id} was not set aside"))
            .reason
    };
    assert!(
        reason("EV0000000000000005")
            .starts_with("record `EV0000000000000005`: field `payload.amount`: "),
        "{}",
        reason("EV0000000000000005")
    );
    assert!(
        reason("EV0000000000000004").starts_with(
            "record `EV0000000000000004`: field `payload.payment`: `PP1/../customers` holds `/`"
        ),
        "{}",
        reason("EV0000000000000004")
    );
    assert!(
        reason("EV0000000000000004").ends_with("(in the payload `PRPATH0000000004`)"),
        "{}",
        reason("EV0000000000000004")
    );
    assert!(
        reason("EV0000000000000003")
            .starts_with("record `EV0000000000000003`: field `payload.charged_back_at`: "),
    );
    assert_eq!(
        reason("EV0000000000000002"),
        "record `EV0000000000000002`: field `payload`: is missing or null"
    );
    assert_eq!(
        reason("EV0000000000000000"),
        "record `EV0000000000000000`: field `created_at`: is null"
    );
    assert_eq!(page.rejected.len(), 5);
    // A payment payload without its own `type` is read by the event type; an unknown event
    // type whose payload is not even an object is kept as other.
    let ids: Vec<&str> = page.items.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["EV0000000000000006", "EV0000000000000001"]);
    assert!(
        matches!(page.items[0].payload, EventPayload::Payment(ref p) if p.status.as_str() == "paid")
    );
    assert_eq!(
        page.items[1].payload,
        EventPayload::Other {
            payload_type: None,
            payload_id: None
        }
    );
}

#[test]
fn an_event_whose_bytes_are_not_utf8_is_set_aside_and_the_rest_of_the_page_kept() {
    // The second event's chargeback description ends in a Latin-1 `é` (0xE9), not UTF-8.
    let mut body = fixture("events-page-1.json");
    let description = b"\"description\": \"Test Payment\"";
    let second = body
        .windows(description.len())
        .enumerate()
        .filter(|(_, window)| window == description)
        .nth(1)
        .unwrap()
        .0;
    body.insert(second + description.len() - 1, 0xE9);
    let decoded = decode_events_page(&body).unwrap();
    assert_eq!(decoded.items.len(), 13);
    assert_eq!(decoded.rejected.len(), 1);
    let rejected = &decoded.rejected[0];
    assert_eq!(rejected.source_id.as_deref(), Some("EV0000000000000019"));
    assert!(
        rejected
            .reason
            .starts_with("record `EV0000000000000019`: field `payload.description`: byte 0xE9"),
        "{}",
        rejected.reason
    );
    assert!(rejected.raw.contains("Test Payment\\xE9"));
}
