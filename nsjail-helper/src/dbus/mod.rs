//! A minimal, synchronous D-Bus client with exactly one job: ask systemd
//! (`org.freedesktop.systemd1`) on the system bus to create a transient
//! scope unit holding given PIDs, i.e. one call of
//! `org.freedesktop.systemd1.Manager.StartTransientUnit(s name, s mode,
//! a(sv) properties, a(sa(sv)) aux) -> o job`.
//!
//! Why not zbus: this runs as root, before `unshare()`, in a helper that
//! must stay single-threaded. One blocking request over a `UnixStream` is a
//! few hundred lines of std-only code that can be read in full.
//!
//! What the exchange looks like:
//! 1. connect to the socket path the caller names (never
//!    `DBUS_SYSTEM_BUS_ADDRESS`: the environment is not trusted), within
//!    the deadline, and check that the peer that listens there is root
//!    (`SO_PEERCRED`): a socket someone else bound is not the system bus;
//! 2. SASL: a NUL byte, `AUTH EXTERNAL <hex of the decimal euid>`, expect
//!    `OK <guid>`, send `BEGIN` (no unix-fd negotiation);
//! 3. `org.freedesktop.DBus.Hello` (serial 1), wait for its reply;
//! 4. `StartTransientUnit` (serial 2, flag NO_AUTO_START: if systemd is not
//!    on the bus we want `NameHasNoOwner` at once, not an activation
//!    attempt), wait for its reply.
//!
//! Anything that is not the awaited reply (`NameAcquired`, signals any
//! local user may send to our unique name, replies to other serials) is
//! dropped after its header is checked, whatever its size or body: it can
//! delay us until the deadline, never make us fail. A message whose header
//! alone is over [`MAX_MESSAGE_LEN`] cannot be the reply (that would be
//! refused anyway) and is skipped by its length, unparsed. The awaited reply is
//! checked in full, body against signature.
//!
//! Robustness rules: no `unsafe`, no threads, no global state, no panic on
//! any byte from the peer (checked access only), at most
//! [`MAX_MESSAGE_LEN`] bytes per message, and every read and write bounded by
//! one overall deadline. Both byte orders are accepted from the peer; we
//! send little-endian.
//!
//! A write to a peer that has hung up raises `SIGPIPE`. Rust binaries ignore
//! `SIGPIPE` from `main` on, so it only surfaces as an `EPIPE` error here, but
//! a caller that restored `SIG_DFL` in its own process must not call this.
//!
//! The transport is any [`Transport`] (`Read + Write` that can bound its
//! next read or write), so the whole exchange is unit-tested on canned bytes.

#![forbid(unsafe_code)]

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the system bus listens on Debian and every systemd distribution.
pub const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";

/// The largest message, header and body, that we send or accept.
pub const MAX_MESSAGE_LEN: usize = 1 << 20;

/// Longest SASL line accepted from the bus (`OK <32 hex digits>` is 35).
const MAX_SASL_LINE: usize = 512;

/// Nesting limit for containers and variants in a message (the spec's total
/// is 64).
const MAX_DEPTH: usize = 64;

/// D-Bus' own cap on one array's length in bytes.
const MAX_ARRAY_LEN: usize = 1 << 26;

/// Longest peer-supplied text shown by `Display` (bytes, before escaping).
const MAX_SHOWN: usize = 512;

const SERIAL_HELLO: u32 = 1;
const SERIAL_START: u32 = 2;

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;

const FLAG_NO_AUTO_START: u8 = 0x2;

const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_DESTINATION: u8 = 6;
const FIELD_SENDER: u8 = 7;
const FIELD_SIGNATURE: u8 = 8;
const FIELD_UNIX_FDS: u8 = 9;

