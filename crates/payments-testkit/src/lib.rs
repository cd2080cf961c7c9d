//! Helpers shared by this workspace's tests and benchmarks (a dev-dependency only): clients
//! pointed at a [`Sandbox`], and the sandbox's whole data set as unified payments, mapped by
//! the provider crates' mapping from the sandbox's own records, so a sync over HTTP can be
//! compared with it exactly.
#![forbid(unsafe_code)]

use std::sync::Arc;

use mkp_api::{MkpClient, MkpSource, map_links, map_payments};
use payments_model::{Payment, PaymentSource, RateLimit};
use payments_sandbox::Sandbox;
use paypro_api::{PayProClient, PayProSource};
use serde_json::value::RawValue;

/// An MKP source reading `sandbox` with its key, declaring the sandbox's rate limit.
pub fn mkp(sandbox: &Sandbox) -> Arc<dyn PaymentSource> {
    let config = MkpClient::config(&sandbox.mkp_base_url(), sandbox.config().mkp_key.as_str());
    let rate = sandbox
        .config()
        .mkp_rate_limit
        .map(|window| RateLimit::per(window.limit, window.window));
    Arc::new(
        MkpSource::new(MkpClient::with_config(config).expect("the sandbox's MKP address is valid"))
            .with_rate_limit(rate),
    )
}

/// A PayPro source reading `sandbox` with its key.
pub fn paypro(sandbox: &Sandbox) -> Arc<dyn PaymentSource> {
    let config = PayProClient::config(
        &sandbox.paypro_base_url(),
        sandbox.config().paypro_key.as_str(),
    );
    Arc::new(PayProSource::new(
        PayProClient::with_config(config).expect("the sandbox's PayPro address is valid"),
    ))
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
    all.extend(paypro_api::map_payments(&records).payments);
    all.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    all
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
