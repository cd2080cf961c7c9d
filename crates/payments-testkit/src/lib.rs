//! Helpers shared by this workspace's tests and benchmarks (a dev-dependency only): clients
//! pointed at a [`Sandbox`], and the sandbox's whole data set as unified payments, mapped by
//! the provider crates' mapping from the sandbox's own records, so a sync over HTTP can be
//! compared with it exactly.
#![forbid(unsafe_code)]

pub mod peak;
pub mod postgres;
pub mod prometheus;
pub mod store_suite;

use std::collections::BTreeSet;
use std::sync::Arc;

use mkp_api::{map_links, map_payments};
use payments_model::{Payment, PaymentSource, Source};
use payments_sandbox::{Sandbox, Spoiled};
use payments_sources::{BuildOptions, RateLimitSpec, SourceSpec};
use secrecy::SecretString;
use serde_json::value::RawValue;

/// An MKP source reading `sandbox` with its key, declaring the sandbox's rate limit (none, when
/// the sandbox has none).
pub fn mkp(sandbox: &Sandbox) -> Arc<dyn PaymentSource> {
    mkp_with_body_cap(sandbox, None)
}

/// [`mkp`] with a client that accepts bodies of at most `max_body_bytes` (the client's default
/// for `None`).
pub fn mkp_with_body_cap(
    sandbox: &Sandbox,
    max_body_bytes: Option<usize>,
) -> Arc<dyn PaymentSource> {
    let rate_limit = match sandbox.config().mkp_rate_limit {
        Some(window) => RateLimitSpec::Per {
            limit: window.limit,
            window: window.window,
        },
        None => RateLimitSpec::Unlimited,
    };
    let spec = SourceSpec::new(Source::Mkp)
        .with_base_url(sandbox.mkp_base_url())
        .with_rate_limit(rate_limit);
    spec.build_with(
        &SecretString::from(sandbox.config().mkp_key.clone()),
        BuildOptions::max_body_bytes(max_body_bytes),
    )
    .expect("the sandbox's MKP spec is valid")
}

/// A PayPro source reading `sandbox` with its key.
pub fn paypro(sandbox: &Sandbox) -> Arc<dyn PaymentSource> {
    paypro_with_body_cap(sandbox, None)
}

/// [`paypro`] with a client that accepts bodies of at most `max_body_bytes` (the client's
/// default for `None`).
pub fn paypro_with_body_cap(
    sandbox: &Sandbox,
    max_body_bytes: Option<usize>,
) -> Arc<dyn PaymentSource> {
    let spec = SourceSpec::new(Source::PayPro).with_base_url(sandbox.paypro_base_url());
    spec.build_with(
        &SecretString::from(sandbox.config().paypro_key.clone()),
        BuildOptions::max_body_bytes(max_body_bytes),
    )
    .expect("the sandbox's PayPro spec is valid")
}

/// A record as the raw JSON a provider page holds.
pub fn raw<T: serde::Serialize>(record: &T) -> Box<RawValue> {
    RawValue::from_string(serde_json::to_string(record).expect("records serialize"))
        .expect("serialized JSON is valid")
}

/// The sandbox's whole data set as unified payments, sorted like a store's export
/// (`created_at`, then `id`).
pub fn data_set(sandbox: &Sandbox) -> Vec<Payment> {
    let (groups, _) = map_links(&sandbox.mkp_links().iter().map(raw).collect::<Vec<_>>());
    let mut all: Vec<Payment> = groups
        .iter()
        .flat_map(|group| {
            let records: Vec<_> = sandbox.mkp_payments(&group.id).iter().map(raw).collect();
            map_payments(&records, Some(group)).payments
        })
        .collect();
    let records: Vec<_> = sandbox.paypro_payments().iter().map(raw).collect();
    let mut paypro = paypro_api::map_payments(&records).payments;
    charge_back(&mut paypro, sandbox);
    all.extend(paypro);
    all.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    all
}

