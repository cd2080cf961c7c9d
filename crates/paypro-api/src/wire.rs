//! PayPro's objects exactly as the API sends them.
//!
//! Every field the documentation marks nullable is an `Option`, and unknown fields are
//! ignored, so that a new field or a null never fails a page.

use payments_model::tolerant;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// PayPro's list envelope: `{"type": "list", "data": [...], "count": N, "_links": {...}}`.
///
/// `T` defaults to the raw JSON of each item, so that one bad item can be set aside whole.
///
/// Read tolerantly: `data: null` is an empty page, `count` may be a string, `_links` may be
/// PHP's `[]` for "no links", and `_links.next` may be relative (it is resolved against the
/// request) or HAL's `{"href": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct List<T = Box<RawValue>> {
    /// Always `"list"`.
    #[serde(rename = "type", default, deserialize_with = "tolerant::text")]
    pub kind: Option<String>,
    /// The items, most recent first (`null` reads as none).
    #[serde(deserialize_with = "tolerant::null_as_empty")]
    pub data: Vec<T>,
    /// The number of items on this page.
    #[serde(default, deserialize_with = "tolerant::count")]
    pub count: Option<u64>,
    /// Links to this page and its neighbours.
    #[serde(
        rename = "_links",
        default,
        deserialize_with = "tolerant::empty_list_as_default"
    )]
    pub links: ListLinks,
}

/// The `_links` of a list: `next`/`prev` are present only when there is such a page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListLinks {
    /// This page.
    #[serde(
        rename = "self",
        default,
        deserialize_with = "tolerant::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub this: Option<String>,
    /// URL of the next (older) page, carrying `?cursor=…` (absolute, or relative to the request).
    #[serde(
        default,
        deserialize_with = "tolerant::link",
        skip_serializing_if = "Option::is_none"
    )]
    pub next: Option<String>,
    /// URL of the previous (newer) page.
    #[serde(
        default,
        deserialize_with = "tolerant::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub prev: Option<String>,
}

/// A payment, as in the seed document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayProPayment {
    /// `PPH25H07JYWLR7PA82`.
    pub id: String,
    /// Always `"payment"`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The amount in minor units (cents): a JSON integer, or a string of digits (`"1295"`).
    #[serde(deserialize_with = "tolerant::minor_units")]
    pub amount: i64,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// `"EUR"`.
    pub currency: String,
    /// How it is (to be) paid: an object, or in some responses only its id.
    #[serde(default)]
    pub pay_method: Option<PayMethodField>,
    /// The state word (`initialized`, `open`, `processing`, `paid`, `completed`, …; open-ended).
    pub state: String,
    /// How much was refunded, in minor units (an integer or a string of digits).
    #[serde(default, deserialize_with = "tolerant::optional_minor_units")]
    pub refunded_amount: Option<i64>,
    /// Where the payer returns after paying.
    #[serde(default)]
    pub return_url: Option<String>,
    /// Where the payer returns after canceling.
    #[serde(default)]
    pub cancel_url: Option<String>,
    /// The merchant's own key-value data.
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
    /// The customer id (`CU…`).
    #[serde(default)]
    pub customer: Option<String>,
    /// The mandate id (`MD…`).
    #[serde(default)]
    pub mandate: Option<String>,
    /// The subscription id.
    #[serde(default)]
    pub subscription: Option<String>,
    /// The installment plan id.
    #[serde(default)]
    pub installment_plan: Option<String>,
    /// `de` | `en` | `fr` | `nl`.
    #[serde(default)]
    pub locale: Option<String>,
    /// RFC 3339 UTC, or null (an empty string is read as null when mapped).
    #[serde(default)]
    pub paid_at: Option<String>,
    /// Why the payment failed, as a sentence.
    #[serde(default)]
    pub fail_reason: Option<String>,
    /// RFC 3339 UTC (documented as nullable).
    #[serde(default)]
    pub created_at: Option<String>,
    /// Links to this payment and related resources.
    #[serde(rename = "_links", default)]
    pub links: Option<PaymentLinks>,
}

/// `pay_method`, documented as "any": the object, or just an id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PayMethodField {
    /// The full object.
    Object(PayMethod),
    /// Only the id, `"ideal"`.
    Id(String),
}

impl PayMethodField {
    /// The method's id, `"ideal"`, taken out of the field.
    pub fn into_id(self) -> Option<String> {
        match self {
            PayMethodField::Object(method) => method.id,
            PayMethodField::Id(id) => Some(id),
        }
    }

    /// The method's id, `"ideal"`.
    pub fn id(&self) -> Option<&str> {
        match self {
            PayMethodField::Object(method) => method.id.as_deref(),
            PayMethodField::Id(id) => Some(id),
        }
    }
}

