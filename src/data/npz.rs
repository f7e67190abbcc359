//! The `.npz` container: a zip archive of `NAME.npy` members, read stored
//! (`numpy.savez`) or deflated (`numpy.savez_compressed`), written stored.
//!
//! Reading trusts nothing it has not checked: each member's compression
//! method and sizes come from the archive's directory, its `.npy` header is
//! inflated alone, and the two must agree before any data is inflated; the
//! data is then read to exactly its declared end, plus one byte to see that
//! nothing follows (which also makes the zip layer check the CRC).

use std::fs::{File, Metadata};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use zip::result::ZipError;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::array::{ArrayData, NpyArray};
use super::error::NpyError;
use super::header::{MAGIC, read_header_bytes};
use super::read::{NpyHeader, parse_npy_header, read_data, read_error};
use super::write::{npy_size, write_atomically, write_npy_to};

/// Deflate expands a byte into at most 1032 (258-byte matches in 2 bits): a
/// member that declares more than this is corrupt, whatever its data holds.
const DEFLATE_MAX_RATIO: u64 = 1032;

/// One array of an `.npz` archive, by its header.
#[derive(Debug)]
pub struct NpzMember {
    name: String,
    header: NpyHeader,
    index: usize,
}

impl NpzMember {
    /// The array's name, without the `.npy` suffix.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The array's header.
    pub fn header(&self) -> &NpyHeader {
        &self.header
    }
}

/// An `.npz` archive whose members' headers have been read, and none of
/// their data: a caller checks names, dtypes and shapes, then reads.
#[derive(Debug)]
pub struct NpzFile {
    path: PathBuf,
    archive: ZipArchive<BufReader<File>>,
    members: Vec<NpzMember>,
}

/// Reads an `.npz` archive: its arrays, named without the `.npy` suffix, in
/// archive order. Members may be stored or deflated.
pub fn read_npz(path: &Path) -> Result<Vec<(String, NpyArray)>, NpyError> {
    NpzFile::open(path)?.read()
}

impl NpzFile {
    /// Opens an archive and reads each member's `.npy` header (inflating
    /// only the header). Each member's size in the archive's directory must be
    /// exactly its header and the data the header declares, and its
    /// compression stored or deflate.
    pub fn open(path: &Path) -> Result<NpzFile, NpyError> {
        let mut file = File::open(path).map_err(|e| read_error(path, e))?;
        let meta = file.metadata().map_err(|e| read_error(path, e))?;
        if !meta.is_file() && !meta.is_dir() && file.seek(SeekFrom::End(0)).is_err() {
            return Err(NpyError::NotSeekable {
                path: path.to_path_buf(),
                kind: special_kind(&meta),
            });
        }
        file.seek(SeekFrom::Start(0))
            .map_err(|e| read_error(path, e))?;

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
        // The zip reader keeps one entry per name: a second would be lost.
        if archive.has_duplicate_names() {
            return Err(NpyError::NotZip {
                path: path.to_path_buf(),
                reason: "it holds two members of the same name".into(),
            });
        }

        let mut members = Vec::with_capacity(archive.len());
        for index in 0..archive.len() {
            members.push(member_header(&mut archive, index, path)?);
        }
        Ok(NpzFile {
            path: path.to_path_buf(),
            archive,
            members,
        })
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The members, in archive order.
    pub fn members(&self) -> &[NpzMember] {
        &self.members
    }

    /// Reads every member's data: exactly the bytes its header declares, and
    /// never more than one byte past them.
    pub fn read(mut self) -> Result<Vec<(String, NpyArray)>, NpyError> {
        let path = self.path.as_path();
        let mut arrays = Vec::with_capacity(self.members.len());
        for m in self.members {
            let corrupt = |reason: String| NpyError::CorruptMember {
                path: path.to_path_buf(),
                name: m.name.clone(),
                reason,
            };
            let broken = |e: io::Error| {
                corrupt(format!(
                    "the zip member is corrupt ({})",
                    plain_zip_words(&e.to_string())
                ))
            };
            let mut member = self
                .archive
                .by_index(m.index)
                .map_err(|e| corrupt(zip_reason(&e)))?;
            let offset = m.header.data_offset();
            let skipped =
                io::copy(&mut (&mut member).take(offset), &mut io::sink()).map_err(broken)?;
            if skipped != offset {
                return Err(corrupt("its header is shorter than it was".into()));
            }
            let what = format!("array `{}` in `{}`", m.name, path.display());
            let array = read_data(&mut member, &m.header, &what, broken)?;
            arrays.push((m.name, array));
        }
        Ok(arrays)
    }
}

/// Reads one member's name and header and checks its sizes against the
/// archive's directory, inflating no more than the header.
fn member_header(
    archive: &mut ZipArchive<BufReader<File>>,
    index: usize,
    path: &Path,
) -> Result<NpzMember, NpyError> {
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
    let unsupported = |how: String| NpyError::UnsupportedMember {
        path: path.to_path_buf(),
        member: name.clone(),
        how,
    };

    // The directory's word, read before any decompression is attempted.
    let raw = archive
        .by_index_raw(index)
        .map_err(|e| corrupt(zip_reason(&e)))?;
    let (method, encrypted, size, compressed) = (
        raw.compression(),
        raw.encrypted(),
        raw.size(),
        raw.compressed_size(),
    );
    drop(raw);
    if encrypted {
        return Err(unsupported("encrypted".into()));
    }
    match method {
        CompressionMethod::Stored if compressed != size => {
            return Err(corrupt(format!(
                "the archive's directory says it is stored, but gives it {size} bytes in {compressed}"
            )));
        }
        CompressionMethod::Stored => {}
        CompressionMethod::Deflated
            if size
                > compressed
                    .saturating_mul(DEFLATE_MAX_RATIO)
                    .saturating_add(1024) =>
        {
            return Err(corrupt(format!(
                "the archive's directory gives it {size} bytes, more than {compressed} deflated bytes can hold"
            )));
        }
        CompressionMethod::Deflated => {}
        other => {
            return Err(unsupported(format!(
                "compressed with {}",
                method_name(other)
            )));
        }
    }

    let mut member = archive
        .by_index(index)
        .map_err(|e| corrupt(zip_reason(&e)))?;
    let head = read_header_bytes(&mut member).map_err(|e| {
        corrupt(format!(
            "the zip member is corrupt ({})",
            plain_zip_words(&e.to_string())
        ))
    })?;
    drop(member);
    let what = format!("array `{stem}` in `{}`", path.display());
    let header = parse_npy_header(&head, &what)?;
    header.check_data_len(size.saturating_sub(header.data_offset()), &what)?;
    Ok(NpzMember {
        name: stem,
        header,
        index,
    })
}

/// A compression method by the name its users know.
#[allow(deprecated)] // `Unsupported` is how the zip crate names a method it has no feature for
fn method_name(method: CompressionMethod) -> String {
    match method {
        CompressionMethod::Unsupported(n) => match n {
            1 => "shrink".into(),
            2..=5 => "reduce".into(),
            6 => "implode".into(),
            9 => "deflate64".into(),
            12 => "bzip2".into(),
            14 => "lzma".into(),
            93 => "zstd".into(),
            95 => "xz".into(),
            98 => "ppmd".into(),
            99 => "AES encryption".into(),
            n => format!("the unknown method {n}"),
        },
        other => format!("{other}"),
    }
}

/// What a file that cannot seek is, in the user's words.
fn special_kind(meta: &Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a pipe";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() {
            return "a terminal or device";
        }
    }
    let _ = meta;
    "not a regular file"
}

