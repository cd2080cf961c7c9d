//! The unified payment record and its flat, exported form.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde::{Deserialize, Serialize};

use crate::{Currency, Money, PaymentStatus};

/// The provider a payment came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// MijnKlantportaal payment links.
    Mkp,
    /// PayPro.
    #[serde(rename = "paypro")]
    PayPro,
}

impl Source {
    /// Both sources.
    pub const ALL: [Source; 2] = [Source::Mkp, Source::PayPro];

    /// `"mkp"` or `"paypro"`: the prefix of every unified id, and the word used by the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Mkp => "mkp",
            Source::PayPro => "paypro",
        }
    }

    /// Parses `"mkp"` or `"paypro"`.
    pub fn from_word(word: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.as_str() == word)
    }

    /// The globally unique id of the provider's payment `source_id`: `"mkp:plp_…"`.
    pub fn payment_id(self, source_id: &str) -> String {
        let prefix = self.as_str();
        let mut id = String::with_capacity(prefix.len() + 1 + source_id.len());
        id.push_str(prefix);
        id.push(':');
        id.push_str(source_id);
        id
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One payment, from either provider, in one shape. Loses nothing the provider said that a
/// bookkeeper needs; the raw word behind `status` stays in `provider_status`.
///
/// Serializes (JSON) with exactly the field names of the export format, through
/// [`PaymentRecord`]: amounts as exact strings, timestamps as RFC 3339 with the provider's offset.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "PaymentRecord<'static>")]
pub struct Payment {
    /// Globally unique: `"mkp:" + source_id` or `"paypro:" + source_id`.
    pub id: String,
    /// The provider.
    pub source: Source,
    /// The provider's own id (`plp_…` for MKP).
    pub source_id: String,
    /// The unified status.
    pub status: PaymentStatus,
    /// The provider's raw status word.
    pub provider_status: String,
    /// The amount, exact, in its currency.
    pub amount: Money,
    /// How much was refunded (PayPro), in the same currency; `None` when the provider does not say.
    pub refunded_amount: Option<Money>,
    /// When the payment was created, with the provider's offset kept.
    pub created_at: DateTime<FixedOffset>,
    /// When it was paid, when the provider says.
    pub paid_at: Option<DateTime<FixedOffset>>,
    /// The payer's name (MKP), when known.
    pub payer_name: Option<String>,
    /// The payment's description (PayPro) or its payment link's description (MKP).
    pub description: Option<String>,
    /// The payment method (`"ideal"`, …), when known.
    pub method: Option<String>,
    /// Who processed the payment: MKP's integration (`"mollie"`, …) or `"paypro"`.
    pub processor: String,
    /// The processor's reference (MKP `integrationId`).
    pub processor_reference: Option<String>,
    /// The MKP payment link it was paid through.
    pub payment_link_id: Option<String>,
    /// The PayPro customer.
    pub customer_id: Option<String>,
    /// Why it failed (PayPro), as the provider worded it.
    pub fail_reason: Option<String>,
    /// How much was charged back, when a completed chargeback is known (PayPro's change feed).
    /// The status is then `charged_back`, also for a partial chargeback (an amount below
    /// `amount`), whatever the provider's `state` says; `provider_status` keeps that word. It
    /// stays with the payment when a listing that does not show chargebacks reads it again.
    pub charged_back_amount: Option<Money>,
}

impl Payment {
    /// The currency of the payment.
    pub fn currency(&self) -> Currency {
        self.amount.currency()
    }

    /// Records a completed chargeback of `amount`: the status becomes `charged_back` (the
    /// provider's word stays in `provider_status`). A chargeback is checked as a refund is: one
    /// in another currency than the payment's, above the payment's amount, or that with what
    /// was refunded comes to more than the amount, is refused with the reason, and changes
    /// nothing.
    pub fn charge_back(&mut self, amount: Money) -> Result<(), String> {
        let refused = |why: &str| {
            Err(format!(
                "a chargeback of {amount} on {} of {}: {why}",
                self.id, self.amount
            ))
        };
        if amount.currency() != self.currency() {
            return refused("not the payment's currency");
        }
        if amount.is_negative() || amount.is_zero() {
            return refused("not a positive amount");
        }
        if amount.amount() > self.amount.amount() {
            return refused("more than the payment's amount");
        }
        let refunded = self
            .refunded_amount
            .filter(|r| r.currency() == self.currency())
            .map_or_else(Default::default, |r| r.amount());
        if amount.amount() + refunded > self.amount.amount() {
            return refused("with what was refunded, more than the payment's amount");
        }
        self.charged_back_amount = Some(amount);
        self.status = PaymentStatus::ChargedBack;
        Ok(())
    }
}

/// The flat, exported form of a [`Payment`]: every field a string or null, named exactly as
/// in the export contract (CSV header and NDJSON keys), in this order.
///
/// It borrows from the payment it was made from (serializing a payment copies nothing) and owns
/// its fields when deserialized.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord<'a> {
    /// See [`Payment::id`].
    pub id: Cow<'a, str>,
    /// `"mkp"` or `"paypro"`.
    pub source: Source,
    /// See [`Payment::source_id`].
    pub source_id: Cow<'a, str>,
    /// The unified word.
    pub status: Cow<'a, PaymentStatus>,
    /// See [`Payment::provider_status`].
    pub provider_status: Cow<'a, str>,
    /// Exact amount string with the currency's minor digits, `"12.95"`.
    pub amount: Cow<'a, str>,
    /// ISO 4217 code.
    pub currency: Currency,
    /// Exact amount string or null.
    pub refunded_amount: Option<Cow<'a, str>>,
    /// RFC 3339 with the provider's offset (`Z` for UTC).
    pub created_at: Cow<'a, str>,
    /// RFC 3339 or null.
    pub paid_at: Option<Cow<'a, str>>,
    /// See [`Payment::payer_name`].
    pub payer_name: Option<Cow<'a, str>>,
    /// See [`Payment::description`].
    pub description: Option<Cow<'a, str>>,
    /// See [`Payment::method`].
    pub method: Option<Cow<'a, str>>,
    /// See [`Payment::processor`].
    pub processor: Cow<'a, str>,
    /// See [`Payment::processor_reference`].
    pub processor_reference: Option<Cow<'a, str>>,
    /// See [`Payment::payment_link_id`].
    pub payment_link_id: Option<Cow<'a, str>>,
    /// See [`Payment::customer_id`].
    pub customer_id: Option<Cow<'a, str>>,
    /// See [`Payment::fail_reason`].
    pub fail_reason: Option<Cow<'a, str>>,
    /// Exact amount string or null: see [`Payment::charged_back_amount`]. (Added last, after
    /// the first release's 18 fields; a record written before reads back with null.)
    #[serde(default)]
    pub charged_back_amount: Option<Cow<'a, str>>,
}

