//! NumPy files: `.npy` arrays and `.npz` archives, read and written without
//! any NumPy-specific dependency.
//!
//! The `.npy` format is a 6-byte magic string `\x93NUMPY`, a two-byte format
//! version (1.0, 2.0 or 3.0), a little-endian header length (`u16` for version
//! 1.0, `u32` for 2.0 and 3.0), a header that is a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`, and then the
//! raw elements. An `.npz` file is a zip archive of `.npy` members named
//! `NAME.npy`, stored (`numpy.savez`) or deflated (`numpy.savez_compressed`).
//!
//! Reading accepts float16/32/64 (either byte order), signed and unsigned
//! integers of 1, 2, 4 and 8 bytes, and bool, in C or Fortran order; the data is
//! widened into one of the four [`ArrayData`] kinds, and the dtype that the file
//! held is kept in [`NpyArray::dtype`] for messages. Every malformed input is a
//! [`NpyError`] that names the file, and inside an `.npz` the array; no input
//! makes the reader panic.
//!
//! Writing produces what `numpy.save` and `numpy.savez` produce (version 1.0
//! headers padded so the data starts on a 64-byte boundary; uncompressed
//! archives), and is atomic: the bytes go to a temporary file beside the target,
//! which is synced and then renamed over it, so a failed write leaves nothing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use thiserror::Error;
use zip::result::ZipError;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

/// The magic string every `.npy` file starts with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Data starts at a multiple of this many bytes, as NumPy writes it.
const ALIGN: usize = 64;

/// Spare header room NumPy leaves so the growth axis can be rewritten in place
/// (`numpy.lib.format.GROWTH_AXIS_MAX_DIGITS`); kept so our headers are
/// byte-identical to NumPy's.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;

/// Containers nested deeper than this in a header are refused (keeps the
/// recursive literal parser's stack bounded on hostile input).
const MAX_HEADER_DEPTH: usize = 32;

/// What the reader supports, for the tail of unsupported-dtype messages.
const SUPPORTED: &str =
    "cellc reads float16, float32, float64, signed and unsigned integers of 1 to 8 bytes, and bool";

/// An array's elements, in standard (row-major) layout.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayData {
    /// `float32`, and `float16` widened losslessly.
    F32(ArrayD<f32>),
    /// `float64`.
    F64(ArrayD<f64>),
    /// Every integer dtype, widened to `i64`.
    Int(ArrayD<i64>),
    /// `bool`.
    Bool(ArrayD<bool>),
}

impl ArrayData {
    /// The array's shape; empty for a 0-d array.
    pub fn shape(&self) -> &[usize] {
        match self {
            ArrayData::F32(a) => a.shape(),
            ArrayData::F64(a) => a.shape(),
            ArrayData::Int(a) => a.shape(),
            ArrayData::Bool(a) => a.shape(),
        }
    }

    /// The number of axes.
    pub fn ndim(&self) -> usize {
        self.shape().len()
    }

    /// The number of elements (1 for a 0-d array, 0 when an axis is 0).
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The NumPy name of the in-memory element type: `"float32"`, `"float64"`,
    /// `"int64"` or `"bool"` (what [`write_npy`] writes). The dtype a file held
    /// is [`NpyArray::dtype`].
    pub fn dtype_name(&self) -> &'static str {
        match self {
            ArrayData::F32(_) => "float32",
            ArrayData::F64(_) => "float64",
            ArrayData::Int(_) => "int64",
            ArrayData::Bool(_) => "bool",
        }
    }
}

impl From<ArrayD<f32>> for ArrayData {
    fn from(a: ArrayD<f32>) -> Self {
        ArrayData::F32(a)
    }
}

impl From<ArrayD<f64>> for ArrayData {
    fn from(a: ArrayD<f64>) -> Self {
        ArrayData::F64(a)
    }
}

impl From<ArrayD<i64>> for ArrayData {
    fn from(a: ArrayD<i64>) -> Self {
        ArrayData::Int(a)
    }
}

impl From<ArrayD<bool>> for ArrayData {
    fn from(a: ArrayD<bool>) -> Self {
        ArrayData::Bool(a)
    }
}

