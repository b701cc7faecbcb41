use super::*;

// --- bad input from the bus ------------------------------------------

#[test]
fn every_truncation_is_an_error() {
    let input = cat(&[SASL_OK, HELLO_REPLY, NAME_ACQUIRED, JOB_NEW, JOB_REPLY]);
    for n in 0..input.len() {
        let mut mock = Mock::new(input[..n].to_vec());
        let err = run(&mut mock).unwrap_err();
        assert!(
            err.to_string().contains("closed the connection"),
            "{n}: {err}"
        );
    }
}

#[test]
fn oversized_replies_are_refused_unread() {
    // Body length 2 MiB.
    let mut big = hex(JOB_REPLY);
    big[4..8].copy_from_slice(&(2u32 << 20).to_le_bytes());
    let mut huge_be = hex(BE_JOB_REPLY);
    huge_be[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    for msg in [big, huge_be] {
        let mut input = cat(&[SASL_OK, HELLO_REPLY]);
        let at = input.len();
        input.extend(msg);
        input.extend(vec![0u8; 4096]);
        let mut mock = Mock::chunked(input, 16);
        let err = run(&mut mock).unwrap_err();
        assert!(err.to_string().contains("-byte limit"), "{err}");
        // Refused once its header was read (64 bytes; reads come in 16s).
        assert!(mock.pos <= at + 64 + 16, "read {} past {at}", mock.pos);
    }
}

#[test]
fn oversized_or_odd_unrelated_messages_are_skipped() {
    // A 2 MiB signal (body not even valid) before the reply: dropped
    // unparsed, as any local user could send one.
    let mut big = hex(NAME_ACQUIRED);
    let body = 2usize << 20;
    big[4..8].copy_from_slice(&(body as u32).to_le_bytes());
    big.truncate(big.len() - 9);
    big.extend(vec![0xffu8; body]);
    let mut input = cat(&[SASL_OK, HELLO_REPLY]);
    input.extend(big);
    // A signal whose body breaks its signature.
    let mut bad_body = hex(NAME_ACQUIRED);
    let last = bad_body.len() - 1;
    bad_body[last] = b'x';
    input.extend(bad_body);
    // Thousands of ordinary ones.
    for _ in 0..5000 {
        input.extend(hex(NAME_ACQUIRED));
    }
    input.extend(hex(JOB_REPLY));
    for chunk in [usize::MAX, 1000] {
        let job = run(&mut Mock::chunked(input.clone(), chunk)).unwrap();
        assert_eq!(job, "/org/freedesktop/systemd1/job/100");
    }
}

/// `msg` with its header-field array grown to `fields` bytes of junk.
fn with_header_fields_of(msg: &str, fields: usize) -> Vec<u8> {
    let msg = hex(msg);
    let big_endian = msg[0] == b'B';
    let len = u32::try_from(fields).unwrap();
    let mut out = msg[..16].to_vec();
    out[12..16].copy_from_slice(&if big_endian {
        len.to_be_bytes()
    } else {
        len.to_le_bytes()
    });
    let header_len = (16 + fields).div_ceil(8) * 8;
    out.extend(vec![0xa5u8; header_len - 16]);
    let body_len = u32::from_le_bytes(msg[4..8].try_into().unwrap()) as usize;
    let old_header =
        (16 + u32::from_le_bytes(msg[12..16].try_into().unwrap()) as usize).div_ceil(8) * 8;
    out.extend_from_slice(&msg[old_header..old_header + body_len]);
    out
}

#[test]
fn messages_whose_header_is_over_the_limit_are_skipped_by_their_length() {
    // Any local user may send a signal to our unique name; one whose
    // header alone is over the limit must not fail the call, wherever it
    // comes (before the Hello reply, before ours), nor may a "reply" too
    // big to be parsed, whatever serial it claims.
    let big_signal = with_header_fields_of(NAME_ACQUIRED, MAX_MESSAGE_LEN + 8);
    let big_reply = with_header_fields_of(JOB_REPLY, 2 * MAX_MESSAGE_LEN);
    let mut input = hex(SASL_OK);
    input.extend(&big_signal);
    input.extend(hex(HELLO_REPLY));
    input.extend(&big_signal);
    input.extend(&big_reply);
    input.extend(hex(JOB_REPLY));
    for chunk in [usize::MAX, 4096] {
        let mut mock = Mock::chunked(input.clone(), chunk);
        let job = run(&mut mock).unwrap();
        assert_eq!(job, "/org/freedesktop/systemd1/job/100");
        assert_eq!(mock.pos, input.len(), "skipped by length, in step");
    }
    // Control: the same message within the limit is parsed (and its junk
    // header refused), so the skip above is by size alone.
    let mut small = hex(SASL_OK);
    small.extend(hex(HELLO_REPLY));
    small.extend(with_header_fields_of(NAME_ACQUIRED, 64));
    small.extend(hex(JOB_REPLY));
    assert!(run(&mut Mock::new(small)).is_err());
}

#[test]
fn malformed_headers_are_errors_even_when_unrelated() {
    // The bus checks every message it routes, so a bad header means a
    // broken bus: stop rather than guess.
    let mut bad = hex(NAME_ACQUIRED);
    bad[16] = 0; // header field 0
    let mut input = cat(&[SASL_OK, HELLO_REPLY]);
    input.extend(bad);
    input.extend(hex(JOB_REPLY));
    let err = run(&mut Mock::new(input)).unwrap_err();
    assert!(err.to_string().contains("header field 0"), "{err}");
}

/// `JOB_REPLY` with `edit` applied, parsed on its own.
fn parse_edited(edit: impl FnOnce(&mut Vec<u8>)) -> Result<Message, Cause> {
    let mut raw = hex(JOB_REPLY);
    edit(&mut raw);
    parse_message(raw)
}

fn protocol_error(r: Result<Message, Cause>) -> String {
    match r {
        Err(Cause::Protocol(what)) => what,
        Err(other) => format!("not a protocol error: {other}"),
        Ok(_) => "accepted".to_owned(),
    }
}

#[test]
fn malformed_messages() {
    assert!(parse_edited(|_| {}).is_ok());
    // Layout of JOB_REPLY: fields at 16: (5, u 2) at 16, (6, s ":1.5")
    // at 24 (string bytes 32..36, NUL at 36, padding 37..40), (8, g "o")
    // at 40, (7, s ":1.4") at 48, ending at 61; body (o) at 64.
    type Edit = fn(&mut Vec<u8>);
    let cases: Vec<(&str, Edit)> = vec![
        ("byte-order", |m| m[0] = b'x'),
        ("version", |m| m[3] = 2),
        ("serial 0", |m| m[8..12].copy_from_slice(&[0; 4])),
        ("padding", |m| m[38] = 1),
        ("header field 0", |m| m[16] = 0),
        ("repeated", |m| m[24] = 5),
        ("has type", |m| m[18] = b's'),
        ("NUL-terminated", |m| m[36] = b'x'),
        ("contains a NUL", |m| m[33] = 0),
        ("UTF-8", |m| m[33] = 0xff),
        ("invalid object path", |m| m[68] = b'x'),
        ("bad signature", |m| m[42] = b'('),
        ("without reply serial", |m| m[16] = 20),
        ("truncated", |m| m.truncate(m.len() - 1)),
        ("truncated", |m| m[4] += 1),
        ("longer than its signature", |m| {
            m[4] += 8;
            m.extend([0; 8]);
        }),
        ("overrun", |m| m[12] = 0x29),
    ];
    for (want, edit) in cases {
        let what = protocol_error(parse_edited(edit));
        assert!(what.contains(want), "{what:?} lacks {want:?}");
    }
    // An error without its name.
    let mut raw = hex(ERROR_NO_BODY);
    raw[16] = 20; // error name field becomes an unknown code 20
    assert!(protocol_error(parse_message(raw)).contains("without reply serial or name"));
    // A boolean that is neither 0 nor 1, in a signal.
    let mut raw = hex(COMPLEX_SIGNAL);
    let b_at = raw
        .windows(8)
        .position(|w| w == b"b\0\x01b\0\0\0\0")
        .unwrap()
        + 8;
    assert_eq!(raw[b_at], 1);
    raw[b_at] = 2;
    assert!(protocol_error(parse_message(raw)).contains("boolean"));
}

#[test]
fn deep_nesting_is_refused_without_recursing_away() {
    // A signal whose body is variant-in-variant 200 deep around a byte.
    let mut body = Vec::new();
    for _ in 0..200 {
        body.extend_from_slice(b"\x01v\0");
    }
    body.extend_from_slice(b"\x01y\0\x07");
    let mut msg = Vec::new();
    msg.extend_from_slice(b"l\x04\x00\x01");
    msg.extend_from_slice(&(body.len() as u32).to_le_bytes());
    msg.extend_from_slice(&1u32.to_le_bytes());
    // One header field, (SIGNATURE, g "v"): 7 bytes, then 1 of padding.
    msg.extend_from_slice(&7u32.to_le_bytes());
    msg.extend_from_slice(b"\x08\x01g\x00\x01v\x00\x00");
    msg.extend_from_slice(&body);
    let what = protocol_error(parse_message(msg));
    assert!(what.contains("too deep"), "{what}");
    // Signatures too deeply nested.
    let sig = format!("{}y", "a".repeat(100));
    assert!(complete_type_len(sig.as_bytes(), 0, false).is_err());
    let sig = format!("{}y{}", "(".repeat(100), ")".repeat(100));
    assert!(complete_type_len(sig.as_bytes(), 0, false).is_err());
}

#[test]
fn signature_parsing() {
    for (sig, len) in [
        ("y", 1),
        ("a{sv}", 5),
        ("a(sa(sv))", 9),
        ("(ii)x", 4),
        ("aa{s(ai)}", 9),
        ("v", 1),
    ] {
        assert_eq!(
            complete_type_len(sig.as_bytes(), 0, false).ok(),
            Some(len),
            "{sig}"
        );
    }
    for sig in [
        "", "a", "()", "(i", "{sv}", "a{vs}", "a{s}", "a{sss}", "z", ")", "a{sv",
    ] {
        assert!(
            complete_type_len(sig.as_bytes(), 0, false).is_err(),
            "{sig}"
        );
    }
}

#[test]
fn object_paths() {
    for ok in ["/", "/a", "/org/freedesktop/systemd1/job/100", "/a_B/c9"] {
        assert!(valid_object_path(ok), "{ok}");
    }
    for bad in ["", "a", "//", "/a/", "/a//b", "/a-b", "/a.b", "/ä"] {
        assert!(!valid_object_path(bad), "{bad}");
    }
}
