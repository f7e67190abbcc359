//! The `.npy` header: after the magic string, the version and the header's
//! length, a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`, parsed when
//! reading (with a small parser for the literals it may hold) and formatted,
//! byte for byte as NumPy does, when writing.

use std::io::{self, Read};

use super::array::ArrayData;
use super::error::NpyError;

/// The magic string every `.npy` file starts with.
pub(super) const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Data starts at a multiple of this many bytes, as NumPy writes it.
const ALIGN: usize = 64;

/// Spare header room NumPy leaves so the growth axis can be rewritten in place
/// (`numpy.lib.format.GROWTH_AXIS_MAX_DIGITS`); kept so our headers are
/// byte-identical to NumPy's.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;

/// Containers nested deeper than this in a header are refused (keeps the
/// recursive literal parser's stack bounded on hostile input).
const MAX_HEADER_DEPTH: usize = 32;

/// Longer headers are refused before they are read, so that a hostile length
/// field cannot make the reader take gigabytes for a header. NumPy itself
/// refuses headers over 10 000 bytes unless told otherwise.
const MAX_HEADER_LEN: usize = 1 << 20;

/// NumPy's limit on the number of axes (`NPY_MAXDIMS` since NumPy 2.0); more
/// is a hostile header, whose shape an archive of many members would keep.
const MAX_AXES: usize = 64;

/// `(3, 4)`, `(3,)`, `()`, as Python writes tuples.
pub(super) fn shape_text(shape: &[usize]) -> String {
    match shape {
        [] => "()".into(),
        [n] => format!("({n},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(|n| n.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    }
}

// --- reading ------------------------------------------------------------------

/// Reads from a stream the magic string, the version, the header's length and
/// the header, and not one byte of data. The bytes returned may stop short
/// where the stream ended or the start is not a NumPy header; [`read_header`]
/// then says why.
pub(super) fn read_header_bytes<R: Read>(reader: &mut R) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(128);
    let mut take = |n: usize, head: &mut Vec<u8>| -> io::Result<bool> {
        let want = head.len() + n;
        reader.by_ref().take(n as u64).read_to_end(head)?;
        Ok(head.len() == want)
    };
    if !take(8, &mut head)? || head[..MAGIC.len()] != *MAGIC {
        return Ok(head);
    }
    // Version 1.0 has a two-byte length; an unknown version is refused later.
    let len_size = if head[6] == 1 { 2 } else { 4 };
    if !take(len_size, &mut head)? {
        return Ok(head);
    }
    let header_len = header_len(&head[8..]);
    if header_len <= MAX_HEADER_LEN {
        take(header_len, &mut head)?;
    }
    Ok(head)
}

/// The little-endian header length.
fn header_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
}

/// Reads the start of `.npy` bytes: the magic string, the format version, the
/// header's length and the header itself. Returns the header and the offset at
/// which the data starts. `what` names the array in errors.
pub(super) fn read_header(bytes: &[u8], what: &str) -> Result<(Header, usize), NpyError> {
    let what = what.to_string();

    // Magic string and version.
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        if !bytes.is_empty() && bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) {
            return Err(NpyError::Truncated {
                what,
                part: "of header".into(),
                expected: 10,
                found: bytes.len() as u64,
            });
        }
        return Err(NpyError::NotNpy { what });
    }
    let header_too_short = |expected: usize| NpyError::Truncated {
        what: what.clone(),
        part: "of header".into(),
        expected: expected as u64,
        found: bytes.len() as u64,
    };
    let (major, minor) = match (bytes.get(6), bytes.get(7)) {
        (Some(&major), Some(&minor)) => (major, minor),
        _ => return Err(header_too_short(10)),
    };
    let (len_size, utf8) = match (major, minor) {
        (1, 0) => (2, false),
        (2, 0) => (4, false),
        (3, 0) => (4, true),
        _ => {
            return Err(NpyError::BadHeader {
                what,
                reason: format!(
                    "its format version is {major}.{minor}; only 1.0, 2.0 and 3.0 exist"
                ),
            });
        }
    };
    let prefix = 8 + len_size;
    let Some(len_bytes) = bytes.get(8..prefix) else {
        return Err(header_too_short(prefix));
    };
    let header_len = header_len(len_bytes);
    if header_len > MAX_HEADER_LEN {
        return Err(NpyError::BadHeader {
            what,
            reason: format!(
                "its header length is {header_len} bytes; cellc reads headers of up to {MAX_HEADER_LEN} bytes"
            ),
        });
    }
    let data_start = prefix + header_len;
    let Some(header_bytes) = bytes.get(prefix..data_start) else {
        return Err(header_too_short(data_start));
    };
    let header_text = if utf8 {
        match std::str::from_utf8(header_bytes) {
            Ok(text) => text.to_string(),
            Err(_) => {
                return Err(NpyError::BadHeader {
                    what,
                    reason: "a version 3.0 header must be UTF-8 text".into(),
                });
            }
        }
    } else {
        // Versions 1.0 and 2.0 are latin-1: each byte is one code point.
        header_bytes.iter().map(|&b| char::from(b)).collect()
    };

    let header = parse_header(&header_text).map_err(|reason| NpyError::BadHeader {
        what: what.clone(),
        reason,
    })?;
    Ok((header, data_start))
}

