//! Invariants of the PayPro mapping over arbitrary input.

use payments_model::{Money, PaymentStatus};
use paypro_api::{PayProPayment, map_payments};
use proptest::prelude::*;
use serde_json::value::RawValue;

fn payment(state: &str, amount: i64, refunded: Option<i64>) -> PayProPayment {
    serde_json::from_value(serde_json::json!({
        "id": "PPPROP", "amount": amount, "currency": "EUR", "state": state,
        "refunded_amount": refunded, "created_at": "2024-06-30T12:40:10Z",
    }))
    .unwrap()
}

proptest! {
    /// A mapped payment never shows more refunded than paid: such a record is flagged instead.
    #[test]
    fn refunds_never_exceed_the_amount_unflagged(
        state in prop_oneof![Just("paid".to_owned()), Just("completed".to_owned()), Just("refunded".to_owned()), ".*"],
        amount in -10i64..1_000_000_000,
        refunded in proptest::option::of(-10i64..2_000_000_000),
    ) {
        match payment(&state, amount, refunded).to_payment() {
            Ok(p) => {
                prop_assert!(!p.amount.is_negative());
                if let Some(r) = p.refunded_amount {
                    prop_assert!(!r.is_negative());
                    prop_assert!(r <= p.amount, "refunded {r} exceeds amount {}", p.amount);
                    if r == p.amount && !r.is_zero() && matches!(state.as_str(), "paid" | "completed") {
                        prop_assert_eq!(p.status, PaymentStatus::Refunded);
                    }
                }
            }
            Err(err) => {
                prop_assert_eq!(&err.record, "PPPROP");
                prop_assert!(err.field == "amount" || err.field == "refunded_amount", "{}", err);
                prop_assert!(amount < 0 || refunded.is_some_and(|r| r < 0 || r > amount));
            }
        }
    }

    /// Any state word maps; an unknown one keeps the raw word.
    #[test]
    fn every_state_maps(state in ".*", amount in 0i64..i64::MAX) {
        let p = payment(&state, amount, None).to_payment().unwrap();
        prop_assert_eq!(&p.provider_status, &state);
        prop_assert_eq!(Some(p.amount), Some(Money::from_minor(amount, p.currency())));
        if let PaymentStatus::Unknown(raw) = &p.status { prop_assert_eq!(raw, &state); }
    }

    /// Arbitrary JSON values in any field never panic, and nothing is lost: each record is
    /// either a payment or set aside whole.
    #[test]
    fn arbitrary_records_never_panic(field in prop_oneof![Just("amount"), Just("refunded_amount"), Just("created_at"), Just("paid_at"), Just("currency"), Just("pay_method"), Just("state"), Just("id")],
                                     value in prop_oneof![Just(serde_json::Value::Null), any::<i64>().prop_map(Into::into), any::<f64>().prop_map(|f| serde_json::json!(f)), ".*".prop_map(Into::into), Just(serde_json::json!({})), Just(serde_json::json!([1]))]) {
        let mut record = serde_json::json!({
            "id": "PPPROP", "amount": 1000, "currency": "EUR", "state": "paid",
            "refunded_amount": 0, "created_at": "2024-06-30T12:40:10Z", "pay_method": {"id": "ideal"},
        });
        record[field] = value;
        let raw = RawValue::from_string(record.to_string()).unwrap();
        let mapped = map_payments(&[raw]);
        prop_assert_eq!(mapped.payments.len() + mapped.rejected.len(), 1);
        for r in &mapped.rejected {
            prop_assert_eq!(&r.raw, &record.to_string());
        }
    }
}
