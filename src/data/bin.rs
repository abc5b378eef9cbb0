//! Verification benchmarks as insightface ships them (`lfw.bin`, `cfp_fp.bin`,
//! `agedb_30.bin`, `calfw.bin`, `cplfw.bin`): a Python pickle of `(images, same)`, a list
//! of 2n encoded images (JPEG or PNG; pair i is images 2i and 2i + 1) and a list of n
//! booleans, true where the pair shows one person.
//!
//! The published files were written by Python 2 under pickle protocol 2 (images as `str`,
//! opcodes `SHORT_BINSTRING` / `BINSTRING`); files re-saved by Python 3 under protocol 2
//! carry each image as a call `_codecs.encode(text, 'latin1')`, and under protocol 3 or
//! later as `bytes`. This reader interprets exactly the opcodes those writers use for these
//! two lists: containers, byte and text strings, booleans and small integers, the memo, and
//! one global, `_codecs.encode`, applied only to a text and `'latin1'`. Any other global or
//! opcode is refused, nothing is ever called, and no length is trusted: a string must fit
//! in what is left of the file before it is read.

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use crate::{Error, Result};

/// A verification benchmark: 2n encoded images and n same/different flags.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VerificationSet {
    /// The encoded images; pair i is images 2i and 2i + 1.
    pub images: Vec<Vec<u8>>,
    /// Whether pair i shows one person.
    pub same: Vec<bool>,
}

impl VerificationSet {
    /// Reads a `.bin` file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        Self::parse(&bytes).map_err(|why| Error::Data(format!("{}: {why}", path.display())))
    }

    /// The benchmarks `paths` name: `.bin` files, and every `.bin` in a folder (in name
    /// order), each once and named by its file's stem.
    pub fn read_all(paths: &[std::path::PathBuf]) -> Result<Vec<(String, Self)>> {
        let mut files = Vec::new();
        for path in paths {
            if path.is_dir() {
                let io = |source| Error::Io { path: path.display().to_string(), source };
                let mut bins: Vec<std::path::PathBuf> = std::fs::read_dir(path)
                    .map_err(io)?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "bin"))
                    .collect();
                if bins.is_empty() {
                    return Err(Error::Data(format!("{} holds no .bin verification benchmarks", path.display())));
                }
                bins.sort();
                files.extend(bins);
            } else {
                files.push(path.clone());
            }
        }
        let mut seen = std::collections::HashSet::new();
        files.retain(|f| seen.insert(f.clone()));
        files
            .into_iter()
            .map(|file| {
                let name = file.file_stem().map_or("benchmark".into(), |s| s.to_string_lossy().into_owned());
                Ok((name, VerificationSet::read(&file)?))
            })
            .collect()
    }

    /// Reads a `.bin` file's bytes.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        let value =
            Unpickler { input: bytes, at: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new() }.run()?;
        let outer = match value {
            Value::Tuple(v) | Value::List(v) if v.len() == 2 => v,
            other => return Err(format!("expected a pair (images, same), found {}", other.kind())),
        };
        let [images, same]: [Value; 2] = outer.try_into().map_err(|_| "expected a pair".to_string())?;
        let images = match images {
            Value::List(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Bytes(b) => Ok(Rc::unwrap_or_clone(b)),
                    other => Err(format!("image {i} is {}, not bytes", other.kind())),
                })
                .collect::<std::result::Result<Vec<_>, _>>()?,
            other => return Err(format!("expected a list of images, found {}", other.kind())),
        };
        let same = match same {
            Value::List(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Bool(b) => Ok(b),
                    Value::Int(n @ (0 | 1)) => Ok(n == 1),
                    other => Err(format!("flag {i} is {}, not a boolean", other.kind())),
                })
                .collect::<std::result::Result<Vec<_>, _>>()?,
            other => return Err(format!("expected a list of same/different flags, found {}", other.kind())),
        };
        if images.len() != 2 * same.len() || same.is_empty() {
            return Err(format!(
                "{} images for {} pairs: a benchmark has two images per pair",
                images.len(),
                same.len()
            ));
        }
        Ok(Self { images, same })
    }

    /// The pickle Python 2 writes with `pickle.dump((images, same), f, protocol=2)`, the
    /// form of the published files.
    pub fn to_pickle(&self) -> Vec<u8> {
        let mut out = vec![0x80, 2, b']', b'('];
        for image in &self.images {
            match u8::try_from(image.len()) {
                Ok(n) => out.extend([b'U', n]),
                Err(_) => {
                    out.push(b'T');
                    out.extend((image.len() as u32).to_le_bytes());
                }
            }
            out.extend(image);
        }
        out.extend([b'e', b']', b'(']);
        out.extend(self.same.iter().map(|&s| if s { 0x88 } else { 0x89 }));
        out.extend([b'e', 0x86, b'.']);
        out
    }

    /// Writes [`VerificationSet::to_pickle`] to `path` (atomically).
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::checkpoint::write_atomic(path, &self.to_pickle())
    }
}

