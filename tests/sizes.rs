//! Sizes never wrap or saturate (issue 7, item 3), as a user meets them at the
//! command line: a size past 64 bits, written or derived, is an error; a
//! derived size that comes out zero or negative under the bindings is an
//! error from `check` as from `run`, naming the size and where each value
//! came from; `--seq 0` and `--batch 0` are refused like `-D H=0`; and a flag
//! the run ignores is warned about.

mod common;

use cellc::data::{ArrayData, write_npy, write_npz};
use common::errors::{assert_error_cases, fails};
use common::{cellc, scratch, stderr};
use ndarray::{ArrayD, IxDyn};
use std::fs;
use std::path::Path;

/// `h: [H-X]`: positive only when H > X.
const DIFFERENCE: &str = "cell diff(x: [X]) {
    state h: [H-X]
    param W, U
    h_t = tanh(W · x_t + U · h_{t-1})
    output h
}
";

/// A written size past 2^63-1.
const WRITTEN: &str = "cell big(x: [X]) {
    state h: [9223372036854775807*2]
    param W, U
    h_t = tanh(W · x_t + U · h_{t-1})
    output h
}
";

/// Each size fits, but the concatenation's sum does not.
const CONCATENATED: &str = "cell cat(x: [X]) {
    state h: [4611686018427387904]
    param W, U
    h_t = tanh(W · [h_{t-1}; h_{t-1}] + U · x_t)
    output h
}
";

/// `2*H` overflows for H from 2^62 on.
const DOUBLED: &str = "cell twice(x: [X]) {
    state h: [2*H]
    param W, U
    h_t = tanh(W · x_t + U · h_{t-1})
    output h
}
";

/// Every shape declared, so that parameters can be written for it.
const ELMAN: &str = "cell e(x: [X]) {
    state h: [H]
    param W: [H, X]
    param U: [H, H]
    h_t = tanh(W · x_t + U · h_{t-1})
    output h
}
";

fn normal(shape: &[usize]) -> ArrayD<f32> {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(
        IxDyn(shape),
        (0..n).map(|i| (i as f32 * 0.37).sin()).collect(),
    )
    .unwrap()
}

fn cells(dir: &Path) {
    for (name, text) in [
        ("diff.cell", DIFFERENCE),
        ("big.cell", WRITTEN),
        ("cat.cell", CONCATENATED),
        ("twice.cell", DOUBLED),
        ("e.cell", ELMAN),
    ] {
        fs::write(dir.join(name), text).unwrap();
    }
    // x: [T=4, B=2, X=3]
    write_npy(&dir.join("x3.npy"), &ArrayData::F32(normal(&[4, 2, 3]))).unwrap();
}