/// An array as read from a file: its data, and the dtype the file held.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The elements, widened to one of the four in-memory kinds.
    pub data: ArrayData,
    /// The file's dtype by its NumPy name, e.g. `"float32"`, `"int32"`,
    /// `"uint8"`, `"float16"`, `"bool"`; a big-endian multi-byte dtype reads
    /// e.g. `"float64 (big-endian)"`.
    pub dtype: String,
}

impl NpyArray {
    /// The array's shape.
    pub fn shape(&self) -> &[usize] {
        self.data.shape()
    }

    /// The data, dropping the file's dtype name.
    pub fn into_data(self) -> ArrayData {
        self.data
    }
}

/// Why a NumPy file could not be read or written. Each message is one sentence
/// naming the file (and, inside an `.npz`, the array). In the variants that
/// carry `what`, it is the array's description: `` `PATH` `` for a `.npy`
/// file, `` array `NAME` in `PATH` `` for an `.npz` member, or the text given
/// to [`read_npy_bytes`].
#[derive(Debug, Error)]
pub enum NpyError {
    /// The file does not exist.
    #[error("cannot read `{}`: no such file", path.display())]
    NotFound { path: PathBuf },

    /// The file exists but could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The bytes do not start with the `.npy` magic string.
    #[error("{what} is not a NumPy file: it does not start with the magic string \\x93NUMPY")]
    NotNpy { what: String },

    /// The data (or the header) is shorter than the header promises.
    #[error("{what} is truncated: expected {expected} bytes {part}, found {found}")]
    Truncated {
        what: String,
        /// What was cut short, e.g. "of data for a float32 array of shape (3, 4)".
        part: String,
        expected: u64,
        found: u64,
    },

    /// The header is not what the format prescribes.
    #[error("{what} has a bad NumPy header: {reason}")]
    BadHeader { what: String, reason: String },

    /// The dtype is one the reader does not convert (object, structured,
    /// string, complex, ...).
    #[error("{what} has unsupported dtype {dtype}: {note} ({SUPPORTED})")]
    UnsupportedDtype {
        what: String,
        dtype: String,
        note: String,
    },

    /// A `uint64` element does not fit in `i64`.
    #[error(
        "{what} holds the uint64 value {value}, which is larger than the largest int64, {}",
        i64::MAX
    )]
    IntOutOfRange { what: String, value: u64 },

    /// An `.npz` path that is not a zip archive.
    #[error("`{}` is not an npz file: {reason}", path.display())]
    NotZip { path: PathBuf, reason: String },

    /// An `.npz` member whose name does not end in `.npy`.
    #[error("`{}` holds the member `{name}`, which is not a .npy file (an npz archive holds only NAME.npy members)", path.display())]
    BadMember { path: PathBuf, name: String },

    /// An `.npz` member the zip layer could not extract (bad checksum, broken
    /// deflate stream, encryption, ...).
    #[error("cannot read array `{name}` in `{}`: {reason}", path.display())]
    CorruptMember {
        path: PathBuf,
        name: String,
        reason: String,
    },

    /// The directory to write into does not exist.
    #[error("cannot write `{}`: the directory `{}` does not exist", path.display(), dir.display())]
    MissingDirectory { path: PathBuf, dir: PathBuf },

    /// An array name `write_npz` cannot store (empty, or given twice).
    #[error("cannot write `{}`: {reason}", path.display())]
    BadName { path: PathBuf, reason: String },

    /// Writing failed (permissions, full disk, the target is a directory, ...).
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray, NpyError> {
    let bytes = fs::read(path).map_err(|e| read_error(path, e))?;
    read_npy_bytes(&bytes, &format!("`{}`", path.display()))
}

