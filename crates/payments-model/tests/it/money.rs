//! Exact money: construction, refusal of inexact amounts, formatting and round-trips.

use payments_model::rust_decimal::Decimal;
use payments_model::{Currency, Money, MoneyError};
use proptest::prelude::*;

fn eur(text: &str) -> Result<Money, MoneyError> {
    Money::parse(text, Currency::EUR)
}

#[test]
fn parses_major_units_to_exact_minor_digits() {
    let rows = [
        ("12.95", "12.95", 1295),
        ("0.01", "0.01", 1),
        ("1000", "1000.00", 100_000),
        ("99999.99", "99999.99", 9_999_999),
        ("10.5", "10.50", 1050),
        ("1.500", "1.50", 150),
        ("-0.50", "-0.50", -50),
        ("007.00", "7.00", 700),
    ];
    for (text, shown, minor) in rows {
        let money = eur(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(money.amount_string(), shown, "{text}");
        assert_eq!(money.to_minor(), Some(minor), "{text}");
        assert_eq!(money, Money::from_minor(minor, Currency::EUR), "{text}");
    }
}

#[test]
fn refuses_inexact_and_malformed_amounts() {
    assert!(matches!(
        eur("12.951"),
        Err(MoneyError::NotExact { exponent: 2, .. })
    ));
    for bad in [
        "abc", "", "-", ".5", "5.", "+5", " 5", "5 ", "1e3", "1_000", "1,00", "NaN", "--1", "0x10",
    ] {
        assert!(
            matches!(eur(bad), Err(MoneyError::NotANumber { .. })),
            "{bad:?} was accepted"
        );
    }
    let too_large = "9".repeat(40);
    assert!(matches!(eur(&too_large), Err(MoneyError::TooLarge { .. })));
    assert!(matches!(
        eur(&"9".repeat(28)),
        Err(MoneyError::TooLarge { .. })
    ));
}

#[test]
fn errors_say_what_was_wrong_and_what_to_do() {
    assert_eq!(
        eur("12.951").unwrap_err().to_string(),
        "`12.951` is not exact in EUR, which has 2 decimal places"
    );
    assert_eq!(
        eur("abc").unwrap_err().to_string(),
        "`abc` is not a decimal amount; write digits with an optional `.` and fraction, like `12.95`"
    );
}

#[test]
fn currencies_know_their_exponent() {
    assert_eq!(Currency::from_code("EUR").unwrap(), Currency::EUR);
    assert_eq!(Currency::from_code("JPY").unwrap().exponent(), 0);
    assert_eq!(Currency::from_code("KWD").unwrap().exponent(), 3);
    assert!(matches!(
        Currency::from_code("EURO"),
        Err(MoneyError::UnknownCurrency { .. })
    ));
    assert!(matches!(
        Currency::from_code("eur"),
        Err(MoneyError::UnknownCurrency { .. })
    ));
    assert!(matches!(
        Currency::from_code("XAU"),
        Err(MoneyError::NoMinorUnit { .. })
    ));
    let jpy = Currency::from_code("JPY").unwrap();
    assert_eq!(Money::parse("1000", jpy).unwrap().amount_string(), "1000");
    assert!(Money::parse("10.5", jpy).is_err());
}

#[test]
fn money_compares_only_within_a_currency() {
    let usd = Currency::from_code("USD").unwrap();
    let a = Money::from_minor(100, Currency::EUR);
    assert!(a < Money::from_minor(101, Currency::EUR));
    assert_eq!(a.partial_cmp(&Money::from_minor(100, usd)), None);
    assert_ne!(a, Money::from_minor(100, usd));
}

#[test]
fn serializes_as_exact_strings() {
    let money = eur("10").unwrap();
    let json = serde_json::to_string(&money).unwrap();
    assert_eq!(json, r#"{"amount":"10.00","currency":"EUR"}"#);
    assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), money);
    let err = serde_json::from_str::<Money>(r#"{"amount":"1.001","currency":"EUR"}"#).unwrap_err();
    assert!(err.to_string().contains("not exact in EUR"), "{err}");
}

proptest! {
    #[test]
    fn minor_units_round_trip(minor in any::<i64>()) {
        let money = Money::from_minor(minor, Currency::EUR);
        prop_assert_eq!(money.to_minor(), Some(minor));
        prop_assert_eq!(money.amount().scale(), 2);
        let reparsed = Money::parse(&money.amount_string(), Currency::EUR).unwrap();
        prop_assert_eq!(reparsed, money);
    }

    #[test]
    fn formatted_amounts_parse_back(whole in 0u64..1_000_000_000_000, cents in 0u32..100, negative in any::<bool>()) {
        let text = format!("{}{whole}.{cents:02}", if negative { "-" } else { "" });
        let money = eur(&text).unwrap();
        let expected = if negative && whole == 0 && cents == 0 { format!("{whole}.00") } else { text.clone() };
        prop_assert_eq!(money.amount_string(), expected);
    }

    #[test]
    fn a_third_decimal_digit_is_refused_unless_zero(whole in 0u64..1_000_000, frac in 0u32..1000) {
        let result = eur(&format!("{whole}.{frac:03}"));
        prop_assert_eq!(result.is_ok(), frac % 10 == 0);
    }

    #[test]
    fn decimals_are_exact_or_refused(mantissa in any::<i64>(), scale in 0u32..6) {
        let decimal = Decimal::new(mantissa, scale);
        match Money::new(decimal, Currency::EUR) {
            Ok(money) => prop_assert_eq!(money.amount(), decimal),
            Err(_) => prop_assert_ne!(decimal.round_dp(2), decimal),
        }
    }
}