/// The scope to create. Every field is checked before anything is sent.
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    /// Unit name, ending in `.scope` (systemd's unit-name characters only).
    pub name: &'a str,
    /// `Slice=`: the parent slice, ending in `.slice`; `None` leaves
    /// systemd's default (`system.slice` for the system manager).
    pub slice: Option<&'a str>,
    /// `Description=`.
    pub description: &'a str,
    /// `PIDs=`: the processes to move into the scope. At least one; none may
    /// be 0, which systemd would read as "the caller", i.e. us.
    pub pids: &'a [u32],
    /// `KillSignal=`, 1..=64.
    pub kill_signal: Option<i32>,
    /// `SendSIGKILL=`.
    pub send_sigkill: Option<bool>,
    /// `CollectMode=inactive-or-failed` (garbage-collect the unit even when
    /// it failed), instead of systemd's default `inactive`.
    pub collect_inactive_or_failed: bool,
    /// `PartOf=`: units whose stop (or restart) stops this scope too.
    pub part_of: &'a [&'a str],
    /// `Delegate=yes`: the scope's cgroup subtree is handed to its
    /// creator, and systemd then accepts `AttachProcessesToUnit` into it.
    pub delegate: bool,
    /// A slice to create in the same transaction (the `aux` argument), for
    /// a scope whose `slice` does not exist yet: a slice that systemd stops
    /// when unneeded (`user-.slice.d` gives every `user-UID-*.slice`
    /// `StopWhenUnneeded=yes`) would otherwise be stopped again before
    /// the scope that needs it starts.
    pub new_slice: Option<Slice<'a>>,
}

/// A transient slice and the `t`-typed cgroup properties it carries
/// (`MemoryMax`, `TasksMax`, …; `u64::MAX` means "no limit"/"unset").
#[derive(Clone, Copy, Debug)]
pub struct Slice<'a> {
    /// Unit name, ending in `.slice`; its parent is implied by the name.
    pub name: &'a str,
    pub description: &'a str,
    pub properties: &'a [(&'a str, u64)],
}

/// Which step of the exchange failed, and why.
#[derive(Debug)]
pub enum DbusError {
    /// The request itself is unusable; nothing was sent.
    InvalidRequest(&'static str),
    /// The bus socket could not be connected to (within the deadline).
    Connect { socket: PathBuf, source: io::Error },
    /// The process listening on the socket is not root's: not the bus.
    Peer { socket: PathBuf, uid: u32 },
    /// The SASL handshake failed.
    Authenticate(Cause),
    /// The mandatory `org.freedesktop.DBus.Hello` call failed.
    Hello(Cause),
    /// The `StartTransientUnit` call failed.
    StartTransientUnit(Cause),
    /// Another `org.freedesktop.systemd1.Manager` method failed.
    Method(&'static str, Cause),
}

/// Why a step failed.
#[derive(Debug)]
pub enum Cause {
    /// The deadline passed.
    TimedOut,
    /// The bus closed the connection.
    Closed,
    /// Any other I/O error.
    Io(io::Error),
    /// The bus refused the SASL exchange; the line it answered.
    Rejected(String),
    /// The bus sent bytes that break the protocol.
    Protocol(String),
    /// An `ERROR` reply: its error name and, when its body starts with a
    /// string, that string (the human-readable message).
    Remote {
        name: String,
        message: Option<String>,
    },
}

impl DbusError {
    /// The D-Bus error name when the bus or systemd answered with an error,
    /// e.g. `org.freedesktop.systemd1.UnitExists`.
    pub fn error_name(&self) -> Option<&str> {
        match self {
            DbusError::Hello(Cause::Remote { name, .. })
            | DbusError::StartTransientUnit(Cause::Remote { name, .. })
            | DbusError::Method(_, Cause::Remote { name, .. }) => Some(name),
            _ => None,
        }
    }

    /// Whether the deadline passed.
    pub fn is_timeout(&self) -> bool {
        if let DbusError::Connect { source, .. } = self {
            return source.kind() == io::ErrorKind::TimedOut;
        }
        matches!(
            self,
            DbusError::Authenticate(Cause::TimedOut)
                | DbusError::Hello(Cause::TimedOut)
                | DbusError::StartTransientUnit(Cause::TimedOut)
                | DbusError::Method(_, Cause::TimedOut)
        )
    }
}

impl fmt::Display for DbusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbusError::InvalidRequest(why) => {
                write!(f, "StartTransientUnit: invalid request: {why}")
            }
            DbusError::Connect { socket, source } => {
                write!(f, "connect {}: {source}", socket.display())
            }
            DbusError::Peer { socket, uid } => write!(
                f,
                "connect {}: the peer is uid {uid}, not root: not the system bus",
                socket.display()
            ),
            DbusError::Authenticate(cause) => write!(f, "authenticate: {cause}"),
            DbusError::Hello(cause) => write!(f, "Hello: {cause}"),
            DbusError::StartTransientUnit(cause) => write!(f, "StartTransientUnit: {cause}"),
            DbusError::Method(method, cause) => write!(f, "{method}: {cause}"),
        }
    }
}

