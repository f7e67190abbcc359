//! The `.npz` container: a zip archive of `NAME.npy` members, read stored
//! (`numpy.savez`) or deflated (`numpy.savez_compressed`), written stored.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use zip::result::ZipError;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::array::{ArrayData, NpyArray};
use super::error::NpyError;
use super::header::MAGIC;
use super::read::{read_error, read_npy_bytes};
use super::write::{npy_size, write_atomically, write_npy_to};

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