impl PaymentRecord<'_> {
    /// The export's field names, in order: the CSV header.
    pub const FIELDS: [&'static str; 19] = [
        "id",
        "source",
        "source_id",
        "status",
        "provider_status",
        "amount",
        "currency",
        "refunded_amount",
        "created_at",
        "paid_at",
        "payer_name",
        "description",
        "method",
        "processor",
        "processor_reference",
        "payment_link_id",
        "customer_id",
        "fail_reason",
        "charged_back_amount",
    ];
}

/// Formats a timestamp as RFC 3339, keeping its offset (`Z` when it is UTC, as PayPro writes it).
pub fn format_timestamp(at: &DateTime<FixedOffset>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses an RFC 3339 / ATOM timestamp that carries an offset, keeping that offset.
///
/// The offset may also be written without a colon (`+0200`) or as hours alone (`+02`), as
/// ISO 8601 allows and PHP writes with `DATE_ISO8601`. A timestamp without an offset is refused:
/// it is not clear which moment it means.
///
/// ```
/// use payments_model::parse_timestamp;
///
/// let atom = parse_timestamp("2024-04-29T21:00:00+02:00").unwrap();
/// assert_eq!(parse_timestamp("2024-04-29T21:00:00+0200").unwrap(), atom);
/// assert_eq!(parse_timestamp("2024-04-29T21:00:00+02").unwrap(), atom);
/// assert_eq!(atom.offset().local_minus_utc(), 7200);
/// assert!(parse_timestamp("2024-04-29 21:00:00").is_err());
/// ```
pub fn parse_timestamp(text: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(text).or_else(|err| {
        with_colon_offset(text)
            .and_then(|text| DateTime::parse_from_rfc3339(&text).ok())
            .ok_or_else(|| {
                format!("`{text}` is not an RFC 3339 timestamp with an offset (like `2024-04-29T21:00:00+02:00`): {err}")
            })
    })
}

/// `text` with a compact offset at its end (`+0200`, `+02`) written as RFC 3339 wants it
/// (`+02:00`); `None` when it ends in no such offset.
fn with_colon_offset(text: &str) -> Option<String> {
    // The offset's sign comes after the time, never in the date (`2024-04-29`).
    let sign = text.get(11..)?.rfind(['+', '-'])? + 11;
    let (stamp, digits) = (&text[..=sign], &text[sign + 1..]);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match digits.len() {
        4 => Some(format!("{stamp}{}:{}", &digits[..2], &digits[2..])),
        2 => Some(format!("{stamp}{digits}:00")),
        _ => None,
    }
}

impl<'a> From<&'a Payment> for PaymentRecord<'a> {
    fn from(p: &'a Payment) -> PaymentRecord<'a> {
        let text = |value: &'a Option<String>| value.as_deref().map(Cow::Borrowed);
        PaymentRecord {
            id: Cow::Borrowed(&p.id),
            source: p.source,
            source_id: Cow::Borrowed(&p.source_id),
            status: Cow::Borrowed(&p.status),
            provider_status: Cow::Borrowed(&p.provider_status),
            amount: Cow::Owned(p.amount.amount_string()),
            currency: p.amount.currency(),
            refunded_amount: p.refunded_amount.map(|m| Cow::Owned(m.amount_string())),
            created_at: Cow::Owned(format_timestamp(&p.created_at)),
            paid_at: p.paid_at.as_ref().map(|t| Cow::Owned(format_timestamp(t))),
            payer_name: text(&p.payer_name),
            description: text(&p.description),
            method: text(&p.method),
            processor: Cow::Borrowed(&p.processor),
            processor_reference: text(&p.processor_reference),
            payment_link_id: text(&p.payment_link_id),
            customer_id: text(&p.customer_id),
            fail_reason: text(&p.fail_reason),
            charged_back_amount: p.charged_back_amount.map(|m| Cow::Owned(m.amount_string())),
        }
    }
}

impl Serialize for Payment {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        PaymentRecord::from(self).serialize(serializer)
    }
}

