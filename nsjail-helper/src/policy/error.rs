//! Policy errors: every problem carries path, line and column, and renders
//! with the offending line and a caret (like visudo).
#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// One problem in the policy file, with its position (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
    /// The offending line, if the position is on one.
    pub source_line: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// The error line, then the offending source line and a caret under
    /// the column (like visudo). Tabs before the column are kept so the
    /// caret lines up however the terminal expands them.
    pub fn render_with_caret(&self) -> String {
        let mut out = format!("{self}\n");
        if let Some(src) = &self.source_line {
            let pad: String = src
                .chars()
                .chain(std::iter::repeat(' '))
                .take(self.col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!("    {src}\n    {pad}^\n"));
        }
        out
    }

    /// An error at byte `offset` of `text`.
    pub(crate) fn at(path: &Path, text: &str, offset: usize, message: String) -> ConfigError {
        // Clamp to the text and back off to a character boundary, so a
        // stray span can never make us slice inside a UTF-8 sequence.
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = text.get(..offset).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let col = before.get(line_start..).unwrap_or_default().chars().count() + 1;
        let source_line = text
            .get(line_start..)
            .filter(|rest| !rest.is_empty())
            .and_then(|rest| rest.lines().next())
            .map(str::to_owned);
        ConfigError {
            path: path.to_owned(),
            line,
            col,
            message,
            source_line,
        }
    }
}

/// Why the policy could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file or its directory could not be opened or read.
    Io { path: PathBuf, error: io::Error },
    /// The file or its directory could be changed by someone but root.
    Untrusted { path: PathBuf, why: String },
    /// Syntax, unknown-key, type and semantic errors, in file order.
    Parse(Vec<ConfigError>),
}

impl fmt::Display for LoadError {
    /// One line per error.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io { path, error } => {
                write!(f, "{}: cannot read policy: {error}", path.display())
            }
            LoadError::Untrusted { path, why } => {
                write!(f, "{}: refusing policy: {why}", path.display())
            }
            LoadError::Parse(errors) => {
                for (i, e) in errors.iter().enumerate() {
                    if i > 0 {
                        f.write_str("\n")?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}
