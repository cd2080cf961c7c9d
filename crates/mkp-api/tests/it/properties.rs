//! Invariants of the MKP mapping over arbitrary input.

use mkp_api::PaymentLinkPayment;
use payments_model::{Currency, Money, PaymentStatus};
use proptest::prelude::*;

fn payment(status: &str, amount: &str, created_at: &str) -> PaymentLinkPayment {
    PaymentLinkPayment {
        id: "plp_prop".into(),
        payment_link_id: Some("plk_prop".into()),
        currency: "EUR".into(),
        amount: amount.into(),
        status: status.into(),
        payers_name: None,
        integration: Some("mollie".into()),
        integration_id: None,
        created_at: created_at.into(),
    }
}

proptest! {
    /// Any amount text (spaces around it allowed) either maps to the exact same value or is
    /// refused naming `amount`.
    #[test]
    fn amounts_are_exact_or_refused(amount in prop_oneof!["-?[0-9]{1,12}(\\.[0-9]{1,4})?", " ?[0-9]{1,6}\\.[0-9]{2} ?", ".*"]) {
        match payment("paid", &amount, "2024-04-29T21:00:00+02:00").to_payment(None) {
            Ok(p) => {
                let parsed = Money::parse(amount.trim(), Currency::EUR).unwrap();
                prop_assert_eq!(p.amount, parsed);
                prop_assert!(!p.amount.is_negative());
            }
            Err(err) => {
                prop_assert_eq!(&err.record, "plp_prop");
                prop_assert_eq!(&err.field, "amount");
            }
        }
    }

    /// Any status word maps; an unknown one keeps the raw word.
    #[test]
    fn every_status_maps(status in ".*") {
        let p = payment(&status, "12.95", "2024-04-29T21:00:00+02:00").to_payment(None).unwrap();
        prop_assert_eq!(&p.provider_status, &status);
        if let PaymentStatus::Unknown(raw) = &p.status { prop_assert_eq!(raw, &status); }
    }

    /// Offsets are kept as the provider wrote them.
    #[test]
    fn offsets_are_kept(hours in -12i32..=14, minutes in prop_oneof![Just(0), Just(30), Just(45)]) {
        let sign = if hours < 0 { '-' } else { '+' };
        let text = format!("2024-04-29T21:00:00{sign}{:02}:{minutes:02}", hours.abs());
        let p = payment("paid", "1.00", &text).to_payment(None).unwrap();
        let seconds = (hours.abs() * 3600 + minutes * 60) * if sign == '-' { -1 } else { 1 };
        prop_assert_eq!(p.created_at.offset().local_minus_utc(), seconds, "{}", text);
    }
}