impl TryFrom<PaymentRecord<'_>> for Payment {
    type Error = String;

    fn try_from(r: PaymentRecord<'_>) -> Result<Payment, String> {
        let owned = |text: Option<Cow<'_, str>>| text.map(Cow::into_owned);
        let money = |field: &str, text: &str| {
            Money::parse(text, r.currency).map_err(|err| format!("{field}: {err}"))
        };
        let timestamp = |field: &str, text: &str| {
            parse_timestamp(text).map_err(|err| format!("{field}: {err}"))
        };
        let status = PaymentStatus::from_unified_and_raw(r.status.as_str(), &r.provider_status)
            .unwrap_or_else(|| PaymentStatus::Unknown(r.provider_status.to_string()));
        Ok(Payment {
            amount: money("amount", &r.amount)?,
            refunded_amount: r
                .refunded_amount
                .as_deref()
                .map(|text| money("refunded_amount", text))
                .transpose()?,
            created_at: timestamp("created_at", &r.created_at)?,
            paid_at: r
                .paid_at
                .as_deref()
                .map(|text| timestamp("paid_at", text))
                .transpose()?,
            id: r.id.into_owned(),
            source: r.source,
            source_id: r.source_id.into_owned(),
            status,
            provider_status: r.provider_status.into_owned(),
            payer_name: owned(r.payer_name),
            description: owned(r.description),
            method: owned(r.method),
            processor: r.processor.into_owned(),
            processor_reference: owned(r.processor_reference),
            payment_link_id: owned(r.payment_link_id),
            customer_id: owned(r.customer_id),
            fail_reason: owned(r.fail_reason),
            charged_back_amount: r
                .charged_back_amount
                .as_deref()
                .map(|text| money("charged_back_amount", text))
                .transpose()?,
        })
    }
}
