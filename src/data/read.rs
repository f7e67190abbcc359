//! Reading `.npy` data in two steps: first the header (`header.rs`), which
//! declares the dtype (float16/32/64 in either byte order, integers of 1 to 8
//! bytes, bool), the shape and so the data's exact size; then, once the caller
//! has checked that header and the sizes are consistent, exactly the declared
//! bytes, widened into one of the four [`ArrayData`] kinds. Memory is set aside
//! only for what the header declares, and only after the file (or the zip
//! directory) has been seen to hold that many bytes. Every malformed input is
//! an [`NpyError`]; no input makes the reader panic.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn, ShapeBuilder};

use super::array::{ArrayData, NpyArray};
use super::error::NpyError;
use super::header::{Descr, read_header, read_header_bytes, shape_text};

/// What an `.npy` header declares, read before any of the data.
#[derive(Debug, Clone)]
pub struct NpyHeader {
    dtype: Dtype,
    fortran_order: bool,
    shape: Vec<usize>,
    count: usize,
    data_offset: u64,
    data_len: u64,
}

impl NpyHeader {
    /// The declared shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The dtype by its NumPy name, as [`NpyArray::dtype`] will give it.
    pub fn dtype(&self) -> &str {
        &self.dtype.name
    }

    /// Whether the dtype is a float one (read as `float32` or `float64`).
    pub fn is_float(&self) -> bool {
        matches!(
            self.dtype.kind,
            Kind::Float16 | Kind::Float32 | Kind::Float64
        )
    }

    /// The number of bytes of data the header declares.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Where the data starts, from the start of the `.npy` bytes.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// "a float32 array of shape (2, 3)", for messages.
    fn describe(&self) -> String {
        format!(
            "a {} array of shape {}",
            self.dtype.name,
            shape_text(&self.shape)
        )
    }

    /// Checks that `available` bytes of data, all there is after the header,
    /// are exactly what the header declares.
    pub(super) fn check_data_len(&self, available: u64, what: &str) -> Result<(), NpyError> {
        if available < self.data_len {
            return Err(NpyError::Truncated {
                what: what.to_string(),
                part: format!("of data for {}", self.describe()),
                expected: self.data_len,
                found: available,
            });
        }
        if available > self.data_len {
            return Err(self.trailing(Some(available - self.data_len), what));
        }
        Ok(())
    }

    pub(super) fn trailing(&self, extra: Option<u64>, what: &str) -> NpyError {
        NpyError::TrailingData {
            what: what.to_string(),
            extra,
            array: self.describe(),
            declared: self.data_len,
        }
    }
}

/// Parses the header at the start of `head` (the bytes
/// [`read_header_bytes`] returns, or a whole file): dtype, shape, and the
/// data's offset and size, with every size checked.
pub(super) fn parse_npy_header(head: &[u8], what: &str) -> Result<NpyHeader, NpyError> {
    let (header, data_start) = read_header(head, what)?;
    let dtype = match header.descr {
        Descr::Simple(descr) => parse_dtype(&descr),
        Descr::Structured => Err(Unsupported {
            dtype: "structured (a record dtype with named fields)".into(),
            note: "save each field as its own array",
        }),
    }
    .map_err(|u| NpyError::UnsupportedDtype {
        what: what.to_string(),
        dtype: u.dtype,
        note: u.note.into(),
    })?;

    // Sizes, checked: a hostile header may promise anything.
    let shape = header.shape;
    let bad_shape = || NpyError::BadHeader {
        what: what.to_string(),
        reason: format!("the shape {} has too many elements", shape_text(&shape)),
    };
    let nonzero_product = shape
        .iter()
        .filter(|&&n| n != 0)
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .filter(|&p| p <= isize::MAX as usize)
        .ok_or_else(bad_shape)?;
    let count = if shape.contains(&0) {
        0
    } else {
        nonzero_product
    };
    let nbytes = count
        .checked_mul(dtype.size)
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or_else(bad_shape)?;
    Ok(NpyHeader {
        dtype,
        fortran_order: header.fortran_order,
        shape,
        count,
        data_offset: data_start as u64,
        data_len: nbytes as u64,
    })
}

/// An `.npy` file whose header has been read, and none of its data.
#[derive(Debug)]
pub struct NpyFile {
    path: PathBuf,
    reader: BufReader<File>,
    header: NpyHeader,
}

