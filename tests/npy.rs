//! NumPy files: the reader against reference files NumPy wrote
//! (`tests/data/npy/`, made by `make_fixtures.py` there), round trips through
//! the writer, the errors, atomic writing, and a fuzz run over broken inputs.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use cellc::data::*;
use cellc::rng::SplitMix64;
use common::scratch;
use ndarray::{ArrayD, IxDyn, ShapeBuilder, arr0, arr1, arr2};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/npy")
        .join(name)
}

/// Fuzz iterations are multiplied by `NPY_FUZZ_SCALE` (default 1) for longer runs.
fn fuzz_scale() -> usize {
    std::env::var("NPY_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn f32s(a: &NpyArray) -> &ArrayD<f32> {
    match &a.data {
        ArrayData::F32(x) => x,
        other => panic!("expected float32 data, got {}", other.dtype_name()),
    }
}

fn f64s(a: &NpyArray) -> &ArrayD<f64> {
    match &a.data {
        ArrayData::F64(x) => x,
        other => panic!("expected float64 data, got {}", other.dtype_name()),
    }
}

fn ints(a: &NpyArray) -> &ArrayD<i64> {
    match &a.data {
        ArrayData::Int(x) => x,
        other => panic!("expected int data, got {}", other.dtype_name()),
    }
}

fn bools(a: &NpyArray) -> &ArrayD<bool> {
    match &a.data {
        ArrayData::Bool(x) => x,
        other => panic!("expected bool data, got {}", other.dtype_name()),
    }
}

fn read(name: &str) -> NpyArray {
    read_npy(&fixture(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn read_err(name: &str) -> (NpyError, String) {
    let e = read_npy(&fixture(name)).expect_err(name);
    let msg = e.to_string();
    (e, msg)
}

// --- reading NumPy's files ----------------------------------------------------

#[test]
fn reads_float32() {
    let a = read("f32.npy");
    assert_eq!(a.dtype, "float32");
    assert_eq!(a.shape(), &[2, 3]);
    assert_eq!(a.data.dtype_name(), "float32");
    let expected = arr2(&[[0.0f32, 1.5, -2.25], [3.125, -0.0, 1e-3]]).into_dyn();
    assert_eq!(f32s(&a), &expected);
    assert!(f32s(&a)[[1, 1]].is_sign_negative(), "-0.0 keeps its sign");
}

#[test]
fn reads_float64_with_specials() {
    let a = read("f64.npy");
    assert_eq!(a.dtype, "float64");
    assert_eq!(a.shape(), &[6]);
    let x = f64s(&a);
    assert_eq!(
        x.iter().take(5).copied().collect::<Vec<_>>(),
        [1.0, -2.5, 1e300, f64::INFINITY, f64::NEG_INFINITY]
    );
    assert!(x[5].is_nan());
}

#[test]
fn reads_big_endian_floats() {
    let a = read("f32_be.npy");
    assert_eq!(a.dtype, "float32 (big-endian)");
    assert_eq!(f32s(&a), &arr2(&[[1.0f32, -2.0], [3.5, 0.25]]).into_dyn());

    let b = read("f64_be.npy");
    assert_eq!(b.dtype, "float64 (big-endian)");
    assert_eq!(f64s(&b), &arr2(&[[1.0, -2.0], [3.5, 1e-300]]).into_dyn());
}

#[test]
fn reads_float16_widened_to_float32() {
    let a = read("f16.npy");
    assert_eq!(a.dtype, "float16");
    let x = f32s(&a);
    assert_eq!(
        x.iter().copied().collect::<Vec<_>>(),
        [1.0, -2.0, 0.5, 65504.0, 2f32.powi(-24), f32::INFINITY, -0.0]
    );
    assert!(x[6].is_sign_negative());
}

#[test]
fn reads_integers() {
    let a = read("int32.npy");
    assert_eq!(a.dtype, "int32");
    assert_eq!(
        ints(&a),
        &arr2(&[[i64::from(i32::MIN), -1, 0], [1, 2, i64::from(i32::MAX)]]).into_dyn()
    );

    let b = read("int64.npy");
    assert_eq!(b.dtype, "int64");
    assert_eq!(ints(&b), &arr1(&[i64::MIN, -1, 0, i64::MAX]).into_dyn());
}

#[test]
fn reads_every_integer_width_from_an_npz() {
    let arrays = read_npz(&fixture("ints.npz")).unwrap();
    let got: Vec<(&str, &str, Vec<i64>)> = arrays
        .iter()
        .map(|(name, a)| {
            (
                name.as_str(),
                a.dtype.as_str(),
                ints(a).iter().copied().collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("int8", "int8", vec![-128, 127]),
            ("uint8", "uint8", vec![0, 255]),
            ("int16_be", "int16 (big-endian)", vec![-32768, 32767]),
            ("uint16", "uint16", vec![65535]),
            ("uint32", "uint32", vec![4294967295]),
            ("uint64", "uint64", vec![i64::MAX]),
        ]
    );
}

#[test]
fn uint64_above_int64_max_is_an_error() {
    let (e, msg) = read_err("uint64_big.npy");
    assert!(matches!(e, NpyError::IntOutOfRange { value, .. } if value == 1 << 63));
    assert!(msg.contains("uint64_big.npy"), "{msg}");
    assert!(msg.contains("9223372036854775808"), "{msg}");
}

#[test]
fn reads_bools() {
    let a = read("bool.npy");
    assert_eq!(a.dtype, "bool");
    assert_eq!(
        bools(&a),
        &arr2(&[[true, false, true], [false, false, true]]).into_dyn()
    );
}

#[test]
fn reads_fortran_order_into_standard_layout() {
    let a = read("fortran_f32.npy");
    let x = f32s(&a);
    assert_eq!(x, &arr2(&[[0.0f32, 1.0, 2.0], [3.0, 4.0, 5.0]]).into_dyn());
    assert!(x.is_standard_layout());

    let b = read("fortran_i64_3d.npy");
    let y = ints(&b);
    assert_eq!(y.shape(), &[2, 3, 4]);
    assert!(y.is_standard_layout());
    // np.arange(24).reshape(2, 3, 4): row-major counting.
    assert_eq!(
        y.iter().copied().collect::<Vec<_>>(),
        (0..24).collect::<Vec<i64>>()
    );
    assert_eq!(y[[1, 2, 3]], 23);
    assert_eq!(y[[0, 1, 0]], 4);
}

#[test]
fn reads_zero_d_and_empty_arrays() {
    let a = read("scalar.npy");
    assert_eq!(a.shape(), &[] as &[usize]);
    assert_eq!(f64s(&a), &arr0(3.5).into_dyn());
    assert_eq!(a.data.len(), 1);

    let b = read("empty.npy");
    assert_eq!(b.shape(), &[0, 3]);
    assert!(b.data.is_empty());
    assert_eq!(b.dtype, "float32");
}

#[test]
fn reads_header_versions_2_and_3() {
    let a = read("v2.npy");
    assert_eq!(a.dtype, "int16");
    assert_eq!(ints(&a), &arr1(&[1, 2, 3]).into_dyn());
    let b = read("v3.npy");
    assert_eq!(f64s(&b), &arr1(&[1.5, 2.5]).into_dyn());
}

#[test]
fn unsupported_dtypes_are_named() {
    for (file, dtype) in [
        ("object.npy", "object"),
        ("structured.npy", "structured"),
        ("strings.npy", "str ('<U2')"),
        ("complex.npy", "complex64"),
    ] {
        let (e, msg) = read_err(file);
        assert!(
            matches!(e, NpyError::UnsupportedDtype { .. }),
            "{file}: {e:?}"
        );
        assert!(msg.contains(file), "{msg}");
        assert!(msg.contains("unsupported dtype"), "{msg}");
        assert!(msg.contains(dtype), "{msg}");
    }
}

fn check_savez_contents(arrays: &[(String, NpyArray)]) {
    let names: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["h.last", "readout.W", "steps", "mask"]);
    assert_eq!(
        f32s(&arrays[0].1),
        &arr2(&[[0.5f32, -1.0, 2.0], [0.0, 0.25, -0.125]]).into_dyn()
    );
    assert_eq!(
        f64s(&arrays[1].1),
        &arr2(&[[1.0, 2.0], [3.0, 4.0]]).into_dyn()
    );
    assert_eq!(ints(&arrays[2].1), &arr1(&[1, 2, 3]).into_dyn());
    assert_eq!(bools(&arrays[3].1), &arr1(&[true, false]).into_dyn());
}

#[test]
fn reads_savez_and_savez_compressed() {
    check_savez_contents(&read_npz(&fixture("savez.npz")).unwrap());
    check_savez_contents(&read_npz(&fixture("savez_compressed.npz")).unwrap());
}

// --- errors ------------------------------------------------------------------

#[test]
fn npz_member_not_npy() {
    let e = read_npz(&fixture("bad_member.npz")).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, NpyError::BadMember { ref name, .. } if name == "notes.txt"));
    assert!(
        msg.contains("bad_member.npz") && msg.contains("`notes.txt`"),
        "{msg}"
    );
}

#[test]
fn npz_member_truncated_names_file_and_array() {
    let e = read_npz(&fixture("truncated_member.npz")).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            NpyError::Truncated {
                expected: 32,
                found: 27,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(msg.contains("array `w` in `"), "{msg}");
    assert!(msg.contains("truncated_member.npz` is truncated"), "{msg}");
    assert!(msg.contains("expected 32 bytes"), "{msg}");
    assert!(msg.contains("found 27"), "{msg}");
}

#[test]
fn npz_member_with_corrupt_zip_data() {
    let dir = scratch("corrupt_member");
    // Stored: flip the last data byte of the first member (its CRC then fails).
    let mut bytes = fs::read(fixture("savez.npz")).unwrap();
    let first_npy_end = {
        let npy = fs::read(fixture("f32.npy")).unwrap(); // same 128-byte header size
        let start = bytes.windows(6).position(|w| w == b"\x93NUMPY").unwrap();
        start + npy.len()
    };
    bytes[first_npy_end - 1] ^= 0x55;
    let path = dir.join("crc.npz");
    fs::write(&path, &bytes).unwrap();
    let e = read_npz(&path).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, NpyError::CorruptMember { .. }), "{e:?}");
    assert!(
        msg.contains("array `h.last` in `") && msg.contains("crc.npz"),
        "{msg}"
    );

    // Deflated: garble the middle of the compressed stream.
    let mut bytes = fs::read(fixture("savez_compressed.npz")).unwrap();
    for b in &mut bytes[60..90] {
        *b ^= 0xa7;
    }
    let path = dir.join("deflate.npz");
    fs::write(&path, &bytes).unwrap();
    let e = read_npz(&path).unwrap_err();
    assert!(e.to_string().contains("deflate.npz"), "{e}");
}

#[test]
fn not_found_and_unreadable() {
    let missing = fixture("no_such_file.npy");
    let e = read_npy(&missing).unwrap_err();
    assert!(matches!(e, NpyError::NotFound { .. }));
    assert_eq!(
        e.to_string(),
        format!("cannot read `{}`: no such file", missing.display())
    );
    let e = read_npz(&fixture("no_such_file.npz")).unwrap_err();
    assert!(matches!(e, NpyError::NotFound { .. }));

    let dir = fixture("");
    let e = read_npy(&dir).unwrap_err();
    assert!(matches!(e, NpyError::Unreadable { .. }), "{e:?}");
    assert!(e.to_string().starts_with("cannot read `"), "{e}");
}

#[test]
fn not_a_numpy_file() {
    let e = read_npy(&fixture("make_fixtures.py")).unwrap_err();
    assert!(matches!(e, NpyError::NotNpy { .. }));
    assert!(
        e.to_string()
            .contains("make_fixtures.py` is not a NumPy file"),
        "{e}"
    );
    // A .npz given to read_npy is no .npy either.
    assert!(matches!(
        read_npy(&fixture("savez.npz")).unwrap_err(),
        NpyError::NotNpy { .. }
    ));
    assert!(matches!(
        read_npy_bytes(b"", "empty").unwrap_err(),
        NpyError::NotNpy { .. }
    ));
}

#[test]
fn npz_that_is_not_a_zip() {
    let e = read_npz(&fixture("make_fixtures.py")).unwrap_err();
    assert!(matches!(e, NpyError::NotZip { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("make_fixtures.py` is not an npz file"),
        "{e}"
    );

    let e = read_npz(&fixture("f32.npy")).unwrap_err();
    assert!(e.to_string().contains("single .npy array"), "{e}");

    let dir = scratch("not_zip");
    let empty = dir.join("empty.npz");
    fs::write(&empty, b"").unwrap();
    assert!(matches!(
        read_npz(&empty).unwrap_err(),
        NpyError::NotZip { .. }
    ));
    // An archive cut short loses its central directory: not a zip any more.
    let bytes = fs::read(fixture("savez.npz")).unwrap();
    let cut = dir.join("cut.npz");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_npz(&cut).unwrap_err();
    assert!(matches!(e, NpyError::NotZip { .. }), "{e:?}");
}

#[test]
fn truncated_data_and_header() {
    let bytes = fs::read(fixture("f32.npy")).unwrap();
    assert_eq!(bytes.len(), 128 + 24);
    let e = read_npy_bytes(&bytes[..140], "`f32.npy`").unwrap_err();
    assert_eq!(
        e.to_string(),
        "`f32.npy` is truncated: expected 24 bytes of data for a float32 array of shape (2, 3), found 12"
    );
    let e = read_npy_bytes(&bytes[..100], "`f32.npy`").unwrap_err();
    assert_eq!(
        e.to_string(),
        "`f32.npy` is truncated: expected 128 bytes of header, found 100"
    );
    let e = read_npy_bytes(&bytes[..4], "`f32.npy`").unwrap_err();
    assert!(matches!(e, NpyError::Truncated { .. }), "{e:?}");
    let e = read_npy_bytes(&bytes[..9], "`f32.npy`").unwrap_err();
    assert!(matches!(e, NpyError::Truncated { .. }), "{e:?}");
}

#[test]
fn bad_headers() {
    let cases: &[(&str, &str)] = &[
        ("{'descr': '<f4', 'fortran_order': False}", "no 'shape' key"),
        ("{'fortran_order': False, 'shape': ()}", "no 'descr' key"),
        ("{'descr': '<f4', 'shape': ()}", "no 'fortran_order' key"),
        (
            "{'descr': '<f4', 'fortran_order': 0, 'shape': ()}",
            "not True or False",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': 3}",
            "not a tuple",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
            "not a valid axis length",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': ('a',)}",
            "not an integer",
        ),
        (
            "{'descr': 4, 'fortran_order': False, 'shape': ()}",
            "not a dtype string",
        ),
        ("['descr']", "not a dict"),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': ()",
            "ends where",
        ),
        (
            "{'descr': '<f4' 'fortran_order': False, 'shape': ()}",
            "unexpected",
        ),
        (
            "{'descr': '<f4', 'fortran_order': Maybe, 'shape': ()}",
            "unexpected name `Maybe`",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': ()} x",
            "after the dict",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296)}",
            "too many elements",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4294967296, 4294967296)}",
            "too many elements",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999999999999999999999,)}",
            "too large",
        ),
    ];
    for (dict, reason) in cases {
        let e = read_npy_bytes(&common::npy::npy_with_header(dict, &[]), "`h.npy`").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, NpyError::BadHeader { .. }), "{dict}: {e:?}");
        assert!(msg.starts_with("`h.npy` has a bad NumPy header: "), "{msg}");
        assert!(msg.contains(reason), "{dict}: {msg}");
    }

    let many = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}",
        "1, ".repeat(65)
    );
    let e = read_npy_bytes(&common::npy::npy_with_header(&many, &[0; 4]), "many").unwrap_err();
    assert!(e.to_string().contains("'shape' has 65 axes"), "{e}");

    let deep = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': {}{}}}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let e = read_npy_bytes(&common::npy::npy_with_header(&deep, &[]), "deep").unwrap_err();
    assert!(e.to_string().contains("nested too deeply"), "{e}");

    let mut bytes = common::npy::npy_with_header(
        "{'descr': '<f4', 'fortran_order': False, 'shape': ()}",
        &[0; 4],
    );
    bytes[6] = 4;
    let e = read_npy_bytes(&bytes, "`v.npy`").unwrap_err();
    assert!(e.to_string().contains("format version is 4.0"), "{e}");
}

