//! PayPro records into unified payments.

use std::borrow::Borrow;

use payments_model::{
    Currency, MapError, Mapped, Money, PageText, Payment, Source, map_all, map_records,
    parse_timestamp, paypro_status,
};
use serde::de::Error as _;
use serde_json::value::RawValue;

use crate::wire::{List, ListLinks, PayMethodField, PayProPayment};

/// The `processor` of every PayPro payment.
pub const PROCESSOR: &str = "paypro";

impl PayProPayment {
    /// Maps this payment. Refused, naming the field: an unknown currency, a negative amount, a
    /// refund below zero or above the amount, a missing or offset-less `created_at`.
    pub fn to_payment(self) -> Result<Payment, MapError> {
        let fail = |field: &str, problem: String| MapError::new(&self.id, field, problem);
        let currency =
            Currency::from_code(&self.currency).map_err(|e| fail("currency", e.to_string()))?;
        if self.amount < 0 {
            return Err(fail("amount", format!("{} is negative", self.amount)));
        }
        let amount = Money::from_minor(self.amount, currency);
        let refunded_amount = match self.refunded_amount {
            Some(cents) if cents < 0 => {
                return Err(fail("refunded_amount", format!("{cents} is negative")));
            }
            Some(cents) if cents > self.amount => {
                return Err(fail(
                    "refunded_amount",
                    format!("{cents} exceeds the amount {}", self.amount),
                ));
            }
            other => other.map(|cents| Money::from_minor(cents, currency)),
        };
        let created_at = match &self.created_at {
            Some(text) => parse_timestamp(text).map_err(|e| fail("created_at", e))?,
            None => return Err(fail("created_at", "is null".to_owned())),
        };
        // PHP writes an unset date as an empty string as often as as null.
        let paid_at = self
            .paid_at
            .as_deref()
            .filter(|text| !text.trim().is_empty())
            .map(parse_timestamp)
            .transpose()
            .map_err(|e| fail("paid_at", e))?;
        Ok(Payment {
            id: Source::PayPro.payment_id(&self.id),
            source: Source::PayPro,
            status: paypro_status(&self.state, &amount, refunded_amount.as_ref()),
            provider_status: self.state,
            amount,
            refunded_amount,
            created_at,
            paid_at,
            payer_name: None,
            description: self.description,
            method: self.pay_method.and_then(PayMethodField::into_id),
            processor: PROCESSOR.to_owned(),
            processor_reference: None,
            payment_link_id: None,
            customer_id: self.customer,
            fail_reason: self.fail_reason,
            charged_back_amount: None,
            source_id: self.id,
        })
    }
}

/// Maps the raw items of a page of payments; bad records are set aside whole.
pub fn map_payments<R: Borrow<RawValue>>(items: &[R]) -> Mapped {
    map_records(items, PayProPayment::to_payment)
}

/// Decodes a page body and maps its payments, returning the page's `_links` too.
///
/// A clean page is decoded once, straight into the wire structs; a page with a bad record (also
/// one whose bytes are not valid UTF-8) is decoded again record by record so that the bad one
/// is set aside whole with its reason.
pub fn decode_page(body: &[u8]) -> Result<(ListLinks, Mapped), serde_json::Error> {
    if let Ok(text) = std::str::from_utf8(body)
        && let Ok(list) = serde_json::from_str::<List<PayProPayment>>(text)
        && let Some(payments) = map_all(list.data, PayProPayment::to_payment)
    {
        return Ok((
            list.links,
            Mapped {
                payments,
                rejected: Vec::new(),
            },
        ));
    }
    let text = PageText::new(body);
    let list: List<&RawValue> = text.parse()?;
    let mapped = text.map_records(&list.data, PayProPayment::to_payment);
    // Following a mangled link would read the wrong page; taking it for none would end early.
    if list
        .links
        .next
        .as_deref()
        .is_some_and(|next| text.is_damaged(next))
    {
        return Err(serde_json::Error::custom(
            "`_links.next` holds bytes that are not valid UTF-8",
        ));
    }
    Ok((list.links, mapped))
}