/// Reads a `.npy` file's bytes. `what` names the array in error messages and
/// is used as given, e.g. `` "`x.npy`" `` or `` "array `W` in `model.npz`" ``.
pub fn read_npy_bytes(bytes: &[u8], what: &str) -> Result<NpyArray, NpyError> {
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
    let header_len = len_bytes
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
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
    let dtype = match header.descr {
        Descr::Simple(descr) => parse_dtype(&descr),
        Descr::Structured => Err(Unsupported {
            dtype: "structured (a record dtype with named fields)".into(),
            note: "save each field as its own array",
        }),
    }
    .map_err(|u| NpyError::UnsupportedDtype {
        what: what.clone(),
        dtype: u.dtype,
        note: u.note.into(),
    })?;

    // Sizes, checked: a hostile header may promise anything.
    let shape = header.shape;
    let bad_shape = || NpyError::BadHeader {
        what: what.clone(),
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
    let nbytes = count.checked_mul(dtype.size).ok_or_else(bad_shape)?;
    let data = &bytes[data_start..];
    if data.len() < nbytes {
        return Err(NpyError::Truncated {
            what,
            part: format!(
                "of data for a {} array of shape {}",
                dtype.name,
                shape_text(&shape)
            ),
            expected: nbytes as u64,
            found: data.len() as u64,
        });
    }
    // Bytes past the data are ignored, as NumPy ignores them.
    let data = &data[..nbytes];

    let be = dtype.big_endian;
    let fortran = header.fortran_order;
    let array = match dtype.kind {
        Kind::Float16 => {
            let values = elements::<u16>(data, be).map(f16_to_f32).collect();
            ArrayData::F32(build(&shape, fortran, values, &what)?)
        }
        Kind::Float32 => {
            ArrayData::F32(build(&shape, fortran, elements(data, be).collect(), &what)?)
        }
        Kind::Float64 => {
            ArrayData::F64(build(&shape, fortran, elements(data, be).collect(), &what)?)
        }
        Kind::Bool => {
            let values = data.iter().map(|&b| b != 0).collect();
            ArrayData::Bool(build(&shape, fortran, values, &what)?)
        }
        Kind::Int { signed } => {
            let values: Vec<i64> = match (dtype.size, signed) {
                (1, true) => elements::<i8>(data, be).map(i64::from).collect(),
                (1, false) => elements::<u8>(data, be).map(i64::from).collect(),
                (2, true) => elements::<i16>(data, be).map(i64::from).collect(),
                (2, false) => elements::<u16>(data, be).map(i64::from).collect(),
                (4, true) => elements::<i32>(data, be).map(i64::from).collect(),
                (4, false) => elements::<u32>(data, be).map(i64::from).collect(),
                (8, true) => elements::<i64>(data, be).collect(),
                _ => {
                    let converted: Result<Vec<i64>, u64> = elements::<u64>(data, be)
                        .map(|v| i64::try_from(v).map_err(|_| v))
                        .collect();
                    converted.map_err(|value| NpyError::IntOutOfRange {
                        what: what.clone(),
                        value,
                    })?
                }
            };
            ArrayData::Int(build(&shape, fortran, values, &what)?)
        }
    };
    Ok(NpyArray {
        data: array,
        dtype: dtype.name,
    })
}

/// Reads an `.npz` archive: its arrays, named without the `.npy` suffix, in
/// archive order. Members may be stored or deflated.
pub fn read_npz(path: &Path) -> Result<Vec<(String, NpyArray)>, NpyError> {
    let mut file = File::open(path).map_err(|e| read_error(path, e))?;

    // A lone .npy given as an .npz gets a pointed message.
    let mut head = [0u8; 6];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_error(path, e)),
        }
    }
    if got == head.len() && &head == MAGIC {
        return Err(NpyError::NotZip {
            path: path.to_path_buf(),
            reason: "it is a single .npy array, not a zip archive of them".into(),
        });
    }
    if got == 0 {
        return Err(NpyError::NotZip {
            path: path.to_path_buf(),
            reason: "the file is empty".into(),
        });
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| read_error(path, e))?;

    // A file that starts like a zip archive but has no valid end was cut short.
    let starts_like_zip = got >= 4 && head[..4] == *b"PK\x03\x04";
    let mut archive = ZipArchive::new(BufReader::new(file)).map_err(|e| match e {
        ZipError::Io(e) if e.kind() != io::ErrorKind::UnexpectedEof => read_error(path, e),
        _ if starts_like_zip => NpyError::NotZip {
            path: path.to_path_buf(),
            reason: "it is truncated: it starts as a zip archive but its end (the archive's directory) is missing".into(),
        },
        other => NpyError::NotZip {
            path: path.to_path_buf(),
            reason: format!("it is not a valid zip archive ({})", zip_reason(&other)),
        },
    })?;

    let mut arrays = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let name = match archive.name_for_index(index) {
            Some(Ok(name)) => name.into_owned(),
            _ => format!("#{index}"),
        };
        let Some(stem) = name.strip_suffix(".npy") else {
            return Err(NpyError::BadMember {
                path: path.to_path_buf(),
                name,
            });
        };
        let stem = stem.to_string();
        let corrupt = |reason: String| NpyError::CorruptMember {
            path: path.to_path_buf(),
            name: stem.clone(),
            reason,
        };
        let mut member = archive
            .by_index(index)
            .map_err(|e| corrupt(zip_reason(&e)))?;
        // The declared size is only a hint; don't trust it for a large allocation.
        let hint = usize::try_from(member.size()).unwrap_or(0).min(1 << 24);
        let mut bytes = Vec::with_capacity(hint);
        member
            .read_to_end(&mut bytes)
            .map_err(|e| corrupt(format!("the zip member is corrupt ({e})")))?;
        drop(member);
        let what = format!("array `{stem}` in `{}`", path.display());
        let array = read_npy_bytes(&bytes, &what)?;
        arrays.push((stem, array));
    }
    Ok(arrays)
}