/// The values the accepted opcodes build.
#[derive(Clone, Debug)]
enum Value {
    /// Shared: a writer that meets one object twice refers back to it through the memo.
    Bytes(Rc<Vec<u8>>),
    Text(Rc<str>),
    Bool(bool),
    Int(i64),
    None,
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// `_codecs.encode`, the one global accepted.
    Encode,
    /// A memo entry for a container, which these files' writers never refer back to.
    Unshared,
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Bytes(_) => "bytes",
            Value::Text(_) => "a text string",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::None => "None",
            Value::List(_) => "a list",
            Value::Tuple(_) => "a tuple",
            Value::Encode => "the function _codecs.encode",
            Value::Unshared => "a shared reference",
        }
    }
}

struct Unpickler<'a> {
    input: &'a [u8],
    at: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
}

impl<'a> Unpickler<'a> {
    fn take(&mut self, n: u64) -> std::result::Result<&'a [u8], String> {
        let left = (self.input.len() - self.at) as u64;
        if n > left {
            return Err(format!(
                "offset {}: a length of {n} bytes runs past the end of the file ({left} left)",
                self.at
            ));
        }
        let out = &self.input[self.at..self.at + n as usize];
        self.at += n as usize;
        Ok(out)
    }

    fn u8(&mut self) -> std::result::Result<u64, String> {
        Ok(self.take(1)?[0] as u64)
    }

    fn u32(&mut self) -> std::result::Result<u64, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as u64)
    }

    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn line(&mut self) -> std::result::Result<&'a str, String> {
        let rest = &self.input[self.at..];
        let end =
            rest.iter().position(|&b| b == b'\n').ok_or_else(|| format!("offset {}: unterminated line", self.at))?;
        self.at += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| format!("offset {}: a line that is not text", self.at))
    }

    fn pop(&mut self) -> std::result::Result<Value, String> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(format!("offset {}: the stack is empty above its mark", self.at));
        }
        self.stack.pop().ok_or_else(|| format!("offset {}: the stack is empty", self.at))
    }

    fn pop_mark(&mut self) -> std::result::Result<Vec<Value>, String> {
        let mark = self.marks.pop().ok_or_else(|| format!("offset {}: no mark to pop to", self.at))?;
        Ok(self.stack.split_off(mark))
    }

    fn text(&mut self, n: u64) -> std::result::Result<Value, String> {
        let at = self.at;
        let bytes = self.take(n)?;
        let text = std::str::from_utf8(bytes).map_err(|_| format!("offset {at}: a text string that is not UTF-8"))?;
        Ok(Value::Text(Rc::from(text)))
    }

    fn memo_put(&mut self, key: u64) -> std::result::Result<(), String> {
        let top = self.stack.last().ok_or_else(|| format!("offset {}: nothing to memoise", self.at))?;
        let entry = match top {
            Value::List(_) | Value::Tuple(_) => Value::Unshared,
            other => other.clone(),
        };
        self.memo.insert(key, entry);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> std::result::Result<(), String> {
        match self.memo.get(&key) {
            Some(Value::Unshared) | None => {
                Err(format!("offset {}: a reference to memo entry {key}, which these files never hold", self.at))
            }
            Some(v) => {
                self.stack.push(v.clone());
                Ok(())
            }
        }
    }

    fn append(&mut self, items: Vec<Value>) -> std::result::Result<(), String> {
        match self.stack.last_mut() {
            Some(Value::List(list)) => {
                list.extend(items);
                Ok(())
            }
            other => {
                Err(format!("offset {}: appending to {}, not a list", self.at, other.map_or("nothing", |v| v.kind())))
            }
        }
    }

    fn global(&mut self, module: &str, name: &str) -> std::result::Result<(), String> {
        if module == "_codecs" && name == "encode" {
            self.stack.push(Value::Encode);
            Ok(())
        } else {
            Err(format!(
                "offset {}: the pickle names `{module}.{name}`; a verification .bin may name only `_codecs.encode`, and nothing else is loaded",
                self.at
            ))
        }
    }

    fn reduce(&mut self) -> std::result::Result<(), String> {
        let args = self.pop()?;
        let callable = self.pop()?;
        match (callable, args) {
            (Value::Encode, Value::Tuple(args)) => match args.as_slice() {
                [Value::Text(text), Value::Text(codec)] if matches!(&**codec, "latin1" | "latin-1") => {
                    let bytes =
                        text.chars().map(|c| u8::try_from(c as u32)).collect::<std::result::Result<Vec<u8>, _>>();
                    let bytes = bytes.map_err(|_| format!("offset {}: a latin-1 text above U+00FF", self.at))?;
                    self.stack.push(Value::Bytes(Rc::new(bytes)));
                    Ok(())
                }
                _ => Err(format!("offset {}: _codecs.encode is accepted on (text, 'latin1') only", self.at)),
            },
            (callable, _) => Err(format!(
                "offset {}: the pickle calls {}; only _codecs.encode is accepted",
                self.at,
                callable.kind()
            )),
        }
    }

    fn run(mut self) -> std::result::Result<Value, String> {
        loop {
            let at = self.at;
            let op =
                *self.input.get(at).ok_or_else(|| format!("offset {at}: the file ends before the pickle's STOP"))?;
            self.at += 1;
            match op {
                b'.' => {
                    let value = self.pop()?;
                    if !self.stack.is_empty() || !self.marks.is_empty() {
                        return Err(format!("offset {at}: values left on the stack at STOP"));
                    }
                    return Ok(value);
                }
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(format!("offset {at}: pickle protocol {proto} is newer than 5"));
                    }
                }
                0x95 => {
                    self.u64()?; // FRAME: a length hint
                }
                b'(' | b']' | b')' | b'l' | b't' | 0x85..=0x87 | b'a' | b'e' => self.container(op)?,
                b'U' | b'C' | b'T' | b'B' | 0x8e | 0x8c | b'X' | 0x8d => self.string(op)?,
                0x88 | 0x89 | b'N' | b'K' | b'M' | b'J' | b'I' => self.scalar(op, at)?,
                b'q' | b'r' | b'p' | 0x94 | b'h' | b'j' | b'g' => self.memo(op, at)?,
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let (name, module) = (self.pop()?, self.pop()?);
                    match (module, name) {
                        (Value::Text(m), Value::Text(n)) => self.global(&m, &n)?,
                        _ => return Err(format!("offset {at}: STACK_GLOBAL on values that are not names")),
                    }
                }
                b'R' => self.reduce()?,
                other => {
                    return Err(format!(
                        "offset {at}: pickle opcode {other:#04x} is not one a verification .bin uses; refused"
                    ))
                }
            }
        }
    }

    /// MARK, EMPTY_LIST, EMPTY_TUPLE, LIST, TUPLE, TUPLE1-3, APPEND, APPENDS.
    fn container(&mut self, op: u8) -> std::result::Result<(), String> {
        match op {
            b'(' => self.marks.push(self.stack.len()),
            b']' => self.stack.push(Value::List(Vec::new())),
            b')' => self.stack.push(Value::Tuple(Vec::new())),
            b'l' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::List(items));
            }
            b't' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let mut items = (0..op - 0x84).map(|_| self.pop()).collect::<std::result::Result<Vec<_>, _>>()?;
                items.reverse();
                self.stack.push(Value::Tuple(items));
            }
            b'a' => {
                let item = self.pop()?;
                self.append(vec![item])?;
            }
            _ => {
                let items = self.pop_mark()?;
                self.append(items)?;
            }
        }
        Ok(())
    }

    /// Byte strings (Python 2 `str`, Python 3 `bytes`) and text strings, by length width.
    fn string(&mut self, op: u8) -> std::result::Result<(), String> {
        let n = match op {
            b'U' | b'C' | 0x8c => self.u8()?,
            b'T' | b'B' | b'X' => self.u32()?,
            _ => self.u64()?,
        };
        let value = if matches!(op, 0x8c | b'X' | 0x8d) {
            self.text(n)?
        } else {
            Value::Bytes(Rc::new(self.take(n)?.to_vec()))
        };
        self.stack.push(value);
        Ok(())
    }

    /// NEWTRUE, NEWFALSE, NONE, BININT1, BININT2, BININT, INT (Python 2's `I01` booleans).
    fn scalar(&mut self, op: u8, at: usize) -> std::result::Result<(), String> {
        let value = match op {
            0x88 => Value::Bool(true),
            0x89 => Value::Bool(false),
            b'N' => Value::None,
            b'K' => Value::Int(self.u8()? as i64),
            b'M' => Value::Int(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")) as i64),
            b'J' => Value::Int(self.u32()? as u32 as i32 as i64),
            _ => match self.line()? {
                "00" => Value::Bool(false),
                "01" => Value::Bool(true),
                text => Value::Int(text.parse().map_err(|_| format!("offset {at}: INT `{text}`"))?),
            },
        };
        self.stack.push(value);
        Ok(())
    }

    /// BINPUT, LONG_BINPUT, PUT, MEMOIZE; BINGET, LONG_BINGET, GET.
    fn memo(&mut self, op: u8, at: usize) -> std::result::Result<(), String> {
        let key = match op {
            b'q' | b'h' => self.u8()?,
            b'r' | b'j' => self.u32()?,
            0x94 => self.memo.len() as u64,
            _ => self.line()?.parse().map_err(|_| format!("offset {at}: PUT or GET without a number"))?,
        };
        if matches!(op, b'h' | b'j' | b'g') {
            self.memo_get(key)
        } else {
            self.memo_put(key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> VerificationSet {
        VerificationSet {
            images: vec![vec![1, 2, 3], vec![0; 300], b"abc".to_vec(), vec![255, 0]],
            same: vec![true, false],
        }
    }

    #[test]
    fn python_2_protocol_2_round_trips() {
        let s = set();
        assert_eq!(VerificationSet::parse(&s.to_pickle()).unwrap(), s);
    }

    #[test]
    fn python_3_forms_are_read() {
        // pickle.dumps(([b'\x01\xff', b'ab'], [True]), protocol=2) from Python 3.
        let p2 = b"\x80\x02]q\x00(c_codecs\nencode\nq\x01X\x03\x00\x00\x00\x01\xc3\xbfq\x02X\x06\x00\x00\x00latin1q\x03\x86q\x04Rq\x05h\x01X\x02\x00\x00\x00abq\x06h\x03\x86q\x07Rq\x08e]q\t\x88a\x86q\n.";
        let s = VerificationSet::parse(p2).unwrap();
        assert_eq!(s.images, vec![vec![1, 255], b"ab".to_vec()]);
        assert_eq!(s.same, vec![true]);
        // pickle.dumps(([b'\x01\xff', b'ab'], [True]), protocol=4) from Python 3.
        let p4 = b"\x80\x04\x95\x15\x00\x00\x00\x00\x00\x00\x00]\x94(C\x02\x01\xff\x94C\x02ab\x94e]\x94\x88a\x86\x94.";
        assert_eq!(VerificationSet::parse(p4).unwrap(), s);
    }

    #[test]
    fn other_globals_and_calls_are_refused() {
        let os_system = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.";
        let err = VerificationSet::parse(os_system).unwrap_err();
        assert!(err.contains("os.system"), "{err}");
        let builtins_eval = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.";
        assert!(VerificationSet::parse(builtins_eval).unwrap_err().contains("builtins.eval"));
        let lying_length = b"\x80\x02]q\x00(T\xff\xff\xff\x7f";
        assert!(VerificationSet::parse(lying_length).unwrap_err().contains("past the end"));
    }
}
