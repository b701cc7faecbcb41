//! The policy parser and validator must never panic, and every error must
//! carry a position inside the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match nsjail::policy::parse(Path::new("/fuzz.toml"), text) {
        Ok(config) => {
            // Deciding for any user must not panic either.
            let user = nsjail::user::UserInfo {
                name: "u".into(),
                uid: 1000,
                gid: 1000,
                home: "/".into(),
                shell: "/bin/sh".into(),
                groups: vec![],
            };
            let _ = config.decide(&user, "sshd");
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            let lines = text.lines().count().max(1) + 1;
            for e in errors {
                assert!(e.line >= 1 && e.line <= lines, "line {} of {}", e.line, lines);
                assert!(e.col >= 1);
                let _ = e.render_with_caret();
            }
        }
    }
});