pub(super) enum Descr {
    Simple(String),
    Structured,
}

pub(super) struct Header {
    pub(super) descr: Descr,
    pub(super) fortran_order: bool,
    pub(super) shape: Vec<usize>,
}

/// Interprets the header dict. Errors are the reason, for `BadHeader`.
fn parse_header(text: &str) -> Result<Header, String> {
    let value = PyParser::parse(text)?;
    let Py::Dict(entries) = value else {
        return Err(format!("the header is {}, not a dict", value.kind()));
    };
    let mut descr = None;
    let mut fortran_order = None;
    let mut shape = None;
    for (key, value) in entries {
        let Py::Str(key) = key else {
            return Err(format!(
                "the header has a key that is {}, not a string",
                key.kind()
            ));
        };
        match key.as_str() {
            "descr" => descr = Some(value),
            "fortran_order" => fortran_order = Some(value),
            "shape" => shape = Some(value),
            _ => {} // unknown keys are ignored
        }
    }
    let descr = match descr {
        None => return Err("the header has no 'descr' key".into()),
        Some(Py::Str(s)) => Descr::Simple(s),
        Some(Py::List(_)) => Descr::Structured,
        Some(other) => return Err(format!("'descr' is {}, not a dtype string", other.kind())),
    };
    let fortran_order = match fortran_order {
        None => return Err("the header has no 'fortran_order' key".into()),
        Some(Py::Bool(b)) => b,
        Some(other) => {
            return Err(format!(
                "'fortran_order' is {}, not True or False",
                other.kind()
            ));
        }
    };
    let shape = match shape {
        None => return Err("the header has no 'shape' key".into()),
        Some(Py::Tuple(items) | Py::List(items)) if items.len() > MAX_AXES => {
            return Err(format!(
                "'shape' has {} axes; NumPy arrays have at most {MAX_AXES}",
                items.len()
            ));
        }
        Some(Py::Tuple(items) | Py::List(items)) => {
            let mut shape = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Py::Int(n) => match usize::try_from(n) {
                        Ok(n) => shape.push(n),
                        Err(_) => {
                            return Err(format!(
                                "'shape' has the length {n}, which is not a valid axis length"
                            ));
                        }
                    },
                    other => {
                        return Err(format!("'shape' holds {}, not an integer", other.kind()));
                    }
                }
            }
            shape
        }
        Some(other) => return Err(format!("'shape' is {}, not a tuple", other.kind())),
    };
    Ok(Header {
        descr,
        fortran_order,
        shape,
    })
}

/// The Python literals a header may hold.
#[derive(Debug)]
enum Py {
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    Tuple(Vec<Py>),
    List(Vec<Py>),
    Dict(Vec<(Py, Py)>),
}

impl Py {
    fn kind(&self) -> &'static str {
        match self {
            Py::Str(_) => "a string",
            Py::Int(_) => "an integer",
            Py::Bool(_) => "a bool",
            Py::None => "None",
            Py::Tuple(_) => "a tuple",
            Py::List(_) => "a list",
            Py::Dict(_) => "a dict",
        }
    }
}

