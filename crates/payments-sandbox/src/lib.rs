//! A local HTTP server that behaves like the MijnKlantportaal (MKP) and PayPro APIs, for
//! tests, benchmarks, the demo and your own integration tests. It listens on loopback only.
//!
//! - The same paths, envelopes and auth as the real APIs: MKP under `{base}/mkp/v1`
//!   (Laravel simple pagination with absolute `next_page_url`, 15 per page, Bearer auth, a
//!   rolling-window rate limit with `X-RateLimit-*` headers and the documented 429 body), PayPro
//!   under `{base}/paypro` (newest first, `limit` 1–100, opaque cursors in `_links.next`).
//! - A deterministic data set from a seed and a size: links of every status, 0 to hundreds of
//!   payments per link, PayPro payments of every state with refunds and chargebacks, unknown
//!   status words, null payer names. Records are computed from `(seed, index)` on demand, so
//!   a million payments cost no memory.
//! - Fault knobs, each off by default: latency, 5xx rate, 429 bursts (`Retry-After` in seconds
//!   or as an HTTP date), dropped connections, truncated bodies, payments inserted while a sync
//!   pages, next links to a foreign host, a repeating cursor.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use payments_sandbox::{Sandbox, SandboxConfig};
//!
//! let sandbox = Sandbox::start(SandboxConfig { mkp_links: 3, paypro_payments: 5, ..SandboxConfig::default() }).await?;
//! assert!(sandbox.mkp_base_url().ends_with("/mkp/v1"));
//! assert_eq!(sandbox.paypro_payments().len(), 5);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod data;
mod server;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use tokio::sync::watch;

pub use data::{MkpLink, MkpPayment, PayMethod, PayProPayment, default_anchor};

use data::{Data, Generator, Overlay};

/// Which API a request was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    /// MijnKlantportaal.
    Mkp,
    /// PayPro.
    PayPro,
}

/// How a 429 states its wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RetryAfterForm {
    /// `Retry-After: 2`.
    #[default]
    Seconds,
    /// `Retry-After: Sat, 21 Nov 2026 10:00:00 GMT`.
    HttpDate,
}

/// A burst of 429 answers, regardless of the rate limit: request numbers `n` (counted from 1
/// over both APIs) with `n ≥ every` and `n % every < length` are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Burst {
    /// The period of the bursts, in requests.
    pub every: u64,
    /// How many requests each burst refuses.
    pub length: u64,
    /// The wait each 429 asks for.
    pub retry_after: Duration,
    /// How the wait is written.
    pub form: RetryAfterForm,
}

/// MKP's rolling-window rate limit: `limit` requests per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitWindow {
    /// Requests allowed per window.
    pub limit: u32,
    /// The window.
    pub window: Duration,
}

/// Faults to inject, each off by default. Rates are probabilities per request, drawn
/// deterministically from the seed and the request number.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// Added to every request.
    pub latency: Duration,
    /// Share of requests answered 502/503.
    pub server_error_rate: f64,
    /// Share of requests whose connection is dropped without an answer.
    pub reset_rate: f64,
    /// Share of successful answers whose body is cut in half.
    pub truncate_rate: f64,
    /// Bursts of 429 answers.
    pub burst_429: Option<Burst>,
    /// Every `n`th request inserts a new PayPro payment at the top of the list and a new
    /// pending payment into the first open MKP link, as real traffic would during a sync.
    pub insert_every: Option<u64>,
    /// Next-page links point at this origin (`http://127.0.0.1:9`) instead of the sandbox.
    pub foreign_next: Option<String>,
    /// Next-page links point at the page just served.
    pub repeat_cursor: bool,
    /// Every Nth PayPro payment of the listing (by position, from 1) is served with an amount
    /// that is not whole cents (`"12.951"`), so a sync must quarantine it and keep the rest.
    pub bad_record_every: Option<u64>,
}

/// How to start a sandbox.
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxConfig {
    /// Seeds the data set: the same seed and sizes give the same data.
    pub seed: u64,
    /// How many MKP payment links.
    pub mkp_links: usize,
    /// How many PayPro payments.
    pub paypro_payments: usize,
    /// The newest generated PayPro payment's time; the rest go back from there.
    pub anchor: DateTime<Utc>,
    /// The MKP key with the `paymentlinks.read` scope.
    pub mkp_key: String,
    /// An MKP key without that scope (answered 403).
    pub mkp_scopeless_key: String,
    /// The PayPro key.
    pub paypro_key: String,
    /// MKP's page size (15, like the real API).
    pub mkp_per_page: usize,
    /// MKP's rate limit (60 per minute, like the real API); `None` turns it off.
    pub mkp_rate_limit: Option<RateLimitWindow>,
    /// The port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Faults to inject.
    pub faults: Faults,
}

impl Default for SandboxConfig {
    fn default() -> SandboxConfig {
        SandboxConfig {
            seed: 1,
            mkp_links: 60,
            paypro_payments: 500,
            anchor: default_anchor(),
            mkp_key: "mkp_sandbox_key".to_owned(),
            mkp_scopeless_key: "mkp_sandbox_noscope".to_owned(),
            paypro_key: "pp_sandbox_key".to_owned(),
            mkp_per_page: 15,
            mkp_rate_limit: Some(RateLimitWindow {
                limit: 60,
                window: Duration::from_secs(60),
            }),
            port: 0,
            faults: Faults::default(),
        }
    }
}

/// One request as the sandbox saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// Which API.
    pub api: Api,
    /// The path and query (`/paypro/payments?limit=100&cursor=…`).
    pub path_and_query: String,
    /// The status answered; 0 when the connection was dropped instead.
    pub status: u16,
}

