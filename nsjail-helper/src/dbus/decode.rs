//! Unmarshalling. `Dec` reads from a message's bytes; its position is the
//! message offset, so alignment is right for header and body alike.
#![forbid(unsafe_code)]

#[allow(unused_imports)]
use super::*;

pub(super) struct Dec<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
    pub(super) big_endian: bool,
}

impl<'a> Dec<'a> {
    pub(super) fn bytes(&mut self, n: usize) -> Result<&'a [u8], Cause> {
        let end = self.pos.checked_add(n).ok_or_else(truncated)?;
        let s = self.data.get(self.pos..end).ok_or_else(truncated)?;
        self.pos = end;
        Ok(s)
    }
    pub(super) fn align(&mut self, align: usize) -> Result<(), Cause> {
        let pad = (align - self.pos % align) % align;
        if self.bytes(pad)?.iter().any(|&b| b != 0) {
            return Err(protocol("non-zero alignment padding"));
        }
        Ok(())
    }
    pub(super) fn byte(&mut self) -> Result<u8, Cause> {
        self.bytes(1)?.first().copied().ok_or_else(truncated)
    }
    pub(super) fn fixed<const N: usize>(&mut self, align: usize) -> Result<[u8; N], Cause> {
        self.align(align)?;
        let raw: [u8; N] = self.bytes(N)?.try_into().map_err(|_| truncated())?;
        Ok(raw)
    }
    pub(super) fn u32(&mut self) -> Result<u32, Cause> {
        let raw = self.fixed::<4>(4)?;
        Ok(if self.big_endian {
            u32::from_be_bytes(raw)
        } else {
            u32::from_le_bytes(raw)
        })
    }
    pub(super) fn string(&mut self) -> Result<&'a str, Cause> {
        let len = self.u32()?;
        let len = usize::try_from(len).map_err(|_| truncated())?;
        let raw = self.bytes(len)?;
        if self.byte()? != 0 {
            return Err(protocol("string not NUL-terminated"));
        }
        if raw.contains(&0) {
            return Err(protocol("string contains a NUL byte"));
        }
        std::str::from_utf8(raw).map_err(|_| protocol("string is not UTF-8"))
    }
    pub(super) fn object_path(&mut self) -> Result<&'a str, Cause> {
        let path = self.string()?;
        if !valid_object_path(path) {
            return Err(protocol("invalid object path"));
        }
        Ok(path)
    }
    /// A signature, checked: known type codes, balanced containers.
    pub(super) fn signature(&mut self) -> Result<&'a str, Cause> {
        let len = usize::from(self.byte()?);
        let raw = self.bytes(len)?;
        if self.byte()? != 0 {
            return Err(protocol("signature not NUL-terminated"));
        }
        let sig = std::str::from_utf8(raw).map_err(|_| protocol("signature is not ASCII"))?;
        let mut rest = sig.as_bytes();
        while !rest.is_empty() {
            let n = complete_type_len(rest, 0, false)?;
            rest = rest.get(n..).ok_or_else(|| protocol("bad signature"))?;
        }
        Ok(sig)
    }

    /// Checks and steps over one value whose type is the complete type that
    /// starts `sig` (already checked by `signature`); returns that type's
    /// length in `sig`. Work is linear in the bytes stepped over.
    pub(super) fn skip(&mut self, sig: &[u8], depth: usize) -> Result<usize, Cause> {
        let bad = || protocol("bad signature");
        if depth > MAX_DEPTH {
            return Err(protocol("nesting too deep"));
        }
        let code = *sig.first().ok_or_else(bad)?;
        match code {
            b'y' => {
                self.byte()?;
            }
            b'n' | b'q' => {
                self.fixed::<2>(2)?;
            }
            b'i' | b'u' | b'h' => {
                self.fixed::<4>(4)?;
            }
            b'x' | b't' | b'd' => {
                self.fixed::<8>(8)?;
            }
            b'b' => {
                if self.u32()? > 1 {
                    return Err(protocol("boolean is neither 0 nor 1"));
                }
            }
            b's' => {
                self.string()?;
            }
            b'o' => {
                self.object_path()?;
            }
            b'g' => {
                self.signature()?;
            }
            b'v' => {
                let inner = self.signature()?.as_bytes();
                if self.skip(inner, depth + 1)? != inner.len() {
                    return Err(protocol("variant signature is not one complete type"));
                }
            }
            b'a' => {
                let len = usize::try_from(self.u32()?).map_err(|_| truncated())?;
                if len > MAX_ARRAY_LEN {
                    return Err(protocol("array too long"));
                }
                let elem = sig.get(1..).ok_or_else(bad)?;
                let elem_len = complete_type_len(elem, depth + 1, true)?;
                self.align(alignment(*elem.first().ok_or_else(bad)?))?;
                let end = self.pos.checked_add(len).ok_or_else(truncated)?;
                if end > self.data.len() {
                    return Err(truncated());
                }
                // Every element takes at least one byte, so this ends.
                while self.pos < end {
                    self.skip(elem, depth + 1)?;
                }
                if self.pos != end {
                    return Err(protocol("array length does not match its elements"));
                }
                return Ok(1 + elem_len);
            }
            b'(' | b'{' => {
                let close = if code == b'(' { b')' } else { b'}' };
                self.align(8)?;
                let mut i = 1;
                loop {
                    match sig.get(i) {
                        Some(&c) if c == close && i > 1 => return Ok(i + 1),
                        Some(_) => {
                            let rest = sig.get(i..).ok_or_else(bad)?;
                            i += self.skip(rest, depth + 1)?;
                        }
                        None => return Err(bad()),
                    }
                }
            }
            _ => return Err(bad()),
        }
        Ok(1)
    }
}

