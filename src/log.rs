//! Structured logs: one line per event on stderr, `key=value` after a message.
//!
//! A line looks like
//! `2026-11-25T18:40:08.123Z INFO request method=POST path=/api/user/login status=200 ms=3`.
//! Values with spaces or quotes are quoted. Secrets (passwords, tokens) are never
//! passed in: callers log ids, not credentials.
//!
//! The level is process-wide, set once at start from the config or `RIM_LOG`.

use std::fmt::{Display, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" | "trace" => Some(Level::Debug),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Writes one line. Use the `log_*!` macros rather than calling this.
pub fn emit(level: Level, msg: &str, fields: &[(&str, &dyn Display)]) {
    let mut line = String::with_capacity(128);
    line.push_str(&crate::time::format_rfc3339(crate::time::now_ms()));
    line.push(' ');
    line.push_str(level.label());
    line.push(' ');
    line.push_str(msg);
    for (key, value) in fields {
        let value = value.to_string();
        let _ = write!(line, " {key}=");
        if value.is_empty() || value.contains([' ', '"', '=', '\n']) {
            let _ = write!(line, "{value:?}");
        } else {
            line.push_str(&value);
        }
    }
    line.push('\n');
    // One write call per line keeps lines from interleaving between threads.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[macro_export]
macro_rules! log_at {
    ($level:expr, $msg:expr $(, $key:ident = $value:expr)* $(,)?) => {
        if $crate::log::enabled($level) {
            $crate::log::emit($level, $msg, &[$((stringify!($key), &$value as &dyn ::std::fmt::Display)),*]);
        }
    };
}

#[macro_export]
macro_rules! log_error {
    ($($t:tt)*) => { $crate::log_at!($crate::log::Level::Error, $($t)*) };
}

#[macro_export]
macro_rules! log_warn {
    ($($t:tt)*) => { $crate::log_at!($crate::log::Level::Warn, $($t)*) };
}

#[macro_export]
macro_rules! log_info {
    ($($t:tt)*) => { $crate::log_at!($crate::log::Level::Info, $($t)*) };
}

#[macro_export]
macro_rules! log_debug {
    ($($t:tt)*) => { $crate::log_at!($crate::log::Level::Debug, $($t)*) };
}
