//! The pages' handlers. Reads and actions go through the functions the API uses
//! (`workflow::requests_for`, `check_decidable`, `approve`, `deny`, `cancel`;
//! `grants::grants_for`, `revoke`; `hosts::audit_search`) with the signed-in person as the
//! caller: one rule set, and the same answers (refusals included) for the same person.
use super::session::{self, Signed};
use super::views::{
    self, ChainStatus, ConfirmPage, EventView, GrantView, GrantsPage, MinePage, Nav, PendingPage,
    RequestPage, RequestView, RevokePage, SignedOutPage,
};
use super::{blocking, now, safe_next, PageError, Posted, SignedIn, Ui};
use crate::error::ApiError;
use crate::grants::{self, RevokeBody};
use crate::roles::is_admin;
use crate::store::{bookkeeping, AuditFilter, WebLogin};
use crate::workflow::{self, ApproveBody, Listing, ReasonBody};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use std::time::{Duration, Instant};

type PageResult = Result<Response, PageError>;

/// Most sign-ins in progress at once (each is a row until it finishes or expires).
const MAX_SIGNINS: u64 = 10_000;
/// How long a sign-in may take at the provider.
const SIGNIN_TTL: Duration = Duration::from_secs(600);
/// How long a verification of the audit chain is shown before it runs again.
const CHAIN_TTL: Duration = Duration::from_secs(30);
const STYLE: &str = include_str!("../../static/style.css");

pub fn routes() -> Router<Ui> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/pending") }))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/logout", post(logout))
        .route("/pending", get(pending))
        .route("/requests", get(mine))
        .route("/requests/{id}", get(request_page))
        .route("/requests/{id}/approve", get(confirm_approve).post(approve))
        .route("/requests/{id}/deny", get(confirm_deny).post(deny))
        .route("/requests/{id}/cancel", post(cancel))
        .route("/grants", get(grants_page))
        .route("/grants/{id}/revoke", get(confirm_revoke).post(revoke))
        .route("/audit", get(audit))
        .route("/static/style.css", get(style))
}

pub async fn not_found() -> Response {
    views::error_page(&ApiError::not_found("no such page"))
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

fn nav(ui: &Ui, s: &Signed, tab: &'static str) -> Nav {
    Nav {
        user: s.caller.user.clone(),
        admin: is_admin(&ui.b, &s.caller),
        csrf: s.session.csrf.clone(),
        broker: ui.b.config.id.clone(),
        tab,
    }
}

fn ok<T: askama::Template>(page: &T) -> PageResult {
    Ok(views::html(StatusCode::OK, page))
}

/// After an action: back to a page (303, so a reload does not post again).
fn see_other(to: &str) -> PageResult {
    Ok(Redirect::to(to).into_response())
}

/// A path parameter that is an id (ULID): anything else is not a page.
fn id_param(id: &str) -> Result<String, PageError> {
    ulid::Ulid::from_string(id)
        .map(|_| id.to_string())
        .map_err(|_| PageError::Api(ApiError::not_found(format!("{id:?} is not an id"))))
}

// ---- sign-in

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// Start a sign-in: remember state, nonce and PKCE verifier (by the state's hash), bind the
/// state to this browser with a cookie, send the browser to the provider.
async fn login(State(ui): State<Ui>, Query(q): Query<LoginQuery>) -> PageResult {
    let next = safe_next(q.next.as_deref().unwrap_or("/ui/pending"));
    let w = ui.web.clone();
    let b = ui.b.clone();
    let begin = blocking(move || {
        let begin = w.provider.begin().map_err(|e| {
            eprintln!("jitbroker: web sign-in: {e}");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "provider_unavailable",
                format!("{e}; try again later, or ask the broker's admin"),
            )
        })?;
        let now = now();
        bookkeeping(b.store.as_ref(), |tx| {
            if tx.count_web_logins(now)? >= MAX_SIGNINS {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too_many_signins",
                    "too many sign-ins are in progress; try again in a few minutes",
                ));
            }
            tx.insert_web_login(&WebLogin {
                state_sha256: crate::audit_chain::sha256_hex(begin.state.as_bytes()),
                nonce: begin.nonce.clone(),
                pkce_verifier: begin.pkce_verifier.clone(),
                return_to: next,
                expires: now + SIGNIN_TTL,
            })?;
            Ok(())
        })?;
        Ok(begin)
    })
    .await?;
    let web = &ui.web.settings;
    let cookie = session::set_cookie(
        web,
        session::signin_cookie_name(web),
        &begin.state,
        Some(SIGNIN_TTL.as_secs()),
    );
    let mut resp = Redirect::to(&begin.url).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn signin_refused(message: String) -> PageError {
    PageError::Api(ApiError::forbidden("signin_refused", message))
}

