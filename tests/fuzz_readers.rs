//! Fuzzing the NumPy readers: random bytes given as `.npy` and `.npz`, and
//! valid files from cellc's own writer with bytes flipped, cut or added. Every
//! input reads or fails with an error naming the file, never a panic; and the
//! memory a read takes is bounded by what the input declares, measured by a
//! counting allocator (per thread, so parallel tests do not mix).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fs;
use std::path::Path;

use cellc::data::*;
use common::npy::zip_of;
use common::scratch;
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;

// --- a counting allocator --------------------------------------------------------

struct Counting;

thread_local! {
    // Const-initialised cells without destructors: safe to touch from the
    // allocator itself.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result and the most memory this thread held
/// during it beyond what it held before.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(|p| p.get());
    (out, (peak - base).max(0) as usize)
}

/// What any read may take beyond the array itself: read buffers, a 64 KiB
/// decoding block, the inflater's window and tables, the zip directory.
const OVERHEAD: usize = 1 << 20;

// --- inputs ----------------------------------------------------------------------

/// A small array of any of the four kinds, up to three axes.
fn array() -> impl Strategy<Value = ArrayData> {
    (prop::collection::vec(0usize..5, 0..4), 0u8..4, any::<u64>()).prop_map(
        |(shape, kind, seed)| {
            let n: usize = shape.iter().product();
            let v = |i: usize| seed.wrapping_mul(i as u64 + 1).rotate_left(i as u32 % 64);
            let dim = IxDyn(&shape);
            match kind {
                0 => ArrayData::F32(
                    ArrayD::from_shape_vec(
                        dim,
                        (0..n).map(|i| f32::from_bits(v(i) as u32)).collect(),
                    )
                    .unwrap(),
                ),
                1 => ArrayData::F64(
                    ArrayD::from_shape_vec(dim, (0..n).map(|i| f64::from_bits(v(i))).collect())
                        .unwrap(),
                ),
                2 => ArrayData::Int(
                    ArrayD::from_shape_vec(dim, (0..n).map(|i| v(i) as i64).collect()).unwrap(),
                ),
                _ => ArrayData::Bool(
                    ArrayD::from_shape_vec(dim, (0..n).map(|i| v(i) % 2 == 0).collect()).unwrap(),
                ),
            }
        },
    )
}

/// The bytes cellc's writer makes for `a`.
fn npy_bytes(dir: &Path, a: &ArrayData) -> Vec<u8> {
    let path = dir.join("a.npy");
    write_npy(&path, a).unwrap();
    fs::read(&path).unwrap()
}

/// A change to valid bytes.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR the byte at (index mod length) with a non-zero value.
    Flip(usize, u8),
    /// Keep the first (index mod length) bytes.
    Cut(usize),
    /// Append bytes.
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<usize>().prop_map(Mutation::Cut),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Extend),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Flip(i, x) if !bytes.is_empty() => {
            let n = bytes.len();
            bytes[i % n] ^= x;
        }
        Mutation::Flip(..) => {}
        Mutation::Cut(i) => {
            let n = bytes.len();
            bytes.truncate(i % n.max(1));
        }
        Mutation::Extend(more) => bytes.extend_from_slice(more),
    }
}

/// The length of an .npy file's magic, version, length field and header.
fn npy_header_len(npy: &[u8]) -> usize {
    if npy[6] == 1 {
        10 + u16::from_le_bytes([npy[8], npy[9]]) as usize
    } else {
        12 + u32::from_le_bytes([npy[8], npy[9], npy[10], npy[11]]) as usize
    }
}

/// The bytes a successful read may hold: the widened elements (8 bytes each
/// at most), twice for a Fortran-order copy.
fn bound(array: &NpyArray) -> usize {
    array.data.len() * 8 * 2 + OVERHEAD
}

/// Reads `bytes` as an `.npy` file at `path`; any error names the file, and
/// the memory taken is bounded by what was declared.
fn check_npy_file(path: &Path, bytes: &[u8]) -> Result<NpyArray, NpyError> {
    fs::write(path, bytes).unwrap();
    let (result, peak) = peak_during(|| read_npy(path));
    match &result {
        Ok(a) => assert!(peak <= bound(a), "{peak} bytes for {:?}", a.shape()),
        Err(e) => {
            assert!(e.to_string().contains("fuzz.npy"), "{e}");
            assert!(
                peak <= OVERHEAD + 16 * bytes.len(),
                "{peak} bytes for an error: {e}"
            );
        }
    }
    result
}

fn check_npz_file(path: &Path, bytes: &[u8]) -> Result<Vec<(String, NpyArray)>, NpyError> {
    fs::write(path, bytes).unwrap();
    let (result, peak) = peak_during(|| read_npz(path));
    match &result {
        Ok(arrays) => {
            let most: usize = arrays.iter().map(|(_, a)| bound(a)).sum();
            assert!(
                peak <= most + OVERHEAD,
                "{peak} bytes for {} arrays",
                arrays.len()
            );
        }
        Err(e) => assert!(e.to_string().contains("fuzz.npz"), "{e}"),
    }
    result
}

// --- properties ----------------------------------------------------------------------

