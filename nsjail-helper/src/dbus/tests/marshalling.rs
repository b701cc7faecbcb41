use super::*;

// --- marshalling -----------------------------------------------------

#[test]
fn hello_is_byte_identical_to_busctl() {
    assert_eq!(encode_hello(1).ok().unwrap(), hex(BUSCTL_HELLO));
}

#[test]
fn full_call_is_byte_identical_to_busctl() {
    let got = encode_start_transient_unit(&full_scope(), 2).unwrap();
    assert_eq!(got, hex(BUSCTL_FULL));
}

#[test]
fn minimal_call_is_byte_identical_to_busctl() {
    // One PID, empty description, no optional property: the property
    // array's length excludes the 4 padding bytes after it, and the
    // empty aux array still carries its padding.
    let scope = Scope {
        name: "a.scope",
        slice: None,
        description: "",
        pids: &[1],
        kill_signal: None,
        send_sigkill: None,
        collect_inactive_or_failed: false,
        delegate: false,
        new_slice: None,
        part_of: &[],
    };
    let got = encode_start_transient_unit(&scope, 2).unwrap();
    assert_eq!(got, hex(BUSCTL_MINIMAL));
}

#[test]
fn part_of_is_an_array_of_unit_names_after_the_other_properties() {
    let units = ["user-runtime-dir@1001.service", "x.target"];
    let scope = Scope {
        part_of: &units,
        ..full_scope()
    };
    let got = encode_start_transient_unit(&scope, 2).unwrap();
    let plain = hex(BUSCTL_FULL);
    let msg = parse_message(got.clone()).ok().unwrap();
    assert_eq!(msg.header.signature, "ssa(sv)a(sa(sv))");
    // Same header fields; the body grows by exactly the PartOf entry.
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("PartOf"), "{text:?}");
    assert!(text.contains("user-runtime-dir@1001.service"));
    assert!(got.len() > plain.len());
    let bad = Scope {
        part_of: &["no spaces allowed"],
        ..full_scope()
    };
    assert!(matches!(
        encode_start_transient_unit(&bad, 2),
        Err(DbusError::InvalidRequest(_))
    ));
}

#[test]
fn our_call_parses_back() {
    let msg = parse_message(hex(BUSCTL_FULL)).ok().unwrap();
    assert_eq!(msg.header.kind, METHOD_CALL);
    assert_eq!(msg.header.signature, "ssa(sv)a(sa(sv))");
    let mut body = msg.body_decoder();
    assert_eq!(body.string().ok(), Some("nsjail-test.scope"));
    assert_eq!(body.string().ok(), Some("fail"));
    let hello = parse_message(hex(BUSCTL_HELLO)).ok().unwrap();
    assert_eq!(hello.header.signature, "");
}

#[test]
fn send_sigkill_false_and_other_signal() {
    let scope = Scope {
        kill_signal: Some(9),
        send_sigkill: Some(false),
        ..full_scope()
    };
    let raw = encode_start_transient_unit(&scope, 2).unwrap();
    let full = hex(BUSCTL_FULL);
    assert_eq!(raw.len(), full.len());
    let diff: Vec<usize> = (0..raw.len()).filter(|&i| raw[i] != full[i]).collect();
    // Only the KillSignal value and the boolean change.
    assert_eq!(diff.len(), 2, "{diff:?}");
    assert_eq!(raw[diff[0]], 9);
    assert_eq!(raw[diff[1]], 0);
    assert!(parse_message(raw).is_ok());
}

#[test]
fn invalid_requests_send_nothing() {
    let pids0 = [0u32];
    let pids_neg = [0x8000_0000u32];
    let long = format!("{}.scope", "a".repeat(250));
    let many: Vec<u32> = (1..=300_000).collect();
    let cases: Vec<(Scope<'_>, &str)> = vec![
        (
            Scope {
                name: "x.service",
                ..full_scope()
            },
            "ending in .scope",
        ),
        (
            Scope {
                name: ".scope",
                ..full_scope()
            },
            "ending in .scope",
        ),
        (
            Scope {
                name: "a/b.scope",
                ..full_scope()
            },
            "ending in .scope",
        ),
        (
            Scope {
                name: "a b.scope",
                ..full_scope()
            },
            "ending in .scope",
        ),
        (
            Scope {
                name: &long,
                ..full_scope()
            },
            "ending in .scope",
        ),
        (
            Scope {
                slice: Some("x.scope"),
                ..full_scope()
            },
            "ending in .slice",
        ),
        (
            Scope {
                slice: Some(""),
                ..full_scope()
            },
            "ending in .slice",
        ),
        (
            Scope {
                description: "a\0b",
                ..full_scope()
            },
            "NUL",
        ),
        (
            Scope {
                pids: &[],
                ..full_scope()
            },
            "at least one PID",
        ),
        (
            Scope {
                pids: &pids0,
                ..full_scope()
            },
            "0 would mean the caller",
        ),
        (
            Scope {
                pids: &pids_neg,
                ..full_scope()
            },
            "i32::MAX",
        ),
        (
            Scope {
                kill_signal: Some(0),
                ..full_scope()
            },
            "kill signal",
        ),
        (
            Scope {
                kill_signal: Some(65),
                ..full_scope()
            },
            "kill signal",
        ),
        (
            Scope {
                kill_signal: Some(-9),
                ..full_scope()
            },
            "kill signal",
        ),
        (
            Scope {
                pids: &many,
                ..full_scope()
            },
            "too large",
        ),
    ];
    for (scope, want) in cases {
        let mut mock = Mock::new(cat(&[SASL_OK]));
        let err = start_transient_scope_on(&mut mock, 0, &scope, soon()).unwrap_err();
        let shown = err.to_string();
        assert!(matches!(err, DbusError::InvalidRequest(_)), "{shown}");
        assert!(shown.contains(want), "{shown} lacks {want}");
        assert!(shown.starts_with("StartTransientUnit: invalid request: "));
        assert!(mock.output.is_empty());
    }
    // Largest name systemd allows, and instance names, are fine.
    let max = format!("{}.scope", "a".repeat(249));
    for name in [max.as_str(), "user@1000.scope", "a:b_c-d\\x2d.scope"] {
        let scope = Scope {
            name,
            ..full_scope()
        };
        assert!(encode_start_transient_unit(&scope, 2).is_ok(), "{name}");
    }
}
