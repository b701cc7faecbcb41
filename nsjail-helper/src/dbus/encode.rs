//! Marshalling (little-endian). Offsets in `Enc` are message offsets: a header
//! encoder starts at the message's first byte, and a body encoder at the
//! body's, which is 8-aligned in the message, so alignment agrees.
#![forbid(unsafe_code)]

#[allow(unused_imports)]
use super::*;

pub(super) struct TooLarge;

impl From<TooLarge> for DbusError {
    fn from(_: TooLarge) -> Self {
        DbusError::InvalidRequest("message too large")
    }
}

#[derive(Default)]
pub(super) struct Enc {
    pub(super) buf: Vec<u8>,
}

impl Enc {
    pub(super) fn pad(&mut self, align: usize) {
        while self.buf.len() % align != 0 {
            self.buf.push(0);
        }
    }
    pub(super) fn byte(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(super) fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn i32(&mut self, v: i32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn u64(&mut self, v: u64) {
        self.pad(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn boolean(&mut self, v: bool) {
        self.u32(u32::from(v));
    }
    pub(super) fn string(&mut self, s: &str) -> Result<(), TooLarge> {
        let len = u32::try_from(s.len()).map_err(|_| TooLarge)?;
        self.u32(len);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }
    pub(super) fn signature(&mut self, s: &str) -> Result<(), TooLarge> {
        let len = u8::try_from(s.len()).map_err(|_| TooLarge)?;
        self.byte(len);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }
    /// An array whose elements align to `align`: the length excludes the
    /// padding between it and the first element, which is there even when
    /// the array is empty.
    pub(super) fn array(
        &mut self,
        align: usize,
        elements: impl FnOnce(&mut Enc) -> Result<(), TooLarge>,
    ) -> Result<(), TooLarge> {
        self.u32(0);
        let at = self.buf.len().checked_sub(4).ok_or(TooLarge)?;
        self.pad(align);
        let start = self.buf.len();
        elements(self)?;
        let len = self.buf.len().checked_sub(start).ok_or(TooLarge)?;
        if len > MAX_ARRAY_LEN {
            return Err(TooLarge);
        }
        let len = u32::try_from(len).map_err(|_| TooLarge)?;
        let slot = self
            .buf
            .get_mut(at..at.checked_add(4).ok_or(TooLarge)?)
            .ok_or(TooLarge)?;
        slot.copy_from_slice(&len.to_le_bytes());
        Ok(())
    }
    /// One `(yv)` header field holding a string-like value.
    pub(super) fn field(&mut self, code: u8, sig: &str, value: &str) -> Result<(), TooLarge> {
        self.pad(8);
        self.byte(code);
        self.signature(sig)?;
        if sig == "g" {
            self.signature(value)
        } else {
            self.string(value)
        }
    }
    /// One `(sv)` property.
    pub(super) fn property(
        &mut self,
        key: &str,
        sig: &str,
        value: impl FnOnce(&mut Enc) -> Result<(), TooLarge>,
    ) -> Result<(), TooLarge> {
        self.pad(8);
        self.string(key)?;
        self.signature(sig)?;
        value(self)
    }
}

pub(super) struct Call<'a> {
    pub(super) flags: u8,
    pub(super) serial: u32,
    pub(super) path: &'a str,
    pub(super) interface: &'a str,
    pub(super) member: &'a str,
    pub(super) destination: &'a str,
    pub(super) signature: &'a str,
    pub(super) body: &'a [u8],
}

/// A whole METHOD_CALL message. Header fields go in sd-bus' order, so that
/// the result is byte-identical to what `busctl` sends.
pub(super) fn encode_call(call: &Call<'_>) -> Result<Vec<u8>, TooLarge> {
    let body_len = u32::try_from(call.body.len()).map_err(|_| TooLarge)?;
    let mut h = Enc::default();
    h.byte(b'l');
    h.byte(METHOD_CALL);
    h.byte(call.flags);
    h.byte(1); // protocol version
    h.u32(body_len);
    h.u32(call.serial);
    h.array(8, |h| {
        h.field(FIELD_PATH, "o", call.path)?;
        h.field(FIELD_MEMBER, "s", call.member)?;
        h.field(FIELD_INTERFACE, "s", call.interface)?;
        h.field(FIELD_DESTINATION, "s", call.destination)?;
        if !call.signature.is_empty() {
            h.field(FIELD_SIGNATURE, "g", call.signature)?;
        }
        Ok(())
    })?;
    h.pad(8);
    h.buf.extend_from_slice(call.body);
    if h.buf.len() > MAX_MESSAGE_LEN {
        return Err(TooLarge);
    }
    Ok(h.buf)
}

pub(super) fn encode_hello(serial: u32) -> Result<Vec<u8>, TooLarge> {
    encode_call(&Call {
        flags: 0,
        serial,
        path: "/org/freedesktop/DBus",
        interface: "org.freedesktop.DBus",
        member: "Hello",
        destination: "org.freedesktop.DBus",
        signature: "",
        body: &[],
    })
}

pub(super) fn encode_start_transient_unit(
    scope: &Scope<'_>,
    serial: u32,
) -> Result<Vec<u8>, DbusError> {
    validate(scope)?;
    let mut b = Enc::default();
    b.string(scope.name)?;
    b.string("fail")?;
    b.array(8, |b| {
        b.property("PIDs", "au", |b| {
            b.array(4, |b| {
                for &pid in scope.pids {
                    b.u32(pid);
                }
                Ok(())
            })
        })?;
        if let Some(slice) = scope.slice {
            b.property("Slice", "s", |b| b.string(slice))?;
        }
        b.property("Description", "s", |b| b.string(scope.description))?;
        if scope.collect_inactive_or_failed {
            b.property("CollectMode", "s", |b| b.string("inactive-or-failed"))?;
        }
        if let Some(sig) = scope.kill_signal {
            b.property("KillSignal", "i", |b| {
                b.i32(sig);
                Ok(())
            })?;
        }
        if let Some(on) = scope.send_sigkill {
            b.property("SendSIGKILL", "b", |b| {
                b.boolean(on);
                Ok(())
            })?;
        }
        if scope.delegate {
            b.property("Delegate", "b", |b| {
                b.boolean(true);
                Ok(())
            })?;
        }
        if !scope.part_of.is_empty() {
            b.property("PartOf", "as", |b| {
                b.array(4, |b| {
                    for unit in scope.part_of {
                        b.string(unit)?;
                    }
                    Ok(())
                })
            })?;
        }
        Ok(())
    })?;
    // aux: the scope's new slice, if any.
    b.array(8, |b| {
        if let Some(aux) = &scope.new_slice {
            b.pad(8);
            b.string(aux.name)?;
            b.array(8, |b| {
                b.property("Description", "s", |b| b.string(aux.description))?;
                for &(key, value) in aux.properties {
                    b.property(key, "t", |b| {
                        b.u64(value);
                        Ok(())
                    })?;
                }
                Ok(())
            })?;
        }
        Ok(())
    })?;
    Ok(encode_call(&Call {
        // Never have the bus try to activate systemd: if it is not running
        // we want ServiceUnknown at once, not a spawned launch helper.
        flags: FLAG_NO_AUTO_START,
        serial,
        path: "/org/freedesktop/systemd1",
        interface: "org.freedesktop.systemd1.Manager",
        member: "StartTransientUnit",
        destination: "org.freedesktop.systemd1",
        signature: "ssa(sv)a(sa(sv))",
        body: &b.buf,
    })?)
}

fn manager_call(
    serial: u32,
    member: &str,
    signature: &str,
    body: &[u8],
) -> Result<Vec<u8>, TooLarge> {
    encode_call(&Call {
        flags: FLAG_NO_AUTO_START,
        serial,
        path: "/org/freedesktop/systemd1",
        interface: "org.freedesktop.systemd1.Manager",
        member,
        destination: "org.freedesktop.systemd1",
        signature,
        body,
    })
}

fn limit_properties(b: &mut Enc, properties: &[(&str, u64)]) -> Result<(), TooLarge> {
    b.array(8, |b| {
        for &(key, value) in properties {
            b.property(key, "t", |b| {
                b.u64(value);
                Ok(())
            })?;
        }
        Ok(())
    })
}

pub(super) fn encode_set_unit_properties(
    name: &str,
    properties: &[(&str, u64)],
    serial: u32,
) -> Result<Vec<u8>, DbusError> {
    if !valid_unit_name(name, "")
        || properties
            .iter()
            .any(|(k, _)| !LIMIT_PROPERTIES.contains(k))
    {
        return Err(DbusError::InvalidRequest(
            "SetUnitProperties: bad unit name or property",
        ));
    }
    let mut b = Enc::default();
    b.string(name)?;
    b.boolean(true); // runtime: nothing persists across a reboot
    limit_properties(&mut b, properties)?;
    Ok(manager_call(
        serial,
        "SetUnitProperties",
        "sba(sv)",
        &b.buf,
    )?)
}

pub(super) fn encode_attach_processes(
    unit: &str,
    pids: &[u32],
    serial: u32,
) -> Result<Vec<u8>, DbusError> {
    if !valid_unit_name(unit, ".scope") {
        return Err(DbusError::InvalidRequest(
            "AttachProcessesToUnit: bad unit name",
        ));
    }
    if pids.is_empty() || pids.iter().any(|&p| p == 0 || i32::try_from(p).is_err()) {
        return Err(DbusError::InvalidRequest(
            "PIDs must be in 1..=i32::MAX (0 would mean the caller)",
        ));
    }
    let mut b = Enc::default();
    b.string(unit)?;
    b.string("")?; // the unit's own cgroup
    b.array(4, |b| {
        for &pid in pids {
            b.u32(pid);
        }
        Ok(())
    })?;
    Ok(manager_call(
        serial,
        "AttachProcessesToUnit",
        "ssau",
        &b.buf,
    )?)
}