fn read_error(path: &Path, error: io::Error) -> NpyError {
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

fn zip_reason(error: &ZipError) -> String {
    match error {
        ZipError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            "it ends unexpectedly".into()
        }
        ZipError::InvalidArchive(reason) => reason.to_string(),
        ZipError::UnsupportedArchive(reason) => reason.to_string(),
        other => other.to_string(),
    }
}

/// A fixed-size number stored in either byte order.
trait Element: Sized {
    const SIZE: usize;
    fn from_bytes(chunk: &[u8], big_endian: bool) -> Self;
}

macro_rules! element {
    ($($t:ty),*) => {$(
        impl Element for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn from_bytes(chunk: &[u8], big_endian: bool) -> Self {
                let mut bytes = [0u8; std::mem::size_of::<$t>()];
                bytes.copy_from_slice(chunk);
                if big_endian { <$t>::from_be_bytes(bytes) } else { <$t>::from_le_bytes(bytes) }
            }
        }
    )*};
}

element!(i8, u8, i16, u16, i32, u32, i64, u64, f32, f64);

/// The elements of `data`, read as `T` in the given byte order.
fn elements<T: Element>(data: &[u8], big_endian: bool) -> impl Iterator<Item = T> + '_ {
    data.chunks_exact(T::SIZE)
        .map(move |chunk| T::from_bytes(chunk, big_endian))
}

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

