//! No bus, no root: the exchange runs over `Mock`, fed bytes captured
//! from a real dbus-daemon 1.14 (with a jeepney stand-in for systemd)
//! and from jeepney directly (big-endian and odd-typed messages); our
//! own encoding is compared with what busctl (systemd 252) sends.

use super::*;

// What busctl sends (flags from --allow-interactive-authorization=no
// --auto-start=no), and what dbus-daemon and jeepney answer.
const BUSCTL_HELLO: &str = concat!(
    "6c01000100000000010000006d00000001016f00150000002f6f72672f667265656465736b746f70",
    "2f44427573000000030173000500000048656c6c6f00000002017300140000006f72672e66726565",
    "6465736b746f702e444275730000000006017300140000006f72672e667265656465736b746f702e",
    "4442757300000000",
);
const BUSCTL_FULL: &str = concat!(
    "6c0102010801000002000000b600000001016f00190000002f6f72672f667265656465736b746f70",
    "2f73797374656d643100000000000000030173001200000053746172745472616e7369656e74556e",
    "697400000000000002017300200000006f72672e667265656465736b746f702e73797374656d6431",
    "2e4d616e61676572000000000000000006017300180000006f72672e667265656465736b746f702e",
    "73797374656d64310000000000000000080167001073736128737629612873612873762929000000",
    "110000006e736a61696c2d746573742e73636f7065000000040000006661696c00000000d8000000",
    "0400000050494473000261750000000008000000d20400002e1600000000000005000000536c6963",
    "65000173000000000c0000006e736a61696c2e736c69636500000000000000000b00000044657363",
    "72697074696f6e00017300001200000070616d5f6e736a61696c2073657373696f6e000000000000",
    "0b000000436f6c6c6563744d6f6465000173000012000000696e6163746976652d6f722d6661696c",
    "65640000000000000a0000004b696c6c5369676e616c0001690000000f0000000b00000053656e64",
    "5349474b494c4c0001620000010000000000000000000000",
);
const BUSCTL_MINIMAL: &str = concat!(
    "6c0102015800000002000000b600000001016f00190000002f6f72672f667265656465736b746f70",
    "2f73797374656d643100000000000000030173001200000053746172745472616e7369656e74556e",
    "697400000000000002017300200000006f72672e667265656465736b746f702e73797374656d6431",
    "2e4d616e61676572000000000000000006017300180000006f72672e667265656465736b746f702e",
    "73797374656d64310000000000000000080167001073736128737629612873612873762929000000",
    "07000000612e73636f706500040000006661696c0000000031000000000000000400000050494473",
    "000261750000000004000000010000000b0000004465736372697074696f6e000173000000000000",
    "0000000000000000",
);
const SASL_OK: &str = "4f4b2034336433616437373739383937333638393830343366383136623035653864330d0a";
const HELLO_REPLY: &str = concat!(
    "6c02010109000000010000003d00000006017300040000003a312e35000000000501750001000000",
    "080167000173000007017300140000006f72672e667265656465736b746f702e4442757300000000",
    "040000003a312e3500",
);
const NAME_ACQUIRED: &str = concat!(
    "6c04010109000000020000008d00000001016f00150000002f6f72672f667265656465736b746f70",
    "2f4442757300000002017300140000006f72672e667265656465736b746f702e4442757300000000",
    "030173000c0000004e616d6541637175697265640000000006017300040000003a312e3500000000",
    "080167000173000007017300140000006f72672e667265656465736b746f702e4442757300000000",
    "040000003a312e3500",
);
const JOB_NEW: &str = concat!(
    "6c0400013c000000030000009500000001016f00190000002f6f72672f667265656465736b746f70",
    "2f73797374656d64310000000000000002017300200000006f72672e667265656465736b746f702e",
    "73797374656d64312e4d616e61676572000000000000000003017300060000004a6f624e65770000",
    "06017300040000003a312e35000000000801670003756f7300000000000000000701730004000000",
    "3a312e340000000064000000210000002f6f72672f667265656465736b746f702f73797374656d64",
    "312f6a6f622f3130300000000b00000074657374312e73636f706500",
);
const JOB_REPLY: &str = concat!(
    "6c02000126000000040000002d000000050175000200000006017300040000003a312e3500000000",
    "08016700016f000007017300040000003a312e3400000000210000002f6f72672f66726565646573",
    "6b746f702f73797374656d64312f6a6f622f31303000",
);
const UNIT_EXISTS: &str = concat!(
    "6c03000125000000050000005d00000004017300230000006f72672e667265656465736b746f702e",
    "73797374656d64312e556e6974457869737473000000000005017500020000000601730004000000",
    "3a312e3600000000080167000173000007017300040000003a312e340000000020000000556e6974",
    "2074657374312e73636f706520616c7265616479206578697374732e00",
);
const NO_OWNER: &str = concat!(
    "6c03010133000000030000007500000006017300040000003a312e33000000000401730029000000",
    "6f72672e667265656465736b746f702e444275732e4572726f722e4e616d654861734e6f4f776e65",
    "72000000000000000501750002000000080167000173000007017300140000006f72672e66726565",
    "6465736b746f702e44427573000000002e0000004e616d6520226f72672e667265656465736b746f",
    "702e73797374656d64312220646f6573206e6f7420657869737400",
);
const BE_HELLO_REPLY: &str = concat!(
    "42020001000000090000000c0000001f050175000000000106017300000000043a312e3100000000",
    "0801670001730000000000043a312e3900",
);
const BE_JOB_REPLY: &str = concat!(
    "42020001000000240000000a0000001f050175000000000206017300000000043a312e3100000000",
    "08016700016f00000000001f2f6f72672f667265656465736b746f702f73797374656d64312f6a6f",
    "622f3700",
);
const BE_UNIT_EXISTS: &str = concat!(
    "42030001000000210000000b0000004f04017300000000236f72672e667265656465736b746f702e",
    "73797374656d64312e556e6974457869737473000000000005017500000000020601730000000004",
    "3a312e310000000008016700017300000000001c556e697420782e73636f706520616c7265616479",
    "206578697374732e00",
);
const COMPLEX_SIGNAL: &str = concat!(
    "6c040001740100000d0000008600000001016f00200000002f6f72672f667265656465736b746f70",
    "2f73797374656d64312f756e69742f780000000000000000020173001f0000006f72672e66726565",
    "6465736b746f702e444275732e50726f7065727469657300030173001100000050726f7065727469",
    "65734368616e67656400000000000000080167000873617b73767d61730000001d0000006f72672e",
    "667265656465736b746f702e73797374656d64312e556e6974000000380100000100000079000179",
    "0007000000000000010000006e00016e0000feff0000000001000000710001710000030000000000",
    "01000000780001780000000000000000fbffffffffffffff01000000740001740000000000000000",
    "090000000000000001000000640001640000000000000000000000000000f83f0200000061790002",
    "61790000030000006162630000000000020000007374000428697329000000000100000001000000",
    "7a00000000000000060000006e65737465640005617b73767d000000190000000100000076000176",
    "00017600017300000400000064656570000000000000000001000000670001670005612873762900",
    "010000006f00016f00000000040000002f612f620000000001000000620001620000000001000000",
    "05000000656d7074790006616128696929000000000000001000000003000000466f6f0003000000",
    "42617200",
);
const ERROR_NO_BODY: &str = concat!(
    "6c03000100000000140000003500000004017300120000006f72672e6578616d706c652e4e6f426f",
    "6479000000000000050175000200000006017300040000003a312e3100000000",
);
const ERROR_U_BODY: &str = concat!(
    "6c030001040000001500000037000000040173000f0000006f72672e6578616d706c652e4e756d00",
    "050175000200000006017300040000003a312e3100000000080167000175000005000000",
);
const HELLO_DENIED: &str = concat!(
    "6c0300011a0000001e0000004f00000004017300270000006f72672e667265656465736b746f702e",
    "444275732e4572726f722e41636365737344656e6965640005017500010000000601730004000000",
    "3a312e310000000008016700017300001500000052656a65637465642073656e64206d6573736167",
    "6500",
);
const HELLO_REPLY_O: &str = concat!(
    "6c020001070000001f0000001f000000050175000100000006017300040000003a312e3100000000",
    "08016700016f0000020000002f7800",
);
const START_REPLY_S: &str = concat!(
    "6c02000107000000200000001f000000050175000200000006017300040000003a312e3100000000",
    "0801670001730000020000002f7800",
);

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0);
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn cat(parts: &[&str]) -> Vec<u8> {
    parts.iter().flat_map(|p| hex(p)).collect()
}

