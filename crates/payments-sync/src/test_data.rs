//! Literal data for the policy's unit tests: payments, groups, pages, cursors and changes built
//! in the test, with no source, no server and no store.

use chrono::{DateTime, FixedOffset, Utc};
use payments_model::{
    Change, ChangeKind, ChangePage, Currency, Cursor, Group, Money, Page, Payment, PaymentStatus,
    Rejected, Source,
};

/// A time, from RFC 3339 text.
pub(crate) fn at(text: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(text).expect("an RFC 3339 time")
}

/// A time in UTC, from RFC 3339 text.
pub(crate) fn utc(text: &str) -> DateTime<Utc> {
    at(text).with_timezone(&Utc)
}

/// An amount in euro cents.
pub(crate) fn eur(cents: i64) -> Money {
    Money::from_minor(cents, Currency::EUR)
}

/// The source the literal payments come from (any: the rules are the engine's, whoever the
/// provider).
pub(crate) fn source() -> Source {
    Source::ALL[0]
}

/// A paid payment of €12.95 with provider id `source_id`, created at `created_at`.
pub(crate) fn payment(source_id: &str, created_at: &str) -> Payment {
    let source = source();
    Payment {
        id: source.payment_id(source_id),
        source,
        source_id: source_id.to_owned(),
        status: PaymentStatus::Paid,
        provider_status: "paid".into(),
        amount: eur(1295),
        refunded_amount: None,
        created_at: at(created_at),
        paid_at: None,
        payer_name: None,
        description: None,
        method: None,
        processor: "a processor".into(),
        processor_reference: None,
        payment_link_id: None,
        customer_id: None,
        fail_reason: None,
        charged_back_amount: None,
    }
}

/// A record that could not be mapped, set aside under `source_id`.
pub(crate) fn rejected(source_id: &str) -> Rejected {
    Rejected {
        source_id: Some(source_id.to_owned()),
        reason: "a literal record that does not map".into(),
        raw: format!(r#"{{"id":"{source_id}"}}"#),
    }
}

/// A group (an MKP link, say) with `status`, open or not.
pub(crate) fn group(id: &str, status: &str, open: bool) -> Group {
    Group {
        id: id.to_owned(),
        status: status.to_owned(),
        open,
        description: None,
        created_at: None,
    }
}

/// A cursor where the top-level listing continues at `listing`.
pub(crate) fn listing(listing: &str) -> Cursor {
    Cursor {
        listing: Some(listing.to_owned()),
        ..Cursor::default()
    }
}

/// A page of `payments`, continuing at `next`.
pub(crate) fn page(payments: Vec<Payment>, next: Option<Cursor>) -> Page {
    Page {
        payments,
        next,
        ..Page::default()
    }
}

/// A change that says the payment `payment` was touched.
pub(crate) fn touched(id: &str, when: &str, payment: &str) -> Change {
    Change {
        id: id.to_owned(),
        at: at(when),
        record: None,
        kind: ChangeKind::Touched {
            source_id: payment.to_owned(),
        },
    }
}

/// A change that carries the payment as it was then.
pub(crate) fn carried(id: &str, when: &str, payment: Payment) -> Change {
    Change {
        id: id.to_owned(),
        at: at(when),
        record: None,
        kind: ChangeKind::Payment(Box::new(payment)),
    }
}

/// Chargeback `chargeback` of `cents` on the payment with provider id `payment`, made at
/// `when`, completed or not.
pub(crate) fn charged_back(
    chargeback: &str,
    when: &str,
    payment: &str,
    cents: i64,
    completed: bool,
) -> Change {
    Change {
        id: format!("event of {chargeback} at {when}"),
        at: at(when),
        record: None,
        kind: ChangeKind::ChargedBack {
            source_id: payment.to_owned(),
            payment_id: source().payment_id(payment),
            amount: eur(cents),
            completed,
            chargeback_id: chargeback.to_owned(),
            record: format!(r#"{{"id":"{chargeback}"}}"#),
        },
    }
}

/// A page of changes, continuing at `next` (a cursor whose listing is `next`).
pub(crate) fn change_page(changes: Vec<Change>, next: Option<&str>) -> ChangePage {
    ChangePage {
        changes,
        next: next.map(listing),
        ..ChangePage::default()
    }
}