/// A payment method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayMethod {
    /// `"ideal"`, `"bank_transfer"`, ….
    #[serde(default)]
    pub id: Option<String>,
    /// Always `"pay_method"`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Display name, `"iDEAL"`.
    #[serde(default)]
    pub name: Option<String>,
    /// Currencies it accepts.
    #[serde(default)]
    pub currencies: Option<Vec<String>>,
    /// Smallest amount, in minor units.
    #[serde(default)]
    pub minimum_amount: Option<i64>,
    /// Largest amount, in minor units.
    #[serde(default)]
    pub maximum_amount: Option<i64>,
    /// Method-specific details.
    #[serde(default)]
    pub details: Option<serde_json::Value>,
}

/// A payment's `_links`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentLinks {
    /// The payment itself.
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub this: Option<String>,
    /// The checkout page for the payer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<String>,
    /// The customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// The mandate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mandate: Option<String>,
}

/// A refund, as PROVIDERS.md documents it (`GET /refunds`, and the payload of its events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayProRefund {
    /// `PR…`.
    pub id: String,
    /// Always `"refund"`.
    #[serde(rename = "type", default, deserialize_with = "tolerant::text")]
    pub kind: Option<String>,
    /// The amount refunded, in minor units (an integer or a string of digits).
    #[serde(deserialize_with = "tolerant::minor_units")]
    pub amount: i64,
    /// `"EUR"`.
    pub currency: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// The refunded payment's id (`PP…`).
    pub payment: String,
    /// Why, when said.
    #[serde(default)]
    pub reason: Option<String>,
    /// When it was refunded (RFC 3339), or null while it is not (yet).
    #[serde(default)]
    pub refunded_at: Option<String>,
    /// The state word (`processing`, …; open-ended).
    pub state: String,
    /// RFC 3339.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Links to this refund and its payment.
    #[serde(
        rename = "_links",
        default,
        deserialize_with = "tolerant::empty_list_as_default"
    )]
    pub links: ObjectLinks,
}

/// A chargeback, as PROVIDERS.md documents it (`GET /chargebacks`, and the payload of its
/// events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayProChargeback {
    /// `PC…`.
    pub id: String,
    /// Always `"chargeback"`.
    #[serde(rename = "type", default, deserialize_with = "tolerant::text")]
    pub kind: Option<String>,
    /// The amount charged back, in minor units (an integer or a string of digits).
    #[serde(deserialize_with = "tolerant::minor_units")]
    pub amount: i64,
    /// `"EUR"`.
    pub currency: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// The charged-back payment's id (`PP…`).
    pub payment: String,
    /// The bank's reason code (`MD06`, …).
    #[serde(default)]
    pub reason: Option<String>,
    /// The state word (`completed`, …; open-ended).
    pub state: String,
    /// When it was charged back (RFC 3339), or null while it is not (yet).
    #[serde(default)]
    pub charged_back_at: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Links to this chargeback and its payment.
    #[serde(
        rename = "_links",
        default,
        deserialize_with = "tolerant::empty_list_as_default"
    )]
    pub links: ObjectLinks,
}

/// An event of `GET /events`: `{"id": "EV…", "type": "event", "event_type": "payment.paid",
/// "payload": {…}, "created_at": …, "_links": {"self": …}}`.
///
/// `P` is the payload: by default its raw JSON, as the payload's own `type` says what it is
/// (a payment, a refund, a chargeback, or something this crate does not read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "P: Deserialize<'de>"))]
pub struct PayProEvent<P = Box<RawValue>> {
    /// `EV…`.
    pub id: String,
    /// Always `"event"`.
    #[serde(rename = "type", default, deserialize_with = "tolerant::text")]
    pub kind: Option<String>,
    /// `payment.created`, `payment.paid`, `chargeback.created`, `customer.created`, … (the full
    /// list is not published; expect others).
    pub event_type: String,
    /// The object as it was at the event; `None` when missing or null.
    #[serde(default)]
    pub payload: Option<P>,
    /// RFC 3339.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Links to this event.
    #[serde(
        rename = "_links",
        default,
        deserialize_with = "tolerant::empty_list_as_default"
    )]
    pub links: ObjectLinks,
}

/// The `_links` of an event, a refund or a chargeback.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLinks {
    /// The object itself.
    #[serde(
        rename = "self",
        default,
        deserialize_with = "tolerant::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub this: Option<String>,
    /// The payment it belongs to (refunds and chargebacks).
    #[serde(
        default,
        deserialize_with = "tolerant::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub payment: Option<String>,
}

