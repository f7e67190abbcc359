//! Bugs found by review, each kept from coming back.

mod common;

use cellc::data::{ArrayData, read_npz, write_npy, write_npz};
use common::errors::{assert_error_cases, fails};
use common::{cellc, scratch, stderr};
use ndarray::{ArrayD, IxDyn};

fn model(name: &str) -> String {
    common::model_path(name)
}
fn f32s(shape: &[usize], v: f32) -> ArrayData {
    ArrayData::F32(ArrayD::from_elem(IxDyn(shape), v))
}

#[test]
fn relu_propagates_nan() {
    let dir = scratch("relu");
    std::fs::write(
        dir.0.join("r.cell"),
        "cell r(x: [X]) {\n state h: [X]\n h_t = relu(x_t)\n output h\n}\n",
    )
    .unwrap();
    let x = ArrayD::from_shape_vec(IxDyn(&[1, 1, 3]), vec![f32::NAN, 1.0, -2.0]).unwrap();
    write_npy(&dir.0.join("x.npy"), &ArrayData::F32(x)).unwrap();
    write_npz(&dir.0.join("p.npz"), &[]).unwrap();
    let o = cellc(
        &dir.0,
        &[
            "run", "r.cell", "--params", "p.npz", "--input", "x.npy", "-o", "o.npz",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = read_npz(&dir.0.join("o.npz")).unwrap();
    let ArrayData::F32(h) = &out[0].1.data else {
        panic!("f32")
    };
    assert!(h[[0, 0, 0]].is_nan());
    assert_eq!((h[[0, 0, 1]], h[[0, 0, 2]]), (1.0, 0.0));
}

#[test]
fn output_through_a_symlink_writes_its_target() {
    let dir = scratch("symlink");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("real.npz", dir.0.join("link.npz")).unwrap();
        let o = cellc(
            &dir.0,
            &[
                "run",
                &model("irnn"),
                "-D",
                "X=2",
                "-D",
                "H=3",
                "-o",
                "link.npz",
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let meta = std::fs::symlink_metadata(dir.0.join("link.npz")).unwrap();
        assert!(meta.file_type().is_symlink(), "the link stays a link");
        assert!(read_npz(&dir.0.join("real.npz")).is_ok());
    }
}

#[test]
fn dimension_flags_conflicts_and_zero_are_errors() {
    let irnn = model("irnn");
    let m = irnn.as_str();
    assert_error_cases(
        |_| {},
        vec![
            fails(
                "-D H twice",
                &["check", m, "-D", "H=4", "-D", "H=5"],
                &["-D H is given twice (4 and 5)"],
            ),
            fails(
                "-D H=0",
                &["run", m, "-D", "H=0", "-D", "X=3"],
                &["sizes are at least 1"],
            ),
            fails(
                "sizes too large to allocate",
                &["run", m, "-D", "H=1000000", "-D", "X=1000000"],
                &["choose smaller sizes"],
            ),
        ],
    );
}

#[test]
fn generated_inputs_take_their_sizes_from_the_parameters_given() {
    let dir = scratch("gen");
    write_npz(
        &dir.0.join("p.npz"),
        &[
            ("U".into(), f32s(&[4, 3], 0.1)),
            ("W".into(), f32s(&[4, 4], 0.1)),
            ("b".into(), f32s(&[4], 0.0)),
        ],
    )
    .unwrap();
    let o = cellc(&dir.0, &["run", &model("irnn"), "--params", "p.npz"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("H=4 X=3"));
}

#[test]
fn a_literal_size_mismatch_says_what_was_expected() {
    assert_error_cases(
        |_| {},
        vec![
            fails(
                "W of [4, 2] for [4, 3]",
                &["run", "l.cell", "--params", "p.npz", "--input", "x.npy"],
                &["has length 2, expected 3"],
            )
            .with(|dir| {
                std::fs::write(
                    dir.join("l.cell"),
                    "cell l(x: [3]) {\n state h: [4]\n param W: [4, 3]\n h_t = tanh(W @ x_t)\n output h\n}\n",
                )
                .unwrap();
                write_npz(&dir.join("p.npz"), &[("W".into(), f32s(&[4, 2], 0.1))]).unwrap();
                write_npy(&dir.join("x.npy"), &f32s(&[5, 2, 3], 0.1)).unwrap();
            }),
        ],
    );
}

#[test]
fn a_vector_initial_state_for_a_batch_reports_its_own_shape() {
    let irnn = model("irnn");
    assert_error_cases(
        |_| {},
        vec![
            fails(
                "h of [3] for a batch of 2",
                &[
                    "run", &irnn, "-D", "X=2", "-D", "H=3", "--batch", "2", "--init", "s.npz",
                ],
                &["has shape [3], expected [B, H] with B = 2"],
            )
            .with(|dir| write_npz(&dir.join("s.npz"), &[("h".into(), f32s(&[3], 0.0))]).unwrap()),
        ],
    );
}

#[test]
fn a_file_that_is_not_utf8_gets_a_location_and_controls_are_escaped() {
    assert_error_cases(
        |_| {},
        vec![
            fails(
                "a byte that is not UTF-8",
                &["check", "l1.cell"],
                &["l1.cell:2:12"],
            )
            .with(|dir| {
                std::fs::write(
                    dir.join("l1.cell"),
                    b"cell c(x: [X]) {\n  h_t = caf\xe9\n}\n",
                )
                .unwrap()
            }),
            fails("a right-to-left override", &["check", "rlo.cell"], &[])
                .without(&["\u{202E}"])
                .with(|dir| {
                    std::fs::write(
                        dir.join("rlo.cell"),
                        "cell c(x: [X]) {\n  h_t = a \u{202E} b\n}\n",
                    )
                    .unwrap()
                }),
        ],
    );
}

#[test]
fn a_scalar_output_is_t_b_1_and_its_cotangent_may_be_too() {
    let dir = scratch("scalar");
    std::fs::write(
        dir.0.join("e.cell"),
        "cell e(x: [X]) {\n state h: [H]\n param W, U\n h_t = tanh(W @ h_{t-1} + U @ x_t)\n E_t = sum(h_t * h_t)\n output E\n}\n",
    )
    .unwrap();
    // `cellc COMMAND e.cell` on generated data, T = 4, B = 2.
    let on_data = |command: &str, rest: &[&str]| {
        let mut args = vec![
            command, "e.cell", "-D", "X=2", "-D", "H=3", "--seq", "4", "--batch", "2",
        ];
        args.extend_from_slice(rest);
        cellc(&dir.0, &args)
    };
    let o = on_data("run", &["-o", "o.npz"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = read_npz(&dir.0.join("o.npz")).unwrap();
    assert_eq!(out[0].1.shape(), &[4, 2, 1]);
    for shape in [&[4, 2, 1][..], &[4, 2][..]] {
        write_npz(&dir.0.join("dy.npz"), &[("E".into(), f32s(shape, 1.0))]).unwrap();
        let o = on_data("grad", &["--cotangent", "dy.npz", "-o", "g.npz"]);
        assert!(o.status.success(), "{shape:?}: {}", stderr(&o));
    }
    write_npz(
        &dir.0.join("dy.npz"),
        &[("E".into(), f32s(&[4, 2, 3], 1.0))],
    )
    .unwrap();
    let o = on_data("grad", &["--cotangent", "dy.npz"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("[T, B, 1]: a scalar output"),
        "{}",
        stderr(&o)
    );
}