/// `(3, 4)`, `(3,)`, `()`, as Python writes tuples.
fn shape_text(shape: &[usize]) -> String {
    match shape {
        [] => "()".into(),
        [n] => format!("({n},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(|n| n.to_string()).collect();
            format!("({})", parts.join(", "))
        }
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

#[derive(Debug)]
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

// --- header ------------------------------------------------------------------

enum Descr {
    Simple(String),
    Structured,
}

struct Header {
    descr: Descr,
    fortran_order: bool,
    shape: Vec<usize>,
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

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

/// Writes one array as a `.npy` file (format 1.0, as `numpy.save` does),
/// atomically.
pub fn write_npy(path: &Path, array: &ArrayData) -> Result<(), NpyError> {
    write_atomically(path, |file| {
        let mut out = BufWriter::new(file);
        write_npy_to(&mut out, array)?;
        out.flush()?;
        Ok(())
    })
}

/// Writes arrays as an uncompressed `.npz` archive (as `numpy.savez` does),
/// with members `NAME.npy`, atomically. Names may contain dots (`readout.W`).
pub fn write_npz(path: &Path, arrays: &[(String, ArrayData)]) -> Result<(), NpyError> {
    for (i, (name, _)) in arrays.iter().enumerate() {
        let reason = if name.is_empty() {
            "an array name is empty".to_string()
        } else if arrays[..i].iter().any(|(earlier, _)| earlier == name) {
            format!("the array name `{name}` is given twice")
        } else {
            continue;
        };
        return Err(NpyError::BadName {
            path: path.to_path_buf(),
            reason,
        });
    }
    // The archive is made in memory first, so that a failing disk is met by
    // one plain write (a zip writer dropped half-way complains on stderr).
    let mut zip = ZipWriter::new(io::Cursor::new(Vec::new()));
    let mut build = || -> io::Result<()> {
        for (name, array) in arrays {
            let size = npy_size(array);
            let options = SimpleFileOptions::default()
                .compression_method(CompressionMethod::Stored)
                .large_file(size >= zip::ZIP64_BYTES_THR);
            zip.start_file(format!("{name}.npy"), options)
                .map_err(io::Error::other)?;
            write_npy_to(&mut zip, array)?;
        }
        Ok(())
    };
    build().map_err(|source| NpyError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    let bytes = zip
        .finish()
        .map_err(|e| NpyError::Write {
            path: path.to_path_buf(),
            source: io::Error::other(e),
        })?
        .into_inner();
    write_atomically(path, |file| file.write_all(&bytes))
}

/// The `.npy` header for `array`: magic, version, length, and the dict padded
/// with spaces and a newline so the data starts on a 64-byte boundary. Same
/// bytes as NumPy's.
fn npy_header(array: &ArrayData) -> Vec<u8> {
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

/// The size of the `.npy` bytes `write_npy_to` produces for `array`.
fn npy_size(array: &ArrayData) -> u64 {
    let item = match array {
        ArrayData::F32(_) => 4,
        ArrayData::F64(_) | ArrayData::Int(_) => 8,
        ArrayData::Bool(_) => 1,
    };
    npy_header(array).len() as u64 + (array.len() as u64) * item
}

/// Writes `array` as `.npy` bytes: header, then the elements in C order.
fn write_npy_to(out: &mut impl Write, array: &ArrayData) -> io::Result<()> {
    out.write_all(&npy_header(array))?;
    let mut buffer = Vec::with_capacity(1 << 16);
    macro_rules! elements {
        ($a:expr, $bytes:expr) => {
            for x in $a.iter() {
                buffer.extend_from_slice(&$bytes(x));
                if buffer.len() >= 1 << 16 {
                    out.write_all(&buffer)?;
                    buffer.clear();
                }
            }
        };
    }
    match array {
        ArrayData::F32(a) => elements!(a, |x: &f32| x.to_le_bytes()),
        ArrayData::F64(a) => elements!(a, |x: &f64| x.to_le_bytes()),
        ArrayData::Int(a) => elements!(a, |x: &i64| x.to_le_bytes()),
        ArrayData::Bool(a) => elements!(a, |x: &bool| [u8::from(*x)]),
    }
    out.write_all(&buffer)
}

/// Distinguishes temporary files of concurrent writes within one process.
static TEMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Writes `path` through a temporary file `.NAME.tmp-PID-N` in the same
/// directory: fill, flush, sync, rename over the target. On failure the
/// temporary file is removed and the target is untouched.
fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), NpyError> {
    let write_error = |source| NpyError::Write {
        path: path.to_path_buf(),
        source,
    };
    // Write through symbolic links to what they name, as other tools do.
    let mut resolved = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&resolved) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&resolved).map_err(write_error)?;
                resolved = resolved.parent().unwrap_or(Path::new(".")).join(target);
            }
            _ => break,
        }
    }
    let path = resolved.as_path();
    // A device or a pipe (`-o /dev/null`) is written to, never replaced.
    if let Ok(meta) = fs::metadata(path)
        && !meta.is_file()
        && !meta.is_dir()
    {
        let mut file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(write_error)?;
        return fill(&mut file).map_err(write_error);
    }
    let Some(file_name) = path.file_name() else {
        return Err(write_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path does not name a file",
        )));
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(write_error(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("`{}` is not a directory", dir.display()),
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(NpyError::MissingDirectory {
                path: path.to_path_buf(),
                dir: dir.to_path_buf(),
            });
        }
        Err(e) => return Err(write_error(e)),
    }

    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let temp = dir.join(temp_name);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .map_err(write_error)?;
    let mut result = fill(&mut file).and_then(|()| file.sync_all());
    drop(file);
    if result.is_ok() {
        result = fs::rename(&temp, path);
    }
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(write_error(e));
    }
    // Make the rename itself durable where the platform allows it.
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
