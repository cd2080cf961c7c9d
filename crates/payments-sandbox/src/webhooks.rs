//! Webhook delivery: each change the sandbox makes is POSTed to the configured receivers, signed
//! as each provider signs, from a background task (the API never waits for it), with faults a
//! real sender shows: losses, redeliveries, reordering, delay, wrong signatures.
//!
//! The sandbox signs with `hmac` and `sha2` itself: it depends on no crate of the workspace, so
//! it checks the ledger's verification rather than sharing it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{KeyInit, Mac};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::{Api, MkpLink, PayProEvent};

/// Where and how the sandbox delivers webhooks ([`crate::Sandbox::set_webhooks`]). Its `Debug`
/// shows no secret.
#[derive(Clone, PartialEq)]
pub struct WebhookDelivery {
    /// Where PayPro events are POSTed (`http://127.0.0.1:8080/webhooks/paypro`); `None`: not
    /// delivered.
    pub paypro_url: Option<String>,
    /// Where MKP's `payment-link-*` webhooks are POSTed; `None`: not delivered.
    pub mkp_url: Option<String>,
    /// PayPro's webhook secret: `PayPro-Timestamp` and `PayPro-Signature` (lowercase hex
    /// HMAC-SHA256 over `"{timestamp}.{body}"`) are sent when set; without it PayPro webhooks
    /// go unsigned (a receiver must refuse them).
    pub paypro_secret: Option<String>,
    /// MKP's webhook secret: `X-Webhook-Signature` (lowercase hex HMAC-SHA256 of the body) is
    /// sent when set.
    pub mkp_secret: Option<String>,
    /// The share of deliveries lost (each copy on its own), 0 to 1.
    pub drop_rate: f64,
    /// How many times each webhook is sent (at least 1), as a sender that retries would.
    pub duplicate: u32,
    /// Holds webhooks made close together (up to 8, within 50 ms) and sends them shuffled.
    pub reorder: bool,
    /// No webhook is sent sooner than this after its change.
    pub delay: Duration,
    /// The share of copies sent with a wrong signature, 0 to 1 (only when signed).
    pub mis_sign_rate: f64,
}

impl Default for WebhookDelivery {
    fn default() -> WebhookDelivery {
        WebhookDelivery {
            paypro_url: None,
            mkp_url: None,
            paypro_secret: None,
            mkp_secret: None,
            drop_rate: 0.0,
            duplicate: 1,
            reorder: false,
            delay: Duration::ZERO,
            mis_sign_rate: 0.0,
        }
    }
}

impl std::fmt::Debug for WebhookDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "[redacted]");
        f.debug_struct("WebhookDelivery")
            .field("paypro_url", &self.paypro_url)
            .field("mkp_url", &self.mkp_url)
            .field("paypro_secret", &secret(&self.paypro_secret))
            .field("mkp_secret", &secret(&self.mkp_secret))
            .field("drop_rate", &self.drop_rate)
            .field("duplicate", &self.duplicate)
            .field("reorder", &self.reorder)
            .field("delay", &self.delay)
            .field("mis_sign_rate", &self.mis_sign_rate)
            .finish()
    }
}

/// One attempt at delivering a webhook, as the sandbox made it
/// ([`crate::Sandbox::webhook_deliveries`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookAttempt {
    /// Which provider's webhook.
    pub api: Api,
    /// Where it was (or would have been) sent.
    pub url: String,
    /// What it is about: the PayPro event's id (`EV…`) or the MKP link's (`plk_…`).
    pub about: String,
    /// The event type: `payment.paid`, `payment-link-paid`, ….
    pub kind: String,
    /// Which copy, from 1 to [`WebhookDelivery::duplicate`].
    pub copy: u32,
    /// Lost on purpose ([`WebhookDelivery::drop_rate`]): nothing was sent.
    pub dropped: bool,
    /// Sent with a wrong signature on purpose ([`WebhookDelivery::mis_sign_rate`]).
    pub mis_signed: bool,
    /// The receiver's HTTP status; `None` when dropped or not answered.
    pub status: Option<u16>,
    /// Why there was no answer (connection refused, timeout).
    pub error: Option<String>,
}

/// A change to announce, as the data set made it.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // a few at a time, moved once into the channel
pub(crate) enum Outgoing {
    /// The event just added to PayPro's feed.
    PayPro(PayProEvent),
    /// An MKP link, as served after the change, and the webhook's type.
    Mkp { kind: &'static str, link: MkpLink },
}

/// The sending side, kept in the data set: every change is handed to it without waiting.
#[derive(Debug)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<(Instant, Outgoing)>,
    pending: Arc<AtomicUsize>,
}

impl Outbox {
    /// Hands `outgoing` to the delivery task.
    pub(crate) fn send(&self, outgoing: Outgoing) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.send((Instant::now(), outgoing)).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// What the delivery task shares with the sandbox.
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    pub(crate) log: Mutex<Vec<WebhookAttempt>>,
    pub(crate) pending: Arc<AtomicUsize>,
}

