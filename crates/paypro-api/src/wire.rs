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
