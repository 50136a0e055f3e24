//! What the pages show: view models made from the broker's own records (the same ones the
//! API answers with), and the askama templates (`crates/jit-broker/templates/`), which escape
//! every value they print as HTML.
use crate::config::WebSettings;
use crate::error::ApiError;
use crate::model::{AuditEntry, Grant, Request};
use askama::Template;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use jit_grant::format_time;
use serde_json::Value;
use std::time::Duration;
use time::OffsetDateTime;

/// The frame of every page: who is signed in, the tabs, the sign-out form's CSRF token.
pub struct Nav {
    pub user: String,
    pub admin: bool,
    pub csrf: String,
    pub broker: String,
    pub tab: &'static str,
}

/// A duration for people: `1h 5m`, `42s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let two = |big: u64, a: &str, small: u64, b: &str| {
        if small == 0 {
            format!("{big}{a}")
        } else {
            format!("{big}{a} {small}{b}")
        }
    };
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => two(s / 60, "m", s % 60, "s"),
        3600..=86399 => two(s / 3600, "h", (s % 3600) / 60, "m"),
        _ => two(s / 86400, "d", (s % 86400) / 3600, "h"),
    }
}

fn left(until: OffsetDateTime, now: OffsetDateTime) -> String {
    if until <= now {
        "none".into()
    } else {
        human((until - now).unsigned_abs())
    }
}

/// Percent-encoding for a URL's query or path part.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub struct ApprovalView {
    pub user: String,
    pub via: String,
    pub at: String,
    pub comment: Option<String>,
}

/// How someone was identified, for people: `SSO` or `from host web-2`.
fn via(source: &str, host: &str) -> String {
    match (source, host) {
        ("oidc", _) => "signed in through SSO".into(),
        (_, "") => String::new(),
        (_, h) => format!("from host {h}"),
    }
}

pub struct RequestView {
    pub id: String,
    pub user: String,
    pub host: String,
    pub rule: String,
    pub cmd: String,
    pub hosts: String,
    pub run_as: String,
    pub ttl: String,
    pub reason: String,
    pub ticket: Option<String>,
    pub ticket_link: Option<String>,
    pub state: String,
    pub break_glass: bool,
    pub created: String,
    pub expires: String,
    pub time_left: String,
    pub approvals: Vec<ApprovalView>,
    pub needed: u32,
    pub needed_groups: String,
    pub denied_by: Option<String>,
    pub deny_reason: Option<String>,
    pub grant_id: Option<String>,
}