/// The provider sends the browser back: the state must be this browser's sign-in; then the
/// code is exchanged, the ID token verified and mapped, and a session starts.
async fn callback(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> PageResult {
    let web = &ui.web.settings;
    if let Some(error) = q.error {
        let why = q.error_description.unwrap_or_default();
        ui.b.metrics.web_signin(false);
        return Err(signin_refused(format!(
            "the identity provider did not sign you in: {error} {why}; try again"
        )));
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return Err(PageError::Api(ApiError::bad(
            "invalid_query",
            "the provider's answer has no code or state; start again at /ui/",
        )));
    };
    let bound = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| session::cookie(h, session::signin_cookie_name(web)).map(str::to_string));
    if !bound.is_some_and(|b| session::same_secret(&b, &state)) {
        ui.b.metrics.web_signin(false);
        return Err(signin_refused("this sign-in was not started in this browser (its state does not match); start again at /ui/".into()));
    }
    let old = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| session::cookie(h, session::cookie_name(web)).map(str::to_string));
    let (b, w) = (ui.b.clone(), ui.web.clone());
    let outcome = blocking(move || {
        let now = now();
        let hash = crate::audit_chain::sha256_hex(state.as_bytes());
        let login = bookkeeping(b.store.as_ref(), |tx| Ok(tx.take_web_login(&hash, now)?))?
            .ok_or_else(|| {
                ApiError::forbidden(
                    "signin_refused",
                    "this sign-in is unknown or took longer than 10 minutes; start again at /ui/",
                )
            })?;
        let person = w
            .provider
            .finish(&code, &login.pkce_verifier, &login.nonce)
            .map_err(|e| {
                eprintln!("jitbroker: web sign-in refused: {e}");
                ApiError::forbidden("signin_refused", e.to_string())
            })?;
        if let Some(old) = old {
            // A session this browser had ends: one browser, one session.
            if let Ok(Ok(prev)) = session::lookup(&b, &w.settings, &old, now) {
                let (_, events) = session::end(
                    &b,
                    &prev.session,
                    &prev.caller.actor(),
                    "signed in again",
                    now,
                )?;
                b.committed(events);
            }
        }
        let (_, token, events) = session::start(&b, &w.settings, &person, now)?;
        b.committed(events);
        Ok((token, login.return_to))
    })
    .await;
    let (token, next) = match outcome {
        Ok(v) => v,
        Err(e) => {
            ui.b.metrics.web_signin(false);
            return Err(e.into());
        }
    };
    ui.b.metrics.web_signin(true);
    let mut resp = Redirect::to(&safe_next(&next)).into_response();
    // A browser-session cookie (gone when the browser closes); the store enforces the lifetimes.
    for c in [
        session::set_cookie(web, session::cookie_name(web), &token, None),
        session::set_cookie(web, session::signin_cookie_name(web), "", Some(0)),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CsrfForm {
    #[allow(dead_code)]
    csrf: String,
}

/// Sign out: the session ends in the store (audited), the cookie is cleared.
async fn logout(State(ui): State<Ui>, Posted(s, CsrfForm { .. }): Posted<CsrfForm>) -> PageResult {
    let b = ui.b.clone();
    let s2 = s.clone();
    blocking(move || {
        let (_, events) = session::end(&b, &s2.session, &s2.caller.actor(), "logout", now())?;
        b.committed(events);
        Ok(())
    })
    .await?;
    let web = &ui.web.settings;
    let mut resp = views::html(
        StatusCode::OK,
        &SignedOutPage {
            user: s.caller.user.clone(),
        },
    );
    let clear = session::set_cookie(web, session::cookie_name(web), "", Some(0));
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

// ---- requests

async fn pending(State(ui): State<Ui>, SignedIn(s): SignedIn) -> PageResult {
    let (b, c, web) = (ui.b.clone(), s.caller.clone(), ui.web.clone());
    let (requests, break_glass) = blocking(move || {
        let now = now();
        let listing = Listing {
            decidable: true,
            ..Default::default()
        };
        let requests: Vec<RequestView> = workflow::requests_for(&b, &c, listing, now)?
            .iter()
            .map(|r| RequestView::new(r, &web.settings, now))
            .collect();
        // Break-glass grants in force that this person may revoke (not their own).
        let mut alerts = Vec::new();
        for g in grants::grants_for(&b, &c, false, true, now)?
            .into_iter()
            .filter(|g| g.break_glass && g.user != c.user)
        {
            let reason = workflow::request_for(&b, &c, &g.request_id)
                .ok()
                .map(|r| r.reason);
            alerts.push(GrantView::new(&g, reason, now));
        }
        Ok((requests, alerts))
    })
    .await?;
    ok(&PendingPage {
        nav: nav(&ui, &s, "pending"),
        requests,
        break_glass,
    })
}

async fn mine(State(ui): State<Ui>, SignedIn(s): SignedIn) -> PageResult {
    let (b, c, web) = (ui.b.clone(), s.caller.clone(), ui.web.clone());
    let requests = blocking(move || {
        let now = now();
        let listing = Listing {
            mine: true,
            ..Default::default()
        };
        Ok(workflow::requests_for(&b, &c, listing, now)?
            .iter()
            .map(|r| RequestView::new(r, &web.settings, now))
            .collect())
    })
    .await?;
    ok(&MinePage {
        nav: nav(&ui, &s, "mine"),
        requests,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DoneQuery {
    done: Option<String>,
}

fn done_text(done: Option<&str>) -> Option<String> {
    Some(
        match done? {
            "approved" => "You approved this request.",
            "denied" => "You denied this request.",
            "cancelled" => "You cancelled this request.",
            "revoked" => "You revoked the grant.",
            _ => return None,
        }
        .to_string(),
    )
}

async fn request_page(
    State(ui): State<Ui>,
    SignedIn(s): SignedIn,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let id = id_param(&id)?;
    let (b, c, web) = (ui.b.clone(), s.caller.clone(), ui.web.clone());
    let page = blocking(move || {
        let now = now();
        let (r, rows) = workflow::history(&b, &c, &id)?;
        let decidable = workflow::check_decidable(&b, &c, &r, now, "approve");
        let (can_deny, why_not) = match &decidable {
            Ok(_) => (true, None),
            Err(e) if r.state == crate::model::State::Pending => (false, Some(e.message.clone())),
            Err(_) => (false, None),
        };
        let can_approve = can_deny && !workflow::approved_by(&r, &c);
        let why_not = why_not.or_else(|| {
            (can_deny && !can_approve).then(|| {
                format!(
                    "You approved this request; it waits for {} more.",
                    r.needed_approvals as usize
                        - r.approvals.len().min(r.needed_approvals as usize)
                )
            })
        });
        let grant = match &r.grant_id {
            Some(g) => grants::grant_for(&b, &c, g).ok(),
            None => None,
        };
        let can_revoke = grant
            .as_ref()
            .is_some_and(|g| grants::may_revoke(&b, &c, g, now));
        Ok(RequestPage {
            nav: Nav {
                user: String::new(),
                admin: false,
                csrf: String::new(),
                broker: String::new(),
                tab: "",
            },
            r: RequestView::new(&r, &web.settings, now),
            done: None,
            can_approve,
            can_deny,
            why_not,
            can_cancel: r.user == c.user
                && r.state == crate::model::State::Pending
                && r.expires > now,
            grant: grant.map(|g| GrantView::new(&g, Some(r.reason.clone()), now)),
            can_revoke,
            history: rows.iter().map(EventView::new).collect(),
        })
    })
    .await?;
    ok(&RequestPage {
        nav: nav(&ui, &s, ""),
        done: done_text(q.done.as_deref()),
        ..page
    })
}

/// The confirmation page of a decision: it repeats what is being granted, and is shown only
/// when the decision is allowed (else the API's refusal, as an error page).
async fn confirm(ui: Ui, s: Signed, id: String, action: &'static str) -> PageResult {
    let id = id_param(&id)?;
    let (b, c, web) = (ui.b.clone(), s.caller.clone(), ui.web.clone());
    let (r, issues_now) = blocking(move || {
        let now = now();
        let r = workflow::request_for(&b, &c, &id)?;
        workflow::check_decidable(&b, &c, &r, now, action)?;
        if action == "approve" && workflow::approved_by(&r, &c) {
            return Err(ApiError::conflict(
                "already_approved",
                format!(
                    "{} already approved request {id}; it needs approvals from other people",
                    c.user
                ),
            ));
        }
        let issues_now = r.approvals.len() as u32 + 1 >= r.needed_approvals;
        Ok((RequestView::new(&r, &web.settings, now), issues_now))
    })
    .await?;
    ok(&ConfirmPage {
        nav: nav(&ui, &s, ""),
        r,
        action,
        issues_now,
    })
}

async fn confirm_approve(
    State(ui): State<Ui>,
    SignedIn(s): SignedIn,
    Path(id): Path<String>,
) -> PageResult {
    confirm(ui, s, id, "approve").await
}

async fn confirm_deny(
    State(ui): State<Ui>,
    SignedIn(s): SignedIn,
    Path(id): Path<String>,
) -> PageResult {
    confirm(ui, s, id, "deny").await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveForm {
    #[allow(dead_code)]
    csrf: String,
    #[serde(default)]
    comment: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonForm {
    #[allow(dead_code)]
    csrf: String,
    reason: String,
}

/// Run an action as the signed-in person; its syslog events go out after the commit.
async fn act(
    ui: &Ui,
    f: impl FnOnce(
            &crate::broker::Broker,
            time::OffsetDateTime,
        ) -> Result<(serde_json::Value, workflow::Events), ApiError>
        + Send
        + 'static,
) -> Result<(), PageError> {
    let b = ui.b.clone();
    let events = blocking(move || f(&b, now()).map(|(_, events)| events)).await?;
    ui.b.committed(events);
    Ok(())
}

async fn approve(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    Posted(s, form): Posted<ApproveForm>,
) -> PageResult {
    let id = id_param(&id)?;
    let (c, rid) = (s.caller.clone(), id.clone());
    let comment = form.comment.filter(|c| !c.trim().is_empty());
    act(&ui, move |b, now| {
        workflow::approve(b, &c, &rid, ApproveBody { comment }, now)
    })
    .await?;
    see_other(&format!("/ui/requests/{id}?done=approved"))
}

async fn deny(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    Posted(s, form): Posted<ReasonForm>,
) -> PageResult {
    let id = id_param(&id)?;
    let (c, rid) = (s.caller.clone(), id.clone());
    act(&ui, move |b, now| {
        workflow::deny(
            b,
            &c,
            &rid,
            ReasonBody {
                reason: form.reason,
            },
            now,
        )
    })
    .await?;
    see_other(&format!("/ui/requests/{id}?done=denied"))
}

async fn cancel(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    Posted(s, CsrfForm { .. }): Posted<CsrfForm>,
) -> PageResult {
    let id = id_param(&id)?;
    let (c, rid) = (s.caller.clone(), id.clone());
    act(&ui, move |b, now| workflow::cancel(b, &c, &rid, now)).await?;
    see_other(&format!("/ui/requests/{id}?done=cancelled"))
}

// ---- grants

async fn grants_page(
    State(ui): State<Ui>,
    SignedIn(s): SignedIn,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let (b, c) = (ui.b.clone(), s.caller.clone());
    let grants = blocking(move || {
        let now = now();
        let mut out = Vec::new();
        for g in grants::grants_for(&b, &c, false, true, now)? {
            let reason = workflow::request_for(&b, &c, &g.request_id)
                .ok()
                .map(|r| r.reason);
            out.push(GrantView::new(&g, reason, now));
        }
        Ok(out)
    })
    .await?;
    ok(&GrantsPage {
        nav: nav(&ui, &s, "grants"),
        grants,
        done: done_text(q.done.as_deref()),
    })
}

async fn confirm_revoke(
    State(ui): State<Ui>,
    SignedIn(s): SignedIn,
    Path(id): Path<String>,
) -> PageResult {
    let id = id_param(&id)?;
    let (b, c) = (ui.b.clone(), s.caller.clone());
    let g = blocking(move || {
        let now = now();
        let g = grants::grant_for(&b, &c, &id)?;
        if !grants::may_revoke(&b, &c, &g, now) {
            return Err(ApiError::conflict(
                "not_active",
                format!("grant {id} is already revoked or has expired; nothing to revoke"),
            ));
        }
        let reason = workflow::request_for(&b, &c, &g.request_id)
            .ok()
            .map(|r| r.reason);
        Ok(GrantView::new(&g, reason, now))
    })
    .await?;
    ok(&RevokePage {
        nav: nav(&ui, &s, "grants"),
        g,
    })
}

async fn revoke(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    Posted(s, form): Posted<ReasonForm>,
) -> PageResult {
    let id = id_param(&id)?;
    let (c, gid) = (s.caller.clone(), id.clone());
    act(&ui, move |b, now| {
        grants::revoke(
            b,
            &c,
            &gid,
            RevokeBody {
                reason: form.reason,
                token: None,
            },
            now,
        )
    })
    .await?;
    see_other("/ui/grants?done=revoked")
}

// ---- audit

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    before: Option<i64>,
}

/// `2026-01-31`, `2026-01-31T09:00`, `2026-01-31T09:00:00Z` (UTC); `end` makes a bare date
/// mean its last second.
fn parse_when(
    field: &str,
    text: &str,
    end: bool,
) -> Result<Option<time::OffsetDateTime>, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || {
        ApiError::bad(
            "invalid_query",
            format!(
                "{field}: {text:?} is not a date (2026-01-31) or a time (2026-01-31T09:00:00Z)"
            ),
        )
    };
    if let Ok(t) = jit_grant::parse_time(text) {
        return Ok(Some(t));
    }
    let (date, clock) = text.split_once('T').unwrap_or((text, ""));
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts[..] else {
        return Err(bad());
    };
    let month: u8 = m.parse().map_err(|_| bad())?;
    let day = time::Date::from_calendar_date(
        y.parse().map_err(|_| bad())?,
        time::Month::try_from(month).map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    )
    .map_err(|_| bad())?;
    let t = match clock.trim_end_matches('Z') {
        "" if end => day.with_hms(23, 59, 59),
        "" => day.with_hms(0, 0, 0),
        hm => {
            let (h, m) = hm.split_once(':').ok_or_else(bad)?;
            day.with_hms(
                h.parse().map_err(|_| bad())?,
                m.get(..2).unwrap_or(m).parse().map_err(|_| bad())?,
                0,
            )
        }
    }
    .map_err(|_| bad())?;
    Ok(Some(t.assume_utc()))
}

const AUDIT_PAGE: u32 = 200;

async fn audit(
    State(ui): State<Ui>,
    SignedIn(s): SignedIn,
    Query(q): Query<AuditQuery>,
) -> PageResult {
    let (b, c, w) = (ui.b.clone(), s.caller.clone(), ui.web.clone());
    let filter = AuditFilter {
        after: 0,
        before: q.before,
        newest_first: true,
        user: Some(q.user.trim().to_string()).filter(|u| !u.is_empty()),
        rule: Some(q.rule.trim().to_string()).filter(|u| !u.is_empty()),
        since: parse_when("since", &q.since, false)?,
        until: parse_when("until", &q.until, true)?,
        limit: AUDIT_PAGE,
    };
    let (rows, chain) = blocking(move || {
        let rows = crate::hosts::audit_search(&b, &c, &filter)?;
        Ok((rows, chain_status(&b, &w)?))
    })
    .await?;
    let older = (rows.len() as u32 == AUDIT_PAGE).then(|| {
        let last = rows.last().map_or(0, |r| r.id);
        format!(
            "/ui/audit?user={}&rule={}&since={}&until={}&before={last}",
            views::url_encode(&q.user),
            views::url_encode(&q.rule),
            views::url_encode(&q.since),
            views::url_encode(&q.until)
        )
    });
    ok(&views::AuditPage {
        nav: nav(&ui, &s, "audit"),
        chain,
        rows: rows.iter().map(EventView::new).collect(),
        user: q.user,
        rule: q.rule,
        since: q.since,
        until: q.until,
        older,
    })
}

/// Verify the whole hash chain (`jitbroker audit verify`), at most every 30 s.
fn chain_status(b: &crate::broker::Broker, w: &super::Web) -> Result<ChainStatus, ApiError> {
    let mut cached = w.chain.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((at, status)) = cached.as_ref() {
        if at.elapsed() < CHAIN_TTL {
            return Ok(status.clone());
        }
    }
    let rows = b.store.audit_rows()?;
    let checked = jit_grant::format_time(now());
    let status = match crate::audit_chain::verify(&rows) {
        Ok(n) => ChainStatus {
            intact: true,
            text: format!(
                "Hash chain intact: {n} events verified at {checked}{}.",
                rows.last()
                    .map(|r| format!(", last hash {}", r.hash))
                    .unwrap_or_default()
            ),
        },
        Err(broken) => ChainStatus {
            intact: false,
            text: format!(
                "Hash chain BROKEN at event {}: {} (verified at {checked}).",
                broken.id, broken.why
            ),
        },
    };
    *cached = Some((Instant::now(), status.clone()));
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_times() {
        let t = |s, end| {
            parse_when("since", s, end)
                .unwrap()
                .map(jit_grant::format_time)
        };
        assert_eq!(
            t("2026-01-31", false).as_deref(),
            Some("2026-01-31T00:00:00Z")
        );
        assert_eq!(
            t("2026-01-31", true).as_deref(),
            Some("2026-01-31T23:59:59Z")
        );
        assert_eq!(
            t("2026-01-31T09:30", false).as_deref(),
            Some("2026-01-31T09:30:00Z")
        );
        assert_eq!(
            t("2026-01-31T09:30:05Z", false).as_deref(),
            Some("2026-01-31T09:30:05Z")
        );
        assert_eq!(t(" ", false), None);
        assert!(parse_when("since", "yesterday", false).is_err());
    }
}
