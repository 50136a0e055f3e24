//! The web pages for requests and approvals, under /ui/ (docs/broker.md, "Web pages"):
//! server-rendered HTML from askama templates (which escape everything by default), no
//! script at all, a strict Content-Security-Policy, sign-in through the organisation's OpenID
//! Connect provider (oidc.rs) and sessions in the store (session.rs). Every action calls the
//! same functions as the API (workflow.rs, grants.rs, hosts.rs) with the signed-in person as
//! the caller, so the same rules decide, and the audit trail records how they signed in.
pub mod oidc;
mod pages;
pub mod session;
mod views;

use crate::broker::Broker;
use crate::config::WebSettings;
use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;
use serde::de::DeserializeOwned;
use session::{NoSession, Signed};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use time::OffsetDateTime;

/// What the pages need besides the broker.
pub struct Web {
    pub settings: WebSettings,
    pub provider: oidc::Provider,
    /// The last verification of the audit chain (the Audit page), reused for a while.
    chain: Mutex<Option<(Instant, views::ChainStatus)>>,
}

impl Web {
    /// Check `[web]` and read the client secret; None without `[web]`.
    pub fn from_config(b: &Broker) -> Result<Option<Arc<Web>>, String> {
        let Some(settings) = &b.config.web else {
            return Ok(None);
        };
        Ok(Some(Arc::new(Web {
            settings: settings.clone(),
            provider: oidc::Provider::new(settings)?,
            chain: Mutex::new(None),
        })))
    }
}

#[derive(Clone)]
pub struct Ui {
    pub b: Arc<Broker>,
    pub web: Arc<Web>,
}

/// Answers headers that keep the pages out of frames, scripts out of the pages, and the
/// addresses of the pages (which carry ids and, at the callback, the provider's code) out of
/// other sites' logs. (`same-origin`, not `no-referrer`: with `no-referrer` browsers send
/// `Origin: null` on the pages' own forms, and the Origin check would refuse them.)
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "same-origin");
    set(h, "x-content-type-options", "nosniff");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(
        h,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
    resp
}

async fn hsts(State(ui): State<Ui>, req: Request, next: middleware::Next) -> Response {
    let mut resp = next.run(req).await;
    if ui.web.settings.secure() {
        resp.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    resp
}

/// The pages under /ui (nested there by api.rs); without `[web]`, one page that says how to
/// turn them on.
pub fn router(b: Arc<Broker>, web: Option<Arc<Web>>) -> Router {
    let Some(web) = web else {
        return Router::new().fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "jitbroker's web pages are off: add a [web] section to broker.toml (docs/broker.md, Web pages)\n",
            )
        });
    };
    let ui = Ui { b, web };
    pages::routes()
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(ui.clone(), hsts))
        .layer(middleware::map_response(security_headers))
        .with_state(ui)
}

/// Run `f` on the blocking pool (the store and the provider are synchronous).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the page handler failed: {e}")))?
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A page that could not be shown: an error page with the status and the message the API
/// would give (code included), or a redirect to sign in.
pub enum PageError {
    Api(ApiError),
    SignIn { next: String, clear: Option<String> },
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> PageError {
        PageError::Api(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::Api(e) => views::error_page(&e).into_response(),
            PageError::SignIn { next, clear } => {
                let target = format!("/ui/login?next={}", views::url_encode(&next));
                let mut resp = Redirect::to(&target).into_response();
                if let Some(c) = clear.and_then(|c| HeaderValue::from_str(&c).ok()) {
                    resp.headers_mut().insert(header::SET_COOKIE, c);
                }
                resp
            }
        }
    }
}

/// A page to return to after sign-in: a path under /ui/ (nothing that leaves the broker).
pub fn safe_next(next: &str) -> String {
    let ok = next.starts_with("/ui/")
        && !next.contains("//")
        && !next.contains('\\')
        && next.chars().all(|c| c.is_ascii_graphic());
    if ok {
        next.to_string()
    } else {
        "/ui/pending".to_string()
    }
}

/// A signed-in person (from the session cookie); without a live session the page sends the
/// browser to sign in, and comes back here afterwards.
pub struct SignedIn(pub Signed);

impl FromRequestParts<Ui> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        ui: &Ui,
    ) -> Result<Self, Self::Rejection> {
        let web = &ui.web.settings;
        let name = session::cookie_name(web);
        let token = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|h| session::cookie(h, name).map(str::to_string));
        let next = if parts.method == Method::GET {
            // The address as the browser asked for it (this router is nested under /ui).
            let uri = parts
                .extensions
                .get::<axum::extract::OriginalUri>()
                .map_or(&parts.uri, |o| &o.0);
            safe_next(
                &uri.path_and_query()
                    .map_or("/ui/pending".to_string(), |p| p.to_string()),
            )
        } else {
            "/ui/pending".to_string()
        };
        let Some(token) = token else {
            return Err(PageError::SignIn { next, clear: None });
        };
        let (b, w) = (ui.b.clone(), ui.web.clone());
        let found = blocking(move || session::lookup(&b, &w.settings, &token, now())).await?;
        match found {
            Ok(signed) => Ok(SignedIn(signed)),
            Err(NoSession::Unknown | NoSession::Ended) => Err(PageError::SignIn {
                next,
                clear: Some(session::set_cookie(web, name, "", Some(0))),
            }),
        }
    }
}

/// A submitted form: from a live session, from the broker's own pages (Origin), as
/// `application/x-www-form-urlencoded`, at most 64 KiB, with the session's CSRF token in its
/// `csrf` field. Anything else is refused before the action runs.
pub struct Posted<T>(pub Signed, pub T);

#[derive(serde::Deserialize)]
struct CsrfOnly {
    csrf: Option<String>,
}

fn forbidden(code: &'static str, message: &str) -> PageError {
    PageError::Api(ApiError::forbidden(code, message.to_string()))
}

impl<T: DeserializeOwned + Send + 'static> FromRequest<Ui> for Posted<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, ui: &Ui) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let SignedIn(signed) = SignedIn::from_request_parts(&mut parts, ui).await?;
        // A browser names the page a form came from; a form posted from another site is refused
        // even if it carried a token.
        if let Some(origin) = parts.headers.get(header::ORIGIN) {
            if origin.to_str().ok() != Some(ui.web.settings.public_url.as_str()) {
                return Err(forbidden("bad_origin", "this form was not sent from the broker's own pages (Origin); reload the page and try again"));
            }
        }
        let form_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form_type {
            return Err(PageError::Api(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the page's form (application/x-www-form-urlencoded)",
            )));
        }
        let wait = ui.b.config.http.header_timeout;
        let bytes =
            tokio::time::timeout(wait, axum::body::to_bytes(body, crate::limits::BODY_LIMIT))
                .await
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "body_timeout",
                        "the form did not arrive in time",
                    )
                })?
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        "the form is too large",
                    )
                })?;
        let csrf: CsrfOnly = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| ApiError::bad("invalid_body", format!("the form is not usable: {e}")))?;
        let good = csrf
            .csrf
            .as_deref()
            .is_some_and(|t| session::same_secret(t, &signed.session.csrf));
        if !good {
            return Err(forbidden("csrf", "the form's anti-forgery token is missing or wrong (a form from another page or an old session); reload the page and try again"));
        }
        let form: T = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| ApiError::bad("invalid_body", format!("the form is not usable: {e}")))?;
        Ok(Posted(signed, form))
    }
}