impl NpyFile {
    /// Opens a `.npy` file and reads its header. For a regular file, the
    /// file's length must be exactly what the header declares. A pipe is read
    /// as a stream, and its length is checked as it is read.
    pub fn open(path: &Path) -> Result<NpyFile, NpyError> {
        let file = File::open(path).map_err(|e| read_error(path, e))?;
        let meta = file.metadata().map_err(|e| read_error(path, e))?;
        // Some regular files (in /proc) say 0 and hold more: length unknown.
        let length = (meta.is_file() && meta.len() > 0).then_some(meta.len());
        let mut reader = BufReader::new(file);
        let head = read_header_bytes(&mut reader).map_err(|e| read_error(path, e))?;
        let what = format!("`{}`", path.display());
        let header = parse_npy_header(&head, &what)?;
        if let Some(length) = length {
            header.check_data_len(length.saturating_sub(header.data_offset), &what)?;
        }
        Ok(NpyFile {
            path: path.to_path_buf(),
            reader,
            header,
        })
    }

    /// The header.
    pub fn header(&self) -> &NpyHeader {
        &self.header
    }

    /// Reads the data, exactly the declared bytes; any byte after them is an
    /// error.
    pub fn read(mut self) -> Result<NpyArray, NpyError> {
        let what = format!("`{}`", self.path.display());
        let path = &self.path;
        read_data(&mut self.reader, &self.header, &what, |e| {
            read_error(path, e)
        })
    }
}

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray, NpyError> {
    NpyFile::open(path)?.read()
}

