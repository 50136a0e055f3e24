//! HTTP API (docs/broker.md, docs/openapi.json). Handlers read the raw body (≤ 64 KiB, within
//! `http.header_timeout`), authenticate the attestation against it, parse it strictly (JSON
//! only, unknown fields refused), and run the workflow on a blocking thread (SQLite and
//! signing are synchronous).
use crate::auth::{authenticate, verify, Call, Caller};
use crate::broker::Broker;
use crate::error::ApiError;
use crate::grants::RevokeBody;
use crate::metrics::{StoreGauges, WatchGauges};
use crate::roles::require_admin;
use crate::store::read;
use crate::watch::{Full, Woken};
use crate::workflow::{self, ApproveBody, Events, ReasonBody};
use crate::{grants, hosts, revocation_list};
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use time::OffsetDateTime;

use crate::limits::BODY_LIMIT;
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

type Shared = Arc<Broker>;
type ApiResult = Result<Response, ApiError>;

/// The raw call: method, path, Authorization, body (at most [`BODY_LIMIT`] bytes).
pub struct RawCall(pub Call, pub Option<String>);

impl FromRequest<Shared> for RawCall {
    type Rejection = ApiError;

    async fn from_request(req: Request, b: &Shared) -> Result<Self, Self::Rejection> {
        let method = req.method().as_str().to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().map(str::to_string);
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_string).unwrap_or_default());
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().map(str::to_string).unwrap_or_default());
        if let Some(len) = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            if len > BODY_LIMIT as u64 {
                return Err(too_large());
            }
        }
        // The head arrived in time (conn.rs); the body gets as long again.
        let wait = b.config.http.header_timeout;
        let body = tokio::time::timeout(wait, axum::body::to_bytes(req.into_body(), BODY_LIMIT))
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!(
                        "the request body did not arrive within {} (http.header_timeout); send it at once",
                        jit_policy::format_duration(wait)
                    ),
                )
            })?
            .map_err(|_| too_large())?;
        Ok(RawCall(
            Call {
                method,
                path,
                authorization,
                content_type,
                body,
            },
            query,
        ))
    }
}

/// A path parameter; a malformed one is a JSON 400 like every other error.
pub struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| Id(id))
            .map_err(|e| ApiError::bad("invalid_path", format!("the path is not usable: {e}")))
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the request body is larger than {BODY_LIMIT} bytes"),
    )
}

/// A body must say it is JSON: `Content-Type: application/json` (parameters such as
/// `charset=utf-8` allowed). Anything else is 415.
fn json_content(call: &Call) -> Result<(), ApiError> {
    let essence = call.content_type.as_deref().map(|v| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    match essence.as_deref() {
        Some("application/json") => Ok(()),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "the body is {}; send JSON with `Content-Type: application/json`",
                other.map_or("sent without a Content-Type".to_string(), |t| format!(
                    "{t:?}"
                ))
            ),
        )),
    }
}

/// Parse a JSON body strictly.
fn parse<T: DeserializeOwned>(call: &Call) -> Result<T, ApiError> {
    let body = &call.body;
    if body.is_empty() {
        return Err(ApiError::bad(
            "invalid_body",
            "the body is empty; send a JSON object",
        ));
    }
    json_content(call)?;
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad(
            "invalid_body",
            format!("the body is not what this endpoint takes: {e}"),
        )
    })
}

