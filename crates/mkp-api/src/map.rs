//! MKP records into unified payments and groups.

use payments_model::{
    Currency, Group, MapError, Mapped, Money, Payment, Rejected, Source, decode_records, map_all,
    map_records, mkp_status, parse_timestamp,
};
use serde_json::value::RawValue;

use crate::wire::{PaymentLink, PaymentLinkPayment, SimplePage};

/// The `processor` of a payment whose `integration` MKP left out.
pub const UNKNOWN_PROCESSOR: &str = "unknown";

impl PaymentLinkPayment {
    /// Maps this payment; `link` is the payment link it was listed under, when known, whose
    /// description becomes the payment's description.
    pub fn to_payment(self, link: Option<&Group>) -> Result<Payment, MapError> {
        let fail = |field: &str, problem: String| MapError::new(&self.id, field, problem);
        let currency =
            Currency::from_code(&self.currency).map_err(|e| fail("currency", e.to_string()))?;
        let amount =
            Money::parse(&self.amount, currency).map_err(|e| fail("amount", e.to_string()))?;
        if amount.is_negative() {
            return Err(fail("amount", format!("`{}` is negative", self.amount)));
        }
        let created_at = parse_timestamp(&self.created_at).map_err(|e| fail("createdAt", e))?;
        Ok(Payment {
            id: Source::Mkp.payment_id(&self.id),
            source: Source::Mkp,
            status: mkp_status(&self.status),
            provider_status: self.status,
            amount,
            refunded_amount: None,
            created_at,
            paid_at: None,
            payer_name: self.payers_name,
            description: link.and_then(|l| l.description.clone()),
            method: None,
            processor: self
                .integration
                .unwrap_or_else(|| UNKNOWN_PROCESSOR.to_owned()),
            processor_reference: self.integration_id,
            payment_link_id: self.payment_link_id.or_else(|| link.map(|l| l.id.clone())),
            customer_id: None,
            fail_reason: None,
            source_id: self.id,
        })
    }
}

impl PaymentLink {
    /// The link as a [`Group`] of payments. It is open while its status is `open` or it still
    /// has a checkout URL (MKP nulls the URL once the link can no longer be used).
    ///
    /// A `createdAt` that is not a timestamp with an offset is left out rather than refusing the
    /// link, because the link's payments must still be read.
    pub fn to_group(self) -> Group {
        let open = self.status == "open" || self.checkout_url.is_some();
        Group {
            created_at: self
                .created_at
                .as_deref()
                .and_then(|t| parse_timestamp(t).ok()),
            id: self.id,
            status: self.status,
            open,
            description: self.description,
        }
    }
}

/// Maps the raw items of a page of a link's payments; bad records are set aside whole.
pub fn map_payments(items: &[Box<RawValue>], link: Option<&Group>) -> Mapped {
    map_records(items, |payment: PaymentLinkPayment| {
        payment.to_payment(link)
    })
}

/// Reads the raw items of a page of payment links into groups; a link that cannot be read is
/// set aside whole (its payments cannot be listed without it, and the run must say so).
pub fn map_links(items: &[Box<RawValue>]) -> (Vec<Group>, Vec<Rejected>) {
    let (groups, mut rejected) = decode_records(items, |link: PaymentLink| Ok(link.to_group()));
    for r in &mut rejected {
        r.reason = format!("payment link {}", r.reason);
    }
    (groups, rejected)
}

/// Decodes a page of a link's payments and maps them, returning the page's `next_page_url` too.
///
/// A clean page is decoded once, straight into the wire structs; a page with a bad record is
/// decoded again record by record so that the bad one is set aside whole with its reason.
pub fn decode_payments_page(
    body: &[u8],
    link: Option<&Group>,
) -> Result<(Option<String>, Mapped), serde_json::Error> {
    if let Ok(page) = serde_json::from_slice::<SimplePage<PaymentLinkPayment>>(body)
        && let Some(payments) = map_all(page.data, |p| p.to_payment(link))
    {
        return Ok((
            page.next_page_url,
            Mapped {
                payments,
                rejected: Vec::new(),
            },
        ));
    }
    let page: SimplePage = serde_json::from_slice(body)?;
    Ok((page.next_page_url, map_payments(&page.data, link)))
}