#[test]
fn sizes_that_overflow_or_are_not_positive_are_errors_naming_them() {
    const MAX_PLUS: &str = "H=18446744073709551615";
    assert_error_cases(
        cells,
        vec![
            fails(
                "written size overflows",
                &["check", "big.cell"],
                &["`9223372036854775807*2` overflows", "2^63-1", "big.cell:2"],
            )
            .without(&["[9223372036854775807]"]),
            fails(
                "written size overflows in run",
                &["run", "big.cell", "-D", "X=2"],
                &["`9223372036854775807*2` overflows"],
            ),
            fails(
                "concatenation overflows",
                &["check", "cat.cell"],
                &["overflow", "[4611686018427387904]", "cat.cell:4"],
            )
            .without(&["do not match", "mismatch"]),
            fails(
                "negative derived size in check",
                &["check", "diff.cell", "-D", "X=3", "-D", "H=1"],
                &[
                    "state `h`",
                    "H-X = 1-3 = -2",
                    "-D H=1",
                    "-D X=3",
                    "at least 1",
                    "--> diff.cell:2:11",
                ],
            ),
            fails(
                "zero derived size in check",
                &["check", "diff.cell", "-D", "X=3", "-D", "H=3"],
                &["state `h`", "H-X = 3-3 = 0", "at least 1"],
            ),
            fails(
                "negative derived size in run",
                &["run", "diff.cell", "-D", "X=3", "-D", "H=1"],
                &[
                    "state `h`",
                    "H-X = 1-3 = -2",
                    "-D H=1",
                    "-D X=3",
                    "at least 1",
                    "--> diff.cell:2:11",
                ],
            )
            .without(&["[0", "length 0"]),
            fails(
                "negative derived size in grad",
                &["grad", "diff.cell", "-D", "X=3", "-D", "H=1"],
                &["state `h`", "H-X = 1-3 = -2"],
            ),
            fails(
                "negative derived size with a dimension from an array",
                &["run", "diff.cell", "--input", "x3.npy", "-D", "H=1"],
                &[
                    "H-X = 1-3 = -2",
                    "-D H=1",
                    "X=3 (from input `x`",
                    "diff.cell:2",
                ],
            ),
            fails(
                "derived size overflows under -D",
                &["check", "twice.cell", "-D", "H=4611686018427387904"],
                &[
                    "state `h` is 2*H = 2*4611686018427387904, which overflows",
                    "-D H=4611686018427387904",
                ],
            ),
            fails(
                "derived size overflows in run",
                &[
                    "run",
                    "twice.cell",
                    "-D",
                    "H=4611686018427387904",
                    "-D",
                    "X=1",
                ],
                &[
                    "2*H = 2*4611686018427387904, which overflows",
                    "twice.cell:2",
                ],
            ),
            fails(
                "derived size overflows against an array",
                &[
                    "run",
                    "twice.cell",
                    "-D",
                    "H=4611686018427387904",
                    "--params",
                    "p.npz",
                    "--input",
                    "x3.npy",
                ],
                &["size 2*H overflows (parameter `", "2^63-1"],
            )
            .with(|dir| {
                let params = [("W", normal(&[2, 3])), ("U", normal(&[2, 2]))]
                    .map(|(n, a)| (n.to_string(), ArrayData::F32(a)));
                write_npz(&dir.join("p.npz"), &params).unwrap();
            })
            .without(&["is too large"]),
            fails(
                "dimension past 2^63-1 in check",
                &["check", "diff.cell", "-D", MAX_PLUS],
                &[
                    "-D H=18446744073709551615 is too large",
                    "at most 9223372036854775807",
                ],
            )
            .without(&["[0", "[-", "H-X"]),
            fails(
                "dimension past 2^63-1 in run",
                &["run", "diff.cell", "-D", MAX_PLUS, "-D", "X=2"],
                &["-D H=18446744073709551615 is too large"],
            )
            .without(&["[0", "[-", "H-X"]),
            fails(
                "dimension past 64 bits",
                &["check", "diff.cell", "-D", "H=99999999999999999999999"],
                &["too large", "at most 9223372036854775807"],
            )
            .without(&["non-negative"]),
            fails(
                "--seq past 2^63-1",
                &[
                    "run",
                    "e.cell",
                    "-D",
                    "X=3",
                    "-D",
                    "H=2",
                    "--seq",
                    "18446744073709551615",
                ],
                &["--seq", "too large", "at most 9223372036854775807"],
            ),
            fails(
                "-D without a name",
                &["check", "diff.cell", "-D", "=3"],
                &["`=3`", "name is missing"],
            ),
            fails(
                "-D with a sign",
                &["check", "diff.cell", "-D", "H=+5"],
                &["`H=+5`", "in digits"],
            ),
            fails(
                "--seq 0",
                &["run", "e.cell", "-D", "X=3", "-D", "H=2", "--seq", "0"],
                &["the sequence length would be 0 (--seq 0): sizes are at least 1"],
            ),
            fails(
                "--batch 0",
                &["run", "e.cell", "-D", "X=3", "-D", "H=2", "--batch", "0"],
                &["the batch would be 0 (--batch 0): sizes are at least 1"],
            ),
            fails(
                "--seq 0 in grad",
                &["grad", "e.cell", "-D", "X=3", "-D", "H=2", "--seq", "0"],
                &["(--seq 0): sizes are at least 1"],
            ),
            // The wording that `--seq 0` and `--batch 0` follow.
            fails(
                "-D H=0",
                &["run", "e.cell", "-D", "X=3", "-D", "H=0"],
                &["dimension `H` would be 0 (-D H=0): sizes are at least 1"],
            ),
        ],
    );
}

#[test]
fn sizes_that_fit_still_check_and_run() {
    let dir = scratch("sizes-fit");
    cells(&dir);
    let out = cellc(&dir, &["check", "diff.cell", "-D", "X=3", "-D", "H=4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[H-X] = [1]"), "{text}");
    let out = cellc(
        &dir,
        &["run", "diff.cell", "--input", "x3.npy", "-D", "H=5"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // A dimension as large as sizes go is accepted where nothing overflows.
    let out = cellc(&dir, &["check", "diff.cell", "-D", "H=9223372036854775807"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn warnings(err: &str) -> Vec<&str> {
    err.lines().filter(|l| l.starts_with("warning")).collect()
}

#[test]
fn flags_a_run_ignores_are_warned_about() {
    let dir = scratch("sizes-ignored");
    cells(&dir);
    let params = [("W", normal(&[2, 3])), ("U", normal(&[2, 2]))]
        .map(|(n, a)| (n.to_string(), ArrayData::F32(a)));
    write_npz(&dir.join("p.npz"), &params).unwrap();

    // Input given, parameters generated: --seq and --batch are ignored; the
    // seed still draws the parameters.
    let out = cellc(
        &dir,
        &[
            "run", "e.cell", "--input", "x3.npy", "-D", "H=2", "--seq", "5", "--batch", "7",
            "--seed", "3",
        ],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        warnings(&err),
        [
            "warning: --seq is ignored: the sequence length comes from --input x3.npy",
            "warning: --batch is ignored: the batch comes from --input x3.npy",
        ],
        "{err}"
    );

    // Everything given: the seed is ignored too.
    let out = cellc(
        &dir,
        &[
            "grad", "e.cell", "--params", "p.npz", "--input", "x3.npy", "--seed", "3",
        ],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(warnings(&err).len(), 1, "{err}");
    assert!(
        err.contains("warning: --seed is ignored: nothing is generated"),
        "{err}"
    );

    // Generated input uses all three: no warning.
    let out = cellc(
        &dir,
        &[
            "run", "e.cell", "--params", "p.npz", "--seq", "5", "--batch", "7", "--seed", "3",
        ],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(warnings(&err).is_empty(), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("T=5"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
