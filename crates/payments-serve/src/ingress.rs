//! The HTTP routes: `POST /webhooks/{paypro|mkp}` (one ledger) or
//! `POST /webhooks/{account}/{paypro|mkp}` (a fleet), `GET /healthz` and `GET /metrics`.
//!
//! A webhook is verified by its provider's crate, then handed to an [`Inlet`] (which stores it
//! in the ledger's inbox), and only then answered 2xx; nothing is read from the provider before
//! the answer. Refusals: a missing or bad signature, a stale timestamp and an unknown account
//! 401 (the same answer, so an account's existence is not told), a body over [`MAX_BODY`] 413
//! (said from its `Content-Length` without reading it, or once the cap is passed), a body that is
//! not the provider's JSON 400, a method other than POST 405, a body not sent within
//! [`BODY_TIMEOUT`] 408, an inbox that cannot be written 503 (the provider delivers again).
//! Each refusal is logged once with its reason; nothing of the body is logged.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use payments_http::{WebhookError, WebhookSecret};
use payments_model::Delivery;
use payments_sync::Receipt;

use crate::Metrics;

/// The largest webhook body taken: 1 MiB.
pub const MAX_BODY: usize = 1024 * 1024;

/// How long a client may take to send a webhook's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// A provider that sends webhooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    /// PayPro: signed events.
    PayPro,
    /// MijnKlantportaal: payment-link events, signed when a secret is set.
    Mkp,
}

impl Provider {
    /// Its word in routes, and the name of its source (`paypro`, `mkp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::PayPro => "paypro",
            Provider::Mkp => "mkp",
        }
    }

    /// The provider named `word` in a route.
    pub fn parse(word: &str) -> Option<Provider> {
        [Provider::PayPro, Provider::Mkp]
            .into_iter()
            .find(|provider| provider.as_str() == word)
    }
}

/// Where a webhook was sent: to a provider's route, in a fleet for one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The account, in a fleet's route; `None` for a single ledger.
    pub account: Option<String>,
    /// The provider.
    pub provider: Provider,
}

/// Why an [`Inlet`] did not take a delivery.
#[derive(Debug, thiserror::Error)]
pub enum InletError {
    /// No such account or source here: answered as a bad signature is (401).
    #[error("no such account or source")]
    Unknown,
    /// The inbox could not be written or read now (answered 503: the provider delivers again).
    #[error("{0}")]
    Unavailable(String),
}

/// What takes verified webhooks: a ledger's inbox ([`payments_sync::Service`]) or a fleet's.
#[async_trait]
pub trait Inlet: Send + Sync + 'static {
    /// The webhook secret configured for `target`, `None` when none is.
    async fn secret(&self, target: &Target) -> Result<Option<WebhookSecret>, InletError>;

    /// Stores a verified delivery for `target` (one transaction), before it is answered.
    async fn receive(&self, target: &Target, delivery: &Delivery) -> Result<Receipt, InletError>;
}

/// What `/healthz` answers.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthReport {
    /// 200 when healthy, 503 when not.
    pub healthy: bool,
    /// The facts, as `payments status --json` gives them.
    pub body: serde_json::Value,
}

/// What decides `/healthz`.
#[async_trait]
pub trait Health: Send + Sync + 'static {
    /// The ledger's health now.
    async fn check(&self) -> HealthReport;
}

/// What `/metrics` reads afresh at each scrape (the fleet's schedule from its database).
#[async_trait]
pub trait Gauges: Send + Sync + 'static {
    /// Sets the gauges of `metrics` to what holds now.
    async fn refresh(&self, metrics: &Metrics);
}

/// What the routes share.
#[derive(Clone)]
pub struct App {
    /// Takes verified webhooks.
    pub inlet: Arc<dyn Inlet>,
    /// Decides `/healthz`.
    pub health: Arc<dyn Health>,
    /// Counted and exposed at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Read afresh at each scrape of `/metrics`, when given.
    pub gauges: Option<Arc<dyn Gauges>>,
}

