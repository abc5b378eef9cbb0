//! The byte format of the messages members exchange: little-endian scalars, and the
//! input-check errors with their fields, so that every member can return the same error.

use crate::{Error, Result};

/// The input names an error may carry across the wire (`&'static str` fields).
const NAMES: [&str; 5] = ["features", "labels", "images", "centers", "values"];

fn static_name(name: &str) -> &'static str {
    NAMES.iter().find(|n| **n == name).copied().unwrap_or("input")
}

/// The check errors travel with their fields; any other error as its message.
pub(crate) fn encode_error(e: &Error, w: &mut Writer) {
    match e {
        Error::Shape { what, expected, actual } => {
            w.u8(1);
            w.text(what);
            w.u64(*expected as u64);
            w.u64(*actual as u64);
        }
        Error::LabelOutOfRange { index, label, num_classes } => {
            w.u8(2);
            w.u64(*index as u64);
            w.u32(*label);
            w.u64(*num_classes as u64);
        }
        Error::NonFinite { what, index, value } => {
            w.u8(3);
            w.text(what);
            w.u64(*index as u64);
            w.f32(*value);
        }
        Error::Config(message) => {
            w.u8(4);
            w.text(message);
        }
        Error::Internal(message) => {
            w.u8(6);
            w.text(message);
        }
        other => {
            w.u8(5);
            w.text(&other.to_string());
        }
    }
}

pub(crate) fn decode_error(r: &mut Reader<'_>) -> Result<Error> {
    Ok(match r.u8()? {
        1 => Error::Shape { what: static_name(&r.text()?), expected: r.u64()? as usize, actual: r.u64()? as usize },
        2 => Error::LabelOutOfRange { index: r.u64()? as usize, label: r.u32()?, num_classes: r.u64()? as usize },
        3 => Error::NonFinite { what: static_name(&r.text()?), index: r.u64()? as usize, value: r.f32()? },
        4 => Error::Config(r.text()?),
        6 => Error::Internal(r.text()?),
        _ => Error::Gpu(r.text()?),
    })
}

/// The same error again (errors hold no handles; the wire format is the copy).
pub(crate) fn clone_error(e: &Error) -> Error {
    let mut w = Writer::default();
    encode_error(e, &mut w);
    decode_error(&mut Reader::new(&w.0, 0)).unwrap_or_else(|_| Error::Gpu(e.to_string()))
}

/// Little-endian message builder.
#[derive(Default)]
pub(crate) struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend(v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend(v.to_le_bytes());
    }
    pub fn f32(&mut self, v: f32) {
        self.0.extend(v.to_le_bytes());
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }
    pub fn text(&mut self, v: &str) {
        self.u64(v.len() as u64);
        self.bytes(v.as_bytes());
    }
    /// The verdict of this member's own checks: 0, or 1 and the error.
    pub fn verdict(&mut self, verdict: Result<(), &Error>) {
        match verdict {
            Ok(()) => self.u8(0),
            Err(e) => {
                self.u8(1);
                encode_error(e, self);
            }
        }
    }
}

/// Reads a member's message; running past its end is [`Error::Collective`].
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    rank: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8], rank: usize) -> Self {
        Self { data, rank }
    }
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.data.len() {
            return Err(Error::Collective(format!("the message from rank {} is cut short", self.rank)));
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes(4)?.try_into().unwrap_or_default()))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes(8)?.try_into().unwrap_or_default()))
    }
    pub fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_bits(self.u32()?))
    }
    pub fn text(&mut self) -> Result<String> {
        let n = self.u64()? as usize;
        Ok(String::from_utf8_lossy(self.bytes(n)?).into_owned())
    }
    /// A member's verdict ([`Writer::verdict`]): `Ok`, or the [`Error::Rank`] naming it
    /// that every member returns.
    pub fn verdict(&mut self) -> Result<()> {
        if self.u8()? == 0 {
            return Ok(());
        }
        Err(Error::Rank { rank: self.rank, source: Box::new(decode_error(self)?) })
    }
}
