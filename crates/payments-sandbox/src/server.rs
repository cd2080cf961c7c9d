//! The HTTP side: routes for both APIs, Bearer auth, MKP's rolling-window rate limit, fault
//! injection, and a connection loop that can drop a connection mid-request.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower::Service;

use crate::data::{Data, PayProChargeback, PayProEvent, PayProPayload, PayProPayout, PayProRefund};
use crate::{Api, ContentFaults, FaultAnswer, Faults, RetryAfterForm, Shared};

/// Asks the connection loop to drop this request's connection without answering.
#[derive(Clone)]
struct DropConnection(Arc<Notify>);

/// Asks a listing to point its next link at the page it serves ([`FaultAnswer::RepeatNext`]).
#[derive(Clone, Copy)]
struct RepeatNext;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/mkp/v1/payment-links", get(mkp_links))
        .route("/mkp/v1/payment-links/{id}", get(mkp_link))
        .route(
            "/mkp/v1/payment-links/{id}/payments",
            get(mkp_link_payments),
        )
        .route("/paypro/payments", get(paypro_payments))
        .route("/paypro/payments/{id}", get(paypro_payment))
        .route("/paypro/payments/{id}/refunds", get(paypro_payment_refunds))
        .route(
            "/paypro/payments/{id}/chargebacks",
            get(paypro_payment_chargebacks),
        )
        .route("/paypro/payouts", get(paypro_payouts))
        .route("/paypro/payouts/{id}", get(paypro_payout))
        .route("/paypro/balances", get(paypro_balances))
        .route("/paypro/events", get(paypro_events))
        .route("/paypro/refunds", get(paypro_refunds))
        .route("/paypro/chargebacks", get(paypro_chargebacks))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), gatekeeper))
        .with_state(shared)
}

/// Accepts connections until `shutdown` changes; each connection can be dropped mid-request.
pub(crate) async fn serve(listener: TcpListener, router: Router, shutdown: watch::Receiver<bool>) {
    loop {
        let mut stop = shutdown.clone();
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            _ = stop.changed() => return,
        };
        let router = router.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let drop_connection = Arc::new(Notify::new());
            let signal = drop_connection.clone();
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request
                        .extensions_mut()
                        .insert(DropConnection(signal.clone()));
                    let mut router = router.clone();
                    async move { router.call(request).await }
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = drop_connection.notified() => {}
                _ = stop.changed() => {}
            }
        });
    }
}

pub(crate) async fn bind(port: u16) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// A JSON response.
fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    json_bytes(
        status,
        serde_json::to_vec(body).expect("sandbox bodies serialize"),
    )
}

fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// Stands in a record's text for the byte 0xE9 until the page is serialized: JSON text cannot
/// hold a byte that is not UTF-8, so it is written in afterwards (see [`page_response`]).
const INVALID_BYTE: &str = "<sandbox:0xE9>";

/// A page (200), with each [`INVALID_BYTE`] written as the byte 0xE9 when a fault asks for
/// such bytes.
fn page_response(body: &Value, content: &ContentFaults) -> Response {
    let bytes = serde_json::to_vec(body).expect("sandbox bodies serialize");
    let spoils_bytes =
        content.mkp_invalid_utf8_every.is_some() || content.paypro_invalid_utf8_every.is_some();
    json_bytes(
        StatusCode::OK,
        if spoils_bytes {
            with_invalid_bytes(&bytes)
        } else {
            bytes
        },
    )
}