pub(super) fn alignment(code: u8) -> usize {
    match code {
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b'h' | b's' | b'o' | b'a' => 4,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 1, // y g v
    }
}

pub(super) fn is_basic(code: u8) -> bool {
    b"ybnqiuxtdhsog".contains(&code)
}

/// The length of the single complete type that starts `sig`.
pub(super) fn complete_type_len(
    sig: &[u8],
    depth: usize,
    array_element: bool,
) -> Result<usize, Cause> {
    let bad = || protocol("bad signature");
    if depth > MAX_DEPTH {
        return Err(protocol("signature nesting too deep"));
    }
    let code = *sig.first().ok_or_else(bad)?;
    match code {
        c if is_basic(c) || c == b'v' => Ok(1),
        b'a' => {
            let rest = sig.get(1..).ok_or_else(bad)?;
            Ok(1 + complete_type_len(rest, depth + 1, true)?)
        }
        b'(' => {
            let mut i = 1;
            loop {
                match sig.get(i) {
                    Some(b')') if i > 1 => return Ok(i + 1),
                    Some(_) => {
                        let rest = sig.get(i..).ok_or_else(bad)?;
                        i += complete_type_len(rest, depth + 1, false)?;
                    }
                    None => return Err(bad()),
                }
            }
        }
        b'{' if array_element => {
            let key = *sig.get(1).ok_or_else(bad)?;
            if !is_basic(key) {
                return Err(bad());
            }
            let rest = sig.get(2..).ok_or_else(bad)?;
            let n = complete_type_len(rest, depth + 1, false)?;
            if sig.get(2 + n) != Some(&b'}') {
                return Err(bad());
            }
            Ok(n + 3)
        }
        _ => Err(bad()),
    }
}