/// A payout, as PROVIDERS.md documents it (`GET /payouts`, `GET /payouts/{id}`, and the payload
/// of the `payout.*` events). The shape is partly unconfirmed, so it is read tolerantly: the
/// amounts are integers or strings of digits, the fee and its VAT may be missing or null (or an
/// object `{"amount": 25, "currency": "EUR"}`), and the bank account may be missing, null or
/// only an IBAN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayProPayout {
    /// `PO…`.
    pub id: String,
    /// Always `"payout"`.
    #[serde(rename = "type", default, deserialize_with = "tolerant::text")]
    pub kind: Option<String>,
    /// What was transferred to the bank account, in minor units (an integer or a string of
    /// digits).
    #[serde(deserialize_with = "tolerant::minor_units")]
    pub amount: i64,
    /// The fee withheld from the balance with the payout, when said.
    #[serde(default)]
    pub fee_amount: Option<PayoutFee>,
    /// The VAT on the fee, withheld with it, when said.
    #[serde(default)]
    pub fee_vat_amount: Option<PayoutFee>,
    /// The currency of the fee and its VAT, when the API says it apart from the payout's.
    #[serde(
        default,
        deserialize_with = "tolerant::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub fee_currency: Option<String>,
    /// `"EUR"`.
    pub currency: String,
    /// The state word (`created`, `approved`, `paid`, `rejected`, `failed`; open-ended).
    pub state: String,
    /// Where the money went.
    #[serde(default)]
    pub bank_account: Option<PayProBankAccount>,
    /// RFC 3339.
    #[serde(default)]
    pub created_at: Option<String>,
    /// When it was paid (RFC 3339), or null while it is not (yet).
    #[serde(default)]
    pub paid_at: Option<String>,
    /// Links to this payout.
    #[serde(
        rename = "_links",
        default,
        deserialize_with = "tolerant::empty_list_as_default"
    )]
    pub links: ObjectLinks,
}

/// A payout's `fee_amount` or `fee_vat_amount`: minor units (a JSON integer or a string of
/// digits) in the payout's currency, or an object `{"amount": …, "currency": "EUR"}` that
/// names its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutFee {
    /// The amount in minor units.
    pub minor: i64,
    /// The currency the fee names itself, when it does.
    pub currency: Option<String>,
}

impl Serialize for PayoutFee {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.currency {
            None => serializer.serialize_i64(self.minor),
            Some(currency) => serde_json::json!({ "amount": self.minor, "currency": currency })
                .serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for PayoutFee {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PayoutFee, D::Error> {
        use serde::de::Error as _;
        let minor = |value: serde_json::Value| {
            tolerant::minor_units(value).map_err(|e| D::Error::custom(e.to_string()))
        };
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Object(mut fields) => {
                let amount = fields.remove("amount").ok_or_else(|| {
                    D::Error::custom("an object without `amount` is not a fee in minor units")
                })?;
                let currency = match fields.remove("currency") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::String(code)) => Some(code),
                    Some(other) => {
                        return Err(D::Error::custom(format!(
                            "`currency` {other} is not a currency code"
                        )));
                    }
                };
                Ok(PayoutFee {
                    minor: minor(amount)?,
                    currency,
                })
            }
            other => Ok(PayoutFee {
                minor: minor(other)?,
                currency: None,
            }),
        }
    }
}

/// A payout's `bank_account`: `{"iban": …, "name": …}`, or only the IBAN as a string. Anything
/// else (a number, a list) reads as no account: it is shown, never counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PayProBankAccount {
    /// The IBAN, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iban: Option<String>,
    /// The holder's name, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl<'de> Deserialize<'de> for PayProBankAccount {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<PayProBankAccount, D::Error> {
        let text = |value: Option<&serde_json::Value>| {
            value.and_then(serde_json::Value::as_str).map(str::to_owned)
        };
        Ok(match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Object(fields) => PayProBankAccount {
                iban: text(fields.get("iban")),
                name: text(fields.get("name")),
            },
            serde_json::Value::String(iban) => PayProBankAccount {
                iban: Some(iban),
                name: None,
            },
            _ => PayProBankAccount::default(),
        })
    }
}

/// One balance of `GET /balances` (shape unconfirmed): `{"type": "balance", "currency": "EUR",
/// "amount": 123456, "pending_amount": 0}`, amounts in minor units (integers or strings of
/// digits), `pending_amount` possibly missing or null.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayProBalance {
    /// Always `"balance"`.
    #[serde(rename = "type", default, deserialize_with = "tolerant::text")]
    pub kind: Option<String>,
    /// `"EUR"`.
    pub currency: String,
    /// What the balance holds, in minor units (it may be below zero).
    #[serde(deserialize_with = "tolerant::minor_units")]
    pub amount: i64,
    /// What is on its way and not yet in `amount`, in minor units, when said.
    #[serde(default, deserialize_with = "tolerant::optional_minor_units")]
    pub pending_amount: Option<i64>,
}
