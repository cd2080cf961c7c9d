//! MijnKlantportaal's objects exactly as the API sends them.
//!
//! Every field the documentation allows to be absent or null is an `Option`, and unknown
//! fields are ignored, so that a new field or a null never fails a page.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Laravel's "simple paginate" envelope: no total, follow `next_page_url` until it is null.
///
/// `T` defaults to the raw JSON of each item, so that one bad item can be set aside whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimplePage<T = Box<RawValue>> {
    /// 1-based page number.
    #[serde(default)]
    pub current_page: Option<u64>,
    /// The items.
    pub data: Vec<T>,
    /// URL of the first page.
    #[serde(default)]
    pub first_page_url: Option<String>,
    /// 1-based offset of the first item; null on an empty page.
    #[serde(default)]
    pub from: Option<u64>,
    /// Absolute URL of the next page, or null on the last page.
    #[serde(default)]
    pub next_page_url: Option<String>,
    /// The listing's URL without query.
    #[serde(default)]
    pub path: Option<String>,
    /// Page size (15 by default).
    #[serde(default)]
    pub per_page: Option<u64>,
    /// URL of the previous page, or null.
    #[serde(default)]
    pub prev_page_url: Option<String>,
    /// 1-based offset of the last item; null on an empty page.
    #[serde(default)]
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
    /// The asked amount as a decimal string, `"12.95"`.
    #[serde(default)]
    pub amount: Option<String>,
    /// Whether the link accepts more than one payment.
    #[serde(default)]
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
    /// The amount paid, a decimal string in major units: `"12.95"`.
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