pub(super) fn valid_object_path(path: &str) -> bool {
    if path == "/" {
        return true;
    }
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    rest.split('/').all(|elem| {
        !elem.is_empty() && elem.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// Where a message's parts end, from its fixed 16-byte start.
pub(super) struct Frame {
    /// Fixed part and header fields, padded to 8: where the body starts.
    pub(super) header_len: usize,
    pub(super) body_len: usize,
    /// Header and body; may be larger than we accept.
    pub(super) total: u64,
}

pub(super) fn frame(fixed: &[u8]) -> Result<Frame, Cause> {
    let big_endian = match fixed.first() {
        Some(b'l') => false,
        Some(b'B') => true,
        _ => return Err(protocol("bad byte-order mark")),
    };
    if fixed.get(3) != Some(&1) {
        return Err(protocol("unsupported protocol version"));
    }
    let mut dec = Dec {
        data: fixed,
        pos: 4,
        big_endian,
    };
    let body_len = dec.u32()?;
    dec.u32()?; // serial
    let fields_len = dec.u32()?;
    // At most 16 + 4 GiB: the caller skips a header over the limit by
    // its length, unread.
    let header_len = (16 + u64::from(fields_len)).div_ceil(8) * 8;
    Ok(Frame {
        header_len: usize::try_from(header_len).map_err(|_| truncated())?,
        body_len: usize::try_from(body_len).map_err(|_| truncated())?,
        total: header_len + u64::from(body_len),
    })
}

/// A message's header, parsed and checked.
pub(super) struct Header {
    pub(super) kind: u8,
    pub(super) big_endian: bool,
    pub(super) reply_serial: Option<u32>,
    pub(super) error_name: Option<String>,
    /// The body's signature ("" when there is none).
    pub(super) signature: String,
}

/// Parses the header at the start of `raw`, which holds at least
/// `header_len` bytes.
pub(super) fn parse_header(raw: &[u8], frame: &Frame) -> Result<Header, Cause> {
    let head = raw.get(..frame.header_len).ok_or_else(truncated)?;
    let big_endian = head.first() == Some(&b'B');
    let mut dec = Dec {
        data: head,
        pos: 1,
        big_endian,
    };
    let kind = dec.byte()?;
    dec.pos = 8;
    if dec.u32()? == 0 {
        return Err(protocol("serial 0"));
    }
    let fields_len = usize::try_from(dec.u32()?).map_err(|_| truncated())?;
    let fields_end = 16usize.checked_add(fields_len).ok_or_else(truncated)?;

    let mut reply_serial = None;
    let mut error_name = None;
    let mut signature = String::new();
    let mut seen: u16 = 0;
    while dec.pos < fields_end {
        dec.align(8)?;
        let code = dec.byte()?;
        let sig = dec.signature()?;
        if code < 16 {
            let bit = 1u16 << code;
            if seen & bit != 0 {
                return Err(protocol("repeated header field"));
            }
            seen |= bit;
        }
        let expect = match code {
            0 => return Err(protocol("header field 0")),
            FIELD_PATH => "o",
            FIELD_INTERFACE | FIELD_MEMBER | FIELD_ERROR_NAME | FIELD_DESTINATION
            | FIELD_SENDER => "s",
            FIELD_REPLY_SERIAL | FIELD_UNIX_FDS => "u",
            FIELD_SIGNATURE => "g",
            _ => sig, // unknown: ignored, whatever its type
        };
        if sig != expect {
            return Err(protocol(format!("header field {code} has type '{sig}'")));
        }
        match code {
            FIELD_REPLY_SERIAL => reply_serial = Some(dec.u32()?),
            FIELD_ERROR_NAME => error_name = Some(dec.string()?.to_owned()),
            FIELD_SIGNATURE => signature = dec.signature()?.to_owned(),
            _ => {
                if dec.skip(sig.as_bytes(), 1)? != sig.len() {
                    return Err(protocol("header field is not one complete type"));
                }
            }
        }
    }
    if dec.pos != fields_end {
        return Err(protocol("header fields overrun their array"));
    }
    dec.align(8)?;
    if dec.pos != frame.header_len {
        return Err(protocol("bad header length"));
    }
    match kind {
        METHOD_RETURN if reply_serial.is_none() => {
            return Err(protocol("method return without reply serial"))
        }
        ERROR if reply_serial.is_none() || error_name.is_none() => {
            return Err(protocol("error without reply serial or name"))
        }
        _ => {} // unknown message types must be ignored
    }
    Ok(Header {
        kind,
        big_endian,
        reply_serial,
        error_name,
        signature,
    })
}

/// A whole message, header parsed and body checked against its signature.
pub(super) struct Message {
    pub(super) header: Header,
    pub(super) raw: Vec<u8>,
    pub(super) body_start: usize,
}

impl Message {
    pub(super) fn body_decoder(&self) -> Dec<'_> {
        Dec {
            data: &self.raw,
            pos: self.body_start,
            big_endian: self.header.big_endian,
        }
    }
}

/// Parses and checks one whole message, body included.
pub(super) fn parse_message(raw: Vec<u8>) -> Result<Message, Cause> {
    let frame = frame(raw.get(..16).ok_or_else(truncated)?)?;
    if frame.total > MAX_MESSAGE_LEN as u64 {
        return Err(protocol(format!(
            "message of {} bytes is over the {MAX_MESSAGE_LEN}-byte limit",
            frame.total
        )));
    }
    if raw.len() as u64 != frame.total {
        return Err(truncated());
    }
    let header = parse_header(&raw, &frame)?;
    let mut dec = Dec {
        data: &raw,
        pos: frame.header_len,
        big_endian: header.big_endian,
    };
    // Check the body against the signature, so that reading its leading
    // value later cannot fail.
    let mut rest = header.signature.as_bytes();
    while !rest.is_empty() {
        let n = dec.skip(rest, 0)?;
        rest = rest.get(n..).ok_or_else(|| protocol("bad signature"))?;
    }
    if dec.pos != raw.len() {
        return Err(protocol("body longer than its signature"));
    }
    Ok(Message {
        header,
        raw,
        body_start: frame.header_len,
    })
}