#[test]
fn lenient_header_spellings() {
    // Python 2 longs, double quotes, extra keys, a list shape, no trailing comma.
    let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    for dict in [
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2L,), }",
        "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,)}",
        "{'shape': [2], 'fortran_order': False, 'descr': '<f4', 'extra': None}",
        "{'descr':'<f4','fortran_order':True,'shape':(1, 2)}",
    ] {
        let a = read_npy_bytes(&common::npy::npy_with_header(dict, &data), "x")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            f32s(&a).iter().copied().collect::<Vec<_>>(),
            [1.0, 2.0],
            "{dict}"
        );
    }
    // Bytes past the data are an error: the header declares the data's size.
    let mut long = data.clone();
    long.extend_from_slice(&[9; 7]);
    let e = read_npy_bytes(
        &common::npy::npy_with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
            &long,
        ),
        "`x.npy`",
    )
    .unwrap_err();
    assert!(
        matches!(e, NpyError::TrailingData { extra: Some(7), .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "`x.npy` has 7 bytes after the array's data (a float32 array of shape (2,) is 8 bytes)"
    );
}

// --- writing -------------------------------------------------------------------

#[test]
fn writes_what_numpy_writes_byte_for_byte() {
    let dir = scratch("byte_identical");
    for name in [
        "f32.npy",
        "f64.npy",
        "int64.npy",
        "bool.npy",
        "scalar.npy",
        "empty.npy",
    ] {
        let a = read(name);
        let out = dir.join(name);
        write_npy(&out, &a.data).unwrap();
        assert_eq!(
            fs::read(&out).unwrap(),
            fs::read(fixture(name)).unwrap(),
            "{name} differs from numpy.save's bytes"
        );
    }
}

fn sample_arrays() -> Vec<(String, ArrayData)> {
    let transposed = arr2(&[[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]).reversed_axes();
    vec![
        (
            "h.last".into(),
            ArrayData::F32(arr2(&[[0.5f32, -1.0], [2.0, f32::MIN_POSITIVE]]).into_dyn()),
        ),
        (
            "readout.W".into(),
            ArrayData::F64(arr1(&[1.0, f64::MAX, -0.0, f64::EPSILON]).into_dyn()),
        ),
        (
            "steps".into(),
            ArrayData::Int(arr1(&[i64::MIN, 0, i64::MAX]).into_dyn()),
        ),
        (
            "mask".into(),
            ArrayData::Bool(arr2(&[[true], [false]]).into_dyn()),
        ),
        ("scalar".into(), ArrayData::F64(arr0(2.5).into_dyn())),
        (
            "empty".into(),
            ArrayData::Int(ArrayD::zeros(IxDyn(&[3, 0, 2]))),
        ),
        ("transposed".into(), ArrayData::F32(transposed.into_dyn())),
        (
            "fortran".into(),
            ArrayData::F64(
                ArrayD::from_shape_vec(IxDyn(&[2, 3]).f(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0])
                    .unwrap(),
            ),
        ),
    ]
}

#[test]
fn npy_round_trip() {
    let dir = scratch("npy_round_trip");
    for (name, data) in sample_arrays() {
        let path = dir.join(format!("{name}.npy"));
        write_npy(&path, &data).unwrap();
        let back = read_npy(&path).unwrap();
        assert_eq!(back.data, data, "{name}");
        assert_eq!(back.dtype, data.dtype_name());
        let bytes = fs::read(&path).unwrap();
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!(
            (10 + header_len) % 64,
            0,
            "{name}: data is not 64-byte aligned"
        );
        assert_eq!(bytes[10 + header_len - 1], b'\n');
    }
    // Non-standard layouts are written in logical (C) order.
    let t = read_npy(&dir.join("transposed.npy")).unwrap();
    assert_eq!(
        f32s(&t),
        &arr2(&[[1.0f32, 4.0], [2.0, 5.0], [3.0, 6.0]]).into_dyn()
    );
    assert_eq!(
        entries(&dir).len(),
        sample_arrays().len(),
        "no temp files left"
    );
}

#[test]
fn npz_round_trip_keeps_names_and_order() {
    let dir = scratch("npz_round_trip");
    let arrays = sample_arrays();
    let path = dir.join("state.npz");
    write_npz(&path, &arrays).unwrap();
    let back = read_npz(&path).unwrap();
    assert_eq!(back.len(), arrays.len());
    for ((name, data), (back_name, back_array)) in arrays.iter().zip(&back) {
        assert_eq!(name, back_name);
        assert_eq!(&back_array.data, data, "{name}");
    }
    // An empty archive is fine too.
    let none = dir.join("none.npz");
    write_npz(&none, &[]).unwrap();
    assert!(read_npz(&none).unwrap().is_empty());
    assert_eq!(entries(&dir), ["none.npz", "state.npz"]);
}

#[test]
fn npz_members_are_stored_npy_files() {
    let dir = scratch("npz_stored");
    let path = dir.join("a.npz");
    let data = ArrayData::F32(arr1(&[1.0f32, 2.0]).into_dyn());
    write_npz(&path, &[("readout.W".into(), data.clone())]).unwrap();
    let bytes = fs::read(&path).unwrap();
    // The local header names the member; the member is the .npy bytes, uncompressed.
    assert!(bytes.windows(13).any(|w| w == b"readout.W.npy"));
    let single = dir.join("single.npy");
    write_npy(&single, &data).unwrap();
    let npy = fs::read(&single).unwrap();
    assert!(bytes.windows(npy.len()).any(|w| w == npy.as_slice()));
}

#[test]
fn overwrite_replaces_the_target() {
    let dir = scratch("overwrite");
    let path = dir.join("x.npy");
    fs::write(&path, b"old contents").unwrap();
    let data = ArrayData::Int(arr1(&[7, 8, 9]).into_dyn());
    write_npy(&path, &data).unwrap();
    assert_eq!(read_npy(&path).unwrap().data, data);
    assert_eq!(entries(&dir), ["x.npy"]);
}

#[test]
fn writing_into_a_missing_directory_creates_nothing() {
    let dir = scratch("missing_dir");
    let missing = dir.join("not").join("there");
    let target = missing.join("x.npy");
    let data = ArrayData::F32(arr1(&[1.0f32]).into_dyn());
    let e = write_npy(&target, &data).unwrap_err();
    assert!(matches!(e, NpyError::MissingDirectory { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "cannot write `{}`: the directory `{}` does not exist",
            target.display(),
            missing.display()
        )
    );
    let e = write_npz(&missing.join("x.npz"), &[("a".into(), data)]).unwrap_err();
    assert!(matches!(e, NpyError::MissingDirectory { .. }), "{e:?}");
    assert!(!dir.join("not").exists());
    assert!(entries(&dir).is_empty());
}

#[test]
fn failed_writes_leave_no_files() {
    let dir = scratch("failed_write");
    let data = ArrayData::Bool(arr1(&[true]).into_dyn());

    // The target is a directory: the rename fails, the temp file goes.
    let target = dir.join("taken");
    fs::create_dir(&target).unwrap();
    let e = write_npy(&target, &data).unwrap_err();
    assert!(matches!(e, NpyError::Write { .. }), "{e:?}");
    assert!(e.to_string().starts_with("cannot write `"), "{e}");
    let e = write_npz(&target, &[("a".into(), data.clone())]).unwrap_err();
    assert!(matches!(e, NpyError::Write { .. }), "{e:?}");
    assert_eq!(entries(&dir), ["taken"]);
    assert!(entries(&target).is_empty());

    // The "directory" is a file.
    let file = dir.join("plain");
    fs::write(&file, b"").unwrap();
    let e = write_npy(&file.join("x.npy"), &data).unwrap_err();
    assert!(e.to_string().contains("is not a directory"), "{e}");

    // Names write_npz cannot store.
    let out = dir.join("bad.npz");
    let e = write_npz(
        &out,
        &[("a".into(), data.clone()), ("a".into(), data.clone())],
    )
    .unwrap_err();
    assert!(matches!(e, NpyError::BadName { .. }), "{e:?}");
    assert!(
        e.to_string().contains("the array name `a` is given twice"),
        "{e}"
    );
    let e = write_npz(&out, &[(String::new(), data)]).unwrap_err();
    assert!(e.to_string().contains("an array name is empty"), "{e}");
    assert_eq!(entries(&dir), ["plain", "taken"]);
}

// --- no panic on any input ------------------------------------------------------

/// `n` random bytes.
fn random_bytes(rng: &mut SplitMix64, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

const NPY_FIXTURES: &[&str] = &[
    "f32.npy",
    "f64.npy",
    "f32_be.npy",
    "f64_be.npy",
    "f16.npy",
    "int32.npy",
    "int64.npy",
    "uint64_big.npy",
    "bool.npy",
    "fortran_f32.npy",
    "fortran_i64_3d.npy",
    "scalar.npy",
    "empty.npy",
    "v2.npy",
    "v3.npy",
    "object.npy",
    "structured.npy",
    "strings.npy",
    "complex.npy",
];

const NPZ_FIXTURES: &[&str] = &[
    "savez.npz",
    "savez_compressed.npz",
    "ints.npz",
    "bad_member.npz",
    "truncated_member.npz",
];

fn check_npy(bytes: &[u8]) {
    if let Err(e) = read_npy_bytes(bytes, "`fuzz.npy`") {
        assert!(e.to_string().contains("`fuzz.npy`"), "{e}");
    }
}

#[test]
fn fuzz_npy_reader() {
    let mut rng = SplitMix64::new(1);
    for name in NPY_FIXTURES {
        let good = fs::read(fixture(name)).unwrap();
        // Every truncation.
        for len in 0..good.len() {
            let e = read_npy_bytes(&good[..len], "`fuzz.npy`").unwrap_err();
            assert!(e.to_string().contains("`fuzz.npy`"), "{e}");
        }
        // Random byte changes, in the header and in the data.
        for _ in 0..400 * fuzz_scale() {
            let mut bytes = good.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(bytes.len());
                bytes[i] = rng.next_u64() as u8;
            }
            check_npy(&bytes);
        }
        // Header text spliced with random printable characters.
        for _ in 0..200 * fuzz_scale() {
            let mut bytes = good.clone();
            let i = 10 + rng.below(60);
            let alphabet = b"{}()[],:'\"0123456789-LTFNrue \n";
            bytes[i] = alphabet[rng.below(alphabet.len())];
            check_npy(&bytes);
        }
    }
    // Pure noise, and noise behind a valid magic string and version.
    for _ in 0..3000 * fuzz_scale() {
        let n = rng.below(300);
        check_npy(&random_bytes(&mut rng, n));
        let mut bytes = b"\x93NUMPY".to_vec();
        bytes.push(1 + rng.below(3) as u8);
        bytes.push(0);
        bytes.extend(random_bytes(&mut rng, n));
        check_npy(&bytes);
    }
    // Random headers built from header-like tokens.
    let tokens = [
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        ",",
        ":",
        " ",
        "'descr'",
        "'shape'",
        "'fortran_order'",
        "'<f4'",
        "'>f8'",
        "'|b1'",
        "'<u8'",
        "'|O'",
        "True",
        "False",
        "None",
        "0",
        "3",
        "18446744073709551615",
        "-2",
        "'",
        "\"",
        "\\",
    ];
    for _ in 0..5000 * fuzz_scale() {
        let mut dict = String::new();
        for _ in 0..rng.below(40) {
            dict.push_str(tokens[rng.below(tokens.len())]);
        }
        let n = rng.below(64);
        let data = random_bytes(&mut rng, n);
        check_npy(&common::npy::npy_with_header(&dict, &data));
    }
}

#[test]
fn fuzz_npz_reader() {
    let dir = scratch("fuzz_npz");
    let path = dir.join("fuzz.npz");
    let mut rng = SplitMix64::new(2);
    let check = |bytes: &[u8]| {
        fs::write(&path, bytes).unwrap();
        if let Err(e) = read_npz(&path) {
            assert!(e.to_string().contains("fuzz.npz"), "{e}");
        }
    };
    for name in NPZ_FIXTURES {
        let good = fs::read(fixture(name)).unwrap();
        for len in (0..good.len()).step_by(3) {
            check(&good[..len]);
        }
        for _ in 0..300 * fuzz_scale() {
            let mut bytes = good.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(bytes.len());
                bytes[i] = rng.next_u64() as u8;
            }
            check(&bytes);
        }
    }
    for _ in 0..300 * fuzz_scale() {
        let n = rng.below(400);
        let mut bytes = b"PK\x03\x04".to_vec();
        bytes.extend(random_bytes(&mut rng, n));
        check(&bytes);
    }
    assert_eq!(entries(&dir), ["fuzz.npz"]);
}

// --- sizes: the header's word, checked before any data is read ------------------

/// An archive of raw `.npy` members, made with the zip crate.
fn zip_bytes(members: &[(&str, &[u8])], deflate: bool) -> Vec<u8> {
    common::npy::zip_of(members, deflate)
}

/// The offsets of every local header (`PK\3\4`) and central directory entry
/// (`PK\1\2`) in a small archive.
fn zip_records(bytes: &[u8], signature: &[u8; 4]) -> Vec<usize> {
    bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| w == signature)
        .map(|(i, _)| i)
        .collect()
}

/// Sets a little-endian `u32` at `at`.
fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// `(3,)` float64: 1, 2, 3.
fn small_f64() -> Vec<u8> {
    let data: Vec<u8> = [1.0f64, 2.0, 3.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    common::npy::npy_with_header(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
        &data,
    )
}

#[test]
fn npz_member_with_trailing_data_is_refused_by_its_declared_size() {
    let dir = scratch("npz_trailing");
    let mut member = small_f64();
    member.resize(member.len() + (1 << 20), 0);
    for deflate in [false, true] {
        let path = dir.join("t.npz");
        fs::write(&path, zip_bytes(&[("x.npy", &member)], deflate)).unwrap();
        let e = read_npz(&path).unwrap_err();
        assert!(
            matches!(e, NpyError::TrailingData { extra: Some(n), declared: 24, .. } if n == 1 << 20),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "array `x` in `{}` has 1048576 bytes after the array's data (a float64 array of shape (3,) is 24 bytes)",
                path.display()
            )
        );
    }
}

#[test]
fn npz_member_longer_than_its_directory_says_is_refused_after_one_byte() {
    // The directory says the member is exactly its array; the deflate stream
    // holds 1 MiB more. Reading stops one byte past the declared size.
    let dir = scratch("npz_lying_directory");
    let exact = small_f64();
    let mut member = exact.clone();
    member.resize(member.len() + (1 << 20), 0);
    let mut bytes = zip_bytes(&[("x.npy", &member)], true);
    let central = zip_records(&bytes, b"PK\x01\x02");
    put_u32(&mut bytes, central[0] + 24, exact.len() as u32);
    let path = dir.join("lie.npz");
    fs::write(&path, &bytes).unwrap();
    let file = NpzFile::open(&path).unwrap();
    assert_eq!(file.members()[0].header().data_len(), 24);
    // The zip layer or the reader's one extra byte: either way an error
    // naming the array, not 1 MiB inflated.
    let e = file.read().unwrap_err();
    assert!(
        matches!(
            e,
            NpyError::TrailingData { extra: None, .. } | NpyError::CorruptMember { .. }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("array `x` in `"), "{e}");
}

#[test]
fn npz_member_declaring_a_huge_shape_is_refused_from_its_header() {
    // [1073741824] float64 is 8 GiB; the member holds 16 bytes of data.
    let dir = scratch("npz_huge_shape");
    let member = common::npy::npy_with_header(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1073741824,), }",
        &[0; 16],
    );
    for deflate in [false, true] {
        let path = dir.join("huge.npz");
        fs::write(&path, zip_bytes(&[("x.npy", &member)], deflate)).unwrap();
        let e = read_npz(&path).unwrap_err();
        assert!(
            matches!(
                e,
                NpyError::Truncated {
                    expected: 8589934592,
                    found: 16,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "array `x` in `{}` is truncated: expected 8589934592 bytes of data for a float64 array of shape (1073741824,), found 16",
                path.display()
            )
        );
    }
    // A directory that agrees with the header cannot make 8 GiB out of a few
    // deflated bytes either.
    let mut bytes = zip_bytes(&[("x.npy", &member)], true);
    let central = zip_records(&bytes, b"PK\x01\x02");
    put_u32(&mut bytes, central[0] + 24, u32::MAX);
    let path = dir.join("lie.npz");
    fs::write(&path, &bytes).unwrap();
    let e = read_npz(&path).unwrap_err();
    assert!(matches!(e, NpyError::CorruptMember { .. }), "{e:?}");
    assert!(e.to_string().contains("deflated bytes can hold"), "{e}");
}

#[test]
fn npz_member_stored_with_two_sizes_is_corrupt() {
    let dir = scratch("npz_stored_sizes");
    let mut bytes = zip_bytes(&[("x.npy", &small_f64())], false);
    let central = zip_records(&bytes, b"PK\x01\x02");
    put_u32(&mut bytes, central[0] + 24, 1 << 30);
    let path = dir.join("s.npz");
    fs::write(&path, &bytes).unwrap();
    let e = read_npz(&path).unwrap_err();
    assert!(matches!(e, NpyError::CorruptMember { .. }), "{e:?}");
    assert!(e.to_string().contains("says it is stored"), "{e}");
}

#[test]
fn npy_file_length_is_checked_against_its_header() {
    let dir = scratch("npy_length");
    let good = fs::read(fixture("f32.npy")).unwrap();
    let long = dir.join("long.npy");
    let mut bytes = good.clone();
    bytes.extend_from_slice(&[0; 5]);
    fs::write(&long, &bytes).unwrap();
    let file = NpyFile::open(&long);
    assert!(
        matches!(file, Err(NpyError::TrailingData { extra: Some(5), .. })),
        "{file:?}"
    );
    let short = dir.join("short.npy");
    fs::write(&short, &good[..good.len() - 4]).unwrap();
    let e = read_npy(&short).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "`{}` is truncated: expected 24 bytes of data for a float32 array of shape (2, 3), found 20",
            short.display()
        )
    );
    // The header alone is enough to see the shape and dtype.
    let file = NpyFile::open(&fixture("f32.npy")).unwrap();
    assert_eq!(file.header().shape(), &[2, 3]);
    assert_eq!(file.header().dtype(), "float32");
    assert!(file.header().is_float());
    assert_eq!(file.header().data_len(), 24);
    assert_eq!(file.read().unwrap().shape(), &[2, 3]);
}

