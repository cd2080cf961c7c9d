//! The unified record's JSON: exact field names, exact amounts, offsets kept, round-trips.

use payments_model::{
    Currency, Money, Payment, PaymentRecord, PaymentStatus, Source, parse_timestamp,
};

fn sample() -> Payment {
    Payment {
        id: Source::Mkp.payment_id("plp_abc"),
        source: Source::Mkp,
        source_id: "plp_abc".into(),
        status: PaymentStatus::Unknown("settled".into()),
        provider_status: "settled".into(),
        amount: Money::parse("12.95", Currency::EUR).unwrap(),
        refunded_amount: Some(Money::from_minor(0, Currency::EUR)),
        created_at: parse_timestamp("2024-04-29T21:00:00+02:00").unwrap(),
        paid_at: Some(parse_timestamp("2023-06-30T12:44:35Z").unwrap()),
        payer_name: None,
        description: Some("Lidmaatschap".into()),
        method: None,
        processor: "mollie".into(),
        processor_reference: Some("tr_123".into()),
        payment_link_id: Some("plk_1".into()),
        customer_id: None,
        fail_reason: None,
        charged_back_amount: None,
    }
}

#[test]
fn json_has_exactly_the_contract_fields_in_order() {
    let json = serde_json::to_string(&sample()).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut fields = PaymentRecord::FIELDS.to_vec();
    keys.sort_unstable();
    fields.sort_unstable();
    assert_eq!(keys, fields);
    // The exact text also pins the order of the fields.
    assert_eq!(
        json,
        r#"{"id":"mkp:plp_abc","source":"mkp","source_id":"plp_abc","status":"unknown","provider_status":"settled","amount":"12.95","currency":"EUR","refunded_amount":"0.00","created_at":"2024-04-29T21:00:00+02:00","paid_at":"2023-06-30T12:44:35Z","payer_name":null,"description":"Lidmaatschap","method":null,"processor":"mollie","processor_reference":"tr_123","payment_link_id":"plk_1","customer_id":null,"fail_reason":null,"charged_back_amount":null}"#
    );
}

#[test]
fn a_record_written_before_chargebacks_were_kept_reads_back() {
    let mut json: serde_json::Value = serde_json::to_value(sample()).unwrap();
    json.as_object_mut().unwrap().remove("charged_back_amount");
    let back: Payment = serde_json::from_value(json).unwrap();
    assert_eq!(back, sample());
    let charged = Payment {
        status: PaymentStatus::ChargedBack,
        charged_back_amount: Some(Money::parse("5.00", Currency::EUR).unwrap()),
        ..sample()
    };
    let text = serde_json::to_string(&charged).unwrap();
    assert!(text.ends_with(r#""charged_back_amount":"5.00"}"#), "{text}");
    assert_eq!(serde_json::from_str::<Payment>(&text).unwrap(), charged);
}

#[test]
fn json_round_trips_and_unknown_keeps_the_raw_word() {
    let payment = sample();
    let back: Payment = serde_json::from_str(&serde_json::to_string(&payment).unwrap()).unwrap();
    assert_eq!(back, payment);
    assert_eq!(back.status, PaymentStatus::Unknown("settled".into()));
    assert_eq!(back.created_at.offset().local_minus_utc(), 7200);
}

#[test]
fn json_with_bad_amount_or_timestamp_is_refused_with_the_field() {
    let json = serde_json::to_string(&sample()).unwrap();
    let bad_amount = json.replace(r#""amount":"12.95""#, r#""amount":"12.951""#);
    let err = serde_json::from_str::<Payment>(&bad_amount)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("amount: `12.951` is not exact in EUR"),
        "{err}"
    );
    let bad_date = json.replace("2024-04-29T21:00:00+02:00", "2024-04-29 21:00:00");
    let err = serde_json::from_str::<Payment>(&bad_date)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("created_at: `2024-04-29 21:00:00` is not an RFC 3339"),
        "{err}"
    );
}

#[test]
fn sources_have_stable_words() {
    assert_eq!(Source::PayPro.payment_id("PP1"), "paypro:PP1");
    assert_eq!(
        serde_json::to_string(&Source::PayPro).unwrap(),
        r#""paypro""#
    );
    assert_eq!(Source::from_word("mkp"), Some(Source::Mkp));
    assert_eq!(Source::from_word("MKP"), None);
}

#[test]
fn offsets_without_a_colon_or_minutes_are_read_and_kept() {
    for (text, offset, shown) in [
        (
            "2024-04-29T21:00:00+0200",
            7200,
            "2024-04-29T21:00:00+02:00",
        ),
        ("2024-04-29T21:00:00+02", 7200, "2024-04-29T21:00:00+02:00"),
        (
            "2024-04-29T14:30:00-0530",
            -19800,
            "2024-04-29T14:30:00-05:30",
        ),
        ("2024-04-29T19:00:00.000000+0000", 0, "2024-04-29T19:00:00Z"),
        ("2024-04-29T19:00:00.000000Z", 0, "2024-04-29T19:00:00Z"),
    ] {
        let at = parse_timestamp(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(at.offset().local_minus_utc(), offset, "{text}");
        assert_eq!(payments_model::format_timestamp(&at), shown, "{text}");
    }
    assert_eq!(
        parse_timestamp("2024-04-29T21:00:00+0200").unwrap(),
        parse_timestamp("2024-04-29T19:00:00Z").unwrap(),
        "the same moment"
    );
}

#[test]
fn timestamps_without_an_offset_are_refused_saying_so() {
    for text in [
        "2024-04-29 21:00:00",
        "2024-04-29T21:00:00",
        "2024-04-29T21:00:00+2",
        "2024-04-29T21:00:00+020",
        "2024-04-29",
        "",
    ] {
        let err = parse_timestamp(text).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "`{text}` is not an RFC 3339 timestamp with an offset"
            )),
            "{text}: {err}"
        );
    }
}

#[test]
fn a_chargeback_in_another_currency_is_refused_and_changes_nothing() {
    let mut payment = sample();
    let usd = Currency::from_code("USD").unwrap();
    let problem = payment
        .charge_back(Money::parse("5.00", usd).unwrap())
        .unwrap_err();
    assert!(problem.contains("not the payment's currency"), "{problem}");
    assert_eq!(payment, sample());
    payment
        .charge_back(Money::parse("5.00", Currency::EUR).unwrap())
        .unwrap();
    assert_eq!(payment.status, PaymentStatus::ChargedBack);
    assert_eq!(
        payment.provider_status, "settled",
        "the provider's word is kept"
    );
}

#[test]
fn a_chargeback_above_the_amount_or_beyond_the_refunds_is_refused_and_changes_nothing() {
    let mut payment = sample();
    let amount = payment.amount;
    let eur = |text: &str| Money::parse(text, amount.currency()).unwrap();
    let problem = payment.charge_back(eur("1000000.00")).unwrap_err();
    assert!(
        problem.contains("more than the payment's amount"),
        "{problem}"
    );
    assert_eq!(payment, sample());
    for nothing in ["0.00", "-1.00"] {
        assert!(payment.charge_back(eur(nothing)).is_err(), "{nothing}");
    }
    payment.refunded_amount = Some(eur("0.01"));
    let before = payment.clone();
    let problem = payment.charge_back(amount).unwrap_err();
    assert!(problem.contains("with what was refunded"), "{problem}");
    assert_eq!(payment, before);
    payment.refunded_amount = None;
    payment.charge_back(amount).unwrap();
    assert_eq!(payment.charged_back_amount, Some(amount));
}
