//! Decoding `.npy` bytes: after the header (`header.rs`), the dtype
//! (float16/32/64 in either byte order, integers of 1 to 8 bytes, bool) and the
//! elements in C or Fortran order, widened into one of the four [`ArrayData`]
//! kinds. Every malformed input is an [`NpyError`]; no input makes the reader
//! panic.

use std::fs;
use std::io;
use std::path::Path;

use ndarray::{ArrayD, IxDyn, ShapeBuilder};

use super::array::{ArrayData, NpyArray};
use super::error::NpyError;
use super::header::{Descr, read_header, shape_text};

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray, NpyError> {
    let bytes = fs::read(path).map_err(|e| read_error(path, e))?;
    read_npy_bytes(&bytes, &format!("`{}`", path.display()))
}

/// Reads a `.npy` file's bytes. `what` names the array in error messages and
/// is used as given, e.g. `` "`x.npy`" `` or `` "array `W` in `model.npz`" ``.
pub fn read_npy_bytes(bytes: &[u8], what: &str) -> Result<NpyArray, NpyError> {
    let what = what.to_string();

    let (header, data_start) = read_header(bytes, &what)?;
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
