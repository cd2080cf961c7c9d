//! MijnKlantportaal (MKP) payment links: the API's wire types, their mapping into the unified
//! [`payments_model::Payment`], the HTTP client [`MkpClient`] and [`MkpSource`], which walks a
//! whole account as a [`payments_model::PaymentSource`].
//!
//! MKP lists *payment links*, and each link lists the *payments* made through it. A link
//! becomes a [`payments_model::Group`]; each payment becomes a `Payment` whose description is
//! its link's.
//!
//! # Examples
//!
//! ```
//! use mkp_api::{map_links, map_payments, SimplePage};
//!
//! let links: SimplePage = serde_json::from_str(r#"{"current_page":1,"data":[
//!     {"id":"plk_1","description":"Lidmaatschap","status":"open","checkoutUrl":"https://pay.example/x"}
//! ],"next_page_url":null}"#)?;
//! let (groups, _) = map_links(&links.data);
//!
//! let page: SimplePage = serde_json::from_str(r#"{"current_page":1,"data":[
//!     {"id":"plp_1","paymentLinkId":"plk_1","currency":"EUR","amount":"12.95","status":"chargebacked",
//!      "payersName":null,"integration":"mollie","integrationId":"tr_1","createdAt":"2024-04-29T21:00:00+02:00"}
//! ],"next_page_url":null}"#)?;
//! let mapped = map_payments(&page.data, groups.first());
//! let payment = &mapped.payments[0];
//! assert_eq!(payment.id, "mkp:plp_1");
//! assert_eq!(payment.status.as_str(), "charged_back");
//! assert_eq!(payment.amount.amount_string(), "12.95");
//! assert_eq!(payment.description.as_deref(), Some("Lidmaatschap"));
//! # Ok::<(), serde_json::Error>(())
//! ```
#![forbid(unsafe_code)]

mod client;
mod map;
pub mod webhook;
mod wire;

pub use client::{
    DEFAULT_BASE_URL, LinksPage, MkpClient, MkpSource, PaymentsPage, RATE_LIMIT, USER_AGENT,
};
pub use map::{
    DecodedLinks, UNKNOWN_PROCESSOR, decode_links_page, decode_payments_page, map_links,
    map_payments,
};
pub use wire::{PaymentLink, PaymentLinkPayment, SimplePage};