/// `bytes` with each [`INVALID_BYTE`] replaced by the byte 0xE9.
fn with_invalid_bytes(bytes: &[u8]) -> Vec<u8> {
    let mark = INVALID_BYTE.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.starts_with(mark) {
            out.push(0xE9);
            rest = &rest[mark.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

fn api_error(api: Api, status: StatusCode, message: &str, param: Option<&str>) -> Response {
    match api {
        Api::Mkp => json_response(
            status,
            &json!({ "code": status.as_u16(), "message": message }),
        ),
        Api::PayPro => json_response(
            status,
            &json!({ "error": { "message": message, "param": param, "type": if status == StatusCode::UNAUTHORIZED { "authentication_error" } else { "invalid_request" } } }),
        ),
    }
}

fn api_of(path: &str) -> Option<Api> {
    if path.starts_with("/mkp/") {
        Some(Api::Mkp)
    } else if path.starts_with("/paypro/") {
        Some(Api::PayPro)
    } else {
        None
    }
}

/// The path below the API's base URL (`/mkp/v1`, `/paypro`), for matching endpoint faults.
fn endpoint_path(api: Api, path: &str) -> Option<&str> {
    let base = match api {
        Api::Mkp => "/mkp/v1",
        Api::PayPro => "/paypro",
    };
    path.strip_prefix(base).filter(|rest| rest.starts_with('/'))
}

/// `path` with each `%XX` escape decoded (bytes that are not UTF-8 replaced).
pub(crate) fn percent_decoded(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(high), Some(low)) if hex(high).is_some() && hex(low).is_some() => {
                let value = hex(high).unwrap_or_default() * 16 + hex(low).unwrap_or_default();
                out.push(value as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The answer of a [`FaultAnswer::Status`]: the status, its `Retry-After` in whole seconds, and
/// the body given or the API's error body.
fn fault_status(
    api: Api,
    status: u16,
    retry_after: Option<Duration>,
    body: Option<&str>,
) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match body {
        Some(body) => {
            let kind = if serde_json::from_str::<Value>(body).is_ok() {
                "application/json"
            } else {
                "text/html; charset=utf-8"
            };
            (status, [(header::CONTENT_TYPE, kind)], body.to_owned()).into_response()
        }
        None => api_error(api, status, &error_message(status), None),
    };
    if let Some(wait) = retry_after {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(ceil_secs(wait).as_secs()),
        );
    }
    response
}

/// The message of an API's error body for `status`.
fn error_message(status: StatusCode) -> String {
    match status.as_u16() {
        401 => "Unauthenticated.".to_owned(),
        403 => "This action is unauthorized.".to_owned(),
        404 => "Not found.".to_owned(),
        422 => "The given data was invalid.".to_owned(),
        429 => "Too many requests.".to_owned(),
        500 => "Server Error".to_owned(),
        _ => format!("{}.", status.canonical_reason().unwrap_or("Error")),
    }
}

/// The answer of a [`FaultAnswer::NotJson`]: 200 with an HTML page.
fn not_json() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<html><head><title>Just a moment...</title></head>\
         <body><p>Checking your browser before accessing the API.</p></body></html>",
    )
        .into_response()
}

fn retry_after_value(form: RetryAfterForm, wait: Duration) -> HeaderValue {
    let text = match form {
        RetryAfterForm::Seconds => wait.as_secs().max(1).to_string(),
        RetryAfterForm::HttpDate => {
            httpdate::fmt_http_date(SystemTime::now() + wait + Duration::from_secs(1))
        }
    };
    HeaderValue::from_str(&text).expect("a valid header value")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn too_many_requests(
    api: Api,
    form: RetryAfterForm,
    wait: Duration,
    limit: Option<u32>,
) -> Response {
    let mut response = api_error(
        api,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests.",
        None,
    );
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, retry_after_value(form, wait));
    if api == Api::Mkp {
        let reset = unix_now() + wait.as_secs().max(1);
        headers.insert("x-ratelimit-reset", HeaderValue::from(reset));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(0));
        if let Some(limit) = limit {
            headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
        }
    }
    response
}

