//! Errors: every API error is `{"error":{"code","message"}}` with a 4xx/5xx status.
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `hint`: what is wrong with the file system and what to do (store/diagnose.rs), or empty.
    #[error("store {path}: {source}{hint}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
        hint: String,
    },
    /// PostgreSQL refused or failed a statement (`target`: the URL, never with a password).
    #[error("store {target}: {message}")]
    Postgres { target: String, message: String },
    /// PostgreSQL cannot be reached (down, restarting, the pool is exhausted): try again.
    #[error("store {target}: unavailable: {message}")]
    Unavailable { target: String, message: String },
    /// A concurrent change (another request, another replica) wrote the same record first.
    #[error("store {target}: {message}")]
    Conflict { target: String, message: String },
    #[error("store {path}: not ready: {message}")]
    NotReady { path: String, message: String },
    #[error("store {path}: {message}")]
    Corrupt { path: String, message: String },
}

/// An error answered to an HTTP client (and shown by the admin CLI).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        eprintln!("jitbroker: {e}");
        match &e {
            StoreError::Unavailable { .. } => {
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    format!("the broker's store cannot be reached ({e}); nothing was changed, try again in a few seconds"),
                )
            }
            StoreError::Conflict { .. } => {
                return ApiError::conflict(
                    "concurrent_change",
                    "another request changed the same record at the same moment and won; nothing was changed, look again and retry",
                )
            }
            _ => {}
        }
        ApiError::internal(format!(
            "the broker's store failed ({e}); nothing was changed, try again or ask the broker's admin"
        ))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("JitAttest"),
            );
        }
        resp
    }
}

/// What the `jitbroker` commands fail with (main prints it).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("{path}: {message}")]
    File {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}
