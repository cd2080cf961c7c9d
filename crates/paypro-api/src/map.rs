//! PayPro records into unified payments.

use payments_model::{
    Currency, MapError, Mapped, Money, Payment, Source, map_records, parse_timestamp, paypro_status,
};
use serde_json::value::RawValue;

use crate::wire::PayProPayment;

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
        let paid_at = self
            .paid_at
            .as_deref()
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
            method: self
                .pay_method
                .as_ref()
                .and_then(|m| m.id())
                .map(str::to_owned),
            processor: PROCESSOR.to_owned(),
            processor_reference: None,
            payment_link_id: None,
            customer_id: self.customer,
            fail_reason: self.fail_reason,
            source_id: self.id,
        })
    }
}

/// Maps the raw items of a page of payments; bad records are set aside whole.
pub fn map_payments(items: &[Box<RawValue>]) -> Mapped {
    map_records(items, PayProPayment::to_payment)
}
