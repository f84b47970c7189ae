//! The one error type that crosses from storage and logic to the edges.
//!
//! Every failure a client can cause or observe is one of these variants; the
//! REST layer turns it into the `{"ok","code","msg","data"}` wrapper and the
//! WebSocket layer into an `Error` answer, both with `code` = [`Error::code`].
//! Messages are lowercase, without a trailing period, and say what to fix.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The request is malformed or breaks a documented limit (400).
    BadRequest(String),
    /// No valid token (401).
    Unauthorized(String),
    /// Authenticated, but not allowed to touch this (403).
    Forbidden(String),
    /// The thing named does not exist (404).
    NotFound(String),
    /// Method not supported on an existing route (405).
    MethodNotAllowed(String),
    /// A request body that did not arrive in time, or an upload slower
    /// than the floor (408); the connection is closed after the answer.
    Timeout(String),
    /// The request conflicts with what is stored, e.g. a taken account (409).
    Conflict(String),
    /// Body or frame over the configured limit, or a file over the quota (413).
    TooLarge(String),
    /// A `Range` that lies outside the file (416).
    RangeNotSatisfiable(String),
    /// Over a rate limit (429); try again after `retry_after` seconds.
    TooManyRequests { message: String, retry_after: u64 },
    /// The database cannot take writes right now: read-only, locked (503).
    Unavailable(String),
    /// A bounded queue is full: the work was refused, not queued (503); try
    /// again after `retry_after` seconds.
    Overloaded { message: String, retry_after: u64 },
    /// The disk is full (507).
    Full(String),
    /// A bug or an unexpected storage failure (500). Details are logged, not sent.
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status and wire `code` for this error.
    pub fn code(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            Error::Unauthorized(_) => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::MethodNotAllowed(_) => 405,
            Error::Timeout(_) => 408,
            Error::Conflict(_) => 409,
            Error::TooLarge(_) => 413,
            Error::RangeNotSatisfiable(_) => 416,
            Error::TooManyRequests { .. } => 429,
            Error::Internal(_) => 500,
            Error::Unavailable(_) | Error::Overloaded { .. } => 503,
            Error::Full(_) => 507,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Error::BadRequest(m)
            | Error::Unauthorized(m)
            | Error::Forbidden(m)
            | Error::NotFound(m)
            | Error::MethodNotAllowed(m)
            | Error::Timeout(m)
            | Error::Conflict(m)
            | Error::TooLarge(m)
            | Error::RangeNotSatisfiable(m)
            | Error::TooManyRequests { message: m, .. }
            | Error::Unavailable(m)
            | Error::Overloaded { message: m, .. }
            | Error::Full(m)
            | Error::Internal(m) => m,
        }
    }

    /// Seconds a client should wait before trying again (`Retry-After`),
    /// for refusals that say so.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::TooManyRequests { retry_after, .. } | Error::Overloaded { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    pub fn bad_request(msg: impl Into<String>) -> Error {
        Error::BadRequest(msg.into())
    }

    pub fn forbidden(msg: impl Into<String>) -> Error {
        Error::Forbidden(msg.into())
    }

    pub fn not_found(msg: impl Into<String>) -> Error {
        Error::NotFound(msg.into())
    }

    pub fn conflict(msg: impl Into<String>) -> Error {
        Error::Conflict(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message(), self.code())
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    /// Storage failures become 5xx answers. The full error goes to the log;
    /// the client gets a sentence that says what kind of trouble it is.
    fn from(err: rusqlite::Error) -> Error {
        use rusqlite::ErrorCode;
        if let rusqlite::Error::ToSqlConversionFailure(_) = err {
            // SQLite integers are signed: only a client's id above i64::MAX
            // fails to convert, and no row has such an id.
            return Error::bad_request(
                "a number in the request is out of range: ids are at most 9223372036854775807",
            );
        }
        let code = err.sqlite_error_code();
        match code {
            Some(ErrorCode::DiskFull) => Error::Full("the server's disk is full".into()),
            Some(ErrorCode::ReadOnly) => {
                Error::Unavailable("the database is read-only right now".into())
            }
            Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
                Error::Unavailable("the database is busy, try again".into())
            }
            Some(ErrorCode::SystemIoFailure) | Some(ErrorCode::CannotOpen) => {
                crate::log_error!("storage i/o failure", error = err);
                Error::Unavailable("the database cannot be written right now".into())
            }
            _ => {
                crate::log_error!("storage failure", error = err);
                Error::Internal("internal storage error".into())
            }
        }
    }
}