/// Reads a `.npy` file's bytes. `what` names the array in error messages and
/// is used as given, e.g. `` "`x.npy`" `` or `` "array `W` in `model.npz`" ``.
pub fn read_npy_bytes(bytes: &[u8], what: &str) -> Result<NpyArray, NpyError> {
    let header = parse_npy_header(bytes, what)?;
    let data = &bytes[header.data_offset as usize..];
    header.check_data_len(data.len() as u64, what)?;
    read_data(&mut &data[..], &header, what, |e| NpyError::BadHeader {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// Reads the data that follows a header from `reader`, which is positioned
/// at it: exactly the declared bytes, then one more read to see that nothing
/// follows. `io_error` says why a read failed.
pub(super) fn read_data<R: Read>(
    reader: &mut R,
    header: &NpyHeader,
    what: &str,
    io_error: impl Fn(io::Error) -> NpyError,
) -> Result<NpyArray, NpyError> {
    let data = decode(reader, header, what).map_err(|e| match e {
        Stop::Short { found } => NpyError::Truncated {
            what: what.to_string(),
            part: format!("of data for {}", header.describe()),
            expected: header.data_len,
            found,
        },
        Stop::Io(e) => io_error(e),
        Stop::Npy(e) => e,
    })?;
    let mut one = [0u8; 1];
    loop {
        match reader.read(&mut one) {
            Ok(0) => break,
            Ok(_) => return Err(header.trailing(None, what)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(e)),
        }
    }
    Ok(NpyArray {
        data,
        dtype: header.dtype.name.clone(),
    })
}

/// Why decoding stopped before the end of the data.
enum Stop {
    /// The input ended after `found` bytes of data.
    Short {
        found: u64,
    },
    Io(io::Error),
    Npy(NpyError),
}

/// Data is read in blocks of this many bytes (a multiple of every element
/// size), so that only the decoded array is held, never a copy of the file.
const BLOCK: usize = 1 << 16;

/// Decodes the declared elements from `reader` into an array.
fn decode<R: Read>(reader: &mut R, header: &NpyHeader, what: &str) -> Result<ArrayData, Stop> {
    let be = header.dtype.big_endian;
    Ok(match header.dtype.kind {
        Kind::Float16 => {
            let v = values(reader, header, what, |c| {
                Ok(f16_to_f32(u16::from_bytes(c, be)))
            })?;
            ArrayData::F32(shaped(header, v, what)?)
        }
        Kind::Float32 => {
            let v = values(reader, header, what, |c| Ok(f32::from_bytes(c, be)))?;
            ArrayData::F32(shaped(header, v, what)?)
        }
        Kind::Float64 => {
            let v = values(reader, header, what, |c| Ok(f64::from_bytes(c, be)))?;
            ArrayData::F64(shaped(header, v, what)?)
        }
        Kind::Bool => {
            let v = values(reader, header, what, |c| Ok(c[0] != 0))?;
            ArrayData::Bool(shaped(header, v, what)?)
        }
        Kind::Int { signed } => {
            let widen = |c: &[u8]| -> Result<i64, u64> {
                Ok(match (header.dtype.size, signed) {
                    (1, true) => i64::from(i8::from_bytes(c, be)),
                    (1, false) => i64::from(u8::from_bytes(c, be)),
                    (2, true) => i64::from(i16::from_bytes(c, be)),
                    (2, false) => i64::from(u16::from_bytes(c, be)),
                    (4, true) => i64::from(i32::from_bytes(c, be)),
                    (4, false) => i64::from(u32::from_bytes(c, be)),
                    (8, true) => i64::from_bytes(c, be),
                    _ => {
                        let v = u64::from_bytes(c, be);
                        i64::try_from(v).map_err(|_| v)?
                    }
                })
            };
            let v = values(reader, header, what, widen)?;
            ArrayData::Int(shaped(header, v, what)?)
        }
    })
}

/// The elements shaped as the header declares.
fn shaped<T: Clone>(header: &NpyHeader, values: Vec<T>, what: &str) -> Result<ArrayD<T>, Stop> {
    build(&header.shape, header.fortran_order, values, what).map_err(Stop::Npy)
}

/// Reads the declared elements, converting each with `convert`; an element it
/// refuses is a `uint64` value too large for `int64`.
fn values<R: Read, T>(
    reader: &mut R,
    header: &NpyHeader,
    what: &str,
    convert: impl Fn(&[u8]) -> Result<T, u64>,
) -> Result<Vec<T>, Stop> {
    let mut out: Vec<T> = Vec::new();
    // Allocation failure is a message, not an abort.
    out.try_reserve_exact(header.count).map_err(|_| {
        Stop::Npy(NpyError::OutOfMemory {
            what: what.to_string(),
            array: header.describe(),
            bytes: (header.count as u64).saturating_mul(std::mem::size_of::<T>() as u64),
        })
    })?;
    let size = header.dtype.size;
    let mut block = vec![0u8; (header.data_len as usize).min(BLOCK)];
    let mut done: u64 = 0;
    while done < header.data_len {
        let n = (header.data_len - done).min(BLOCK as u64) as usize;
        let got = fill(reader, &mut block[..n]).map_err(Stop::Io)?;
        if got < n {
            return Err(Stop::Short {
                found: done + got as u64,
            });
        }
        for chunk in block[..n].chunks_exact(size) {
            let value = convert(chunk).map_err(|value| {
                Stop::Npy(NpyError::IntOutOfRange {
                    what: what.to_string(),
                    value,
                })
            })?;
            out.push(value);
        }
        done += n as u64;
    }
    Ok(out)
}

/// Fills `buf` from `reader` as far as the input goes; the count read.
fn fill<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

pub(super) fn read_error(path: &Path, error: io::Error) -> NpyError {
    if error.kind() == io::ErrorKind::NotFound {
        NpyError::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        NpyError::Unreadable {
            path: path.to_path_buf(),
            source: error,
        }
    }
}

/// A fixed-size number stored in either byte order.
trait Element: Sized {
    fn from_bytes(chunk: &[u8], big_endian: bool) -> Self;
}

macro_rules! element {
    ($($t:ty),*) => {$(
        impl Element for $t {
            fn from_bytes(chunk: &[u8], big_endian: bool) -> Self {
                let mut bytes = [0u8; std::mem::size_of::<$t>()];
                bytes.copy_from_slice(chunk);
                if big_endian { <$t>::from_be_bytes(bytes) } else { <$t>::from_le_bytes(bytes) }
            }
        }
    )*};
}

element!(i8, u8, i16, u16, i32, u32, i64, u64, f32, f64);

/// Shapes the elements, which are in C order, or in Fortran order when
/// `fortran` is set, into a standard-layout array.
fn build<T: Clone>(
    shape: &[usize],
    fortran: bool,
    values: Vec<T>,
    what: &str,
) -> Result<ArrayD<T>, NpyError> {
    let array = if fortran {
        ArrayD::from_shape_vec(IxDyn(shape).f(), values)
    } else {
        ArrayD::from_shape_vec(IxDyn(shape), values)
    }
    .map_err(|e| NpyError::BadHeader {
        what: what.to_string(),
        reason: format!("the shape {} cannot be built: {e}", shape_text(shape)),
    })?;
    Ok(if array.is_standard_layout() {
        array
    } else {
        array.as_standard_layout().into_owned()
    })
}

/// IEEE 754 half precision to single precision (exact).
fn f16_to_f32(half: u16) -> f32 {
    let sign = u32::from(half >> 15) << 31;
    let exponent = u32::from((half >> 10) & 0x1f);
    let mantissa = u32::from(half & 0x3ff);
    match exponent {
        0 => {
            // Zero or subnormal: mantissa × 2^-24, exact in f32.
            let magnitude = mantissa as f32 * (1.0 / 16_777_216.0);
            if sign != 0 { -magnitude } else { magnitude }
        }
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (mantissa << 13)),
        _ => f32::from_bits(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13)),
    }
}

// --- dtype ------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Float16,
    Float32,
    Float64,
    Int { signed: bool },
    Bool,
}

