//! Data: what enters a run from files and what leaves it for files. NumPy
//! arrays read and written ([`read_npy`], [`read_npz`], [`write_npy`],
//! [`write_npz`]), dimensions bound to sizes ([`bind`]), named arrays matched
//! to a cell's parameters, inputs and states ([`matching`]), and generated
//! data for trying a cell ([`generate`]). The runtime's
//! types it builds (`Sequences`, `Cotangents`) are the runtime's; the runtime
//! imports nothing from here.
//!
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
//! Reading has two steps, so that nothing is allocated or inflated for data
//! that will be refused: [`NpyFile::open`] and [`NpzFile::open`] read only the
//! headers ([`NpyHeader`]: dtype, shape, the data's size) and check those
//! sizes against the file's length or the archive's directory; the caller
//! checks names, dtypes and shapes; then `read` takes exactly the declared
//! bytes. Bytes after them are an error, as is an archive member compressed
//! other than stored or deflate. An `.npz` must be a file (the zip directory is
//! at its end); an `.npy` may come through a pipe.
//!
//! Writing produces what `numpy.save` and `numpy.savez` produce (version 1.0
//! headers padded so the data starts on a 64-byte boundary; uncompressed
//! archives), and is atomic: the bytes go to a temporary file beside the target,
//! which is synced and then renamed over it, so a failed write leaves nothing;
//! [`remove_temporaries`] lets a process ending on a signal remove the temporary
//! files of writes in progress.

mod array;
pub mod bind;
mod error;
pub mod generate;
mod header;
pub mod matching;
mod npz;
mod read;
mod write;

pub use array::{ArrayData, NpyArray};
pub use error::NpyError;
pub use npz::{NpzFile, NpzMember, read_npz, write_npz};
pub use read::{NpyFile, NpyHeader, read_npy, read_npy_bytes};
pub use write::{check_writable, remove_temporaries, write_file, write_npy};
