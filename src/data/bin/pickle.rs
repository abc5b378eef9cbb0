//! A pickle reader for verification benchmarks' two lists: it interprets exactly the
//! opcodes Python 2's and Python 3's writers use for them (containers, byte and text
//! strings, booleans and small integers, the memo, and one global, `_codecs.encode`,
//! applied only to a text and `'latin1'`). Any other global or opcode is refused, nothing
//! is ever called, and no length is trusted: a string must fit in what is left of the file
//! before it is read.
//!
//! What a file can make is bounded by its size: containers nest at most [`MAX_DEPTH`]
//! levels, at most [`MAX_VALUES`] values are made, and the bytes of every string made
//! (those read, those `_codecs.encode` makes and every reference back to a memoised one)
//! add up to at most twice the file's size and a mebibyte, so a small file that refers to
//! one large string many times is refused before its copies are made.

use std::collections::HashMap;
use std::rc::Rc;

/// The deepest nesting of containers accepted (a benchmark's pickle nests 2 levels).
pub(super) const MAX_DEPTH: usize = 32;

/// The most values (pushed, memoised or marked) one pickle may make: 4 Mi, 128 MiB of
/// values; a benchmark of 6 000 pairs makes about 40 000.
pub(super) const MAX_VALUES: usize = 1 << 22;

/// The value `bytes` pickle, or why they are not a pickle this reader accepts.
pub(super) fn unpickle(bytes: &[u8]) -> Result<Value, String> {
    let max_string_bytes = bytes.len().saturating_mul(2).saturating_add(1 << 20);
    Unpickler {
        input: bytes,
        at: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        made: 0,
        string_bytes: 0,
        max_string_bytes,
    }
    .run()
}

/// The items of a list or tuple and how deep they nest (1: no container inside).
#[derive(Clone, Debug, Default)]
pub(super) struct Items {
    pub(super) values: Vec<Value>,
    depth: usize,
}

impl Items {
    fn new(values: Vec<Value>) -> Self {
        let depth = 1 + values.iter().map(Value::depth).max().unwrap_or(0);
        Self { values, depth }
    }
}

impl Drop for Items {
    /// Drops nested containers one after another rather than one inside the other, so
    /// that no nesting, however deep, can overflow the stack.
    fn drop(&mut self) {
        let mut pending = std::mem::take(&mut self.values);
        while let Some(mut value) = pending.pop() {
            if let Value::List(items) | Value::Tuple(items) = &mut value {
                pending.append(&mut items.values);
            }
        }
    }
}

/// The values the accepted opcodes build.
#[derive(Clone, Debug)]
pub(super) enum Value {
    /// Shared: a writer that meets one object twice refers back to it through the memo.
    Bytes(Rc<Vec<u8>>),
    Text(Rc<str>),
    Bool(bool),
    Int(i64),
    None,
    List(Items),
    Tuple(Items),
    /// `_codecs.encode`, the one global accepted.
    Encode,
    /// A memo entry for a container, which these files' writers never refer back to.
    Unshared,
}

impl Value {
    /// What the value is, in words, for error messages.
    pub(super) fn kind(&self) -> &'static str {
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

    /// Levels of containers: 0 for a scalar or string.
    fn depth(&self) -> usize {
        match self {
            Value::List(items) | Value::Tuple(items) => items.depth,
            _ => 0,
        }
    }

    /// Bytes of a byte or text string (0 for anything else).
    fn string_len(&self) -> usize {
        match self {
            Value::Bytes(b) => b.len(),
            Value::Text(t) => t.len(),
            _ => 0,
        }
    }
}

struct Unpickler<'a> {
    input: &'a [u8],
    at: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    /// Values pushed, memoised or marked so far ([`MAX_VALUES`]).
    made: usize,
    /// Bytes of the strings made so far, references back included.
    string_bytes: usize,
    max_string_bytes: usize,
}

