//! Loading the policy file: the trust check (through `trust`), a bounded
//! read, then parsing and validation.
#![forbid(unsafe_code)]

use std::io::{self, Read};
use std::path::Path;

use super::error::{ConfigError, LoadError};
use super::model::Config;
use super::validate::parse;
use crate::trust::{self, Distrust};

/// Largest policy file we read; a longer one is refused rather than cut
/// short (a truncated file could silently drop policies).
pub const MAX_POLICY_BYTES: usize = 1 << 20;

/// Reads and validates `path` after checking it can be trusted: its
/// directory is not a symlink, is root-owned and not group/world-writable;
/// the file is a regular file (not a symlink) in that directory, root-owned
/// and not group/world-writable.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    load_with_text(path).map(|(config, _)| config)
}

/// `load`, also returning the text that was validated.
pub fn load_with_text(path: &Path) -> Result<(Config, String), LoadError> {
    let text = read_trusted(path)?;
    let config = parse(path, &text).map_err(LoadError::Parse)?;
    Ok((config, text))
}

/// The text of `path`, if it passes the trust check.
fn read_trusted(path: &Path) -> Result<String, LoadError> {
    let io_err = |error: io::Error| LoadError::Io {
        path: path.to_owned(),
        error,
    };
    let file = trust::open_root_file(path).map_err(|e| match e {
        Distrust::Io(error) => io_err(error),
        Distrust::Untrusted(why) => LoadError::Untrusted {
            path: path.to_owned(),
            why,
        },
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(io_err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("file is larger than {MAX_POLICY_BYTES} bytes"),
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.into_bytes();
        let prefix = String::from_utf8_lossy(bytes.get(..valid).unwrap_or_default());
        LoadError::Parse(vec![ConfigError::at(
            path,
            &prefix,
            valid,
            "invalid UTF-8".into(),
        )])
    })
}
