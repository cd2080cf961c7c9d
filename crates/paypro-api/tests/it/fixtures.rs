//! Every PayPro fixture page mapped to unified records, as reviewed snapshots.

use std::path::Path;

use payments_model::{BookKind, Money, MovementKind, Payment, Rejected, record_movements};
use paypro_api::{
    Chargeback, DecodedPage, EventPayload, List, Payout, decode_balances, decode_chargebacks_page,
    decode_events_page, decode_page, decode_payment, decode_payout, decode_payouts_page,
    decode_refunds_page, map_payments,
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
fn payout_pages_map_to_payouts() {
    snapshot_listing("payouts", decode_payouts_page);
}

/// A balance as snapshotted (the model's `Balance` is not serializable).
#[derive(Serialize)]
struct BalanceView {
    amount: Money,
    pending: Option<Money>,
}

fn decode_balance_views(body: &[u8]) -> Result<DecodedPage<BalanceView>, serde_json::Error> {
    let page = decode_balances(body)?;
    Ok(DecodedPage {
        links: page.links,
        items: page
            .items
            .into_iter()
            .map(|balance| BalanceView {
                amount: balance.amount,
                pending: balance.pending,
            })
            .collect(),
        rejected: page.rejected,
    })
}

#[test]
fn balance_pages_map_to_balances() {
    snapshot_listing("balances", decode_balance_views);
}

/// The payouts of the curated page, by id, and the reasons of those set aside, by id.
fn curated_payouts() -> (Vec<Payout>, Vec<Rejected>) {
    let page = decode_payouts_page(&fixture("payouts-page-1-last.json")).unwrap();
    (page.items, page.rejected)
}

#[test]
fn payout_fees_may_be_missing_null_strings_or_objects_and_a_foreign_fee_is_refused() {
    let (payouts, rejected) = curated_payouts();
    let payout = |id: &str| payouts.iter().find(|p| p.id == id).unwrap();
    let cents = |money: Option<Money>| money.map(|m| m.to_minor().unwrap());
    assert_eq!(cents(payout("POPAID0000000004").fee), Some(25));
    assert_eq!(cents(payout("POPAID0000000004").fee_vat), Some(5));
    assert_eq!(cents(payout("POAPPROVED000003").fee), Some(25), "a string");
    assert_eq!(payout("POAPPROVED000003").amount.amount_string(), "800.00");
    assert_eq!(payout("POAPPROVED000003").paid_at, None, "an empty string");
    assert_eq!(payout("PONOFEE000000002").fee, None, "missing");
    assert_eq!(payout("PONULLFEE0000001").fee, None, "null");
    assert_eq!(payout("PONULLFEE0000001").fee_vat, None, "null");
    assert_eq!(payout("PONULLFEE0000001").bank_account, None);
    assert_eq!(
        cents(payout("POFEEOBJECT00001").fee_vat),
        Some(11),
        "an object"
    );
    assert_eq!(
        payout("POFEEOBJECT00001")
            .bank_account
            .as_ref()
            .and_then(|b| b.iban.as_deref()),
        Some("NL91ABNA0417164300"),
        "only an IBAN"
    );
    assert_eq!(
        payout("POAPPROVED000003")
            .bank_account
            .as_ref()
            .map(|b| (b.iban.is_some(), b.name.is_some())),
        Some((true, false))
    );
    assert_eq!(cents(payout("POFAILED00000001").fee), Some(0));
    assert_eq!(payout("POREJECTED000001").state, "rejected");
    // The provider's offset is kept.
    let paid = payout("POPAID0000000004").paid_at.unwrap();
    assert_eq!(paid.offset().local_minus_utc(), 7200);
    let reason = |id: &str| -> &str {
        &rejected
            .iter()
            .find(|r| r.source_id.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("{id} was not set aside"))
            .reason
    };
    assert_eq!(
        reason("PONEGATIVEFEE001"),
        "record `PONEGATIVEFEE001`: field `fee_amount`: -25 is negative"
    );
    assert!(
        reason("POUSDFEE00000001").starts_with(
            "record `POUSDFEE00000001`: field `fee_amount.currency`: the fee is in USD, the payout in EUR"
        ),
        "{}",
        reason("POUSDFEE00000001")
    );
    assert!(
        reason("POFEECURRENCY001")
            .starts_with("record `POFEECURRENCY001`: field `fee_currency`: the fee is in GBP"),
        "{}",
        reason("POFEECURRENCY001")
    );
    assert!(
        reason("POFRACTION000001").starts_with("record `POFRACTION000001`: field `fee_amount`: ")
    );
    assert!(reason("PODECIMAL0000001").starts_with("record `PODECIMAL0000001`: field `amount`: "));
    assert_eq!(
        reason("PONOCREATED00001"),
        "record `PONOCREATED00001`: field `created_at`: is null"
    );
    assert!(reason("POLOCALTIME00001").starts_with("record `POLOCALTIME00001`: field `paid_at`: "));
    assert_eq!(payouts.len(), 7);
    assert_eq!(rejected.len(), 7);
}

#[test]
fn one_payout_maps_as_it_would_in_a_list() {
    let (payouts, _) = curated_payouts();
    let one = decode_payout(&fixture("payout-POPAID0000000004.json"))
        .unwrap()
        .unwrap();
    assert_eq!(payouts[0], one);
    let rejected = decode_payout(
        br#"{"id":"POX","type":"payout","amount":1,"currency":"EUR","state":"paid"}"#,
    )
    .unwrap()
    .unwrap_err();
    assert_eq!(rejected.reason, "record `POX`: field `created_at`: is null");
}

#[test]
fn refunds_chargebacks_and_payouts_become_book_records_with_unified_ids() {
    let refunds = decode_refunds_page(&fixture("refunds-page-1-last.json")).unwrap();
    let refund = refunds.items[0].clone().into_record();
    assert_eq!(refund.kind, BookKind::Refund);
    assert_eq!(refund.id, "paypro:PRDONE0000000003");
    assert_eq!(refund.source_id, "PRDONE0000000003");
    assert_eq!(
        refund.payment_id.as_deref(),
        Some("paypro:PPPAID0000000003")
    );
    assert_eq!(refund.settled_at, refunds.items[0].refunded_at);
    assert_eq!(refund.reason.as_deref(), Some("Customer request"));
    assert_eq!(
        (refund.fee, refund.fee_vat, refund.bank_account),
        (None, None, None)
    );

    let chargebacks = decode_chargebacks_page(&fixture("chargebacks-page-1-last.json")).unwrap();
    let source = chargebacks.items[0].clone();
    let chargeback = source.clone().into_record();
    assert_eq!(chargeback.kind, BookKind::Chargeback);
    assert_eq!(chargeback.id, format!("paypro:{}", source.id));
    assert_eq!(chargeback.payment_id, Some(source.unified_payment_id()));
    assert_eq!(chargeback.settled_at, source.charged_back_at);
    assert_eq!(chargeback.reason, source.reason);
    assert_eq!(chargeback.amount, source.amount);

    let (payouts, _) = curated_payouts();
    let payout = payouts[0].clone().into_record();
    assert_eq!(payout.kind, BookKind::Payout);
    assert_eq!(payout.id, "paypro:POPAID0000000004");
    assert_eq!(payout.payment_id, None);
    assert_eq!(payout.settled_at, payouts[0].paid_at);
    assert_eq!(payout.fee, payouts[0].fee);
    assert_eq!(payout.fee_vat, payouts[0].fee_vat);
    assert_eq!(
        payout.bank_account.as_ref().and_then(|b| b.name.as_deref()),
        Some("Voorbeeld Webwinkel B.V.")
    );
    // Its movements, by the model's rules: the transfer, the fee and its VAT.
    let moves = record_movements(&payout, None);
    assert_eq!(
        moves.iter().map(|m| m.kind).collect::<Vec<_>>(),
        [
            MovementKind::Payout,
            MovementKind::PayoutFee,
            MovementKind::PayoutFeeVat
        ]
    );
    assert_eq!(
        moves
            .iter()
            .map(|m| m.amount.to_minor().unwrap())
            .sum::<i64>(),
        -(124_950 + 25 + 5)
    );
    assert_eq!(
        moves[0].counterparty_iban.as_deref(),
        Some("NL91ABNA0417164300")
    );
    let rejected = payouts
        .iter()
        .find(|p| p.state == "rejected")
        .unwrap()
        .clone()
        .into_record();
    assert!(rejected.is_undone());
    assert_eq!(
        record_movements(&rejected, None)
            .iter()
            .map(|m| m.amount.to_minor().unwrap())
            .sum::<i64>(),
        0,
        "a rejected payout gives back what it took"
    );
}

#[test]
fn a_payout_payload_maps_as_a_payout_and_one_that_cannot_stays_other() {
    let body = br#"{"type":"list","count":2,"_links":{},"data":[
        {"id":"EV2","type":"event","event_type":"payout.paid","created_at":"2024-07-09T08:15:00Z",
         "payload":{"id":"PO1","type":"payout","amount":1000,"fee_amount":25,"fee_vat_amount":5,
                    "currency":"EUR","state":"paid","created_at":"2024-07-08T02:00:00Z",
                    "paid_at":"2024-07-09T08:15:00Z"}},
        {"id":"EV1","type":"event","event_type":"payout.created","created_at":"2024-07-08T02:00:00Z",
         "payload":{"id":"PO1","type":"payout","amount":"10.00","currency":"EUR","state":"created"}}
    ]}"#;
    let page = decode_events_page(body).unwrap();
    assert!(page.rejected.is_empty(), "{:?}", page.rejected);
    let EventPayload::Payout(payout) = &page.items[0].payload else {
        panic!("{:?}", page.items[0]);
    };
    assert_eq!(payout.id, "PO1");
    assert_eq!(payout.fee.unwrap().to_minor(), Some(25));
    assert!(payout.paid_at.is_some());
    assert_eq!(
        page.items[1].payload,
        EventPayload::Other {
            payload_type: Some("payout".to_owned()),
            payload_id: Some("PO1".to_owned())
        }
    );
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
                EventPayload::Payout(_) => "payout",
                EventPayload::Other { .. } => "other",
            })
            .collect()
    };
    for event_type in ["payment.created", "payment.started", "payment.paid"] {
        assert_eq!(kind(event_type), ["payment"], "{event_type}");
    }
    assert_eq!(kind("chargeback.created"), ["chargeback", "chargeback"]);
    assert_eq!(kind("refund.created"), ["refund"]);
    // These payouts' amounts are decimal strings (`"125.50"`), not cents: they cannot be mapped
    // as payouts, and the feed keeps them as other rather than setting their events aside.
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
