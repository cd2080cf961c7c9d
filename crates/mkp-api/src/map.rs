//! MKP records into unified payments and groups.

use std::borrow::Borrow;

use payments_model::{
    Currency, Group, MapError, Mapped, Money, PageText, Payment, Rejected, Source, decode_records,
    map_all, map_records, mkp_status, parse_timestamp,
};
use serde::de::Error as _;
use serde_json::value::RawValue;

use crate::wire::{PaymentLink, PaymentLinkPayment, SimplePage};

/// The `processor` of a payment whose `integration` MKP left out.
pub const UNKNOWN_PROCESSOR: &str = "unknown";

impl PaymentLinkPayment {
    /// Maps this payment; `link` is the payment link it was listed under, when known, whose
    /// description becomes the payment's description.
    ///
    /// The amount may have spaces around it (`" 12.95 "`); an amount that is not a plain
    /// decimal (`"1,000.00"`, `"1.000,00"`), not exact in its currency (`"12.951"` EUR) or
    /// negative is refused, as is a `createdAt` without an offset, naming the field.
    pub fn to_payment(self, link: Option<&Group>) -> Result<Payment, MapError> {
        let fail = |field: &str, problem: String| MapError::new(&self.id, field, problem);
        let currency =
            Currency::from_code(&self.currency).map_err(|e| fail("currency", e.to_string()))?;
        let amount = Money::parse(self.amount.trim(), currency)
            .map_err(|e| fail("amount", e.to_string()))?;
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
            charged_back_amount: None,
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

    /// The link as a [`Group`], refused (naming the field `id`) when its id could not be sent
    /// as one segment of a URL path: its payments cannot be requested.
    pub fn try_to_group(self) -> Result<Group, MapError> {
        payments_http::path_segment(&self.id).map_err(|problem| {
            MapError::new(
                &self.id,
                "id",
                format!("{problem}; its payments are not requested"),
            )
        })?;
        Ok(self.to_group())
    }
}

/// Maps the raw items of a page of a link's payments; bad records are set aside whole.
pub fn map_payments<R: Borrow<RawValue>>(items: &[R], link: Option<&Group>) -> Mapped {
    map_records(items, |payment: PaymentLinkPayment| {
        payment.to_payment(link)
    })
}

/// Reads the raw items of a page of payment links into groups; a link that cannot be read, or
/// whose id could not be sent in a URL path, is set aside whole (its payments cannot be listed
/// without it, and the run must say so).
pub fn map_links<R: Borrow<RawValue>>(items: &[R]) -> (Vec<Group>, Vec<Rejected>) {
    let (groups, rejected) = decode_records(items, PaymentLink::try_to_group);
    (groups, name_links(rejected))
}

fn name_links(mut rejected: Vec<Rejected>) -> Vec<Rejected> {
    for r in &mut rejected {
        r.reason = format!("payment link {}", r.reason);
    }
    rejected
}

/// A page of payment links as [`decode_links_page`] reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodedLinks {
    /// The page's `next_page_url`, as sent (absolute or relative).
    pub next_page_url: Option<String>,
    /// The links that could be read.
    pub groups: Vec<Group>,
    /// The links that could not, kept whole with the reason.
    pub rejected: Vec<Rejected>,
}

/// Decodes a page of payment links. A link that cannot be read (also when its bytes are not
/// valid UTF-8) is set aside whole; the others become groups.
pub fn decode_links_page(body: &[u8]) -> Result<DecodedLinks, serde_json::Error> {
    let text = PageText::new(body);
    let page: SimplePage<&RawValue> = text.parse()?;
    let (groups, rejected) = text.decode_records(&page.data, PaymentLink::try_to_group);
    Ok(DecodedLinks {
        next_page_url: checked_next(&text, page.next_page_url)?,
        groups,
        rejected: name_links(rejected),
    })
}

/// Decodes a page of a link's payments and maps them, returning the page's `next_page_url` too.
///
/// A clean page is decoded once, straight into the wire structs; a page with a bad record (also
/// one whose bytes are not valid UTF-8) is decoded again record by record so that the bad one
/// is set aside whole with its reason.
pub fn decode_payments_page(
    body: &[u8],
    link: Option<&Group>,
) -> Result<(Option<String>, Mapped), serde_json::Error> {
    if let Ok(text) = std::str::from_utf8(body)
        && let Ok(page) = serde_json::from_str::<SimplePage<PaymentLinkPayment>>(text)
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
    let text = PageText::new(body);
    let page: SimplePage<&RawValue> = text.parse()?;
    let mapped = text.map_records(&page.data, |payment: PaymentLinkPayment| {
        payment.to_payment(link)
    });
    Ok((checked_next(&text, page.next_page_url)?, mapped))
}

/// The next-page link, refused when it held bytes that were not valid UTF-8: following a
/// mangled link would read the wrong page, and taking it for none would end the walk early.
fn checked_next(
    text: &PageText<'_>,
    next: Option<String>,
) -> Result<Option<String>, serde_json::Error> {
    match next {
        Some(next) if text.is_damaged(&next) => Err(serde_json::Error::custom(
            "the `next_page_url` holds bytes that are not valid UTF-8",
        )),
        next => Ok(next),
    }
}