/// Every request passes here: counting, endpoint faults (first: answered as a gateway in front of
/// the API would), the other faults, auth, MKP's rate limit, logging.
async fn gatekeeper(
    State(shared): State<Arc<Shared>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or(path.clone(), |p| p.as_str().to_owned());
    let Some(api) = api_of(&path) else {
        return (
            StatusCode::NOT_FOUND,
            "not an API path of this sandbox: use /mkp/v1/… or /paypro/…",
        )
            .into_response();
    };
    let n = shared.next_request_number();
    let faults = shared.faults();
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    let endpoint_fault =
        endpoint_path(api, &path).and_then(|below| shared.endpoint_fault(api, below));
    let endpoint_answer = match endpoint_fault {
        Some((answer, latency)) => {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            answer
        }
        None => FaultAnswer::Normal,
    };
    if endpoint_answer == FaultAnswer::RepeatNext {
        request.extensions_mut().insert(RepeatNext);
    }
    let response = if let FaultAnswer::Status {
        status,
        retry_after,
        body,
    } = &endpoint_answer
    {
        fault_status(api, *status, *retry_after, body.as_deref())
    } else if endpoint_answer == FaultAnswer::NotJson {
        not_json()
    } else if shared.roll(n, 1) < faults.reset_rate {
        shared.log(api, &path_and_query, 0);
        if let Some(DropConnection(signal)) = request.extensions().get::<DropConnection>() {
            signal.notify_one();
        }
        return std::future::pending().await;
    } else if shared.roll(n, 2) < faults.server_error_rate {
        let status = if n % 2 == 0 {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::BAD_GATEWAY
        };
        (
            status,
            "<html><body>Service temporarily unavailable</body></html>",
        )
            .into_response()
    } else if let Some(burst) = faults
        .burst_429
        .filter(|b| b.every > 0 && n >= b.every && n % b.every < b.length)
    {
        too_many_requests(api, burst.form, burst.retry_after, None)
    } else if let Some(refusal) = refuse_key(&shared, api, request.headers()) {
        refusal
    } else {
        match shared.admit(api) {
            Err(refusal) => *refusal,
            Ok(limit_headers) => {
                let mut response = next.run(request).await;
                response.headers_mut().extend(limit_headers);
                if response.status() == StatusCode::OK && shared.roll(n, 3) < faults.truncate_rate {
                    response = truncate(response).await;
                }
                response
            }
        }
    };
    if faults
        .insert_every
        .is_some_and(|every| every > 0 && n % every == 0)
    {
        shared.insert_during_sync();
    }
    shared.log(api, &path_and_query, response.status().as_u16());
    response
}

/// Sends only the first half of a body (with a matching length), as a cut-off proxy would.
async fn truncate(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let cut = bytes.slice(..bytes.len() / 2);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(cut))
}

/// The refusal to send when the request's key is missing, wrong or lacks the scope.
fn refuse_key(shared: &Shared, api: Api, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let config = &shared.config;
    match (api, token) {
        (Api::Mkp, Some(token)) if token == config.mkp_key => None,
        (Api::Mkp, Some(token)) if token == config.mkp_scopeless_key => Some(api_error(
            api,
            StatusCode::FORBIDDEN,
            "This action is unauthorized. The key lacks the scope paymentlinks.read.",
            None,
        )),
        (Api::PayPro, Some(token)) if token == config.paypro_key => None,
        _ => Some(api_error(
            api,
            StatusCode::UNAUTHORIZED,
            "Unauthenticated.",
            None,
        )),
    }
}

impl Shared {
    /// MKP's rolling window: admits the request and returns the headers to add, or answers 429.
    fn admit(&self, api: Api) -> Result<HeaderMap, Box<Response>> {
        let mut out = HeaderMap::new();
        let (Api::Mkp, Some(window)) = (api, self.config.mkp_rate_limit) else {
            return Ok(out);
        };
        let now = Instant::now();
        let mut recent = self.limiter.lock().expect("limiter lock");
        while recent
            .front()
            .is_some_and(|at| now.duration_since(*at) >= window.window)
        {
            recent.pop_front();
        }
        if recent.len() >= window.limit as usize {
            let oldest = *recent.front().expect("a full window has a first request");
            let wait = window.window.saturating_sub(now.duration_since(oldest));
            return Err(Box::new(too_many_requests(
                api,
                RetryAfterForm::Seconds,
                ceil_secs(wait),
                Some(window.limit),
            )));
        }
        recent.push_back(now);
        out.insert("x-ratelimit-limit", HeaderValue::from(window.limit));
        out.insert(
            "x-ratelimit-remaining",
            HeaderValue::from(window.limit as usize - recent.len()),
        );
        Ok(out)
    }
}

fn ceil_secs(wait: Duration) -> Duration {
    Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
}

pub(crate) type Window = VecDeque<Instant>;