/// Endpoints without a body take an empty one (or `{}`).
fn no_body(call: &Call) -> Result<(), ApiError> {
    if call.body.is_empty() {
        return Ok(());
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Empty {}
    parse::<Empty>(call).map(drop)
}

/// Query parameters strictly (unknown ones refused).
fn query<T: DeserializeOwned + Default>(q: Option<&str>) -> Result<T, ApiError> {
    match q {
        None | Some("") => Ok(T::default()),
        Some(q) => {
            let pairs: serde_json::Map<String, Value> = url_pairs(q)?
                .into_iter()
                .map(|(k, v)| {
                    let value = match v.as_str() {
                        "true" => Value::Bool(true),
                        "false" => Value::Bool(false),
                        s => s
                            .parse::<i64>()
                            .map(Value::from)
                            .unwrap_or(Value::String(v.clone())),
                    };
                    (k, value)
                })
                .collect();
            serde_json::from_value(Value::Object(pairs))
                .map_err(|e| ApiError::bad("invalid_query", format!("query: {e}")))
        }
    }
}

fn url_pairs(q: &str) -> Result<Vec<(String, String)>, ApiError> {
    let decode = |s: &str| -> Result<String, ApiError> {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                    let v = u8::from_str_radix(hex, 16)
                        .map_err(|_| ApiError::bad("invalid_query", "bad %-escape in the query"))?;
                    out.push(v);
                    i += 2;
                }
                b'%' => return Err(ApiError::bad("invalid_query", "bad %-escape in the query")),
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).map_err(|_| ApiError::bad("invalid_query", "the query is not UTF-8"))
    };
    let mut pairs = Vec::new();
    for part in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let k = decode(k)?;
        if pairs.iter().any(|(seen, _): &(String, String)| *seen == k) {
            return Err(ApiError::bad(
                "invalid_query",
                format!("query parameter {k:?} given twice"),
            ));
        }
        pairs.push((k, decode(v)?));
    }
    Ok(pairs)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the request handler failed: {e}")))?
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn ok(status: StatusCode, value: Value) -> Response {
    (status, Json(value)).into_response()
}

/// Authenticate, then parse the query (as `Q`), then run `f`; send syslog events after
/// commit. Nothing about the request is looked at before the attestation is checked.
async fn attested<Q, F, T>(
    b: Shared,
    call: Call,
    query_text: Option<String>,
    f: F,
) -> Result<T, ApiError>
where
    Q: DeserializeOwned + Default + Send + 'static,
    F: FnOnce(&Broker, &Caller, &Call, Q, OffsetDateTime) -> Result<(T, Events), ApiError>
        + Send
        + 'static,
    T: Send + 'static,
{
    let b2 = b.clone();
    let (value, events) = blocking(move || {
        let now = now();
        let caller = authenticate(&b2, &call, now)?;
        let q: Q = query(query_text.as_deref())?;
        f(&b2, &caller, &call, q, now)
    })
    .await?;
    if !events.is_empty() {
        b.committed(events);
    }
    Ok(value)
}