#[derive(Debug, Clone)]
struct Dtype {
    kind: Kind,
    size: usize,
    big_endian: bool,
    /// NumPy's name, e.g. "int32", "float64 (big-endian)".
    name: String,
}

struct Unsupported {
    dtype: String,
    note: &'static str,
}

/// Parses a simple `descr` such as `<f4`, `>i2`, `|u1`, `|b1`.
fn parse_dtype(descr: &str) -> Result<Dtype, Unsupported> {
    let (order, rest) = match descr.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &descr[1..]),
        _ => ('=', descr),
    };
    let mut chars = rest.chars();
    let code = chars.next();
    let size_text = chars.as_str();
    let size: Option<usize> = if size_text.is_empty() {
        None
    } else if size_text.bytes().all(|b| b.is_ascii_digit()) && size_text.len() <= 6 {
        size_text.parse().ok()
    } else {
        Some(usize::MAX) // something like 'M8[ns]' or 'U5x': never a supported size
    };
    let unsupported = |name: String, note: &'static str| Unsupported {
        dtype: format!("{name} ('{descr}')"),
        note,
    };
    let (kind, size, base) = match (code, size) {
        (Some('f'), Some(2)) => (Kind::Float16, 2, "float16".to_string()),
        (Some('f'), Some(4)) => (Kind::Float32, 4, "float32".to_string()),
        (Some('f'), Some(8)) => (Kind::Float64, 8, "float64".to_string()),
        (Some('f'), Some(n @ (12 | 16))) => {
            return Err(unsupported(
                format!("float{}", n * 8),
                "extended precision; convert it to float64",
            ));
        }
        (Some(c @ ('i' | 'u')), Some(n @ (1 | 2 | 4 | 8))) => {
            let signed = c == 'i';
            let name = format!("{}int{}", if signed { "" } else { "u" }, n * 8);
            (Kind::Int { signed }, n, name)
        }
        (Some('b'), Some(1)) | (Some('?'), None) => (Kind::Bool, 1, "bool".to_string()),
        (Some('c'), Some(n @ (8 | 16 | 24 | 32))) => {
            return Err(unsupported(
                format!("complex{}", n * 8),
                "complex arrays are not supported",
            ));
        }
        (Some('O'), _) => {
            return Err(unsupported(
                "object".into(),
                "object arrays hold pickled Python objects, not numbers",
            ));
        }
        (Some('U'), _) => return Err(unsupported("str".into(), "string arrays are not supported")),
        (Some('S' | 'a'), _) => {
            return Err(unsupported(
                "bytes".into(),
                "byte-string arrays are not supported",
            ));
        }
        (Some('V'), _) => {
            return Err(unsupported(
                "void".into(),
                "raw void arrays are not supported",
            ));
        }
        (Some('M'), _) => {
            return Err(unsupported(
                "datetime64".into(),
                "datetime arrays are not supported",
            ));
        }
        (Some('m'), _) => {
            return Err(unsupported(
                "timedelta64".into(),
                "timedelta arrays are not supported",
            ));
        }
        _ => {
            return Err(unsupported(
                "unknown".into(),
                "not a dtype cellc recognises",
            ));
        }
    };
    let big_endian = order == '>' && size > 1;
    let name = if big_endian {
        format!("{base} (big-endian)")
    } else {
        base
    };
    Ok(Dtype {
        kind,
        size,
        big_endian,
        name,
    })
}