#[derive(Deserialize)]
struct PageQuery {
    page: Option<String>,
}

/// Laravel reads `?page=` leniently: anything that is not a positive number is page 1.
fn page_number(query: &PageQuery) -> usize {
    query
        .page
        .as_deref()
        .and_then(|p| p.parse().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1)
}

fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// Laravel's simple-paginate envelope for items `[(page-1)·per_page, page·per_page)` of `total`,
/// padded with `padding` spaces when asked; `repeat` points the next link at this page.
#[allow(clippy::too_many_arguments)]
fn simple_page<T: Serialize>(
    shared: &Shared,
    headers: &HeaderMap,
    repeat: bool,
    path: &str,
    page: usize,
    total: usize,
    padding: Option<usize>,
    item: impl Fn(usize) -> T,
) -> Response {
    let per_page = shared.config.mkp_per_page.max(1);
    let start = (page - 1).saturating_mul(per_page).min(total);
    let end = (start + per_page).min(total);
    let data: Vec<T> = (start..end).map(item).collect();
    let faults = shared.faults();
    let content = shared.content_faults();
    let php = content.php_envelopes;
    // PHP's quirks: links from the root, without the origin.
    let here = if php { String::new() } else { origin(headers) };
    let next_origin = faults.foreign_next.clone().unwrap_or_else(|| here.clone());
    let url = |origin: &str, page: usize| format!("{origin}{path}?page={page}");
    let next_page_url = if faults.repeat_cursor || repeat {
        Some(url(&next_origin, page))
    } else {
        (end < total).then(|| url(&next_origin, page + 1))
    };
    let number = |n: usize| if php { json!(n.to_string()) } else { json!(n) };
    let data = if php && data.is_empty() {
        Value::Null
    } else {
        json!(data)
    };
    let mut body = json!({
        "current_page": number(page),
        "data": data,
        "first_page_url": url(&here, 1),
        "from": (end > start).then_some(start + 1),
        "next_page_url": next_page_url,
        "path": format!("{here}{path}"),
        "per_page": number(per_page),
        "prev_page_url": (page > 1).then(|| url(&here, page - 1)),
        "to": (end > start).then_some(end),
    });
    if let Some(bytes) = padding {
        body["padding"] = json!(" ".repeat(bytes));
    }
    page_response(&body, &content)
}

/// Link `j` as listed: with the id a fault gives it, if any.
fn served_link(data: &crate::data::Data, content: &ContentFaults, j: usize) -> crate::MkpLink {
    let mut link = data.link(j);
    if let Some(id) = content.served_link_id(j, &link.id) {
        link.id = id;
    }
    link
}

async fn mkp_links(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    repeat: Option<Extension<RepeatNext>>,
    Query(query): Query<PageQuery>,
) -> Response {
    let data = shared.data.read().expect("data lock");
    let content = shared.content_faults();
    simple_page(
        &shared,
        &headers,
        repeat.is_some(),
        "/mkp/v1/payment-links",
        page_number(&query),
        data.link_count(),
        None,
        |j| served_link(&data, &content, j),
    )
}

async fn mkp_link(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let data = shared.data.read().expect("data lock");
    match data.generator.mkp_link_index(&id) {
        Some(j) => json_response(
            StatusCode::OK,
            &served_link(&data, &shared.content_faults(), j),
        ),
        None => api_error(
            Api::Mkp,
            StatusCode::NOT_FOUND,
            "Payment link not found.",
            None,
        ),
    }
}

