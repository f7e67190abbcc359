//! Writing `.npy`: what `numpy.save` produces (version 1.0 headers padded so
//! the data starts on a 64-byte boundary), atomically: the bytes go to a
//! temporary file beside the target, which is synced and then renamed over it,
//! so a failed write leaves nothing. Symbolic links are written through, and a
//! device or a pipe is written to, never replaced.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::array::ArrayData;
use super::error::NpyError;
use super::header::npy_header;

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

/// Writes any file atomically (an object file, a header): the target is
/// either the whole of `bytes` or untouched.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), NpyError> {
    write_atomically(path, |file| file.write_all(bytes))
}

/// The size of the `.npy` bytes `write_npy_to` produces for `array`.
pub(super) fn npy_size(array: &ArrayData) -> u64 {
    let item = match array {
        ArrayData::F32(_) => 4,
        ArrayData::F64(_) | ArrayData::Int(_) => 8,
        ArrayData::Bool(_) => 1,
    };
    npy_header(array).len() as u64 + (array.len() as u64) * item
}

/// Writes `array` as `.npy` bytes: header, then the elements in C order.
pub(super) fn write_npy_to(out: &mut impl Write, array: &ArrayData) -> io::Result<()> {
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

/// The temporary files being written now, so that an interrupted run can remove
/// them ([`remove_temporaries`]) instead of leaving them beside the target.
static TEMPORARIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A temporary file's place in [`TEMPORARIES`], given up when the write ends.
struct Registered(PathBuf);

impl Registered {
    fn new(temp: &Path) -> Registered {
        lock_temporaries().push(temp.to_path_buf());
        Registered(temp.to_path_buf())
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut temps = lock_temporaries();
        if let Some(i) = temps.iter().position(|t| *t == self.0) {
            temps.swap_remove(i);
        }
    }
}

fn lock_temporaries() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // A panic elsewhere while the list was held leaves it usable.
    TEMPORARIES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes every temporary file being written, for a process about to end on
/// a signal. The list stays locked afterwards, so no write that is still
/// running can start another temporary file or unregister: the process is
/// meant to exit right after this. A write whose rename already happened is
/// complete (it was synced first), so the target is either whole or untouched.
pub fn remove_temporaries() {
    let temps = lock_temporaries();
    for t in temps.iter() {
        let _ = fs::remove_file(t);
    }
    std::mem::forget(temps);
}

/// Writes `path` through a temporary file `.NAME.tmp-PID-N` in the same
/// directory: fill, flush, sync, rename over the target. On failure the
/// temporary file is removed and the target is untouched.
pub(super) fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), NpyError> {
    let write_error = |source| NpyError::Write {
        path: path.to_path_buf(),
        source,
    };
    // A device or a pipe (`-o /dev/null`, `-o /dev/stdout`) is written to,
    // never replaced. This is asked of the path as given, links followed by
    // the system: `/dev/stdout` names `/proc/self/fd/1`, whose link text
    // (`pipe:[N]`) is no path to follow by hand.
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
    // An existing file keeps its permissions; a read-only one is refused, as
    // `cp` does (checked on the mode bits, which root would otherwise ignore).
    let existing_mode = existing_mode(path).map_err(write_error)?;
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
    // Registered before it exists, so there is no moment when an interrupt
    // could leave it behind unseen.
    let _registered = Registered::new(&temp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .map_err(write_error)?;
    let mut result = fill(&mut file);
    #[cfg(unix)]
    if let Some(mode) = existing_mode {
        use std::os::unix::fs::PermissionsExt;
        result = result.and_then(|()| file.set_permissions(fs::Permissions::from_mode(mode)));
    }
    #[cfg(not(unix))]
    let _ = existing_mode;
    let mut result = result.and_then(|()| file.sync_all());
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

/// The permission bits of `path` when it is an existing regular file, or an
/// error when that file is read-only (no write bit set for anyone).
fn existing_mode(path: &Path) -> io::Result<Option<u32>> {
    let meta = match fs::metadata(path) {
        Ok(meta) if meta.is_file() => meta,
        _ => return Ok(None),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o222 == 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("the file is read-only (mode {mode:04o}); nothing was changed"),
            ));
        }
        Ok(Some(mode))
    }
    #[cfg(not(unix))]
    {
        if meta.permissions().readonly() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the file is read-only; nothing was changed",
            ));
        }
        Ok(None)
    }
}

/// Fails when `path` is an existing read-only file (see `write_atomically`),
/// so a command can refuse before doing any work.
pub fn check_writable(path: &Path) -> Result<(), NpyError> {
    existing_mode(path)
        .map(|_| ())
        .map_err(|source| NpyError::Write {
            path: path.to_path_buf(),
            source,
        })
}
