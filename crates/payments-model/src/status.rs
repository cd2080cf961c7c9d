//! One status vocabulary for every provider, and the mapping of each provider's words into it.
//!
//! The status tables live here, beside the vocabulary, so that the whole table of DESIGN.md is
//! one pure, reviewable place with unit tests row by row. Everything else a provider knows
//! (URLs, envelopes, wire types) lives in its own crate.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Money, Source};

/// Where a payment stands, in one vocabulary for all providers (snake_case in JSON).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// Created; the payer has not acted.
    Open,
    /// The payer acted; awaiting confirmation.
    Pending,
    /// Paid. Can still be refunded or charged back for weeks.
    Paid,
    /// Paid, and part of it was refunded. Can still change.
    PartiallyRefunded,
    /// Fully refunded. Final.
    Refunded,
    /// The payer's bank reversed the payment. Final.
    ChargedBack,
    /// The payment failed. Final.
    Failed,
    /// Canceled by the payer or the merchant. Final.
    Canceled,
    /// Expired before the payer completed it. Final.
    Expired,
    /// A provider word this library does not know yet; holds the raw word. Never an error.
    Unknown(String),
}

impl PaymentStatus {
    /// Every unified word, in the order of the payment's life, `unknown` last.
    pub const WORDS: [&'static str; 10] = [
        "open",
        "pending",
        "paid",
        "partially_refunded",
        "refunded",
        "charged_back",
        "failed",
        "canceled",
        "expired",
        "unknown",
    ];

    /// The unified word: `"paid"`, `"charged_back"`, `"unknown"`, ….
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentStatus::Open => "open",
            PaymentStatus::Pending => "pending",
            PaymentStatus::Paid => "paid",
            PaymentStatus::PartiallyRefunded => "partially_refunded",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::ChargedBack => "charged_back",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Canceled => "canceled",
            PaymentStatus::Expired => "expired",
            PaymentStatus::Unknown(_) => "unknown",
        }
    }

    /// Parses a unified word (as written by [`PaymentStatus::as_str`]). `"unknown"` gives
    /// `Unknown` with an empty raw word: the raw word lives in the payment's `provider_status`.
    pub fn from_unified(word: &str) -> Option<PaymentStatus> {
        Some(match word {
            "open" => PaymentStatus::Open,
            "pending" => PaymentStatus::Pending,
            "paid" => PaymentStatus::Paid,
            "partially_refunded" => PaymentStatus::PartiallyRefunded,
            "refunded" => PaymentStatus::Refunded,
            "charged_back" => PaymentStatus::ChargedBack,
            "failed" => PaymentStatus::Failed,
            "canceled" => PaymentStatus::Canceled,
            "expired" => PaymentStatus::Expired,
            "unknown" => PaymentStatus::Unknown(String::new()),
            _ => return None,
        })
    }

    /// Rebuilds a status from its unified word and the provider's raw word, as stored or
    /// exported side by side: `unknown` gets the raw word back. `None` for a word that is not a
    /// unified status.
    pub fn from_unified_and_raw(word: &str, raw: &str) -> Option<PaymentStatus> {
        Some(match PaymentStatus::from_unified(word)? {
            PaymentStatus::Unknown(_) => PaymentStatus::Unknown(raw.to_owned()),
            known => known,
        })
    }

    /// Final: can no longer change by the payer's action (failed, canceled, expired, refunded,
    /// charged_back).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            PaymentStatus::Failed
                | PaymentStatus::Canceled
                | PaymentStatus::Expired
                | PaymentStatus::Refunded
                | PaymentStatus::ChargedBack
        )
    }

    /// Unsettled: open, pending or unknown. Incremental sync keeps re-reading these.
    pub fn is_unsettled(&self) -> bool {
        matches!(
            self,
            PaymentStatus::Open | PaymentStatus::Pending | PaymentStatus::Unknown(_)
        )
    }

    /// How far along its life a payment is: 0 open, 1 pending, 2 paid, 3 partially refunded,
    /// 4 final; `None` for unknown. A move to a lower stage is a move backwards.
    pub fn stage(&self) -> Option<u8> {
        match self {
            PaymentStatus::Open => Some(0),
            PaymentStatus::Pending => Some(1),
            PaymentStatus::Paid => Some(2),
            PaymentStatus::PartiallyRefunded => Some(3),
            PaymentStatus::Unknown(_) => None,
            _ => Some(4),
        }
    }

    /// Whether going from `self` to `next` is a move backwards (paid → pending, refunded →
    /// paid): such moves are kept as versions and flagged, never hidden.
    pub fn is_backwards_to(&self, next: &PaymentStatus) -> bool {
        match (self.stage(), next.stage()) {
            (Some(from), Some(to)) => to < from,
            _ => false,
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for PaymentStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PaymentStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        PaymentStatus::from_unified(&word).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "`{word}` is not a unified payment status; expected one of {}",
                PaymentStatus::WORDS.join(", ")
            ))
        })
    }
}

