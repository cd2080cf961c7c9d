//! PayPro: the API's wire types, their mapping into the unified [`payments_model::Payment`],
//! the HTTP client [`PayProClient`] and [`PayProSource`], a [`payments_model::PaymentSource`].
//!
//! Amounts arrive in minor units (cents) and become exact [`payments_model::Money`]; the
//! `state` word and `refunded_amount` together decide the unified status.
//!
//! # Examples
//!
//! ```
//! use paypro_api::{map_payments, List};
//!
//! let page: List = serde_json::from_str(r#"{"type":"list","count":1,"_links":{},"data":[
//!     {"id":"PP1","amount":1000,"currency":"EUR","state":"paid","refunded_amount":1000,
//!      "pay_method":{"id":"ideal","name":"iDEAL"},"created_at":"2023-06-30T12:40:10Z"}
//! ]}"#)?;
//! let mapped = map_payments(&page.data);
//! let payment = &mapped.payments[0];
//! assert_eq!(payment.id, "paypro:PP1");
//! assert_eq!(payment.status.as_str(), "refunded");
//! assert_eq!(payment.amount.amount_string(), "10.00");
//! assert_eq!(payment.method.as_deref(), Some("ideal"));
//! # Ok::<(), serde_json::Error>(())
//! ```
#![forbid(unsafe_code)]

mod client;
mod map;
mod wire;

pub use client::{
    DEFAULT_BASE_URL, DEFAULT_LIMIT, PayProClient, PayProSource, PaymentsPage, TEST_BASE_URL,
    USER_AGENT,
};
pub use map::{PROCESSOR, decode_page, map_payments};
pub use wire::{List, ListLinks, PayMethod, PayMethodField, PayProPayment, PaymentLinks};
