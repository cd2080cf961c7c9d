//! DESIGN.md's status table, row by row, and the properties of the vocabulary.

use payments_model::{Currency, Money, PaymentStatus as S, mkp_status, paypro_status};
use proptest::prelude::*;

fn eur(cents: i64) -> Money {
    Money::from_minor(cents, Currency::EUR)
}

#[test]
fn mkp_table() {
    let rows = [
        ("pending", S::Pending),
        ("paid", S::Paid),
        ("failed", S::Failed),
        ("canceled", S::Canceled),
        ("chargebacked", S::ChargedBack),
        ("PAID", S::Paid),
        ("refunded", S::Unknown("refunded".into())),
        ("", S::Unknown(String::new())),
    ];
    for (word, expected) in rows {
        assert_eq!(mkp_status(word), expected, "MKP word {word:?}");
    }
}

#[test]
fn paypro_table_without_refunds() {
    let rows = [
        ("initialized", S::Open),
        ("open", S::Open),
        ("pending", S::Pending),
        ("processing", S::Pending),
        ("paid", S::Paid),
        ("completed", S::Paid),
        ("refunded", S::Refunded),
        ("chargeback", S::ChargedBack),
        ("chargebacked", S::ChargedBack),
        ("canceled", S::Canceled),
        ("cancelled", S::Canceled),
        ("expired", S::Expired),
        ("failed", S::Failed),
        ("Completed", S::Paid),
        ("settled", S::Unknown("settled".into())),
    ];
    for (word, expected) in rows {
        assert_eq!(
            paypro_status(word, &eur(1000), None),
            expected,
            "PayPro state {word:?}"
        );
        assert_eq!(
            paypro_status(word, &eur(1000), Some(&eur(0))),
            expected,
            "PayPro state {word:?} with refunded_amount 0"
        );
    }
}

#[test]
fn paypro_refunds_turn_paid_into_refunded_or_partially_refunded() {
    let amount = eur(1000);
    for state in ["paid", "completed"] {
        assert_eq!(paypro_status(state, &amount, Some(&eur(1000))), S::Refunded);
        assert_eq!(
            paypro_status(state, &amount, Some(&eur(1))),
            S::PartiallyRefunded
        );
        assert_eq!(
            paypro_status(state, &amount, Some(&eur(999))),
            S::PartiallyRefunded
        );
    }
    // Refunds do not override other states.
    assert_eq!(
        paypro_status("chargeback", &amount, Some(&eur(1000))),
        S::ChargedBack
    );
    assert_eq!(
        paypro_status("refunded", &amount, Some(&eur(500))),
        S::Refunded
    );
}

#[test]
fn final_and_unsettled_follow_design() {
    let finals = [
        S::Failed,
        S::Canceled,
        S::Expired,
        S::Refunded,
        S::ChargedBack,
    ];
    let unsettled = [S::Open, S::Pending, S::Unknown("x".into())];
    let still_changing = [S::Paid, S::PartiallyRefunded];
    for s in &finals {
        assert!(s.is_final() && !s.is_unsettled(), "{s}");
    }
    for s in &unsettled {
        assert!(!s.is_final() && s.is_unsettled(), "{s}");
    }
    for s in &still_changing {
        assert!(!s.is_final() && !s.is_unsettled(), "{s}");
    }
}

#[test]
fn backwards_moves_are_recognised() {
    assert!(S::Paid.is_backwards_to(&S::Pending));
    assert!(S::Refunded.is_backwards_to(&S::Paid));
    assert!(!S::Pending.is_backwards_to(&S::Paid));
    assert!(!S::Paid.is_backwards_to(&S::ChargedBack));
    assert!(!S::Paid.is_backwards_to(&S::Unknown("x".into())));
}

#[test]
fn unified_words_round_trip() {
    for word in S::WORDS {
        let status = S::from_unified(word).expect(word);
        assert_eq!(status.as_str(), word);
        assert_eq!(
            serde_json::to_string(&status).unwrap(),
            format!("\"{word}\"")
        );
    }
    assert_eq!(S::from_unified("Paid"), None);
    let err = serde_json::from_str::<S>("\"settled\"")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`settled` is not a unified payment status"),
        "{err}"
    );
}

proptest! {
    #[test]
    fn every_word_maps_to_some_status(word in ".*", cents in 0i64..1_000_000, refunded in proptest::option::of(0i64..2_000_000)) {
        let mkp = mkp_status(&word);
        if let S::Unknown(raw) = &mkp { prop_assert_eq!(raw, &word); }
        let refunded = refunded.map(eur);
        let paypro = paypro_status(&word, &eur(cents), refunded.as_ref());
        if let S::Unknown(raw) = &paypro { prop_assert_eq!(raw, &word); }
    }
}