async fn mkp_link_payments(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    repeat: Option<Extension<RepeatNext>>,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    let data = shared.data.read().expect("data lock");
    let Some(j) = data.generator.mkp_link_index(&id) else {
        return api_error(
            Api::Mkp,
            StatusCode::NOT_FOUND,
            "Payment link not found.",
            None,
        );
    };
    let link = data.link(j);
    let total = data.link_payment_count(j, &id);
    let path = format!("/mkp/v1/payment-links/{id}/payments");
    let content = shared.content_faults();
    simple_page(
        &shared,
        &headers,
        repeat.is_some(),
        &path,
        page_number(&query),
        total,
        content.link_padding(j),
        |k| {
            let mut payment = data.link_payment(&link, j, k);
            if content.mkp_invalid_utf8(j, k) {
                payment.payers_name = Some(format!("Ren{INVALID_BYTE}e de Vries"));
            }
            payment
        },
    )
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

fn encode_cursor(direction: &str, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{direction}:{id}"))
}

/// A PayPro cursor's direction and id (`after:PP…`), when it is one.
fn decode_cursor(cursor: &str) -> Option<(String, String)> {
    let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (direction, id) = decoded.split_once(':')?;
    Some((direction.to_owned(), id.to_owned()))
}

/// PayPro's 422 for a bad query parameter.
fn paypro_invalid(message: &str, param: &str) -> Response {
    api_error(
        Api::PayPro,
        StatusCode::UNPROCESSABLE_ENTITY,
        message,
        Some(param),
    )
}

/// The `limit` of a PayPro list request: 1 to 100, 10 when not given.
fn paypro_limit(query: &ListQuery) -> Result<usize, Box<Response>> {
    match query.limit.as_deref().map(str::parse::<usize>) {
        None => Ok(10),
        Some(Ok(limit)) if (1..=100).contains(&limit) => Ok(limit),
        Some(_) => Err(Box::new(paypro_invalid(
            "limit must be a whole number from 1 to 100",
            "limit",
        ))),
    }
}

/// PayPro's list envelope around `data`, the page of `/paypro/{listing}` asked for with `limit`
/// and `cursor`: `next` starts after the id `next_after`, `prev` ends before `prev_before`.
/// Every listing shares the envelope faults: foreign and repeating next links, PHP's quirks,
/// padding past a size; `repeat` points `next` at this page.
#[allow(clippy::too_many_arguments)]
fn paypro_list(
    shared: &Shared,
    headers: &HeaderMap,
    repeat: bool,
    listing: &str,
    limit: usize,
    cursor: Option<&str>,
    data: Vec<Value>,
    next_after: Option<&str>,
    prev_before: Option<&str>,
) -> Response {
    let here = origin(headers);
    let faults = shared.faults();
    let content = shared.content_faults();
    let php = content.php_envelopes;
    // PHP's quirks: links relative to the listing.
    let here_link = (!php).then_some(here.as_str());
    let next_origin = faults
        .foreign_next
        .clone()
        .or_else(|| (!php).then(|| here.clone()));
    // On `origin`, or relative to the listing for `None`.
    let list = |origin: Option<&str>, cursor: Option<String>| {
        let listing = match origin {
            Some(origin) => format!("{origin}/paypro/{listing}"),
            None => listing.to_owned(),
        };
        match cursor {
            Some(cursor) => format!("{listing}?limit={limit}&cursor={cursor}"),
            None => format!("{listing}?limit={limit}"),
        }
    };
    let mut links = serde_json::Map::new();
    links.insert(
        "self".into(),
        list(here_link, cursor.map(str::to_owned)).into(),
    );
    let next = if faults.repeat_cursor || repeat {
        Some(list(next_origin.as_deref(), cursor.map(str::to_owned)))
    } else {
        next_after.map(|id| list(next_origin.as_deref(), Some(encode_cursor("after", id))))
    };
    if let Some(next) = next {
        links.insert("next".into(), next.into());
    }
    if let Some(id) = prev_before {
        links.insert(
            "prev".into(),
            list(here_link, Some(encode_cursor("before", id))).into(),
        );
    }
    let count = if php {
        json!(data.len().to_string())
    } else {
        json!(data.len())
    };
    let data = if php && data.is_empty() {
        Value::Null
    } else {
        json!(data)
    };
    let mut body = json!({ "type": "list", "data": data, "count": count, "_links": links });
    if let Some(bytes) = content.paypro_padding(limit) {
        body["padding"] = json!(" ".repeat(bytes));
    }
    page_response(&body, &content)
}

/// The PayPro payment at listing `position` as served, with the faults that spoil it.
fn served_paypro_payment(
    data: &Data,
    faults: &Faults,
    content: &ContentFaults,
    position: usize,
    here: &str,
) -> Value {
    let mut payment = data.paypro_at(position);
    if content.paypro_invalid_utf8(position) {
        payment.description = format!("{} caf{INVALID_BYTE}", payment.description);
    }
    let mut value = serde_json::to_value(&payment).expect("sandbox records serialize");
    value["_links"] = json!({ "self": format!("{here}/paypro/payments/{}", payment.id) });
    if faults
        .bad_record_every
        .is_some_and(|n| n > 0 && (position as u64 + 1).is_multiple_of(n))
    {
        value["amount"] = json!("12.951");
    }
    value
}

async fn paypro_payments(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    repeat: Option<Extension<RepeatNext>>,
    Query(query): Query<ListQuery>,
) -> Response {
    let limit = match paypro_limit(&query) {
        Ok(limit) => limit,
        Err(refusal) => return *refusal,
    };
    let data = shared.data.read().expect("data lock");
    let total = data.paypro_count();
    let (start, end) = match query.cursor.as_deref() {
        None => (0, limit.min(total)),
        Some(cursor) => {
            let decoded = decode_cursor(cursor);
            let position = |id: &str| data.paypro_position(id);
            match decoded.as_ref().map(|(d, id)| (d.as_str(), id.as_str())) {
                Some(("after", id)) if position(id).is_some() => {
                    let start = position(id).unwrap_or_default() + 1;
                    (start.min(total), (start + limit).min(total))
                }
                Some(("before", id)) if position(id).is_some() => {
                    let end = position(id).unwrap_or_default();
                    (end.saturating_sub(limit), end)
                }
                _ => return paypro_invalid("Invalid cursor", "cursor"),
            }
        }
    };
    let here = origin(&headers);
    let faults = shared.faults();
    let content = shared.content_faults();
    let payments: Vec<Value> = (start..end)
        .map(|position| served_paypro_payment(&data, &faults, &content, position, &here))
        .collect();
    let next_after = (end < total).then(|| data.paypro_at(end - 1).id);
    let prev_before = (start > 0 && end > start).then(|| data.paypro_at(start).id);
    paypro_list(
        &shared,
        &headers,
        repeat.is_some(),
        "payments",
        limit,
        query.cursor.as_deref(),
        payments,
        next_after.as_deref(),
        prev_before.as_deref(),
    )
}

/// `GET /payments/{id}`: one payment, as the listing serves it; 404 when unknown.
async fn paypro_payment(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let data = shared.data.read().expect("data lock");
    let Some(position) = data.paypro_position(&id) else {
        return api_error(
            Api::PayPro,
            StatusCode::NOT_FOUND,
            "Payment not found.",
            None,
        );
    };
    let content = shared.content_faults();
    let value = served_paypro_payment(
        &data,
        &shared.faults(),
        &content,
        position,
        &origin(&headers),
    );
    page_response(&value, &content)
}

/// One of PayPro's change feeds (`/events`, `/refunds`, `/chargebacks`): `fetch` gives up to
/// `want` items after an id (from the top for none; `None` for an unknown id), `value` writes
/// one with its `_links`; `repeat` points `next` at this page. Only `after` cursors: the sandbox
/// writes no `prev` link here.
#[allow(clippy::too_many_arguments)]
fn paypro_feed<T>(
    shared: &Shared,
    headers: &HeaderMap,
    repeat: bool,
    query: &ListQuery,
    listing: &str,
    fetch: impl Fn(&Data, Option<&str>, usize) -> Option<Vec<T>>,
    id: fn(&T) -> &str,
    value: impl Fn(&T, &str) -> Value,
) -> Response {
    let limit = match paypro_limit(query) {
        Ok(limit) => limit,
        Err(refusal) => return *refusal,
    };
    let after = match query.cursor.as_deref().map(decode_cursor) {
        None => None,
        Some(Some((direction, id))) if direction == "after" => Some(id),
        Some(_) => return paypro_invalid("Invalid cursor", "cursor"),
    };
    let data = shared.data.read().expect("data lock");
    let Some(mut items) = fetch(&data, after.as_deref(), limit + 1) else {
        return paypro_invalid("Invalid cursor", "cursor");
    };
    let next_after = (items.len() > limit).then(|| {
        items.truncate(limit);
        items.last().map(|item| id(item).to_owned())
    });
    let here = origin(headers);
    let data: Vec<Value> = items.iter().map(|item| value(item, &here)).collect();
    paypro_list(
        shared,
        headers,
        repeat,
        listing,
        limit,
        query.cursor.as_deref(),
        data,
        next_after.flatten().as_deref(),
        None,
    )
}

/// A refund's or chargeback's `_links`.
fn links_of(here: &str, listing: &str, id: &str, payment: &str) -> Value {
    json!({
        "self": format!("{here}/paypro/{listing}/{id}"),
        "payment": format!("{here}/paypro/payments/{payment}"),
    })
}

/// An event as served: with its `_links`, and its payload's.
pub(crate) fn event_value(event: &PayProEvent, here: &str) -> Value {
    let mut value = serde_json::to_value(event).expect("sandbox records serialize");
    value["_links"] = json!({ "self": format!("{here}/paypro/events/{}", event.id) });
    value["payload"]["_links"] = match &event.payload {
        PayProPayload::Payment(p) => json!({ "self": format!("{here}/paypro/payments/{}", p.id) }),
        PayProPayload::Refund(r) => links_of(here, "refunds", &r.id, &r.payment),
        PayProPayload::Chargeback(c) => links_of(here, "chargebacks", &c.id, &c.payment),
        PayProPayload::Customer(c) => {
            json!({ "self": format!("{here}/paypro/customers/{}", c.id) })
        }
        PayProPayload::Payout(p) => json!({ "self": format!("{here}/paypro/payouts/{}", p.id) }),
    };
    value
}

/// `GET /events`, newest first; [`ContentFaults::paypro_events_kept`] drops the oldest.
async fn paypro_events(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    repeat: Option<Extension<RepeatNext>>,
    Query(query): Query<ListQuery>,
) -> Response {
    let kept = shared.content_faults().paypro_events_kept;
    let fetch = |data: &Data, after: Option<&str>, want: usize| match kept {
        None => data.paypro_events_after(after, want),
        Some(kept) => {
            let all = data.paypro_events_after(None, kept)?;
            let from = match after {
                None => 0,
                Some(id) => all.iter().position(|event| event.id == id)? + 1,
            };
            Some(all.into_iter().skip(from).take(want).collect())
        }
    };
    paypro_feed(
        &shared,
        &headers,
        repeat.is_some(),
        &query,
        "events",
        fetch,
        |event: &PayProEvent| event.id.as_str(),
        event_value,
    )
}

/// `GET /refunds`, newest first.
async fn paypro_refunds(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    repeat: Option<Extension<RepeatNext>>,
    Query(query): Query<ListQuery>,
) -> Response {
    paypro_feed(
        &shared,
        &headers,
        repeat.is_some(),
        &query,
        "refunds",
        Data::paypro_refunds_after,
        |refund: &PayProRefund| refund.id.as_str(),
        refund_value,
    )
}

/// `GET /chargebacks`, newest first.
async fn paypro_chargebacks(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    repeat: Option<Extension<RepeatNext>>,
    Query(query): Query<ListQuery>,
) -> Response {
    paypro_feed(
        &shared,
        &headers,
        repeat.is_some(),
        &query,
        "chargebacks",
        Data::paypro_chargebacks_after,
        |chargeback: &PayProChargeback| chargeback.id.as_str(),
        chargeback_value,
    )
}

/// A refund as served: with its `_links`.
fn refund_value(refund: &PayProRefund, here: &str) -> Value {
    let mut value = serde_json::to_value(refund).expect("sandbox records serialize");
    value["_links"] = links_of(here, "refunds", &refund.id, &refund.payment);
    value
}

/// A chargeback as served: with its `_links`.
fn chargeback_value(chargeback: &PayProChargeback, here: &str) -> Value {
    let mut value = serde_json::to_value(chargeback).expect("sandbox records serialize");
    value["_links"] = links_of(here, "chargebacks", &chargeback.id, &chargeback.payment);
    value
}

/// A payout as served: with its `_links`.
fn payout_value(payout: &PayProPayout, here: &str) -> Value {
    let mut value = serde_json::to_value(payout).expect("sandbox records serialize");
    value["_links"] = json!({ "self": format!("{here}/paypro/payouts/{}", payout.id) });
    value
}

/// Up to `want` of `all` after the one with id `after` (from the first for `None`); `None`
/// when none has that id.
fn page_after<T>(
    all: Vec<T>,
    id: fn(&T) -> &str,
    after: Option<&str>,
    want: usize,
) -> Option<Vec<T>> {
    let from = match after {
        None => 0,
        Some(after) => all.iter().position(|item| id(item) == after)? + 1,
    };
    Some(all.into_iter().skip(from).take(want).collect())
}

fn payment_not_found() -> Response {
    api_error(
        Api::PayPro,
        StatusCode::NOT_FOUND,
        "Payment not found.",
        None,
    )
}

/// `GET /payments/{id}/refunds`: the payment's refunds, newest first; 404 for an unknown
/// payment.
async fn paypro_payment_refunds(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    repeat: Option<Extension<RepeatNext>>,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> Response {
    if shared
        .data
        .read()
        .expect("data lock")
        .paypro_position(&id)
        .is_none()
    {
        return payment_not_found();
    }
    paypro_feed(
        &shared,
        &headers,
        repeat.is_some(),
        &query,
        &format!("payments/{id}/refunds"),
        |data: &Data, after: Option<&str>, want: usize| {
            page_after(
                data.paypro_refunds_of_payment(&id)?,
                |refund: &PayProRefund| refund.id.as_str(),
                after,
                want,
            )
        },
        |refund: &PayProRefund| refund.id.as_str(),
        refund_value,
    )
}

/// `GET /payments/{id}/chargebacks`: the payment's chargebacks, newest first; 404 for an
/// unknown payment.
async fn paypro_payment_chargebacks(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    repeat: Option<Extension<RepeatNext>>,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> Response {
    if shared
        .data
        .read()
        .expect("data lock")
        .paypro_position(&id)
        .is_none()
    {
        return payment_not_found();
    }
    paypro_feed(
        &shared,
        &headers,
        repeat.is_some(),
        &query,
        &format!("payments/{id}/chargebacks"),
        |data: &Data, after: Option<&str>, want: usize| {
            page_after(
                data.paypro_chargebacks_of_payment(&id)?,
                |chargeback: &PayProChargeback| chargeback.id.as_str(),
                after,
                want,
            )
        },
        |chargeback: &PayProChargeback| chargeback.id.as_str(),
        chargeback_value,
    )
}

/// `GET /payouts`, newest first.
async fn paypro_payouts(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    repeat: Option<Extension<RepeatNext>>,
    Query(query): Query<ListQuery>,
) -> Response {
    paypro_feed(
        &shared,
        &headers,
        repeat.is_some(),
        &query,
        "payouts",
        Data::paypro_payouts_after,
        |payout: &PayProPayout| payout.id.as_str(),
        payout_value,
    )
}

/// `GET /payouts/{id}`: one payout; 404 when unknown.
async fn paypro_payout(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let data = shared.data.read().expect("data lock");
    match data.paypro_payout_by_id(&id) {
        Some(payout) => json_response(StatusCode::OK, &payout_value(&payout, &origin(&headers))),
        None => api_error(
            Api::PayPro,
            StatusCode::NOT_FOUND,
            "Payout not found.",
            None,
        ),
    }
}

/// `GET /balances`: the account's one balance, in EUR, in the list envelope.
async fn paypro_balances(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let balance = shared.data.read().expect("data lock").paypro_balance();
    let here = origin(&headers);
    json_response(
        StatusCode::OK,
        &json!({
            "type": "list",
            "data": [balance],
            "count": 1,
            "_links": { "self": format!("{here}/paypro/balances") },
        }),
    )
}

async fn not_found(request: Request) -> Response {
    let api = api_of(request.uri().path()).unwrap_or(Api::Mkp);
    api_error(api, StatusCode::NOT_FOUND, "Not found.", None)
}