proptest! {
    #![proptest_config(common::proptest_config(256))]

    #[test]
    fn random_bytes_as_npy_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let dir = scratch("fuzz_readers_npy");
        let _ = check_npy_file(&dir.join("fuzz.npy"), &bytes);
        let mut magic = b"\x93NUMPY\x01\x00".to_vec();
        magic.extend_from_slice(&bytes);
        let _ = check_npy_file(&dir.join("fuzz.npy"), &magic);
    }

    #[test]
    fn random_bytes_as_npz_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let dir = scratch("fuzz_readers_npz");
        let _ = check_npz_file(&dir.join("fuzz.npz"), &bytes);
        let mut zip = b"PK\x03\x04".to_vec();
        zip.extend_from_slice(&bytes);
        let _ = check_npz_file(&dir.join("fuzz.npz"), &zip);
    }

    #[test]
    fn mutated_npy_files_read_or_fail_cleanly(
        a in array(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let dir = scratch("fuzz_readers_mutated_npy");
        let good = npy_bytes(&dir, &a);
        let back = check_npy_file(&dir.join("fuzz.npy"), &good).unwrap();
        // Compared as bytes: NaN is no equal of itself.
        prop_assert_eq!(npy_bytes(&dir, &back.data), good.clone());
        let mut bytes = good.clone();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        let result = check_npy_file(&dir.join("fuzz.npy"), &bytes);
        // With its header intact, a file of another length than the header
        // declares must not read. (A cut then an extension can rebuild the
        // same length with other data, a good file; a flip or a cut into the
        // header may declare anything.)
        let header = npy_header_len(&good);
        let intact = bytes.len() >= header && bytes[..header] == good[..header];
        if intact && bytes.len() != good.len() {
            prop_assert!(result.is_err(), "{} bytes instead of {} read", bytes.len(), good.len());
        }
    }

    #[test]
    fn mutated_npz_files_read_or_fail_cleanly(
        arrays in prop::collection::vec(array(), 0..4),
        mutations in prop::collection::vec(mutation(), 1..4),
        deflate in any::<bool>(),
    ) {
        let dir = scratch("fuzz_readers_mutated_npz");
        let named: Vec<(String, ArrayData)> = arrays
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("a{i}"), a.clone()))
            .collect();
        let npys: Vec<(String, Vec<u8>)> = named
            .iter()
            .map(|(n, a)| (format!("{n}.npy"), npy_bytes(&dir, a)))
            .collect();
        let members: Vec<(&str, &[u8])> =
            npys.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
        let good = zip_of(&members, deflate);
        let back = check_npz_file(&dir.join("fuzz.npz"), &good).unwrap();
        prop_assert_eq!(back.len(), named.len());
        let mut bytes = good;
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        let _ = check_npz_file(&dir.join("fuzz.npz"), &bytes);
    }

    /// Headers that declare far more than the data holds: an error, and the
    /// declared size is never allocated.
    #[test]
    fn huge_declared_shapes_are_refused_without_allocating(
        shape in prop::collection::vec(1usize..1 << 20, 1..4),
        descr in prop::sample::select(vec!["<f8", "<f4", "|b1", "<u8", ">i2", "<f2"]),
        data in prop::collection::vec(any::<u8>(), 0..64),
        deflate in any::<bool>(),
    ) {
        let count: u128 = shape.iter().map(|&n| n as u128).product();
        prop_assume!(count > 1 << 24);
        let dims: Vec<String> = shape.iter().map(|n| n.to_string()).collect();
        let dict = format!(
            "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({},), }}",
            dims.join(", ")
        );
        let npy = common::npy::npy_with_header(&dict, &data);
        let dir = scratch("fuzz_readers_huge");
        let (result, peak) = peak_during(|| check_npy_file(&dir.join("fuzz.npy"), &npy));
        prop_assert!(result.is_err());
        prop_assert!(peak <= OVERHEAD, "{} bytes", peak);
        let (result, peak) = peak_during(|| {
            check_npz_file(&dir.join("fuzz.npz"), &zip_of(&[("x.npy", &npy)], deflate))
        });
        prop_assert!(result.is_err());
        prop_assert!(peak <= 2 * OVERHEAD, "{} bytes", peak);
    }
}

/// A deflated member whose array is followed by 8 MiB of zeros: refused from
/// the directory's size, without inflating them.
#[test]
fn trailing_zeros_in_a_deflated_member_are_not_inflated() {
    let dir = scratch("fuzz_readers_trailing");
    let mut npy = common::npy::npy_with_header(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
        &[0; 24],
    );
    npy.resize(npy.len() + (8 << 20), 0);
    let bytes = zip_of(&[("x.npy", &npy)], true);
    assert!(bytes.len() < 64 << 10, "deflate keeps it small");
    let path = dir.join("fuzz.npz");
    fs::write(&path, &bytes).unwrap();
    let (result, peak) = peak_during(|| read_npz(&path));
    let e = result.unwrap_err();
    assert!(
        e.to_string()
            .contains("8388608 bytes after the array's data"),
        "{e}"
    );
    assert!(peak < OVERHEAD, "{peak} bytes taken to refuse it");
}

/// The measure the bounds above rely on sees allocations at all.
#[test]
fn the_counting_allocator_sees_a_read() {
    let dir = scratch("fuzz_readers_counting");
    let path = dir.join("big.npy");
    write_npy(&path, &ArrayData::F64(ArrayD::zeros(IxDyn(&[1 << 19])))).unwrap();
    let (a, peak) = peak_during(|| read_npy(&path).unwrap());
    assert_eq!(a.shape(), &[1 << 19]);
    assert!(peak >= 4 << 20, "{peak} bytes counted for a 4 MiB array");
    assert!(
        peak <= (4 << 20) + OVERHEAD,
        "{peak} bytes for a 4 MiB array"
    );
}