impl std::error::Error for DbusError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DbusError::Connect { source, .. }
            | DbusError::Authenticate(Cause::Io(source))
            | DbusError::Hello(Cause::Io(source))
            | DbusError::StartTransientUnit(Cause::Io(source))
            | DbusError::Method(_, Cause::Io(source)) => Some(source),
            _ => None,
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::TimedOut => f.write_str("timed out"),
            Cause::Closed => f.write_str("the bus closed the connection"),
            Cause::Io(e) => write!(f, "{e}"),
            Cause::Rejected(line) => write!(f, "rejected by the bus: {}", Shown(line)),
            Cause::Protocol(what) => write!(f, "protocol error: {}", Shown(what)),
            Cause::Remote { name, message } => {
                write!(f, "{}", Shown(name))?;
                match message {
                    Some(m) => write!(f, ": {}", Shown(m)),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Peer-supplied text made safe for a log line: control characters
/// escaped, long text cut.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut used = 0;
        for c in self.0.chars() {
            used += c.len_utf8();
            if used > MAX_SHOWN {
                return f.write_str("...");
            }
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

fn protocol(what: impl Into<String>) -> Cause {
    Cause::Protocol(what.into())
}

fn truncated() -> Cause {
    protocol("truncated message")
}

fn io_cause(e: io::Error) -> Cause {
    match e.kind() {
        // A socket timeout surfaces as EAGAIN (WouldBlock) on Linux.
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Cause::TimedOut,
        io::ErrorKind::UnexpectedEof => Cause::Closed,
        _ => Cause::Io(e),
    }
}

/// A byte stream to the bus that can bound how long its next read or write
/// may block.
pub trait Transport: Read + Write {
    /// The next reads may block for at most `timeout` (never zero).
    fn set_read_limit(&mut self, timeout: Duration) -> io::Result<()>;
    /// The next writes may block for at most `timeout` (never zero).
    fn set_write_limit(&mut self, timeout: Duration) -> io::Result<()>;
}

impl Transport for UnixStream {
    fn set_read_limit(&mut self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))
    }
    fn set_write_limit(&mut self, timeout: Duration) -> io::Result<()> {
        self.set_write_timeout(Some(timeout))
    }
}

/// Connects to the bus at `socket` (normally [`SYSTEM_BUS_SOCKET`]) and asks
/// systemd to create the transient scope `scope`. Returns the start job's
/// object path.
///
/// The reply only says that systemd queued the start job: the PIDs are
/// moved into the scope's cgroup when that job runs, normally within
/// milliseconds but after this returns. A caller that needs the move done
/// must check `/proc/PID/cgroup` (waiting for `JobRemoved` would need a
/// match rule, which this client does not do).
///
/// The whole exchange, connect included, must finish within `timeout`.
pub fn start_transient_scope(
    socket: &Path,
    scope: &Scope<'_>,
    timeout: Duration,
) -> Result<String, DbusError> {
    let deadline = Instant::now()
        .checked_add(timeout)
        .ok_or(DbusError::InvalidRequest("timeout too large"))?;
    // Refuse a bad request before touching the bus.
    let call = encode_start_transient_unit(scope, SERIAL_START)?;
    let mut stream = connect(socket, deadline)?;
    let euid = nix::unistd::geteuid().as_raw();
    exchange(&mut stream, euid, &call, deadline)
}

/// Connects to `socket` by `deadline` and checks who listens there.
///
/// A local connect() blocks only while the listener's backlog is full; a
/// non-blocking one then fails with EAGAIN at once, so it is retried until
/// the deadline instead of waiting without bound.
fn connect(socket: &Path, deadline: Instant) -> Result<UnixStream, DbusError> {
    use std::os::fd::AsFd;
    let failed = |source: io::Error| DbusError::Connect {
        socket: socket.to_path_buf(),
        source,
    };
    let fd = crate::sys::unix_stream_socket_nonblocking().map_err(failed)?;
    loop {
        match crate::sys::unix_connect(fd.as_fd(), socket) {
            Ok(()) => break,
            Err(e) if is_retry(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) if is_retry(&e) => return Err(failed(io::ErrorKind::TimedOut.into())),
            Err(e) => return Err(failed(e)),
        }
    }
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(false).map_err(failed)?;
    let uid = crate::sys::peer_uid(stream.as_fd()).map_err(failed)?;
    check_peer(socket, uid)?;
    Ok(stream)
}

/// EAGAIN (the listener's backlog is full) or EINTR.
fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// The system bus is run by root; anything else listening at its path
/// (a stale socket re-bound by a user, a wrong path) is refused before a
/// byte is sent.
fn check_peer(socket: &Path, uid: u32) -> Result<(), DbusError> {
    if uid != 0 {
        return Err(DbusError::Peer {
            socket: socket.to_path_buf(),
            uid,
        });
    }
    Ok(())
}

/// The whole exchange over an already connected `io`, authenticating as
/// `euid` (which must be the connecting process' effective uid), finishing
/// by `deadline`.
pub fn start_transient_scope_on<T: Transport>(
    io: &mut T,
    euid: u32,
    scope: &Scope<'_>,
    deadline: Instant,
) -> Result<String, DbusError> {
    let call = encode_start_transient_unit(scope, SERIAL_START)?;
    exchange(io, euid, &call, deadline)
}

/// SASL, Hello, then the already encoded StartTransientUnit `call`.
fn exchange<T: Transport>(
    io: &mut T,
    euid: u32,
    call: &[u8],
    deadline: Instant,
) -> Result<String, DbusError> {
    let hello = encode_hello(SERIAL_HELLO)?;
    let mut wire = Wire {
        io,
        deadline,
        buf: Vec::new(),
    };

    authenticate(&mut wire, euid).map_err(DbusError::Authenticate)?;

    wire.send(&hello).map_err(DbusError::Hello)?;
    match wire.await_reply(SERIAL_HELLO).map_err(DbusError::Hello)? {
        Reply::Return(msg) if msg.header.signature == "s" => {}
        Reply::Return(msg) => {
            return Err(DbusError::Hello(protocol(format!(
                "reply has signature '{}', expected 's'",
                msg.header.signature
            ))))
        }
        Reply::Error(cause) => return Err(DbusError::Hello(cause)),
    }

    wire.send(call).map_err(DbusError::StartTransientUnit)?;
    match wire
        .await_reply(SERIAL_START)
        .map_err(DbusError::StartTransientUnit)?
    {
        Reply::Return(msg) if msg.header.signature == "o" => {
            let mut dec = msg.body_decoder();
            let job = dec.object_path().map_err(DbusError::StartTransientUnit)?;
            Ok(job.to_owned())
        }
        Reply::Return(msg) => Err(DbusError::StartTransientUnit(protocol(format!(
            "reply has signature '{}', expected 'o'",
            msg.header.signature
        )))),
        Reply::Error(cause) => Err(DbusError::StartTransientUnit(cause)),
    }
}

/// Sets `properties` on the existing unit `name` (`SetUnitProperties`,
/// runtime only), so a changed policy applies at the next login.
pub fn set_unit_properties(
    socket: &Path,
    name: &str,
    properties: &[(&str, u64)],
    timeout: Duration,
) -> Result<(), DbusError> {
    let deadline = Instant::now()
        .checked_add(timeout)
        .ok_or(DbusError::InvalidRequest("timeout too large"))?;
    let set = encode_set_unit_properties(name, properties, SERIAL_START)?;
    call_on_socket(socket, &set, deadline, "SetUnitProperties", "")
}

/// Moves `pids` into the cgroup of the running, delegated unit `unit`
/// (`AttachProcessesToUnit(unit, "", pids)`). systemd does the move
/// before it answers.
pub fn attach_processes(
    socket: &Path,
    unit: &str,
    pids: &[u32],
    timeout: Duration,
) -> Result<(), DbusError> {
    let deadline = Instant::now()
        .checked_add(timeout)
        .ok_or(DbusError::InvalidRequest("timeout too large"))?;
    let call = encode_attach_processes(unit, pids, SERIAL_START)?;
    call_on_socket(socket, &call, deadline, "AttachProcessesToUnit", "")
}

/// Connect, authenticate, Hello, then one already encoded `call` whose
/// reply must have signature `expect` (its body is not needed).
fn call_on_socket(
    socket: &Path,
    call: &[u8],
    deadline: Instant,
    method: &'static str,
    expect: &'static str,
) -> Result<(), DbusError> {
    let mut stream = UnixStream::connect(socket).map_err(|source| DbusError::Connect {
        socket: socket.to_path_buf(),
        source,
    })?;
    let euid = nix::unistd::geteuid().as_raw();
    call_on(&mut stream, euid, call, deadline, method, expect)
}

/// [`call_on_socket`] over an already connected transport.
pub(crate) fn call_on<T: Transport>(
    io: &mut T,
    euid: u32,
    call: &[u8],
    deadline: Instant,
    method: &'static str,
    expect: &'static str,
) -> Result<(), DbusError> {
    let hello = encode_hello(SERIAL_HELLO)?;
    let mut wire = Wire {
        io,
        deadline,
        buf: Vec::new(),
    };
    authenticate(&mut wire, euid).map_err(DbusError::Authenticate)?;
    wire.send(&hello).map_err(DbusError::Hello)?;
    match wire.await_reply(SERIAL_HELLO).map_err(DbusError::Hello)? {
        Reply::Return(_) => {}
        Reply::Error(cause) => return Err(DbusError::Hello(cause)),
    }
    let fail = |c| DbusError::Method(method, c);
    wire.send(call).map_err(fail)?;
    match wire.await_reply(SERIAL_START).map_err(fail)? {
        Reply::Return(msg) if msg.header.signature == expect => Ok(()),
        Reply::Return(msg) => Err(fail(protocol(format!(
            "reply has signature '{}', expected '{expect}'",
            msg.header.signature
        )))),
        Reply::Error(cause) => Err(fail(cause)),
    }
}

// Validation of the request.

/// systemd's unit-name characters (`VALID_CHARS` plus `@` for instances).
fn valid_unit_name(name: &str, suffix: &str) -> bool {
    name.len() <= 255
        && name.len() > suffix.len()
        && name.ends_with(suffix)
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b))
}

