//! The HTTP side of payments-ledger's long-running forms (`payments serve`, `payments worker
//! --listen`): webhook ingress, `/healthz` and `/metrics`.
//!
//! A webhook is a hint, never data: [`ingress`] verifies it with its provider's crate
//! (`paypro_api::webhook`, `mkp_api::webhook`), hands the [`payments_model::Delivery`] to an
//! [`Inlet`] that stores it in the ledger's inbox, and answers 2xx only then. What it names is
//! read by [`payments_sync::Service`] (one ledger) or the fleet's worker. [`LedgerInlet`] is the
//! inlet of one ledger's service. [`serve`] runs the routes on a listener until a stop signal.
#![forbid(unsafe_code)]

pub mod ingress;
pub mod metrics;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hyper_util::rt::{TokioIo, TokioTimer};
use payments_model::Delivery;
use payments_sync::{HintError, Inbox, Receipt, Service, StopSignal, Store};
use tokio::net::TcpListener;
use tower::Service as _;

pub use ingress::{
    App, BODY_TIMEOUT, Gauges, Health, HealthReport, Inlet, InletError, MAX_BODY, Provider, Target,
    fleet_router, ledger_router,
};
pub use metrics::{Metrics, SourceState};
pub use payments_http::WebhookSecret;

/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The inlet of one ledger: deliveries go to its [`Service`]'s inbox, verified with the
/// webhook secrets given here.
pub struct LedgerInlet<S: Store + Inbox> {
    service: Arc<Service<S>>,
    paypro: Option<WebhookSecret>,
    mkp: Option<WebhookSecret>,
}

impl<S: Store + Inbox> LedgerInlet<S> {
    /// Deliveries for `service`, PayPro's verified with `paypro` (without it, every PayPro
    /// webhook is refused), MKP's with `mkp` when given.
    pub fn new(
        service: Arc<Service<S>>,
        paypro: Option<WebhookSecret>,
        mkp: Option<WebhookSecret>,
    ) -> LedgerInlet<S> {
        LedgerInlet {
            service,
            paypro,
            mkp,
        }
    }
}

#[async_trait]
impl<S: Store + Inbox> Inlet for LedgerInlet<S> {
    async fn secret(&self, target: &Target) -> Result<Option<WebhookSecret>, InletError> {
        if target.account.is_some() {
            return Err(InletError::Unknown);
        }
        Ok(match target.provider {
            Provider::PayPro => self.paypro.clone(),
            Provider::Mkp => self.mkp.clone(),
        })
    }

    async fn receive(&self, target: &Target, delivery: &Delivery) -> Result<Receipt, InletError> {
        match self.service.hint(target.provider.as_str(), delivery).await {
            Ok(receipt) => Ok(receipt),
            Err(HintError::UnknownSource(_)) => Err(InletError::Unknown),
            Err(error) => Err(InletError::Unavailable(error.to_string())),
        }
    }
}

/// Serves `router` on `listener` until `stop` is raised: HTTP/1.1, headers within
/// [`HEADER_TIMEOUT`], bodies within [`BODY_TIMEOUT`]. Requests in flight when it stops are
/// dropped unanswered (a provider delivers an unanswered webhook again).
pub async fn serve(listener: TcpListener, router: axum::Router, stop: StopSignal) {
    loop {
        let stream = tokio::select! {
            _ = stop.raised() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(%error, "a connection could not be accepted");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let mut router = router.clone();
                    async move { router.call(request).await }
                },
            );
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = stop.raised() => {}
            }
        });
    }
}