/// Reads only: no events.
fn view<T>(v: Result<T, ApiError>) -> Result<(T, Events), ApiError> {
    v.map(|v| (v, Vec::new()))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RequestsQuery {
    #[serde(default)]
    mine: bool,
    #[serde(default)]
    pending: bool,
    #[serde(default)]
    decidable: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GrantsQuery {
    #[serde(default)]
    mine: bool,
    #[serde(default)]
    active: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    after: i64,
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RevocationsQuery {
    /// The seq the client has: hold the call until the list's is higher (a watch).
    #[serde(default)]
    after_seq: Option<u64>,
    /// Seconds to hold at most (the broker holds `http.watch_hold` at most).
    #[serde(default)]
    wait: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostBody {
    name: String,
    public_key: String,
    #[serde(default)]
    enrollment_token: Option<String>,
}

async fn create_request(State(b): State<Shared>, RawCall(call, q): RawCall) -> ApiResult {
    let v = attested(b, call, q, |b, c, call, Empty {}, now| {
        workflow::create(b, c, parse(call)?, now)
    })
    .await?;
    Ok(ok(StatusCode::CREATED, v))
}

async fn list_requests(State(b): State<Shared>, RawCall(call, q): RawCall) -> ApiResult {
    let v = attested(b, call, q, |b, c, call, q: RequestsQuery, now| {
        no_body(call)?;
        let listing = workflow::Listing {
            mine: q.mine,
            pending: q.pending,
            decidable: q.decidable,
        };
        view(workflow::list_requests(b, c, listing, now))
    })
    .await?;
    Ok(ok(StatusCode::OK, v))
}

async fn show_request(State(b): State<Shared>, Id(id): Id, RawCall(call, q): RawCall) -> ApiResult {
    let v = attested(b, call, q, move |b, c, call, Empty {}, _| {
        no_body(call)?;
        view(workflow::show_request(b, c, &id))
    })
    .await?;
    Ok(ok(StatusCode::OK, v))
}

async fn approve(State(b): State<Shared>, Id(id): Id, RawCall(call, q): RawCall) -> ApiResult {
    let v = attested(b, call, q, move |b, c, call, Empty {}, now| {
        let body: ApproveBody = if call.body.is_empty() {
            ApproveBody { comment: None }
        } else {
            parse(call)?
        };
        workflow::approve(b, c, &id, body, now)
    })
    .await?;
    Ok(ok(StatusCode::OK, v))
}

async fn deny(State(b): State<Shared>, Id(id): Id, RawCall(call, q): RawCall) -> ApiResult {
    let v = attested(b, call, q, move |b, c, call, Empty {}, now| {
        workflow::deny(b, c, &id, parse::<ReasonBody>(call)?, now)
    })
    .await?;
    Ok(ok(StatusCode::OK, v))
}

async fn cancel(State(b): State<Shared>, Id(id): Id, RawCall(call, q): RawCall) -> ApiResult {
    let v = attested(b, call, q, move |b, c, call, Empty {}, now| {
        no_body(call)?;
        workflow::cancel(b, c, &id, now)
    })
    .await?;
    Ok(ok(StatusCode::OK, v))
}

async fn list_grants(State(b): State<Shared>, RawCall(call, q): RawCall) -> ApiResult {
    let v = attested(b, call, q, |b, c, call, q: GrantsQuery, now| {
        no_body(call)?;
        view(grants::list_grants(b, c, q.mine, q.active, now))
    })
    .await?;
    Ok(ok(StatusCode::OK, v))
}

async fn show_grant(State(b): State<Shared>, Id(id): Id, RawCall(call, q): RawCall) -> ApiResult {
    let v = attested(b, call, q, move |b, c, call, Empty {}, _| {
        no_body(call)?;
        view(grants::show_grant(b, c, &id))
    })
    .await?;
    Ok(ok(StatusCode::OK, v))
}

async fn revoke(State(b): State<Shared>, Id(id): Id, RawCall(call, q): RawCall) -> ApiResult {
    let v = attested(b.clone(), call, q, move |b, c, call, Empty {}, now| {
        grants::revoke(b, c, &id, parse::<RevokeBody>(call)?, now)
    })
    .await?;
    b.watches.poke();
    Ok(ok(StatusCode::OK, v))
}

/// The signed list; with `after_seq`, a watch: held (at most `http.watch_hold`, or `wait`)
/// until the list's seq passes it, then answered with the list (the same one when the hold
/// ran out). Past `http.max_watches` held at once: 429 with Retry-After.
async fn revocations(State(b): State<Shared>, RawCall(call, q): RawCall) -> ApiResult {
    let (list, q, host) = attested(
        b.clone(),
        call,
        q,
        |b, c, call, q: RevocationsQuery, now| {
            no_body(call)?;
            if q.wait.is_some_and(|w| w > MAX_WAIT) {
                return Err(ApiError::bad(
                    "invalid_query",
                    format!("wait is in seconds, at most {MAX_WAIT} (the broker holds a watch http.watch_hold at most)"),
                ));
            }
            view(revocation_list::revocations(b, now).map(|list| (list, q, c.host().to_string())))
        },
    )
    .await?;
    let hold = b
        .config
        .http
        .watch_hold
        .min(std::time::Duration::from_secs(q.wait.unwrap_or(u64::MAX)));
    let seq = list.get("seq").and_then(Value::as_u64).unwrap_or(0);
    let after = match q.after_seq {
        Some(after) if after >= seq && !hold.is_zero() => after,
        _ => return Ok(ok(StatusCode::OK, list)),
    };
    let _held = match b.watches.try_hold(&host) {
        Ok(held) => held,
        Err(full) => return Ok(too_many_watches(&b, full, &host)),
    };
    let answer = match b.watches.wait_past(after, hold).await {
        Woken::Changed(list) => list.as_ref().clone(),
        Woken::Timeout | Woken::Closing => {
            let b2 = b.clone();
            blocking(move || revocation_list::revocations(&b2, now())).await?
        }
    };
    Ok(ok(StatusCode::OK, answer))
}

/// The largest `wait` (seconds) a watch may ask for.
const MAX_WAIT: u64 = 3600;

fn too_many_watches(b: &Broker, full: Full, host: &str) -> Response {
    let retry = b.config.http.watch_hold.as_secs().max(1);
    let held = match full {
        Full::Broker => format!(
            "this broker holds {} revocation watches already (http.max_watches)",
            b.watches.limit()
        ),
        Full::Host => format!(
            "this broker holds {} revocation watches for host {host} already (http.max_watches_per_host)",
            b.watches.per_host()
        ),
    };
    let mut resp = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_watches",
        format!("{held}; fetch the list without after_seq, or watch again in {retry}s (or from another broker)"),
    )
    .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry));
    resp
}

async fn sealed_used(State(b): State<Shared>, RawCall(call, q): RawCall) -> ApiResult {
    let v = attested(b, call, q, |b, c, call, Empty {}, now| {
        crate::sealed::record_uses(b, c, parse(call)?, now)
    })
    .await?;
    Ok(ok(StatusCode::OK, v))
}

async fn add_host(State(b): State<Shared>, RawCall(call, q): RawCall) -> ApiResult {
    let b2 = b.clone();
    let (v, events) = blocking(move || {
        let now = now();
        // Enrolling with a token is attested by the key being enrolled, which only the body
        // names: then the body is read first (the attestation still binds its hash), and
        // nothing is written (not even the attestation's jti) unless the token is good.
        let by_token: Option<HostBody> = serde_json::from_slice::<HostBody>(&call.body)
            .ok()
            .filter(|h| h.enrollment_token.is_some());
        if let Some(h) = by_token {
            hosts::valid_host_name(&h.name)?;
            let key = hosts::parse_host_key(&h.public_key)?;
            let verified = verify(&b2, &call, Some((&key, &h.name)), now)?;
            query::<Empty>(q.as_deref())?;
            json_content(&call)?;
            let enrollment = hosts::Enrollment::Token {
                token: h.enrollment_token.as_deref().unwrap_or_default(),
                attestation: &verified,
            };
            let actor = verified.caller.actor();
            return hosts::add_host(&b2, &actor, &h.name, &key, enrollment, now);
        }
        let caller = authenticate(&b2, &call, now)?;
        query::<Empty>(q.as_deref())?;
        let body: HostBody = parse(&call)?;
        let key = hosts::parse_host_key(&body.public_key)?;
        require_admin(&b2, &caller)?;
        hosts::add_host(
            &b2,
            &caller.actor(),
            &body.name,
            &key,
            hosts::Enrollment::Admin,
            now,
        )
    })
    .await?;
    b.committed(events);
    Ok(ok(StatusCode::CREATED, v))
}

async fn list_hosts(State(b): State<Shared>, RawCall(call, q): RawCall) -> ApiResult {
    let v = attested(b, call, q, |b, c, call, Empty {}, _| {
        no_body(call)?;
        require_admin(b, c)?;
        let hosts = hosts::list_hosts(b)?;
        view(Ok(
            json!({"hosts": hosts.iter().map(|h| h.to_json()).collect::<Vec<_>>()}),
        ))
    })
    .await?;
    Ok(ok(StatusCode::OK, v))
}

async fn retire_host(
    State(b): State<Shared>,
    Id(name): Id,
    RawCall(call, q): RawCall,
) -> ApiResult {
    let v = attested(b, call, q, move |b, c, call, Empty {}, now| {
        no_body(call)?;
        require_admin(b, c)?;
        hosts::retire_host(b, &c.actor(), &name, now)
    })
    .await?;
    Ok(ok(StatusCode::OK, v))
}

async fn audit(State(b): State<Shared>, RawCall(call, q): RawCall) -> ApiResult {
    let v = attested(b, call, q, |b, c, call, q: AuditQuery, _| {
        no_body(call)?;
        let filter = crate::store::AuditFilter {
            after: q.after,
            limit: q.limit.unwrap_or(100),
            ..Default::default()
        };
        let rows = hosts::audit_search(b, c, &filter)?;
        view(Ok(
            json!({"events": rows.iter().map(|e| e.to_json()).collect::<Vec<_>>()}),
        ))
    })
    .await?;
    Ok(ok(StatusCode::OK, v))
}

/// Liveness: the process answers (nothing else is looked at).
async fn healthz() -> Response {
    ok(StatusCode::OK, json!({"status": "ok"}))
}

/// How long a readiness result is reused (probes are unauthenticated writes).
const READY_CACHE: std::time::Duration = std::time::Duration::from_secs(1);

/// Readiness: the store takes a write and its file system has room (a full disk, a
/// read-only remount or a broken store make this 503 while /healthz stays 200).
async fn readyz(State(b): State<Shared>) -> Response {
    let b2 = b.clone();
    let result = blocking(move || {
        let mut cache = b2.readiness.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, result)) = cache.as_ref() {
            if at.elapsed() < READY_CACHE {
                return Ok(result.clone());
            }
        }
        let result = b2.store.ready(now()).map_err(|e| e.to_string());
        *cache = Some((std::time::Instant::now(), result.clone()));
        Ok(result)
    })
    .await;
    match result {
        Ok(Ok(())) => ok(StatusCode::OK, json!({"status": "ready"})),
        Ok(Err(message)) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("{message}; the broker answers nothing that needs a write until this is fixed"),
        )
        .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

