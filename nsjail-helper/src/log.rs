//! The helper's syslog lines (facility authpriv, ident `nsjail-helper`).
//! The PAM module logs through `pam_syslog` instead, inside sshd's own
//! syslog connection.
#![forbid(unsafe_code)]

use syslog::{Facility, Formatter3164};

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Err,
}

/// Sends one line to syslog; silently does nothing where there is no
/// syslog socket (logging must never make a session fail).
pub fn log(level: Level, message: &str) {
    let formatter = Formatter3164 {
        facility: Facility::LOG_AUTHPRIV,
        hostname: None,
        process: "nsjail-helper".into(),
        pid: std::process::id(),
    };
    if let Ok(mut logger) = syslog::unix(formatter) {
        let _ = match level {
            Level::Info => logger.info(message),
            Level::Warning => logger.warning(message),
            Level::Err => logger.err(message),
        };
    }
}
