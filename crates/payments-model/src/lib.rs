//! Pure types for one exact ledger of MijnKlantportaal (MKP) and PayPro payments.
//!
//! - [`Payment`]: the unified record, with [`PaymentRecord`] its flat export form.
//! - [`Money`] and [`Currency`]: exact amounts on [`rust_decimal::Decimal`], never floats.
//! - [`PaymentStatus`]: one status vocabulary, with [`mkp_status`] and [`paypro_status`]
//!   mapping each provider's words into it.
//! - [`PaymentSource`]: the boundary the provider crates implement and `payments-sync` drives.
//!
//! This crate does no I/O and starts no runtime: it is safe to depend on from anywhere.
//!
//! # Examples
//!
//! ```
//! use payments_model::{paypro_status, Currency, Money, PaymentStatus};
//!
//! let amount = Money::from_minor(1000, Currency::EUR);
//! let refunded = Money::parse("10.00", Currency::EUR)?;
//! assert_eq!(paypro_status("paid", &amount, Some(&refunded)), PaymentStatus::Refunded);
//! assert_eq!(
//!     paypro_status("settled", &amount, None),
//!     PaymentStatus::Unknown("settled".to_owned())
//! );
//! assert!(PaymentStatus::Refunded.is_final());
//! # Ok::<(), payments_model::MoneyError>(())
//! ```
#![forbid(unsafe_code)]

mod books;
mod hint;
mod mapping;
mod money;
mod payment;
mod source;
mod status;

pub use books::{
    BankAccount, BookKind, BookRecord, Movement, MovementKind, payment_movement, record_movements,
};
pub use hint::{Delivery, Hint};
pub use mapping::{
    MapError, Mapped, PageText, Rejected, decode_records, map_all, map_records, record_id, tolerant,
};
pub use money::{Currency, Money, MoneyError};
pub use payment::{Payment, PaymentRecord, Source, format_timestamp, parse_timestamp};
pub use source::{
    Balance, Balances, BookPage, Change, ChangeKind, ChangePage, Cursor, Group, ListingOrder,
    OneGroup, OnePayment, Page, PaymentSource, RateLimit, RateLimitHeaders, SourceError,
    TransportKind,
};
pub use status::{PaymentStatus, knows_status_word, mkp_status, paypro_status};

/// Re-exported so that users of the model need not depend on these crates themselves.
pub use async_trait::async_trait;
pub use chrono;
pub use rust_decimal;
