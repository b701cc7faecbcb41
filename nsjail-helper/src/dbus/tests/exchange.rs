use super::*;

// --- whole exchanges -------------------------------------------------

#[test]
fn success_with_signals_before_the_reply() {
    // Real daemon bytes: Hello reply, NameAcquired, a unicast JobNew
    // signal from "systemd", then the reply.
    let input = cat(&[SASL_OK, HELLO_REPLY, NAME_ACQUIRED, JOB_NEW, JOB_REPLY]);
    for chunk in [usize::MAX, 1, 2, 3, 7, 16, 100] {
        let mut mock = Mock::chunked(input.clone(), chunk);
        let job = run(&mut mock).unwrap();
        assert_eq!(job, "/org/freedesktop/systemd1/job/100");
        assert_eq!(mock.output, expected_output(), "chunk {chunk}");
        assert_eq!(mock.pos, input.len());
    }
}

#[test]
fn signal_before_the_hello_reply_is_skipped() {
    let job = run_input(&[SASL_OK, JOB_NEW, HELLO_REPLY, JOB_REPLY]).unwrap();
    assert_eq!(job, "/org/freedesktop/systemd1/job/100");
}

#[test]
fn replies_to_other_serials_are_skipped() {
    // A second reply to serial 1 while waiting for serial 2.
    let job = run_input(&[SASL_OK, HELLO_REPLY, HELLO_REPLY, JOB_REPLY]).unwrap();
    assert_eq!(job, "/org/freedesktop/systemd1/job/100");
}

#[test]
fn big_endian_replies() {
    let job = run_input(&[SASL_OK, BE_HELLO_REPLY, BE_JOB_REPLY]).unwrap();
    assert_eq!(job, "/org/freedesktop/systemd1/job/7");
    let err = run_input(&[SASL_OK, BE_HELLO_REPLY, BE_UNIT_EXISTS]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "StartTransientUnit: org.freedesktop.systemd1.UnitExists: \
         Unit x.scope already exists."
    );
}

#[test]
fn skips_a_signal_of_every_type() {
    // y n q x t d ay (is) a{sv} nested variants g o b, an empty aa(ii)
    // and an as, all to be stepped over.
    let job = run_input(&[SASL_OK, HELLO_REPLY, COMPLEX_SIGNAL, JOB_REPLY]).unwrap();
    assert_eq!(job, "/org/freedesktop/systemd1/job/100");
}

#[test]
fn unit_exists_error() {
    let err = run_input(&[SASL_OK, HELLO_REPLY, NAME_ACQUIRED, UNIT_EXISTS]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "StartTransientUnit: org.freedesktop.systemd1.UnitExists: \
         Unit test1.scope already exists."
    );
    assert_eq!(
        err.error_name(),
        Some("org.freedesktop.systemd1.UnitExists")
    );
    assert!(!err.is_timeout());
}

#[test]
fn name_has_no_owner_error() {
    let err = run_input(&[SASL_OK, HELLO_REPLY, NAME_ACQUIRED, NO_OWNER]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "StartTransientUnit: org.freedesktop.DBus.Error.NameHasNoOwner: \
         Name \"org.freedesktop.systemd1\" does not exist"
    );
}

#[test]
fn errors_without_a_string_message() {
    let err = run_input(&[SASL_OK, HELLO_REPLY, ERROR_NO_BODY]).unwrap_err();
    assert_eq!(err.to_string(), "StartTransientUnit: org.example.NoBody");
    let err = run_input(&[SASL_OK, HELLO_REPLY, ERROR_U_BODY]).unwrap_err();
    assert_eq!(err.to_string(), "StartTransientUnit: org.example.Num");
    assert_eq!(err.error_name(), Some("org.example.Num"));
}

#[test]
fn hello_failures() {
    let err = run_input(&[SASL_OK, HELLO_DENIED]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Hello: org.freedesktop.DBus.Error.AccessDenied: Rejected send message"
    );
    assert_eq!(
        err.error_name(),
        Some("org.freedesktop.DBus.Error.AccessDenied")
    );
    let err = run_input(&[SASL_OK, HELLO_REPLY_O]).unwrap_err();
    assert!(matches!(err, DbusError::Hello(Cause::Protocol(_))), "{err}");
    let err = run_input(&[SASL_OK]).unwrap_err();
    assert_eq!(err.to_string(), "Hello: the bus closed the connection");
}

#[test]
fn reply_with_the_wrong_signature() {
    let err = run_input(&[SASL_OK, HELLO_REPLY, START_REPLY_S]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "StartTransientUnit: protocol error: reply has signature 's', expected 'o'"
    );
}

// --- SASL ------------------------------------------------------------

fn sasl(reply: &[u8]) -> (Result<String, DbusError>, Vec<u8>) {
    let mut mock = Mock::new(reply.to_vec());
    let r = start_transient_scope_on(&mut mock, 1000, &full_scope(), soon());
    (r, mock.output)
}

#[test]
fn auth_line_is_hex_of_decimal_euid() {
    let (_, out) = sasl(b"REJECTED EXTERNAL\r\n");
    assert_eq!(out, b"\0AUTH EXTERNAL 31303030\r\n");
    let (_, out) = sasl(b"");
    assert_eq!(out, b"\0AUTH EXTERNAL 31303030\r\n");
}

#[test]
fn sasl_failures() {
    let long = [b'O'; 600];
    let cases: Vec<(&[u8], &str)> = vec![
        (
            b"REJECTED EXTERNAL\r\n",
            "authenticate: rejected by the bus: REJECTED EXTERNAL",
        ),
        (
            b"REJECTED\r\n",
            "authenticate: rejected by the bus: REJECTED",
        ),
        (
            b"ERROR \"bad\"\r\n",
            "authenticate: rejected by the bus: ERROR \"bad\"",
        ),
        (
            b"DATA\r\n",
            "authenticate: protocol error: unexpected SASL reply 'DATA'",
        ),
        (
            b"OK\r\n",
            "authenticate: protocol error: unexpected SASL reply 'OK'",
        ),
        (b"OK 1234\r\n", "without a valid server GUID"),
        (
            b"OK 0123456789abcdef0123456789abcdeg\r\n",
            "without a valid server GUID",
        ),
        (b"OK 0123456789abcdef0123456789abcdef\n", "closed"),
        (b"OK \xff\r\n", "not printable ASCII"),
        (b"OK \x1b[2J\r\n", "not printable ASCII"),
        (&long, "SASL line too long"),
        (b"", "authenticate: the bus closed the connection"),
        (b"OK 0123", "authenticate: the bus closed the connection"),
    ];
    for (reply, want) in cases {
        let (r, _) = sasl(reply);
        let err = r.unwrap_err();
        assert!(matches!(err, DbusError::Authenticate(_)));
        let shown = err.to_string();
        assert!(shown.contains(want), "{shown:?} lacks {want:?}");
    }
    // A long line with its CRLF past the limit is refused too.
    let mut long_line = vec![b'O'; 1000];
    long_line.extend_from_slice(b"\r\n");
    let (r, _) = sasl(&long_line);
    assert!(r.unwrap_err().to_string().contains("too long"));
}