pub(crate) struct Shared {
    config: SandboxConfig,
    faults: RwLock<Faults>,
    data: RwLock<Data>,
    requests: AtomicU64,
    limiter: Mutex<server::Window>,
    log: Mutex<Vec<LoggedRequest>>,
}

impl Shared {
    fn next_request_number(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn faults(&self) -> Faults {
        self.faults.read().expect("faults lock").clone()
    }

    /// A number in [0, 1) fixed by the seed, the request number and the fault kind.
    fn roll(&self, request: u64, kind: u64) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ 0x5A5D_B0C5);
        rng.set_stream(100 + kind);
        rng.set_word_pos(u128::from(request) * 2);
        (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn log(&self, api: Api, path_and_query: &str, status: u16) {
        self.log.lock().expect("log lock").push(LoggedRequest {
            api,
            path_and_query: path_and_query.to_owned(),
            status,
        });
    }

    fn insert_during_sync(&self) {
        let mut data = self.data.write().expect("data lock");
        let now = Utc::now();
        data.insert_paypro(now);
        if let Some(open) = (0..data.link_count())
            .map(|j| data.link(j))
            .find(|l| l.status == "open")
        {
            data.add_mkp_payment(&open.id, now);
        }
    }
}

/// A running sandbox. It stops when dropped.
pub struct Sandbox {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Starts a sandbox on 127.0.0.1 (on `config.port`, or any free port when 0), serving until
    /// the returned handle is dropped. Must be called within a Tokio runtime.
    pub async fn start(config: SandboxConfig) -> std::io::Result<Sandbox> {
        let (listener, addr) = server::bind(config.port).await?;
        let data = Data {
            generator: Generator {
                seed: config.seed,
                mkp_links: config.mkp_links,
                paypro_payments: config.paypro_payments,
                anchor: config.anchor,
            },
            overlay: Overlay::default(),
        };
        let shared = Arc::new(Shared {
            faults: RwLock::new(config.faults.clone()),
            config,
            data: RwLock::new(data),
            requests: AtomicU64::new(0),
            limiter: Mutex::new(server::Window::new()),
            log: Mutex::new(Vec::new()),
        });
        let (shutdown, stopped) = watch::channel(false);
        tokio::spawn(server::serve(
            listener,
            server::router(shared.clone()),
            stopped,
        ));
        Ok(Sandbox {
            shared,
            addr,
            shutdown,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The MKP base URL to configure a client with (`http://127.0.0.1:PORT/mkp/v1`).
    pub fn mkp_base_url(&self) -> String {
        format!("http://{}/mkp/v1", self.addr)
    }

    /// The PayPro base URL to configure a client with (`http://127.0.0.1:PORT/paypro`).
    pub fn paypro_base_url(&self) -> String {
        format!("http://{}/paypro", self.addr)
    }

    /// The configuration it was started with (keys included: these are the sandbox's own).
    pub fn config(&self) -> &SandboxConfig {
        &self.shared.config
    }

    /// Replaces the faults from now on.
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.write().expect("faults lock") = faults;
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.log.lock().expect("log lock").clone()
    }

    /// How many requests were answered with `status` (0: dropped connections).
    pub fn count_status(&self, api: Api, status: u16) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.api == api && r.status == status)
            .count()
    }

    /// All MKP links, in listing order, as served now.
    pub fn mkp_links(&self) -> Vec<MkpLink> {
        let data = self.shared.data.read().expect("data lock");
        (0..data.link_count()).map(|j| data.link(j)).collect()
    }

    /// A link's payments, in listing order, as served now; empty for an unknown link.
    pub fn mkp_payments(&self, link_id: &str) -> Vec<MkpPayment> {
        let data = self.shared.data.read().expect("data lock");
        let Some(j) = data.generator.mkp_link_index(link_id) else {
            return Vec::new();
        };
        let link = data.link(j);
        (0..data.link_payment_count(j, link_id))
            .map(|k| data.link_payment(&link, j, k))
            .collect()
    }

    /// All PayPro payments, newest first, as served now.
    pub fn paypro_payments(&self) -> Vec<PayProPayment> {
        let data = self.shared.data.read().expect("data lock");
        (0..data.paypro_count())
            .map(|p| data.paypro_at(p))
            .collect()
    }

    /// Changes an MKP payment's status word.
    pub fn set_mkp_payment_status(&self, payment_id: &str, status: &str) {
        let mut data = self.shared.data.write().expect("data lock");
        data.overlay
            .mkp_payment_status
            .insert(payment_id.to_owned(), status.to_owned());
    }

    /// Changes an MKP link's status word (a link that is no longer `open` loses its checkout URL).
    pub fn set_mkp_link_status(&self, link_id: &str, status: &str) {
        let mut data = self.shared.data.write().expect("data lock");
        data.overlay
            .mkp_link_status
            .insert(link_id.to_owned(), status.to_owned());
    }

    /// Adds a pending payment, created now, to a link; `None` for an unknown link.
    pub fn add_mkp_payment(&self, link_id: &str) -> Option<String> {
        self.shared
            .data
            .write()
            .expect("data lock")
            .add_mkp_payment(link_id, Utc::now())
    }

    /// Changes a PayPro payment's state and refunded amount (minor units).
    pub fn set_paypro_state(&self, payment_id: &str, state: &str, refunded_amount: i64) {
        let mut data = self.shared.data.write().expect("data lock");
        data.overlay
            .paypro_state
            .insert(payment_id.to_owned(), (state.to_owned(), refunded_amount));
    }

    /// Inserts a new open PayPro payment, created now, at the top of the list.
    pub fn insert_paypro_payment(&self) -> String {
        self.shared
            .data
            .write()
            .expect("data lock")
            .insert_paypro(Utc::now())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
