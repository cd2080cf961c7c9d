//! MijnKlantportaal's objects exactly as the API sends them.
//!
//! Every field the documentation allows to be absent or null is an `Option`, and unknown
//! fields are ignored, so that a new field or a null never fails a page.

use payments_model::tolerant;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Laravel's "simple paginate" envelope: no total, follow `next_page_url` until it is null.
///
/// `T` defaults to the raw JSON of each item, so that one bad item can be set aside whole.
///
/// Read tolerantly, as real Laravel and PHP APIs write it: the page numbers and counts, which
/// the client does not need, may be numbers, strings (`"15"`) or missing; `data: null` is an
/// empty page; `next_page_url` may be relative (it is resolved against the request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct SimplePage<T = Box<RawValue>> {
    /// 1-based page number.
    #[serde(default, deserialize_with = "tolerant::count")]
    pub current_page: Option<u64>,
    /// The items (`null` reads as none).
    #[serde(deserialize_with = "tolerant::null_as_empty")]
    pub data: Vec<T>,
    /// URL of the first page.
    #[serde(default, deserialize_with = "tolerant::text")]
    pub first_page_url: Option<String>,
    /// 1-based offset of the first item; null on an empty page.
    #[serde(default, deserialize_with = "tolerant::count")]
    pub from: Option<u64>,
    /// URL of the next page (absolute, or relative to the request), or null on the last page.
    #[serde(default, deserialize_with = "tolerant::link")]
    pub next_page_url: Option<String>,
    /// The listing's URL without query.
    #[serde(default, deserialize_with = "tolerant::text")]
    pub path: Option<String>,
    /// Page size (15 by default).
    #[serde(default, deserialize_with = "tolerant::count")]
    pub per_page: Option<u64>,
    /// URL of the previous page, or null.
    #[serde(default, deserialize_with = "tolerant::text")]
    pub prev_page_url: Option<String>,
    /// 1-based offset of the last item; null on an empty page.
    #[serde(default, deserialize_with = "tolerant::count")]
    pub to: Option<u64>,
}

/// A payment link (`plk_…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentLink {
    /// `plk_…`.
    pub id: String,
    /// What the link is for; carried onto its payments.
    #[serde(default)]
    pub description: Option<String>,
    /// `"EUR"`.
    #[serde(default)]
    pub currency: Option<String>,
    /// The asked amount as a decimal string, `"12.95"`; `None` when it was sent in another form
    /// (the client does not use it, and a link must never be lost over it).
    #[serde(default, deserialize_with = "tolerant::text")]
    pub amount: Option<String>,
    /// Whether the link accepts more than one payment (`1`/`0` and `"1"`/`"0"` read too).
    #[serde(default, deserialize_with = "tolerant::flag")]
    pub reusable: Option<bool>,
    /// ATOM timestamp or null.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// `open` | `paid` | `expired` | `closed` (others are kept as they come).
    pub status: String,
    /// Null once the link can no longer be used.
    #[serde(default)]
    pub checkout_url: Option<String>,
    /// ATOM timestamp.
    #[serde(default)]
    pub created_at: Option<String>,
}

/// A payment made through a payment link (`plp_…`), as in the seed document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentLinkPayment {
    /// `plp_…`.
    pub id: String,
    /// The link it belongs to, `plk_…`.
    #[serde(default)]
    pub payment_link_id: Option<String>,
    /// `"EUR"`.
    pub currency: String,
    /// The amount paid in major units, exactly as sent: the contents of a decimal string
    /// (`"12.95"`), or the literal digits of a JSON number (`12.95`), never read through a float.
    /// (So this type reads from JSON text only, not from a `serde_json::Value`.)
    #[serde(deserialize_with = "tolerant::literal")]
    pub amount: String,
    /// `canceled` | `chargebacked` | `failed` | `paid` | `pending`.
    pub status: String,
    /// The payer's name, if available.
    #[serde(default)]
    pub payers_name: Option<String>,
    /// The processor: `mollie` | `buckaroo` | `paynl` | `stripe`.
    #[serde(default)]
    pub integration: Option<String>,
    /// The processor's id of the payment.
    #[serde(default)]
    pub integration_id: Option<String>,
    /// ATOM timestamp with offset: `2024-04-29T21:00:00+02:00`.
    pub created_at: String,
}