impl<'a> Unpickler<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
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

    fn u8(&mut self) -> Result<u64, String> {
        Ok(self.take(1)?[0] as u64)
    }

    fn u32(&mut self) -> Result<u64, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as u64)
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn line(&mut self) -> Result<&'a str, String> {
        let rest = &self.input[self.at..];
        let end =
            rest.iter().position(|&b| b == b'\n').ok_or_else(|| format!("offset {}: unterminated line", self.at))?;
        self.at += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| format!("offset {}: a line that is not text", self.at))
    }

    /// Pushes `value`, counting it against [`MAX_VALUES`] and its bytes against the
    /// string budget, and refusing a nesting deeper than [`MAX_DEPTH`].
    fn push(&mut self, value: Value) -> Result<(), String> {
        self.count()?;
        self.string_bytes = self.string_bytes.saturating_add(value.string_len());
        if self.string_bytes > self.max_string_bytes {
            return Err(format!(
                "offset {}: its strings add up to more than twice the file's size; a benchmark never \
                 refers to one image twice (a pickle that multiplies its data through the memo)",
                self.at
            ));
        }
        if value.depth() > MAX_DEPTH {
            return Err(format!(
                "offset {}: containers nest deeper than {MAX_DEPTH} levels (a benchmark nests 2)",
                self.at
            ));
        }
        self.stack.push(value);
        Ok(())
    }

    /// Counts one more value made against [`MAX_VALUES`].
    fn count(&mut self) -> Result<(), String> {
        self.made += 1;
        if self.made > MAX_VALUES {
            return Err(format!(
                "offset {}: more than {MAX_VALUES} values (a benchmark of 6 000 pairs makes about 40 000)",
                self.at
            ));
        }
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, String> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(format!("offset {}: the stack is empty above its mark", self.at));
        }
        self.stack.pop().ok_or_else(|| format!("offset {}: the stack is empty", self.at))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let mark = self.marks.pop().ok_or_else(|| format!("offset {}: no mark to pop to", self.at))?;
        Ok(self.stack.split_off(mark))
    }

    fn text(&mut self, n: u64) -> Result<Value, String> {
        let at = self.at;
        let bytes = self.take(n)?;
        let text = std::str::from_utf8(bytes).map_err(|_| format!("offset {at}: a text string that is not UTF-8"))?;
        Ok(Value::Text(Rc::from(text)))
    }

    fn memo_put(&mut self, key: u64) -> Result<(), String> {
        let top = self.stack.last().ok_or_else(|| format!("offset {}: nothing to memoise", self.at))?;
        let entry = match top {
            Value::List(_) | Value::Tuple(_) => Value::Unshared,
            other => other.clone(),
        };
        self.count()?;
        self.memo.insert(key, entry);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), String> {
        match self.memo.get(&key) {
            Some(Value::Unshared) | None => {
                Err(format!("offset {}: a reference to memo entry {key}, which these files never hold", self.at))
            }
            Some(v) => {
                let v = v.clone();
                self.push(v)
            }
        }
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), String> {
        let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(format!(
                "offset {}: containers nest deeper than {MAX_DEPTH} levels (a benchmark nests 2)",
                self.at
            ));
        }
        match self.stack.last_mut() {
            Some(Value::List(list)) => {
                list.values.extend(items);
                list.depth = list.depth.max(depth);
                Ok(())
            }
            other => {
                Err(format!("offset {}: appending to {}, not a list", self.at, other.map_or("nothing", |v| v.kind())))
            }
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), String> {
        if module == "_codecs" && name == "encode" {
            self.push(Value::Encode)
        } else {
            Err(format!(
                "offset {}: the pickle names `{module}.{name}`; a verification .bin may name only `_codecs.encode`, and nothing else is loaded",
                self.at
            ))
        }
    }

    fn reduce(&mut self) -> Result<(), String> {
        let args = self.pop()?;
        let callable = self.pop()?;
        match (callable, args) {
            (Value::Encode, Value::Tuple(args)) => match args.values.as_slice() {
                [Value::Text(text), Value::Text(codec)] if matches!(&**codec, "latin1" | "latin-1") => {
                    let bytes = text.chars().map(|c| u8::try_from(c as u32)).collect::<Result<Vec<u8>, _>>();
                    let bytes = bytes.map_err(|_| format!("offset {}: a latin-1 text above U+00FF", self.at))?;
                    self.push(Value::Bytes(Rc::new(bytes)))
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

    fn run(mut self) -> Result<Value, String> {
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
    fn container(&mut self, op: u8) -> Result<(), String> {
        match op {
            b'(' => {
                self.count()?;
                self.marks.push(self.stack.len());
            }
            b']' => self.push(Value::List(Items::default()))?,
            b')' => self.push(Value::Tuple(Items::default()))?,
            b'l' => {
                let items = self.pop_mark()?;
                self.push(Value::List(Items::new(items)))?;
            }
            b't' => {
                let items = self.pop_mark()?;
                self.push(Value::Tuple(Items::new(items)))?;
            }
            0x85..=0x87 => {
                let mut items = (0..op - 0x84).map(|_| self.pop()).collect::<Result<Vec<_>, _>>()?;
                items.reverse();
                self.push(Value::Tuple(Items::new(items)))?;
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
    fn string(&mut self, op: u8) -> Result<(), String> {
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
        self.push(value)
    }

    /// NEWTRUE, NEWFALSE, NONE, BININT1, BININT2, BININT, INT (Python 2's `I01` booleans).
    fn scalar(&mut self, op: u8, at: usize) -> Result<(), String> {
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
        self.push(value)
    }

    /// BINPUT, LONG_BINPUT, PUT, MEMOIZE; BINGET, LONG_BINGET, GET.
    fn memo(&mut self, op: u8, at: usize) -> Result<(), String> {
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
