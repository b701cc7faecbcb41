//! Module arguments from the PAM configuration line (DESIGN §4).

#![forbid(unsafe_code)]

use std::path::PathBuf;

use nsjail::paths::{HELPER as DEFAULT_HELPER, POLICY as DEFAULT_CONFIG};
pub use nsjail::session::OnError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleArgs {
    pub config: PathBuf,
    pub helper: PathBuf,
    pub debug: bool,
    pub on_error: OnError,
    /// Arguments we did not understand, to be logged at LOG_ERR.
    pub unknown: Vec<String>,
}

impl ModuleArgs {
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> ModuleArgs {
        let mut out = ModuleArgs {
            config: PathBuf::from(DEFAULT_CONFIG),
            helper: PathBuf::from(DEFAULT_HELPER),
            debug: false,
            on_error: OnError::Deny,
            unknown: Vec::new(),
        };
        for arg in args {
            match arg.split_once('=') {
                Some(("config", v)) if v.starts_with('/') => out.config = PathBuf::from(v),
                Some(("helper", v)) if v.starts_with('/') => out.helper = PathBuf::from(v),
                Some(("on_error", "deny")) => out.on_error = OnError::Deny,
                Some(("on_error", "allow")) => out.on_error = OnError::Allow,
                None if arg == "debug" => out.debug = true,
                _ => out.unknown.push(arg.to_owned()),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let a = ModuleArgs::parse([]);
        assert_eq!(a.config, PathBuf::from(DEFAULT_CONFIG));
        assert_eq!(a.helper, PathBuf::from(DEFAULT_HELPER));
        assert!(!a.debug);
        assert_eq!(a.on_error, OnError::Deny);
        assert!(a.unknown.is_empty());
    }

    #[test]
    fn every_argument() {
        let a = ModuleArgs::parse(["config=/x.toml", "helper=/h", "debug", "on_error=allow"]);
        assert_eq!(a.config, PathBuf::from("/x.toml"));
        assert_eq!(a.helper, PathBuf::from("/h"));
        assert!(a.debug);
        assert_eq!(a.on_error, OnError::Allow);
    }

    #[test]
    fn unknown_and_malformed_arguments_are_collected() {
        let a = ModuleArgs::parse(["on_error=maybe", "config=relative.toml", "frob", "debug=1"]);
        assert_eq!(
            a.unknown,
            ["on_error=maybe", "config=relative.toml", "frob", "debug=1"]
        );
        // A bad on_error value never weakens the default.
        assert_eq!(a.on_error, OnError::Deny);
        assert_eq!(a.config, PathBuf::from(DEFAULT_CONFIG));
    }
}