#[test]
fn header_length_beyond_the_limit_is_refused_unread() {
    // A version 2.0 header may claim up to 4 GiB.
    let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    bytes.extend_from_slice(b"{'descr': '<f4'");
    let e = read_npy_bytes(&bytes, "`h.npy`").unwrap_err();
    assert!(matches!(e, NpyError::BadHeader { .. }), "{e:?}");
    assert!(e.to_string().contains("header length is 4294967295"), "{e}");
}

#[test]
fn unsupported_compression_is_named() {
    let dir = scratch("npz_methods");
    for (method, name) in [
        (12u16, "bzip2"),
        (14, "lzma"),
        (93, "zstd"),
        (77, "the unknown method 77"),
    ] {
        let mut bytes = zip_bytes(&[("x.npy", &small_f64())], false);
        for at in zip_records(&bytes, b"PK\x03\x04") {
            bytes[at + 8..at + 10].copy_from_slice(&method.to_le_bytes());
        }
        for at in zip_records(&bytes, b"PK\x01\x02") {
            bytes[at + 10..at + 12].copy_from_slice(&method.to_le_bytes());
        }
        let path = dir.join("m.npz");
        fs::write(&path, &bytes).unwrap();
        let e = read_npz(&path).unwrap_err();
        assert!(matches!(e, NpyError::UnsupportedMember { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "`x.npy` in `{}` is compressed with {name}, which cellc does not support",
                path.display()
            )),
            "{msg}"
        );
        assert!(!msg.contains("corrupt"), "{msg}");
    }
}

