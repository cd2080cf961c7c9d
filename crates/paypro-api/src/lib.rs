//! PayPro: the API's wire types, their mapping into the unified [`payments_model::Payment`],
//! the HTTP client [`PayProClient`] and [`PayProSource`], a [`payments_model::PaymentSource`].
//!
//! Amounts arrive in minor units (cents) and become exact [`payments_model::Money`]; the
//! `state` word and `refunded_amount` together decide the unified status.
//!
//! PayPro's change feeds are read by the same client, one page at a time, newest first:
//! [`PayProClient::events_page`] (each [`Event`]'s payload mapped by its own `type`: a payment,
//! a [`Refund`], a [`Chargeback`], or [`EventPayload::Other`]), [`PayProClient::refunds_page`],
//! [`PayProClient::chargebacks_page`], and one payment by id with [`PayProClient::payment`].
//!
//! What moves the balance besides payments is read too, for statements and reconciliation:
//! [`PayProClient::payouts_page`] and [`PayProClient::payout`] ([`Payout`]: its fee and the
//! fee's VAT, its bank account), and [`PayProClient::balances`]. [`PayProSource`] lists
//! refunds, chargebacks and payouts as the model's `BookRecord`s
//! ([`payments_model::PaymentSource::book_page`]) and answers
//! [`payments_model::PaymentSource::balances`]. These shapes are partly unconfirmed, so they
//! are read tolerantly; a record that still cannot be mapped is set aside with its reason.
//!
//! Its webhooks are verified and read as hints by [`webhook::verify`].
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
//!
//! An event's payload, a completed chargeback:
//!
//! ```
//! use paypro_api::{EventPayload, decode_events_page};
//!
//! let page = decode_events_page(br#"{"type":"list","count":1,"_links":{},"data":[
//!     {"id":"EV1","type":"event","event_type":"chargeback.created","created_at":"2024-08-20T08:00:00+02:00",
//!      "payload":{"id":"PC1","type":"chargeback","amount":1500,"currency":"EUR","payment":"PP1",
//!                 "reason":"MD06","state":"completed","charged_back_at":"2024-08-20T08:00:00+02:00",
//!                 "created_at":"2024-08-20T08:00:00+02:00"}}
//! ]}"#)?;
//! let EventPayload::Chargeback(chargeback) = &page.items[0].payload else { unreachable!() };
//! assert!(chargeback.is_completed());
//! assert_eq!(chargeback.unified_payment_id(), "paypro:PP1");
//! assert_eq!(chargeback.amount.amount_string(), "15.00");
//! # Ok::<(), serde_json::Error>(())
//! ```
#![forbid(unsafe_code)]

mod books;
mod client;
mod feed;
mod map;
pub mod webhook;
mod wire;

pub use books::{Payout, decode_balances, decode_payout, decode_payouts_page};
pub use client::{
    BalancesPage, ChargebacksPage, DEFAULT_BASE_URL, DEFAULT_LIMIT, EventsPage, PayProClient,
    PayProSource, PaymentsPage, PayoutsPage, RefundsPage, TEST_BASE_URL, USER_AGENT,
};
pub use feed::{
    Chargeback, DecodedPage, Event, EventPayload, Refund, decode_chargebacks_page,
    decode_events_page, decode_payment, decode_refunds_page,
};
pub use map::{PROCESSOR, decode_page, map_payments};
pub use wire::{
    List, ListLinks, ObjectLinks, PayMethod, PayMethodField, PayProBalance, PayProBankAccount,
    PayProChargeback, PayProEvent, PayProPayment, PayProPayout, PayProRefund, PaymentLinks,
    PayoutFee,
};