fn validate(scope: &Scope<'_>) -> Result<(), DbusError> {
    if !valid_unit_name(scope.name, ".scope") {
        return Err(DbusError::InvalidRequest(
            "unit name must be systemd unit-name characters ending in .scope",
        ));
    }
    if let Some(slice) = scope.slice {
        if !valid_unit_name(slice, ".slice") {
            return Err(DbusError::InvalidRequest(
                "slice must be systemd unit-name characters ending in .slice",
            ));
        }
    }
    if scope.description.contains('\0') {
        return Err(DbusError::InvalidRequest("description contains a NUL byte"));
    }
    if scope.pids.is_empty() {
        return Err(DbusError::InvalidRequest("a scope needs at least one PID"));
    }
    if scope
        .pids
        .iter()
        .any(|&p| p == 0 || i32::try_from(p).is_err())
    {
        return Err(DbusError::InvalidRequest(
            "PIDs must be in 1..=i32::MAX (0 would mean the caller)",
        ));
    }
    if scope.part_of.iter().any(|u| !valid_unit_name(u, "")) {
        return Err(DbusError::InvalidRequest(
            "PartOf units must be systemd unit names",
        ));
    }
    if let Some(sig) = scope.kill_signal {
        if !(1..=64).contains(&sig) {
            return Err(DbusError::InvalidRequest("kill signal must be in 1..=64"));
        }
    }
    if let Some(aux) = &scope.new_slice {
        validate_slice(aux)?;
        if scope.slice != Some(aux.name) {
            return Err(DbusError::InvalidRequest(
                "a new slice must be the scope's own slice",
            ));
        }
    }
    Ok(())
}

fn validate_slice(slice: &Slice<'_>) -> Result<(), DbusError> {
    if !valid_unit_name(slice.name, ".slice") {
        return Err(DbusError::InvalidRequest(
            "slice name must be systemd unit-name characters ending in .slice",
        ));
    }
    if slice.description.contains('\0') {
        return Err(DbusError::InvalidRequest("description contains a NUL byte"));
    }
    if slice
        .properties
        .iter()
        .any(|(k, _)| !LIMIT_PROPERTIES.contains(k))
    {
        return Err(DbusError::InvalidRequest("unknown slice property"));
    }
    Ok(())
}

/// The `t`-typed cgroup properties a [`Slice`] may carry.
pub const LIMIT_PROPERTIES: [&str; 6] = [
    "MemoryMax",
    "MemoryHigh",
    "TasksMax",
    "CPUQuotaPerSecUSec",
    "CPUWeight",
    "IOWeight",
];

mod decode;
mod encode;
#[cfg(test)]
mod tests;
mod wire;

use decode::*;
use encode::*;
use wire::*;
