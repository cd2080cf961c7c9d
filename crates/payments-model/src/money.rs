//! Exact amounts of money: a [`Decimal`] held at its currency's minor-unit exponent.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an amount or a currency was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// The text is not a plain decimal number.
    #[error(
        "`{text}` is not a decimal amount; write digits with an optional `.` and fraction, like `12.95`"
    )]
    NotANumber {
        /// The refused text.
        text: String,
    },
    /// The amount has more fraction digits than the currency's minor unit allows.
    #[error("`{text}` is not exact in {currency}, which has {exponent} decimal places")]
    NotExact {
        /// The refused text.
        text: String,
        /// The currency's code.
        currency: &'static str,
        /// The currency's minor-unit exponent.
        exponent: u32,
    },
    /// The amount does not fit in 28 significant digits.
    #[error("`{text}` is too large to hold exactly")]
    TooLarge {
        /// The refused text.
        text: String,
    },
    /// The currency code is not an ISO 4217 code.
    #[error("`{code}` is not an ISO 4217 currency code; use a code like `EUR`")]
    UnknownCurrency {
        /// The refused code.
        code: String,
    },
    /// The currency exists but has no minor unit (gold, SDR, …), so no payment can be in it.
    #[error("`{code}` has no minor unit, so no payment amount can be exact in it")]
    NoMinorUnit {
        /// The refused code.
        code: String,
    },
}

/// An ISO 4217 currency that has a minor unit, such as `EUR` (exponent 2) or `JPY` (exponent 0).
///
/// Backed by the maintained [`iso_currency`] table rather than a hand-written one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    iso: iso_currency::Currency,
    exponent: u32,
}

impl Currency {
    /// The euro, the currency of both providers today.
    pub const EUR: Currency = Currency {
        iso: iso_currency::Currency::EUR,
        exponent: 2,
    };

    /// Looks a currency up by its three-letter code (`"EUR"`); the code is case-sensitive, as in ISO 4217.
    pub fn from_code(code: &str) -> Result<Currency, MoneyError> {
        if code == "EUR" {
            return Ok(Currency::EUR);
        }
        let iso =
            iso_currency::Currency::from_code(code).ok_or_else(|| MoneyError::UnknownCurrency {
                code: code.to_owned(),
            })?;
        let exponent = iso.exponent().ok_or_else(|| MoneyError::NoMinorUnit {
            code: code.to_owned(),
        })?;
        Ok(Currency {
            iso,
            exponent: u32::from(exponent),
        })
    }

    /// The three-letter code, `"EUR"`.
    pub fn code(self) -> &'static str {
        self.iso.code()
    }

    /// The number of decimal places of the minor unit: 2 for EUR, 0 for JPY, 3 for KWD.
    pub fn exponent(self) -> u32 {
        self.exponent
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Currency::from_code(code)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Currency::from_code(&code).map_err(serde::de::Error::custom)
    }
}