impl RequestView {
    pub fn new(r: &Request, web: &WebSettings, now: OffsetDateTime) -> RequestView {
        let cmd = match &r.cmd {
            None => format!("any command of rule {}", r.rule),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(words)) => words
                .iter()
                .map(|w| w.as_str().map_or_else(|| w.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(" "),
            Some(other) => other.to_string(),
        };
        RequestView {
            id: r.id.clone(),
            user: r.user.clone(),
            host: r.host.clone(),
            rule: r.rule.clone(),
            cmd,
            hosts: r.hosts.join(", "),
            run_as: r
                .run_as
                .clone()
                .unwrap_or_else(|| "as the rule says".into()),
            ttl: human(Duration::from_secs(r.ttl_secs)),
            reason: r.reason.clone(),
            ticket_link: r.ticket.as_ref().and_then(|t| {
                web.ticket_url
                    .as_ref()
                    .map(|u| u.replace("{ticket}", &url_encode(t)))
            }),
            ticket: r.ticket.clone(),
            state: r.state.as_str().to_string(),
            break_glass: r.break_glass,
            created: format_time(r.created),
            expires: format_time(r.expires),
            time_left: left(r.expires, now),
            approvals: r
                .approvals
                .iter()
                .map(|a| ApprovalView {
                    user: a.user.clone(),
                    via: via(&a.source, &a.host),
                    at: format_time(a.at),
                    comment: a.comment.clone(),
                })
                .collect(),
            needed: r.needed_approvals,
            needed_groups: r.needed_groups.join(", "),
            denied_by: r.denied_by.clone(),
            deny_reason: r.deny_reason.clone(),
            grant_id: r.grant_id.clone(),
        }
    }
}

pub struct GrantView {
    pub id: String,
    pub request_id: String,
    pub user: String,
    pub rule: String,
    pub hosts: String,
    pub iat: String,
    pub exp: String,
    pub time_left: String,
    pub break_glass: bool,
    /// The request's reason, when the grant's request is known.
    pub reason: Option<String>,
    pub revoked: bool,
}

impl GrantView {
    pub fn new(g: &Grant, reason: Option<String>, now: OffsetDateTime) -> GrantView {
        GrantView {
            id: g.id.clone(),
            request_id: g.request_id.clone(),
            user: g.user.clone(),
            rule: g.rule.clone(),
            hosts: g.hosts.join(", "),
            iat: format_time(g.iat),
            exp: format_time(g.exp),
            time_left: left(g.exp, now),
            break_glass: g.break_glass,
            reason,
            revoked: g.revoked_at.is_some(),
        }
    }
}

/// One audit row as a line of history.
pub struct EventView {
    pub id: i64,
    pub at: String,
    pub kind: String,
    pub actor: String,
    pub via: String,
    pub subject: String,
    /// What the person wrote with it (comment, reason), if anything.
    pub note: Option<String>,
    /// The row's data, as indented JSON.
    pub data: String,
}

impl EventView {
    pub fn new(e: &AuditEntry) -> EventView {
        let source = e
            .data
            .pointer("/identity/source")
            .and_then(Value::as_str)
            .unwrap_or("");
        let note = [
            "/comment",
            "/request/deny_reason",
            "/grant/revoke_reason",
            "/session/end_reason",
        ]
        .iter()
        .filter(|p| match e.kind.as_str() {
            "request.approve" => **p == "/comment",
            "request.deny" => **p == "/request/deny_reason",
            "grant.revoke" => **p == "/grant/revoke_reason",
            "session.end" => **p == "/session/end_reason",
            _ => false,
        })
        .find_map(|p| {
            e.data
                .pointer(p)
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        EventView {
            id: e.id,
            at: format_time(e.at),
            kind: e.kind.clone(),
            actor: e.actor.clone(),
            via: via(source, &e.host),
            subject: e.subject.clone(),
            note,
            data: serde_json::to_string_pretty(&e.data).unwrap_or_default(),
        }
    }
}

/// The audit chain as last verified.
#[derive(Debug, Clone)]
pub struct ChainStatus {
    pub intact: bool,
    pub text: String,
}

#[derive(Template)]
#[template(path = "pending.html")]
pub struct PendingPage {
    pub nav: Nav,
    pub requests: Vec<RequestView>,
    pub break_glass: Vec<GrantView>,
}

#[derive(Template)]
#[template(path = "mine.html")]
pub struct MinePage {
    pub nav: Nav,
    pub requests: Vec<RequestView>,
}

#[derive(Template)]
#[template(path = "request.html")]
pub struct RequestPage {
    pub nav: Nav,
    pub r: RequestView,
    pub done: Option<String>,
    pub can_approve: bool,
    pub can_deny: bool,
    /// Why this person cannot decide it (the API's answer), when they cannot.
    pub why_not: Option<String>,
    pub can_cancel: bool,
    pub grant: Option<GrantView>,
    pub can_revoke: bool,
    pub history: Vec<EventView>,
}

#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub nav: Nav,
    pub r: RequestView,
    /// `approve` or `deny`.
    pub action: &'static str,
    /// This approval is the last one needed: the grant is issued with it.
    pub issues_now: bool,
}

#[derive(Template)]
#[template(path = "grants.html")]
pub struct GrantsPage {
    pub nav: Nav,
    pub grants: Vec<GrantView>,
    pub done: Option<String>,
}

#[derive(Template)]
#[template(path = "revoke.html")]
pub struct RevokePage {
    pub nav: Nav,
    pub g: GrantView,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub nav: Nav,
    pub chain: ChainStatus,
    pub rows: Vec<EventView>,
    pub user: String,
    pub rule: String,
    pub since: String,
    pub until: String,
    /// The link to older rows, when there are more.
    pub older: Option<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub title: String,
    pub code: String,
    pub message: String,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
pub struct SignedOutPage {
    pub user: String,
}

/// A rendered page as an HTML answer.
pub fn html<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("jitbroker: cannot render the page: {e}\n"),
        )
            .into_response(),
    }
}

/// The error page for an API error: same status, code and message as the API answers.
pub fn error_page(e: &ApiError) -> Response {
    let title = match e.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::CONFLICT => "Not possible now",
        StatusCode::BAD_REQUEST => "Not understood",
        s if s.is_server_error() => "The broker failed",
        _ => "Refused",
    };
    html(
        e.status,
        &ErrorPage {
            status: e.status.as_u16(),
            title: title.into(),
            code: e.code.into(),
            message: e.message.clone(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_templates_print_is_escaped() {
        let page = ErrorPage {
            status: 400,
            title: "t".into(),
            code: "c".into(),
            message: r#"<script>alert(1)</script> "><img src=x onerror=alert(2)> & 'q'"#.into(),
        };
        let out = page.render().unwrap();
        assert!(
            !out.contains("<script>alert") && !out.contains("<img"),
            "{out}"
        );
        assert!(
            out.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{out}"
        );
        assert!(out.contains("&#34;&#62;&#60;img src=x"), "{out}");
    }

    #[test]
    fn durations_and_encoding() {
        assert_eq!(human(Duration::from_secs(42)), "42s");
        assert_eq!(human(Duration::from_secs(3900)), "1h 5m");
        assert_eq!(human(Duration::from_secs(90000)), "1d 1h");
        assert_eq!(human(Duration::from_secs(3600)), "1h");
        assert_eq!(human(Duration::from_secs(1800)), "30m");
        assert_eq!(url_encode("OPS 1&x=<y>"), "OPS%201%26x%3D%3Cy%3E");
    }
}