/// Applies the latest chargeback of each PayPro payment, as a ledger learns it from PayPro's list
/// of chargebacks: a completed one makes the payment `charged_back` with its amount.
fn charge_back(payments: &mut [Payment], sandbox: &Sandbox) {
    let mut latest = std::collections::HashMap::new();
    // Newest first: the first chargeback of a payment is its latest.
    for chargeback in sandbox.paypro_chargebacks() {
        latest
            .entry(chargeback.payment.clone())
            .or_insert((chargeback.state == "completed").then_some(chargeback.amount));
    }
    for payment in payments {
        if let Some(Some(amount)) = latest.get(&payment.source_id) {
            payment.charged_back_amount = Some(payments_model::Money::from_minor(
                *amount,
                payment.currency(),
            ));
            payment.status = payments_model::PaymentStatus::ChargedBack;
        }
    }
}

/// The part of the sandbox's data set a correct sync reads under the faults in force
/// ([`Sandbox::spoiled`]), sorted like [`data_set`]: every payment but those served spoiled and
/// those of links whose payments cannot be read (an id with path characters, or pages over the
/// size, for a client whose body cap is below [`payments_sandbox::OversizedLinks::bytes`]).
pub fn readable_data_set(sandbox: &Sandbox) -> Vec<Payment> {
    let spoiled = sandbox.spoiled();
    let unread = unread_links(&spoiled);
    let mut skipped: BTreeSet<String> = spoiled
        .paypro_payments
        .iter()
        .map(|id| payments_model::Source::PayPro.payment_id(id))
        .collect();
    skipped.extend(
        spoiled
            .mkp_payments
            .iter()
            .map(|p| payments_model::Source::Mkp.payment_id(&p.id)),
    );
    data_set(sandbox)
        .into_iter()
        .filter(|p| !skipped.contains(&p.id))
        .filter(|p| {
            p.source != payments_model::Source::Mkp
                || p.payment_link_id
                    .as_ref()
                    .is_none_or(|link| !unread.contains(link))
        })
        .collect()
}

/// The provider ids a correct sync under the faults in force names in its quarantine, and no
/// other: the records served spoiled (MKP payments only when their link is read), the ids of
/// links with path characters as listed, and the links whose payments pages are over the size
/// (for a client whose body cap is below it).
pub fn spoiled_ids(sandbox: &Sandbox) -> BTreeSet<String> {
    let spoiled = sandbox.spoiled();
    let unread = unread_links(&spoiled);
    let mut ids: BTreeSet<String> = spoiled.paypro_payments.iter().cloned().collect();
    ids.extend(
        spoiled
            .mkp_payments
            .iter()
            .filter(|p| !unread.contains(&p.link_id))
            .map(|p| p.id.clone()),
    );
    ids.extend(spoiled.mkp_path_links.iter().map(|l| l.served_id.clone()));
    ids.extend(
        spoiled
            .mkp_oversized_links
            .iter()
            .filter(|id| !spoiled.mkp_path_links.iter().any(|l| &l.id == *id))
            .cloned(),
    );
    ids
}

/// The links (by generated id) whose payments a sync does not read.
fn unread_links(spoiled: &Spoiled) -> BTreeSet<String> {
    spoiled
        .mkp_path_links
        .iter()
        .map(|l| l.id.clone())
        .chain(spoiled.mkp_oversized_links.iter().cloned())
        .collect()
}

/// DESIGN's incremental scenario: keeps `open` links open (ones with a single page of payments)
/// and closes every other link with all its payments settled (unsettled ones become `failed`).
pub fn close_and_settle_all_links_but(sandbox: &Sandbox, open: usize) {
    let links = sandbox.mkp_links();
    let kept: Vec<&str> = links
        .iter()
        .filter(|l| sandbox.mkp_payments(&l.id).len() <= sandbox.config().mkp_per_page)
        .take(open)
        .map(|l| l.id.as_str())
        .collect();
    for link in &links {
        if kept.contains(&link.id.as_str()) {
            sandbox.set_mkp_link_status(&link.id, "open");
            continue;
        }
        sandbox.set_mkp_link_status(&link.id, "closed");
        for payment in sandbox.mkp_payments(&link.id) {
            if !matches!(
                payment.status.as_str(),
                "paid" | "failed" | "canceled" | "chargebacked"
            ) {
                sandbox.set_mkp_payment_status(&payment.id, "failed");
            }
        }
    }
}