/// An exact amount in one currency. Never a float.
///
/// The amount always carries exactly the currency's minor-unit digits, so it prints as
/// `"12.95"` or `"10.00"` for EUR. Construction refuses anything that is not exact in the
/// currency (`"12.951"` EUR).
///
/// ```
/// use payments_model::{Currency, Money};
///
/// let mkp = Money::parse("12.95", Currency::EUR)?;
/// let paypro = Money::from_minor(1295, Currency::EUR);
/// assert_eq!(mkp, paypro);
/// assert_eq!(paypro.amount_string(), "12.95");
/// assert_eq!(Money::parse("10", Currency::EUR)?.amount_string(), "10.00");
/// assert!(Money::parse("12.951", Currency::EUR).is_err());
/// # Ok::<(), payments_model::MoneyError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// An amount in minor units (cents for EUR), as PayPro sends it. Always exact.
    pub fn from_minor(minor: i64, currency: Currency) -> Money {
        Money {
            amount: Decimal::new(minor, currency.exponent),
            currency,
        }
    }

    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Money {
        Money::from_minor(0, currency)
    }

    /// Parses a plain decimal in major units (`"12.95"`, `"1000"`, `"-0.50"`), as MKP sends it.
    ///
    /// Only `-?digits(.digits)?` is accepted: no sign `+`, no spaces, no exponent, no thousands
    /// separators. Trailing zeros beyond the minor unit are fine (`"1.500"` EUR is `1.50`); any
    /// other extra digit is refused.
    pub fn parse(text: &str, currency: Currency) -> Result<Money, MoneyError> {
        let not_a_number = || MoneyError::NotANumber {
            text: text.to_owned(),
        };
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match digits.split_once('.') {
            Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
            Some(_) => return Err(not_a_number()),
            None => (digits, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return Err(not_a_number());
        }
        let exponent = currency.exponent as usize;
        if fraction.trim_end_matches('0').len() > exponent {
            return Err(MoneyError::NotExact {
                text: text.to_owned(),
                currency: currency.code(),
                exponent: currency.exponent,
            });
        }
        // The amount in minor units: the whole digits, then the fraction padded to the exponent.
        let padding = std::iter::repeat_n(b'0', exponent.saturating_sub(fraction.len()));
        let minor_digits = whole
            .bytes()
            .chain(fraction.bytes().take(exponent))
            .chain(padding);
        let too_large = || MoneyError::TooLarge {
            text: text.to_owned(),
        };
        let mut minor: i128 = 0;
        for digit in minor_digits {
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(digit - b'0')))
                .ok_or_else(too_large)?;
        }
        let signed = if negative { -minor } else { minor };
        let amount = Decimal::try_from_i128_with_scale(signed, currency.exponent)
            .map_err(|_| too_large())?;
        Ok(Money { amount, currency })
    }

    /// An amount from a decimal, refused when it has a non-zero digit beyond the minor unit.
    pub fn new(amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        let exponent = currency.exponent;
        if amount.round_dp(exponent) != amount {
            return Err(MoneyError::NotExact {
                text: amount.to_string(),
                currency: currency.code(),
                exponent,
            });
        }
        let mut exact = amount;
        exact.rescale(exponent);
        if exact.scale() != exponent || exact != amount {
            return Err(MoneyError::TooLarge {
                text: amount.to_string(),
            });
        }
        Ok(Money {
            amount: exact,
            currency,
        })
    }

    /// The amount in major units, with exactly the currency's minor digits as its scale.
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    /// The currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The amount in minor units (cents), when it fits in an `i64`.
    pub fn to_minor(&self) -> Option<i64> {
        i64::try_from(self.amount.mantissa()).ok()
    }

    /// The exact amount as text with the currency's minor digits: `"12.95"`, `"10.00"`.
    /// This is the form used in JSON, CSV and the store.
    pub fn amount_string(&self) -> String {
        self.amount.to_string()
    }

    /// Whether the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    /// Whether the amount is below zero.
    pub fn is_negative(&self) -> bool {
        self.amount.is_sign_negative() && !self.amount.is_zero()
    }

    /// The sum of two amounts of one currency; `None` across currencies or past the range of
    /// an exact amount.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        let amount = self.amount.checked_add(other.amount)?;
        Some(Money {
            amount,
            currency: self.currency,
        })
    }

    /// The amount with its sign turned (a credit as a debit).
    pub fn negated(self) -> Money {
        let mut amount = -self.amount;
        if amount.is_zero() {
            amount.set_sign_positive(true);
        }
        Money {
            amount,
            currency: self.currency,
        }
    }

    /// The amount without its sign.
    pub fn abs(self) -> Money {
        Money {
            amount: self.amount.abs(),
            currency: self.currency,
        }
    }
}

/// Amounts compare only within one currency; across currencies they are unordered (`None`).
impl PartialOrd for Money {
    fn partial_cmp(&self, other: &Money) -> Option<Ordering> {
        (self.currency == other.currency).then(|| self.amount.cmp(&other.amount))
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({} {})", self.amount, self.currency)
    }
}

/// `12.95 EUR`.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// On its own, money serializes as `{"amount": "12.95", "currency": "EUR"}`.
#[derive(Serialize, Deserialize)]
struct MoneyRepr<'a> {
    #[serde(borrow)]
    amount: std::borrow::Cow<'a, str>,
    currency: Currency,
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        MoneyRepr {
            amount: self.amount_string().into(),
            currency: self.currency,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = MoneyRepr::deserialize(deserializer)?;
        Money::parse(&repr.amount, repr.currency).map_err(serde::de::Error::custom)
    }
}