// --- through the command line ------------------------------------------------------

/// Runs `cellc ARGS` with `stdin` written into its standard input through a
/// pipe.
fn cellc_with_stdin(dir: &Path, args: &[&str], stdin: Vec<u8>) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_cellc"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the cellc binary runs");
    let mut pipe = child.stdin.take().expect("a pipe");
    // cellc may stop reading early; a broken pipe here is no failure.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&stdin);
    });
    let out = child.wait_with_output().expect("cellc ends");
    writer.join().unwrap();
    out
}

fn elman() -> String {
    format!("{}/models/elman.cell", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn npz_from_a_pipe_says_it_needs_a_file() {
    let dir = scratch("npz_pipe");
    let archive = dir.join("p.npz");
    let u = ArrayData::F32(ArrayD::zeros(IxDyn(&[3, 2])));
    write_npz(&archive, &[("U".into(), u)]).unwrap();
    let out = cellc_with_stdin(
        &dir,
        &["run", &elman(), "--params", "/dev/stdin", "-o", "o.npz"],
        fs::read(&archive).unwrap(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "`/dev/stdin` is a pipe (not seekable): .npz archives need a file; write it to a file first"
        ),
        "{stderr}"
    );
    assert!(!dir.join("o.npz").exists());
}

#[test]
fn npy_input_from_a_pipe_is_read_as_a_stream() {
    let dir = scratch("npy_pipe");
    let x = dir.join("x.npy");
    write_npy(&x, &ArrayData::F32(ArrayD::zeros(IxDyn(&[4, 2, 3])))).unwrap();
    let good = fs::read(&x).unwrap();
    let args = [
        "run",
        &elman(),
        "--input",
        "/dev/stdin",
        "-D",
        "H=5",
        "-D",
        "V_rows=2",
        "-o",
        "o.npz",
    ];
    let out = cellc_with_stdin(&dir, &args, good.clone());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = read_npz(&dir.join("o.npz")).unwrap();
    let h = back.iter().find(|(n, _)| n == "h").expect("h");
    assert_eq!(h.1.shape(), &[4, 2, 5]);

    // A stream longer than its header says is refused, as a file is.
    fs::remove_file(dir.join("o.npz")).unwrap();
    let mut long = good.clone();
    long.extend_from_slice(&[0; 100]);
    let out = cellc_with_stdin(&dir, &args, long);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`/dev/stdin` has more bytes after the array's data"),
        "{stderr}"
    );
    // And a shorter one.
    let out = cellc_with_stdin(&dir, &args, good[..good.len() - 8].to_vec());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`/dev/stdin` is truncated: expected 96 bytes of data"),
        "{stderr}"
    );
    assert!(!dir.join("o.npz").exists());
}