/// A small parser for the Python literals in `.npy` headers: dicts, lists,
/// tuples, strings, integers, True, False, None.
struct PyParser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl PyParser {
    fn parse(text: &str) -> Result<Py, String> {
        let mut parser = PyParser {
            chars: text.chars().collect(),
            pos: 0,
            depth: 0,
        };
        let value = parser.value()?;
        parser.skip_ws();
        if let Some(c) = parser.peek() {
            return Err(format!(
                "unexpected `{}` after the dict at character {}",
                c.escape_debug(),
                parser.pos
            ));
        }
        Ok(value)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(c) if c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn unexpected(&self, expected: &str) -> String {
        match self.peek() {
            None => format!("the header ends where {expected} was expected"),
            Some(c) => format!(
                "unexpected `{}` at character {} where {expected} was expected",
                c.escape_debug(),
                self.pos
            ),
        }
    }

    fn value(&mut self) -> Result<Py, String> {
        self.skip_ws();
        match self.peek() {
            Some('{') => self.container('{', '}'),
            Some('(') => self.container('(', ')'),
            Some('[') => self.container('[', ']'),
            Some(q @ ('\'' | '"')) => self.string(q),
            Some(c) if c == '-' || c == '+' || c.is_ascii_digit() => self.integer(),
            Some(c) if c.is_alphabetic() || c == '_' => {
                let start = self.pos;
                while matches!(self.peek(), Some(c) if c.is_alphanumeric() || c == '_') {
                    self.pos += 1;
                }
                let word: String = self.chars[start..self.pos].iter().collect();
                match word.as_str() {
                    "True" => Ok(Py::Bool(true)),
                    "False" => Ok(Py::Bool(false)),
                    "None" => Ok(Py::None),
                    _ => Err(format!("unexpected name `{word}` at character {start}")),
                }
            }
            _ => Err(self.unexpected("a value")),
        }
    }

    /// A dict, tuple or list; the opening bracket is next.
    fn container(&mut self, open: char, close: char) -> Result<Py, String> {
        self.depth += 1;
        if self.depth > MAX_HEADER_DEPTH {
            return Err("containers are nested too deeply".into());
        }
        self.pos += 1; // `open`
        let mut items = Vec::new();
        let mut entries = Vec::new();
        let mut saw_comma = false;
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.pos += 1;
                break;
            }
            let item = self.value()?;
            if open == '{' {
                self.skip_ws();
                if self.peek() != Some(':') {
                    return Err(self.unexpected("`:`"));
                }
                self.pos += 1;
                let value = self.value()?;
                entries.push((item, value));
            } else {
                items.push(item);
            }
            self.skip_ws();
            match self.peek() {
                Some(',') => {
                    self.pos += 1;
                    saw_comma = true;
                }
                Some(c) if c == close => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.unexpected(&format!("`,` or `{close}`"))),
            }
        }
        self.depth -= 1;
        Ok(match open {
            '{' => Py::Dict(entries),
            '[' => Py::List(items),
            // `(x)` is x in parentheses; a tuple needs a comma or no items.
            _ if items.len() == 1 && !saw_comma => items.pop().unwrap_or(Py::None),
            _ => Py::Tuple(items),
        })
    }

    fn string(&mut self, quote: char) -> Result<Py, String> {
        let start = self.pos;
        self.pos += 1;
        let mut text = String::new();
        loop {
            match self.peek() {
                None => return Err(format!("the string at character {start} is not closed")),
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(Py::Str(text));
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        None => {
                            return Err(format!("the string at character {start} is not closed"));
                        }
                        Some('n') => text.push('\n'),
                        Some('t') => text.push('\t'),
                        Some(c @ ('\\' | '\'' | '"')) => text.push(c),
                        Some(c) => {
                            text.push('\\');
                            text.push(c);
                        }
                    }
                    self.pos += 1;
                }
                Some(c) => {
                    text.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn integer(&mut self) -> Result<Py, String> {
        let start = self.pos;
        let negative = match self.peek() {
            Some('-') => {
                self.pos += 1;
                true
            }
            Some('+') => {
                self.pos += 1;
                false
            }
            _ => false,
        };
        let mut value: i128 = 0;
        let mut digits = 0;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i128::from(d)))
                .ok_or_else(|| format!("the integer at character {start} is too large"))?;
            digits += 1;
            self.pos += 1;
        }
        if digits == 0 {
            return Err(self.unexpected("a digit"));
        }
        // Python 2 wrote longs as `3L`.
        if matches!(self.peek(), Some('L' | 'l')) {
            self.pos += 1;
        }
        if matches!(self.peek(), Some(c) if c.is_alphanumeric() || c == '.' || c == '_') {
            return Err(self.unexpected("an integer"));
        }
        Ok(Py::Int(if negative { -value } else { value }))
    }
}

// --- writing ------------------------------------------------------------------

/// The `.npy` header for `array`: magic, version, length, and the dict padded
/// with spaces and a newline so the data starts on a 64-byte boundary. Same
/// bytes as NumPy's.
pub(super) fn npy_header(array: &ArrayData) -> Vec<u8> {
    let descr = match array {
        ArrayData::F32(_) => "<f4",
        ArrayData::F64(_) => "<f8",
        ArrayData::Int(_) => "<i8",
        ArrayData::Bool(_) => "|b1",
    };
    let shape = array.shape();
    let mut dict = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': {}, }}",
        shape_text(shape)
    );
    if let Some(first) = shape.first() {
        let digits = first.to_string().len();
        dict.push_str(&" ".repeat(GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits)));
    }
    // Version 1.0 has a u16 length; the rare longer header needs 2.0.
    let text_len = dict.len() + 1; // with the final newline
    let (version, prefix) = if 10 + text_len + ALIGN <= usize::from(u16::MAX) {
        (1u8, 10)
    } else {
        (2u8, 12)
    };
    let pad = ALIGN - (prefix + text_len) % ALIGN;
    let header_len = text_len + pad;
    let mut out = Vec::with_capacity(prefix + header_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(header_len as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header_len as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(out.len() + pad, b' ');
    out.push(b'\n');
    out
}
