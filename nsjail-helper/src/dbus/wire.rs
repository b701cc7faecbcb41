//! The connection: SASL, then messages until the awaited reply.
#![forbid(unsafe_code)]

#[allow(unused_imports)]
use super::*;

pub(super) enum Reply {
    Return(Message),
    Error(Cause),
}

pub(super) struct Wire<'t, T: Transport> {
    pub(super) io: &'t mut T,
    pub(super) deadline: Instant,
    /// Received, not yet consumed.
    pub(super) buf: Vec<u8>,
}

impl<T: Transport> Wire<'_, T> {
    pub(super) fn remaining(&self) -> Result<Duration, Cause> {
        match self.deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(left),
            _ => Err(Cause::TimedOut),
        }
    }

    pub(super) fn send(&mut self, mut bytes: &[u8]) -> Result<(), Cause> {
        while !bytes.is_empty() {
            let left = self.remaining()?;
            self.io.set_write_limit(left).map_err(io_cause)?;
            match self.io.write(bytes) {
                Ok(0) => return Err(Cause::Closed),
                Ok(n) => bytes = bytes.get(n..).ok_or_else(|| protocol("write overran"))?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_cause(e)),
            }
        }
        let left = self.remaining()?;
        self.io.set_write_limit(left).map_err(io_cause)?;
        self.io.flush().map_err(io_cause)
    }

    /// One read of at most `chunk.len()` bytes, under the deadline.
    pub(super) fn read_some(&mut self, chunk: &mut [u8]) -> Result<usize, Cause> {
        loop {
            let left = self.remaining()?;
            self.io.set_read_limit(left).map_err(io_cause)?;
            match self.io.read(chunk) {
                Ok(0) => return Err(Cause::Closed),
                Ok(n) if n <= chunk.len() => return Ok(n),
                Ok(_) => return Err(protocol("read overran")),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_cause(e)),
            }
        }
    }

    /// Reads until at least `want` bytes are buffered.
    pub(super) fn fill(&mut self, want: usize) -> Result<(), Cause> {
        let mut chunk = [0u8; 16 * 1024];
        while self.buf.len() < want {
            let n = self.read_some(&mut chunk)?;
            self.buf
                .extend_from_slice(chunk.get(..n).ok_or_else(truncated)?);
        }
        Ok(())
    }

    /// Removes and returns the first `n` buffered bytes.
    pub(super) fn take(&mut self, n: usize) -> Result<Vec<u8>, Cause> {
        if n > self.buf.len() {
            return Err(truncated());
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    /// Drops the next `n` bytes of the stream, keeping none of them.
    pub(super) fn discard(&mut self, n: u64) -> Result<(), Cause> {
        let buffered = usize::try_from(n).unwrap_or(usize::MAX).min(self.buf.len());
        self.buf.drain(..buffered);
        let mut left = n.saturating_sub(buffered as u64);
        let mut chunk = [0u8; 16 * 1024];
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(chunk.len());
            let got = self.read_some(chunk.get_mut(..want).ok_or_else(truncated)?)?;
            left = left.saturating_sub(got as u64);
        }
        Ok(())
    }

    /// One SASL line, without its CRLF.
    pub(super) fn read_line(&mut self) -> Result<String, Cause> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                if at > MAX_SASL_LINE {
                    return Err(protocol("SASL line too long"));
                }
                let mut line = self.take(at + 2)?;
                line.truncate(at);
                if !line.iter().all(|b| (0x20..0x7f).contains(b)) {
                    return Err(protocol("SASL line is not printable ASCII"));
                }
                return String::from_utf8(line).map_err(|_| protocol("SASL line is not ASCII"));
            }
            if self.buf.len() >= MAX_SASL_LINE {
                return Err(protocol("SASL line too long"));
            }
            let want = self.buf.len() + 1;
            self.fill(want)?;
        }
    }

    /// Reads messages until the reply to `serial`. Anything else (signals,
    /// replies to other serials, calls) is dropped unparsed past its
    /// header, whatever its size: any local user may send us unicast
    /// signals on the system bus, and that must not make us fail.
    pub(super) fn await_reply(&mut self, serial: u32) -> Result<Reply, Cause> {
        loop {
            self.fill(16)?;
            let frame = frame(self.buf.get(..16).ok_or_else(truncated)?)?;
            if frame.header_len > MAX_MESSAGE_LEN {
                // Not parsed, so not known to be ours; and a reply this
                // big would be refused anyway. Skipped, it can only delay.
                self.discard(frame.total)?;
                continue;
            }
            self.fill(frame.header_len)?;
            let header = parse_header(&self.buf, &frame)?;
            let ours =
                matches!(header.kind, METHOD_RETURN | ERROR) && header.reply_serial == Some(serial);
            if !ours {
                self.discard(frame.total)?;
                continue;
            }
            if frame.total > MAX_MESSAGE_LEN as u64 {
                return Err(protocol(format!(
                    "reply of {} bytes is over the {MAX_MESSAGE_LEN}-byte limit",
                    frame.total
                )));
            }
            let total = frame
                .header_len
                .checked_add(frame.body_len)
                .ok_or_else(truncated)?;
            self.fill(total)?;
            let msg = parse_message(self.take(total)?)?;
            if msg.header.kind == METHOD_RETURN {
                return Ok(Reply::Return(msg));
            }
            let message = if msg.header.signature.starts_with('s') {
                Some(msg.body_decoder().string()?.to_owned())
            } else {
                None
            };
            let name = msg.header.error_name.unwrap_or_default();
            return Ok(Reply::Error(Cause::Remote { name, message }));
        }
    }
}

pub(super) fn authenticate<T: Transport>(wire: &mut Wire<'_, T>, euid: u32) -> Result<(), Cause> {
    let hex: String = euid
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    wire.send(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())?;
    let line = wire.read_line()?;
    let Some(guid) = line.strip_prefix("OK ") else {
        if line == "REJECTED" || line.starts_with("REJECTED ") || line.starts_with("ERROR") {
            return Err(Cause::Rejected(line));
        }
        return Err(protocol(format!("unexpected SASL reply '{line}'")));
    };
    if guid.len() != 32 || !guid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(protocol("SASL OK without a valid server GUID"));
    }
    wire.send(b"BEGIN\r\n")
}