/// Starts a delivery task for `config` (within a Tokio runtime); the returned outbox feeds it,
/// and the task ends when the outbox is dropped.
pub(crate) fn start(
    config: WebhookDelivery,
    seed: u64,
    origin: String,
    deliveries: Arc<Deliveries>,
) -> Outbox {
    let (tx, rx) = mpsc::unbounded_channel();
    let outbox = Outbox {
        tx,
        pending: deliveries.pending.clone(),
    };
    tokio::spawn(run(config, seed, origin, deliveries, rx));
    outbox
}

async fn run(
    config: WebhookDelivery,
    seed: u64,
    origin: String,
    deliveries: Arc<Deliveries>,
    mut rx: mpsc::UnboundedReceiver<(Instant, Outgoing)>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a plain HTTP client builds");
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x00E0_B00C_u64);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        if config.reorder {
            let window = tokio::time::sleep(Duration::from_millis(50));
            tokio::pin!(window);
            while batch.len() < 8 {
                tokio::select! {
                    next = rx.recv() => match next {
                        Some(next) => batch.push(next),
                        None => break,
                    },
                    () = &mut window => break,
                }
            }
            shuffle(&mut batch, &mut rng);
        }
        let count = batch.len();
        for (made, outgoing) in batch {
            tokio::time::sleep_until(made + config.delay).await;
            deliver(&config, &origin, &http, &mut rng, &deliveries, outgoing).await;
        }
        deliveries.pending.fetch_sub(count, Ordering::SeqCst);
    }
}

/// Fisher–Yates, from the seeded stream.
fn shuffle<T>(items: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// A number in [0, 1) from the seeded stream.
fn roll(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

async fn deliver(
    config: &WebhookDelivery,
    origin: &str,
    http: &reqwest::Client,
    rng: &mut ChaCha8Rng,
    deliveries: &Deliveries,
    outgoing: Outgoing,
) {
    let (api, url, secret, about, kind, body) = match &outgoing {
        Outgoing::PayPro(event) => (
            Api::PayPro,
            &config.paypro_url,
            &config.paypro_secret,
            event.id.clone(),
            event.event_type.clone(),
            crate::server::event_value(event, origin).to_string(),
        ),
        Outgoing::Mkp { kind, link } => (
            Api::Mkp,
            &config.mkp_url,
            &config.mkp_secret,
            link.id.clone(),
            (*kind).to_owned(),
            json!({ "type": kind, "data": link }).to_string(),
        ),
    };
    let Some(url) = url else {
        return;
    };
    for copy in 1..=config.duplicate.max(1) {
        let dropped = roll(rng) < config.drop_rate;
        let mis_signed = !dropped && secret.is_some() && roll(rng) < config.mis_sign_rate;
        let mut attempt = WebhookAttempt {
            api,
            url: url.clone(),
            about: about.clone(),
            kind: kind.clone(),
            copy,
            dropped,
            mis_signed,
            status: None,
            error: None,
        };
        if !dropped {
            let mut request = http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            if let Some(secret) = secret {
                // A wrong signature is the right one made with another key.
                let key = if mis_signed {
                    format!("{secret}-wrong")
                } else {
                    secret.clone()
                };
                request = match api {
                    Api::PayPro => {
                        let timestamp = chrono::Utc::now().timestamp().to_string();
                        let signature =
                            hmac_hex(&key, &[timestamp.as_bytes(), b".", body.as_bytes()]);
                        request
                            .header("PayPro-Timestamp", timestamp)
                            .header("PayPro-Signature", signature)
                    }
                    Api::Mkp => {
                        request.header("X-Webhook-Signature", hmac_hex(&key, &[body.as_bytes()]))
                    }
                };
            }
            match request.send().await {
                Ok(response) => attempt.status = Some(response.status().as_u16()),
                Err(error) => attempt.error = Some(describe(&error)),
            }
        }
        deliveries
            .log
            .lock()
            .expect("webhook log lock")
            .push(attempt);
    }
}

/// A transport error in words, with its causes.
fn describe(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    message.chars().filter(|c| !c.is_control()).collect()
}

/// Lowercase hex HMAC-SHA256 of `parts`, one after the other, keyed with `key`.
pub(crate) fn hmac_hex(key: &str, parts: &[&[u8]]) -> String {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes())
        .expect("HMAC accepts keys of every length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_rfc_4231_says() {
        assert_eq!(
            hmac_hex("Jefe", &[b"what do ya want ", b"for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let config = WebhookDelivery {
            paypro_secret: Some("whsec_sandbox_a".into()),
            mkp_secret: Some("whsec_sandbox_b".into()),
            ..WebhookDelivery::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("whsec_sandbox"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }

    #[test]
    fn shuffles_deterministically() {
        let mut a: Vec<u32> = (0..8).collect();
        let mut b = a.clone();
        shuffle(&mut a, &mut ChaCha8Rng::seed_from_u64(3));
        shuffle(&mut b, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(a, b);
        assert_ne!(a, (0..8).collect::<Vec<_>>());
    }
}