async fn metrics(State(b): State<Shared>) -> ApiResult {
    let b2 = b.clone();
    let gauges = blocking(move || {
        read(b2.store.as_ref(), |tx| {
            Ok(StoreGauges {
                requests_by_state: tx.request_counts()?,
                grants_total: tx.grants_issued()?,
                outbox: tx.outbox_counts()?,
                syslog_backlog: tx
                    .syslog_backlog(b2.syslog.next.load(std::sync::atomic::Ordering::Acquire))?,
            })
        })
    })
    .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        b.metrics.render(
            &gauges,
            &WatchGauges {
                held: b.watches.held() as u64,
                limit: b.watches.limit() as u64,
                refused: b.watches.refused.load(std::sync::atomic::Ordering::Relaxed),
                announced: b
                    .watches
                    .announced
                    .load(std::sync::atomic::Ordering::Relaxed),
                listening: b
                    .watches
                    .listening
                    .load(std::sync::atomic::Ordering::Relaxed),
            },
        ),
    )
        .into_response())
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no endpoint {} {}; see /v1/openapi.json",
        req.method(),
        req.uri().path()
    ))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}; see /v1/openapi.json",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn count_status(State(b): State<Shared>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    b.metrics.http(resp.status().as_u16());
    resp
}

pub fn router(b: Shared, web: Option<Arc<crate::web::Web>>) -> Router {
    Router::new()
        .nest_service("/ui", crate::web::router(b.clone(), web))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/requests", post(create_request).get(list_requests))
        .route("/v1/requests/{id}", get(show_request))
        .route("/v1/requests/{id}/approve", post(approve))
        .route("/v1/requests/{id}/deny", post(deny))
        .route("/v1/requests/{id}/cancel", post(cancel))
        .route("/v1/grants", get(list_grants))
        .route("/v1/grants/{id}", get(show_grant))
        .route("/v1/grants/{id}/revoke", post(revoke))
        .route("/v1/revocations", get(revocations))
        .route("/v1/sealed/used", post(sealed_used))
        .route("/v1/hosts", post(add_host).get(list_hosts))
        .route("/v1/hosts/{name}/retire", post(retire_host))
        .route("/v1/audit", get(audit))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(b.clone(), count_status))
        // Our own extractor enforces the limit with a JSON error; this is the backstop.
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(b)
}