/// The routes of one ledger: `POST /webhooks/{provider}`.
pub fn ledger_router(app: App) -> Router {
    Router::new()
        .route("/webhooks/{provider}", post(ledger_webhook))
        .merge(common())
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

/// The routes of a fleet: `POST /webhooks/{account}/{provider}`.
pub fn fleet_router(app: App) -> Router {
    Router::new()
        .route("/webhooks/{account}/{provider}", post(fleet_webhook))
        .merge(common())
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

fn common() -> Router<App> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

/// A method other than a route's (a GET of a webhook route): 405, logged once.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    tracing::warn!(method = %method, path = %uri.path(), status = 405, "request refused: the route takes another method");
    (
        StatusCode::METHOD_NOT_ALLOWED,
        "this route takes another method (webhooks: POST; /healthz and /metrics: GET)\n",
    )
        .into_response()
}

async fn ledger_webhook(
    State(app): State<App>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(provider) = Provider::parse(&provider) else {
        return (StatusCode::NOT_FOUND, "no such webhook route\n").into_response();
    };
    let target = Target {
        account: None,
        provider,
    };
    webhook(app, target, headers, body).await
}

async fn fleet_webhook(
    State(app): State<App>,
    Path((account, provider)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(provider) = Provider::parse(&provider) else {
        return (StatusCode::NOT_FOUND, "no such webhook route\n").into_response();
    };
    let target = Target {
        account: Some(account),
        provider,
    };
    webhook(app, target, headers, body).await
}

/// A refusal: its status, its reason for the log, its result for the metrics.
struct Refusal {
    status: StatusCode,
    reason: String,
    result: &'static str,
}

impl Refusal {
    fn new(status: StatusCode, reason: impl Into<String>, result: &'static str) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
            result,
        }
    }
}

async fn webhook(app: App, target: Target, headers: HeaderMap, body: Body) -> Response {
    let source = target.provider.as_str();
    match take(&app, &target, &headers, body).await {
        Ok(receipt) => {
            let result = match receipt {
                Receipt::New => "accepted",
                Receipt::Duplicate => "duplicate",
            };
            app.metrics.webhook(source, result);
            tracing::debug!(source, account = ?target.account, result, "webhook taken");
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                format!("{{\"received\":\"{result}\"}}\n"),
            )
                .into_response()
        }
        Err(refusal) => {
            app.metrics.webhook(source, refusal.result);
            tracing::warn!(source, account = ?target.account, status = refusal.status.as_u16(), reason = %refusal.reason, "webhook refused");
            (refusal.status, format!("{}\n", refusal.reason)).into_response()
        }
    }
}

/// Reads, verifies and stores one delivery.
async fn take(
    app: &App,
    target: &Target,
    headers: &HeaderMap,
    body: Body,
) -> Result<Receipt, Refusal> {
    let body = read_body(headers, body).await?;
    let unknown = || {
        Refusal::new(
            StatusCode::UNAUTHORIZED,
            "the webhook's signature does not verify",
            "refused_signature",
        )
    };
    let secret = match app.inlet.secret(target).await {
        Ok(secret) => secret,
        Err(InletError::Unknown) => return Err(unknown()),
        Err(InletError::Unavailable(why)) => {
            return Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the webhook could not be taken now: {why}"),
                "unavailable",
            ));
        }
    };
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let verified = match target.provider {
        Provider::PayPro => paypro_api::webhook::verify(
            secret.as_ref(),
            header(paypro_api::webhook::TIMESTAMP_HEADER),
            header(paypro_api::webhook::SIGNATURE_HEADER),
            &body,
            Utc::now(),
        ),
        Provider::Mkp => mkp_api::webhook::verify(
            secret.as_ref(),
            header(mkp_api::webhook::SIGNATURE_HEADER),
            &body,
        ),
    };
    let delivery = verified.map_err(|error| {
        let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        Refusal::new(status, error.to_string(), refused(&error))
    })?;
    match app.inlet.receive(target, &delivery).await {
        Ok(receipt) => Ok(receipt),
        Err(InletError::Unknown) => Err(unknown()),
        Err(InletError::Unavailable(why)) => Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the webhook could not be stored: {why}; deliver it again"),
            "unavailable",
        )),
    }
}

/// The metrics' word for a refusal by the provider's verification.
fn refused(error: &WebhookError) -> &'static str {
    match error {
        WebhookError::StaleTimestamp { .. } | WebhookError::BadTimestamp => "refused_timestamp",
        WebhookError::NotJson { .. } | WebhookError::Unreadable { .. } => "refused_body",
        WebhookError::NoSecretConfigured { .. } => "refused_no_secret",
        _ => "refused_signature",
    }
}

/// The body, at most [`MAX_BODY`] bytes within [`BODY_TIMEOUT`].
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, Refusal> {
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the webhook's body is over {MAX_BODY} bytes"),
            "refused_too_large",
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(too_large()),
        Err(_) => Err(Refusal::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the webhook's body was not sent within {} s",
                BODY_TIMEOUT.as_secs()
            ),
            "refused_slow",
        )),
    }
}

async fn healthz(State(app): State<App>) -> Response {
    let report = app.health.check().await;
    let status = match report.healthy {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{}\n", report.body),
    )
        .into_response()
}

async fn metrics(State(app): State<App>) -> Response {
    if let Some(gauges) = &app.gauges {
        gauges.refresh(&app.metrics).await;
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}
