//! The use-case layer's one error type. Front ends map it once: the server to
//! an HTTP status and JSON body, the CLI to a message and exit code.

use meterbook_core::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request itself is wrong (a period outside the term, a bad filter).
    #[error("{0}")]
    Invalid(String),
    /// No valid credential: `code` says which check failed.
    #[error("{message}")]
    Unauthenticated { code: &'static str, message: String },
    /// The caller's rights do not reach this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// It existed, and is gone for good (an expired report file).
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    Conflict(String),
    /// The requester is at a quota; trying again after `retry_after` seconds may succeed.
    #[error("{message}")]
    Quota { message: String, retry_after: u64 },
    /// Something failed that the caller cannot fix (the cause is for the log).
    #[error("internal error: {0}")]
    Internal(String),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> AppError {
        AppError::Unauthenticated {
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> AppError {
        match e {
            StoreError::NotFound(m) => AppError::NotFound(m),
            StoreError::Invalid(m) => AppError::Invalid(m),
            StoreError::Conflict(m) => AppError::Conflict(m),
            StoreError::Backend(m) => AppError::Internal(m),
        }
    }
}

impl From<meterbook_io::report::usage::ReportError> for AppError {
    fn from(e: meterbook_io::report::usage::ReportError) -> AppError {
        match e {
            meterbook_io::report::usage::ReportError::Store(s) => s.into(),
            meterbook_io::report::usage::ReportError::Io(io) => AppError::Internal(io.to_string()),
        }
    }
}

impl From<meterbook_jobs::runner::RequestError> for AppError {
    fn from(e: meterbook_jobs::runner::RequestError) -> AppError {
        match e {
            meterbook_jobs::runner::RequestError::Invalid(m) => AppError::Invalid(m),
            meterbook_jobs::runner::RequestError::Forbidden(m) => AppError::Forbidden(m),
            meterbook_jobs::runner::RequestError::Quota {
                message,
                retry_after,
            } => AppError::Quota {
                message,
                retry_after,
            },
            meterbook_jobs::runner::RequestError::Store(s) => s.into(),
        }
    }
}

impl From<meterbook_core::fixed::Overflow> for AppError {
    fn from(e: meterbook_core::fixed::Overflow) -> AppError {
        AppError::Internal(format!("a figure is outside the supported range: {e}"))
    }
}
