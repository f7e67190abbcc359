//! Why a NumPy file could not be read or written.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// What the reader supports, for the tail of unsupported-dtype messages.
const SUPPORTED: &str =
    "cellc reads float16, float32, float64, signed and unsigned integers of 1 to 8 bytes, and bool";

/// Why a NumPy file could not be read or written. Each message is one sentence
/// naming the file (and, inside an `.npz`, the array). In the variants that
/// carry `what`, it is the array's description: `` `PATH` `` for a `.npy`
/// file, `` array `NAME` in `PATH` `` for an `.npz` member, or the text given
/// to [`read_npy_bytes`](super::read_npy_bytes).
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

    /// Bytes follow the data the header declares. `extra` is how many, when
    /// known (a file's length or a zip member's size), or `None` for a stream.
    #[error(
        "{what} has {} after the array's data ({array} is {declared} bytes)",
        .extra.map_or("more bytes".to_string(), |n| format!("{n} bytes"))
    )]
    TrailingData {
        what: String,
        extra: Option<u64>,
        /// "a float32 array of shape (3, 4)".
        array: String,
        declared: u64,
    },

    /// The memory for the declared array could not be set aside.
    #[error(
        "{what} is {array}, which needs {bytes} bytes of memory, and they could not be allocated"
    )]
    OutOfMemory {
        what: String,
        array: String,
        bytes: u64,
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

    /// An `.npz` given as a pipe, socket or terminal: a zip archive's
    /// directory is at its end, so it must be read from a file.
    #[error("`{}` is {kind} (not seekable): .npz archives need a file; write it to a file first", path.display())]
    NotSeekable { path: PathBuf, kind: &'static str },

    /// An `.npz` member compressed with a method other than stored and
    /// deflate, or encrypted.
    #[error("`{member}` in `{}` is {how}, which cellc does not support (numpy.savez stores arrays and numpy.savez_compressed deflates them; cellc reads both)", path.display())]
    UnsupportedMember {
        path: PathBuf,
        /// The member's name in the archive, `NAME.npy`.
        member: String,
        /// "compressed with bzip2", "encrypted".
        how: String,
    },

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