fn zip_reason(error: &ZipError) -> String {
    match error {
        ZipError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            "it ends unexpectedly".into()
        }
        ZipError::InvalidArchive(reason) => plain_zip_words(reason),
        ZipError::UnsupportedArchive(reason) => plain_zip_words(reason),
        other => plain_zip_words(&other.to_string()),
    }
}

/// The zip library's reason in a user's words: its messages name its own
/// record types (`zip::format::blocks::ZipLocalEntryBlock`) and zip jargon.
fn plain_zip_words(reason: &str) -> String {
    let lower = reason.to_ascii_lowercase();
    if lower.contains("eocd") || lower.contains("end of central directory") {
        "its end-of-archive record is missing: it is not a zip archive, or it is cut short".into()
    } else if lower.contains("unexpected end") || lower.contains("unexpected eof") {
        "it ends in the middle of a record: it is cut short or damaged".into()
    } else if lower.contains("local file header") {
        "a member's header is damaged".into()
    } else if lower.contains("checksum") || lower.contains("crc") {
        "a member's checksum does not match its data".into()
    } else if reason.contains("::") {
        // An internal type name says nothing to a user: keep only the words.
        reason
            .split_whitespace()
            .filter(|w| !w.contains("::"))
            .collect::<Vec<_>>()
            .join(" ")
            + " (a damaged zip record)"
    } else {
        reason.to_string()
    }
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

#[cfg(test)]
mod tests {
    use super::plain_zip_words;

    /// The zip library's own words, as they reached users, in theirs.
    #[test]
    fn zip_reasons_carry_no_internal_names() {
        for (theirs, ours) in [
            (
                "Unexpected end of zip::format::blocks::ZipLocalEntryBlock",
                "cut short",
            ),
            ("Could not find EOCD", "end-of-archive record is missing"),
            ("Invalid local file header", "header is damaged"),
            ("Invalid checksum", "checksum does not match"),
            ("zip::spec::Thing is odd", "is odd (a damaged zip record)"),
        ] {
            let said = plain_zip_words(theirs);
            assert!(said.contains(ours), "{theirs:?} → {said:?}");
            assert!(!said.contains("::"), "{said:?}");
        }
    }
}