/// A stored `.npz` whose last member's data has its last byte flipped: its
/// header reads, its data fails the checksum.
fn params_with_corrupt_data(path: &Path, members: &[(&str, &[usize])]) {
    let arrays: Vec<(String, ArrayData)> = members
        .iter()
        .map(|(n, s)| (n.to_string(), ArrayData::F32(ArrayD::zeros(IxDyn(s)))))
        .collect();
    write_npz(path, &arrays).unwrap();
    let mut bytes = fs::read(path).unwrap();
    let central = zip_records(&bytes, b"PK\x01\x02")[0];
    // The last data byte of the last member, just before the directory's first
    // entry (writer-made archives have no data descriptors).
    bytes[central - 1] ^= 0x5a;
    fs::write(path, &bytes).unwrap();
    assert!(matches!(
        read_npz(path).unwrap_err(),
        NpyError::CorruptMember { .. }
    ));
}

#[test]
fn parameter_shapes_are_checked_against_the_cell_before_their_data_is_read() {
    let dir = scratch("declared_shapes");
    let p = dir.join("p.npz");
    // U is [H, X]: a rank-3 U is refused from its header, before the corrupt
    // data of V is met.
    params_with_corrupt_data(&p, &[("U", &[2, 3, 4]), ("W", &[2, 2]), ("V", &[2, 2])]);
    let out = common::cellc(&dir, &["run", &elman(), "--params", "p.npz", "-o", "o.npz"]);
    let stderr = common::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("parameter `U` has shape [2, 3, 4], expected [H, X]"),
        "{stderr}"
    );

    // Dimensions too: W says H = 2, -D says 5.
    params_with_corrupt_data(&p, &[("U", &[2, 3]), ("W", &[2, 2]), ("V", &[2, 2])]);
    let out = common::cellc(
        &dir,
        &[
            "run",
            &elman(),
            "--params",
            "p.npz",
            "-D",
            "H=5",
            "-o",
            "o.npz",
        ],
    );
    let stderr = common::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("dimension `H` is 5 from -D H=5"),
        "{stderr}"
    );

    // A parameter left out.
    params_with_corrupt_data(&p, &[("U", &[2, 3]), ("V", &[2, 2])]);
    let out = common::cellc(&dir, &["run", &elman(), "--params", "p.npz", "-o", "o.npz"]);
    let stderr = common::stderr(&out);
    assert!(
        stderr.contains("parameter `W` is missing: expected an array of shape [H, H]"),
        "{stderr}"
    );

    // A name the cell does not have.
    params_with_corrupt_data(&p, &[("Q", &[2])]);
    let out = common::cellc(&dir, &["run", &elman(), "--params", "p.npz", "-o", "o.npz"]);
    let stderr = common::stderr(&out);
    assert!(
        stderr.contains("`Q` is not a parameter of cell `elman`"),
        "{stderr}"
    );

    // A dtype that is no float, from the header too.
    let ints = dir.join("i.npz");
    write_npz(
        &ints,
        &[("U".into(), ArrayData::Int(ArrayD::zeros(IxDyn(&[2, 3]))))],
    )
    .unwrap();
    let mut bytes = fs::read(&ints).unwrap();
    let central = zip_records(&bytes, b"PK\x01\x02")[0];
    bytes[central - 1] ^= 0x5a;
    fs::write(&ints, &bytes).unwrap();
    let out = common::cellc(&dir, &["run", &elman(), "--params", "i.npz", "-o", "o.npz"]);
    let stderr = common::stderr(&out);
    assert!(
        stderr.contains("parameter `U` in `i.npz` has dtype int64; expected float32"),
        "{stderr}"
    );
    assert!(!dir.join("o.npz").exists());
}