/// Replays `input` in reads of at most `chunk` bytes, then EOF; records
/// what is written and the limits set.
struct Mock {
    input: Vec<u8>,
    pos: usize,
    chunk: usize,
    output: Vec<u8>,
    read_error: Option<io::ErrorKind>,
    write_result: Option<io::Result<usize>>,
    limits: Vec<Duration>,
}

impl Mock {
    fn new(input: Vec<u8>) -> Self {
        Mock {
            input,
            pos: 0,
            chunk: usize::MAX,
            output: Vec::new(),
            read_error: None,
            write_result: None,
            limits: Vec::new(),
        }
    }
    fn chunked(input: Vec<u8>, chunk: usize) -> Self {
        Mock {
            chunk,
            ..Mock::new(input)
        }
    }
}

impl Read for Mock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(kind) = self.read_error {
            return Err(kind.into());
        }
        let n = buf.len().min(self.chunk).min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Mock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &self.write_result {
            Some(Ok(n)) => Ok(*n),
            Some(Err(e)) => Err(e.kind().into()),
            None => {
                self.output.extend_from_slice(buf);
                Ok(buf.len())
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Mock {
    fn set_read_limit(&mut self, timeout: Duration) -> io::Result<()> {
        self.limits.push(timeout);
        Ok(())
    }
    fn set_write_limit(&mut self, timeout: Duration) -> io::Result<()> {
        self.limits.push(timeout);
        Ok(())
    }
}

const PIDS: [u32; 2] = [1234, 5678];

/// The scope busctl was given for `BUSCTL_FULL`.
fn full_scope() -> Scope<'static> {
    Scope {
        name: "nsjail-test.scope",
        slice: Some("nsjail.slice"),
        description: "pam_nsjail session",
        pids: &PIDS,
        kill_signal: Some(15),
        send_sigkill: Some(true),
        collect_inactive_or_failed: true,
        part_of: &[],
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn run(mock: &mut Mock) -> Result<String, DbusError> {
    start_transient_scope_on(mock, 0, &full_scope(), soon())
}

fn run_input(parts: &[&str]) -> Result<String, DbusError> {
    run(&mut Mock::new(cat(parts)))
}

/// The bytes a successful exchange writes.
fn expected_output() -> Vec<u8> {
    let mut out = b"\0AUTH EXTERNAL 30\r\nBEGIN\r\n".to_vec();
    out.extend(hex(BUSCTL_HELLO));
    out.extend(hex(BUSCTL_FULL));
    out
}

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
    // Header-field array length 4 GiB - 1.
    let mut huge_fields = hex(JOB_REPLY);
    huge_fields[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut huge_be = hex(BE_JOB_REPLY);
    huge_be[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    for msg in [big, huge_fields, huge_be] {
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

// --- deadline and I/O errors -----------------------------------------

#[test]
fn read_timeout_is_reported_as_such() {
    let mut mock = Mock::new(Vec::new());
    mock.read_error = Some(io::ErrorKind::WouldBlock);
    let err = run(&mut mock).unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(err.to_string(), "authenticate: timed out");
}

#[test]
fn a_past_deadline_sends_nothing() {
    let mut mock = Mock::new(cat(&[SASL_OK, HELLO_REPLY, JOB_REPLY]));
    let past = Instant::now();
    let err = start_transient_scope_on(&mut mock, 0, &full_scope(), past).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(mock.output.is_empty());
    assert!(mock.limits.is_empty());
}

#[test]
fn every_io_is_bounded_by_the_deadline() {
    let mut mock = Mock::chunked(cat(&[SASL_OK, HELLO_REPLY, JOB_REPLY]), 5);
    let timeout = Duration::from_secs(30);
    let start = Instant::now();
    start_transient_scope_on(&mut mock, 0, &full_scope(), start + timeout).unwrap();
    // Each read and write was preceded by a limit within the deadline.
    assert!(mock.limits.len() > mock.input.len() / 5);
    assert!(mock.limits.iter().all(|&l| !l.is_zero() && l <= timeout));
    assert!(mock.limits.windows(2).all(|w| w[1] <= w[0]));
}

#[test]
fn write_failures() {
    let mut mock = Mock::new(Vec::new());
    mock.write_result = Some(Ok(0));
    let err = run(&mut mock).unwrap_err();
    assert_eq!(
        err.to_string(),
        "authenticate: the bus closed the connection"
    );
    let mut mock = Mock::new(Vec::new());
    mock.write_result = Some(Err(io::ErrorKind::BrokenPipe.into()));
    let err = run(&mut mock).unwrap_err();
    assert!(
        matches!(err, DbusError::Authenticate(Cause::Io(_))),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
    // A transport claiming to have written more than it was given.
    let mut mock = Mock::new(Vec::new());
    mock.write_result = Some(Ok(usize::MAX));
    assert!(run(&mut mock).is_err());
}

#[test]
fn connect_failure_names_the_socket() {
    let err = start_transient_scope(
        Path::new("/nonexistent/dbus-test/socket"),
        &full_scope(),
        Duration::from_secs(1),
    )
    .unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.starts_with("connect /nonexistent/dbus-test/socket: "),
        "{shown}"
    );
    let err = start_transient_scope(Path::new("/x"), &full_scope(), Duration::MAX);
    assert!(matches!(err, Err(DbusError::InvalidRequest(_))));
}

#[test]
fn peer_text_is_escaped_and_cut() {
    let err = DbusError::StartTransientUnit(Cause::Remote {
        name: "a.B\n".into(),
        message: Some(format!("x\u{1b}[2J\r\n{}", "y".repeat(2000))),
    });
    let shown = err.to_string();
    assert!(shown.starts_with("StartTransientUnit: a.B\\n: x\\u{1b}[2J\\r\\nyyy"));
    assert!(shown.ends_with("y..."));
    assert!(shown.len() < 2 * MAX_SHOWN);
    assert!(!shown.chars().any(|c| c.is_control()));
}

// --- fuzz --------------------------------------------------------------

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(data.len() + 1);
        match rng.below(7) {
            0 if at < data.len() => data[at] ^= 1 << rng.below(8),
            1 if at < data.len() => data[at] = rng.next() as u8,
            2 => data.truncate(at),
            3 => data.insert(at, rng.next() as u8),
            4 if at < data.len() => {
                data.remove(at);
            }
            5 if at + 4 <= data.len() => {
                let v = [0u32, 1, 7, 0x80, 0xffff, 1 << 20, u32::MAX][rng.below(7)];
                data[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            _ => {
                let from = rng.below(data.len());
                let len = rng.below(64).min(data.len() - from);
                let copy = data[from..from + len].to_vec();
                let at = at.min(data.len());
                data.splice(at..at, copy);
            }
        }
    }
}

#[test]
fn fuzz_exchange_never_panics() {
    let seeds = [
        cat(&[SASL_OK, HELLO_REPLY, NAME_ACQUIRED, JOB_NEW, JOB_REPLY]),
        cat(&[SASL_OK, BE_HELLO_REPLY, COMPLEX_SIGNAL, BE_UNIT_EXISTS]),
        cat(&[SASL_OK, HELLO_REPLY, ERROR_U_BODY]),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ok = 0;
    for i in 0..6000 {
        let mut input = seeds[i % seeds.len()].clone();
        // Keep the SASL line intact most of the time so that the
        // message parser is what gets exercised.
        let keep = if rng.below(8) == 0 {
            0
        } else {
            hex(SASL_OK).len()
        };
        let mut tail = input.split_off(keep);
        mutate(&mut rng, &mut tail);
        input.extend(tail);
        let chunk = [usize::MAX, 1, 3, 64][rng.below(4)];
        if run(&mut Mock::chunked(input, chunk)).is_ok() {
            ok += 1;
        }
    }
    // Some mutations (e.g. in padding of skipped fields) are harmless.
    assert!(ok < 6000);
}

#[test]
fn fuzz_random_bytes_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let len = rng.below(200);
        let mut raw: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Make a plausible fixed header half of the time.
        if raw.len() >= 16 && rng.below(2) == 0 {
            raw[0] = b'l';
            raw[3] = 1;
            let fields = rng.below(raw.len() - 15) as u32;
            raw[12..16].copy_from_slice(&fields.to_le_bytes());
            let header = (16 + fields as usize).div_ceil(8) * 8;
            let body = raw.len().saturating_sub(header) as u32;
            raw[4..8].copy_from_slice(&body.to_le_bytes());
        }
        let _ = parse_message(raw.clone());
        let _ = complete_type_len(&raw, 0, false);
        let mut input = hex(SASL_OK);
        input.extend(&raw);
        let _ = run(&mut Mock::new(input));
        let _ = run(&mut Mock::new(raw));
    }
}