/// Maps a MijnKlantportaal payment `status` word.
///
/// | MKP | unified |
/// | --- | --- |
/// | `pending` | pending |
/// | `paid` | paid |
/// | `failed` | failed |
/// | `canceled` | canceled |
/// | `chargebacked` | charged_back |
/// | anything else | unknown (raw word kept) |
///
/// Words are compared case-insensitively.
pub fn mkp_status(word: &str) -> PaymentStatus {
    mkp_word(word).unwrap_or_else(|| PaymentStatus::Unknown(word.to_owned()))
}

/// The table of [`mkp_status`]: `None` for a word it does not know.
fn mkp_word(word: &str) -> Option<PaymentStatus> {
    let is = |known: &str| word.eq_ignore_ascii_case(known);
    Some(if is("pending") {
        PaymentStatus::Pending
    } else if is("paid") {
        PaymentStatus::Paid
    } else if is("failed") {
        PaymentStatus::Failed
    } else if is("canceled") {
        PaymentStatus::Canceled
    } else if is("chargebacked") {
        PaymentStatus::ChargedBack
    } else {
        return None;
    })
}

/// Maps a PayPro payment `state`, taking refunds into account.
///
/// | PayPro | unified |
/// | --- | --- |
/// | `initialized`, `open` | open |
/// | `pending`, `processing` | pending |
/// | `paid`, `completed` | paid; `refunded` when `refunded ≥ amount` (and amount > 0); `partially_refunded` when 0 < refunded < amount |
/// | `refunded` | refunded |
/// | `chargeback`, `chargebacked` | charged_back |
/// | `canceled`, `cancelled` | canceled |
/// | `expired` | expired |
/// | `failed` | failed |
/// | anything else | unknown (raw word kept) |
///
/// A refund larger than the amount is inconsistent input: the mapper flags it as an error
/// before calling this, so here it simply counts as fully refunded.
pub fn paypro_status(state: &str, amount: &Money, refunded: Option<&Money>) -> PaymentStatus {
    match paypro_word(state) {
        Some(PaymentStatus::Paid) => match refunded {
            Some(refunded) if refunded.amount() > rust_decimal::Decimal::ZERO => {
                if refunded.amount() >= amount.amount() {
                    PaymentStatus::Refunded
                } else {
                    PaymentStatus::PartiallyRefunded
                }
            }
            _ => PaymentStatus::Paid,
        },
        Some(status) => status,
        None => PaymentStatus::Unknown(state.to_owned()),
    }
}

/// The table of [`paypro_status`] before refunds (`paid` and `completed` read as paid): `None`
/// for a word it does not know.
fn paypro_word(state: &str) -> Option<PaymentStatus> {
    let is = |known: &str| state.eq_ignore_ascii_case(known);
    Some(if is("initialized") || is("open") {
        PaymentStatus::Open
    } else if is("pending") || is("processing") {
        PaymentStatus::Pending
    } else if is("paid") || is("completed") {
        PaymentStatus::Paid
    } else if is("refunded") {
        PaymentStatus::Refunded
    } else if is("chargeback") || is("chargebacked") {
        PaymentStatus::ChargedBack
    } else if is("canceled") || is("cancelled") {
        PaymentStatus::Canceled
    } else if is("expired") {
        PaymentStatus::Expired
    } else if is("failed") {
        PaymentStatus::Failed
    } else {
        return None;
    })
}

/// Whether the status table of `source` knows the provider's word `word` ([`mkp_status`],
/// [`paypro_status`]): a word it does not know maps to [`PaymentStatus::Unknown`].
pub fn knows_status_word(source: Source, word: &str) -> bool {
    match source {
        Source::Mkp => mkp_word(word).is_some(),
        Source::PayPro => paypro_word(word).is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;

    #[test]
    fn a_word_is_known_exactly_when_its_table_maps_it_to_a_known_status() {
        let zero = Money::zero(Currency::EUR);
        let words = [
            "pending",
            "PAID",
            "failed",
            "canceled",
            "cancelled",
            "chargebacked",
            "chargeback",
            "initialized",
            "open",
            "processing",
            "completed",
            "refunded",
            "expired",
            "teleported",
            "",
        ];
        for word in words {
            assert_eq!(
                knows_status_word(Source::Mkp, word),
                !matches!(mkp_status(word), PaymentStatus::Unknown(_)),
                "mkp {word}"
            );
            assert_eq!(
                knows_status_word(Source::PayPro, word),
                !matches!(paypro_status(word, &zero, None), PaymentStatus::Unknown(_)),
                "paypro {word}"
            );
        }
        assert!(knows_status_word(Source::PayPro, "Completed"));
        assert!(!knows_status_word(Source::Mkp, "open"));
    }
}
