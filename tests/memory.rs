//! Memory: a run that does not fit is refused before it starts, with the
//! estimate and its parts; an allocation that fails anyway is an error with
//! exit status 1, never an abort; generated data is limited in bytes; and a
//! run that fits is not refused.
//!
//! The address-space limit is set with `ulimit -v` in a shell that then
//! `exec`s the binary, so the limit applies to `cellc` alone.

mod common;

use common::{model_path, scratch};
use std::path::Path;
use std::process::{Command, Output};

/// Runs `cellc` in `dir` under an address-space limit of `kib` KiB (none
/// when `None`).
fn cellc_limited(dir: &Path, kib: Option<u64>, args: &[&str]) -> Output {
    let mut script = String::new();
    if let Some(k) = kib {
        script.push_str(&format!("ulimit -v {k} || exit 99; "));
    }
    script.push_str("exec \"$0\" \"$@\"");
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_cellc"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[track_caller]
fn assert_fails_cleanly(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "expected exit 1\n{}", text(o));
    assert!(!err.contains("panicked"), "panic\n{}", text(o));
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}\n{}", text(o));
    }
}

const LIMIT_KIB: u64 = 1_000_000;

#[test]
fn an_allocation_that_fails_is_an_error_not_an_abort() {
    let dir = scratch("memory-alloc");
    let lstm = model_path("torch_lstm");
    // `--max-memory` above the address-space limit lets the run past the
    // estimate: the history of `h` (3000 × 64 × 2000 floats, 1.5 GB) cannot
    // be had under 1 GB.
    let o = cellc_limited(
        &dir,
        Some(LIMIT_KIB),
        &[
            "run",
            &lstm,
            "-D",
            "H=2000",
            "-D",
            "X=1",
            "--seq",
            "3000",
            "--batch",
            "64",
            "--max-memory",
            "100G",
            "--backend",
            "interp",
            "-o",
            "out.npz",
        ],
    );
    assert_fails_cleanly(&o, &["out of memory", "1.5 GB", "history of state `h`"]);
    assert!(!dir.join("out.npz").exists(), "an output was left behind");
    // The JIT first computes the hoisted `weight_ih·x + bias_ih` for all
    // 192,000 rows (6.1 GB): that allocation fails the same way.
    let o = cellc_limited(
        &dir,
        Some(LIMIT_KIB),
        &[
            "run",
            &lstm,
            "-D",
            "H=2000",
            "-D",
            "X=1",
            "--seq",
            "3000",
            "--batch",
            "64",
            "--max-memory",
            "100G",
            "-o",
            "out.npz",
        ],
    );
    assert_fails_cleanly(&o, &["out of memory", "6.1 GB", "hoisted value"]);
    assert!(!dir.join("out.npz").exists(), "an output was left behind");
}

#[test]
fn a_run_beyond_the_address_space_limit_is_refused_with_its_estimate() {
    let dir = scratch("memory-ulimit");
    let lstm = model_path("torch_lstm");
    // A run holds about 4 bytes × T·B·(X + 3H): 6000 steps do not fit in
    // 1 GB; BPTT also saves residuals, and 3000 steps do not fit.
    for (cmd, seq, inputs) in [("run", "6000", "393.2 MB"), ("grad", "3000", "196.6 MB")] {
        let all = [
            cmd, &lstm, "-D", "H=256", "-D", "X=256", "--seq", seq, "--batch", "64", "-o", "g.npz",
        ];
        let o = cellc_limited(&dir, Some(LIMIT_KIB), &all);
        let inputs = format!("inputs {inputs}");
        let mut needles = vec![
            "needs about",
            "parameters",
            &inputs,
            "state histories",
            "workspace",
            "address-space limit",
            "--max-memory",
        ];
        if cmd == "grad" {
            needles.extend(["residuals", "cotangents", "gradients"]);
        }
        assert_fails_cleanly(&o, &needles);
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(&format!("this {cmd} needs")),
            "{}",
            text(&o)
        );
        assert!(!dir.join("g.npz").exists(), "an output was left behind");
    }
}

#[test]
fn max_memory_refuses_a_modest_run_and_lists_the_parts() {
    let dir = scratch("memory-max");
    let lstm = model_path("torch_lstm");
    // Data of about 30 MB against a limit that the program and the cell fit
    // in: the refusal is the data's, with every part listed.
    let small = ["-D", "H=16", "-D", "X=8", "--seq", "2000", "--batch", "64"];
    for (cmd, extra) in [("run", None), ("grad", Some("residuals"))] {
        let mut all = vec![cmd, lstm.as_str()];
        all.extend(small);
        all.extend(["--max-memory", "10M"]);
        let o = cellc_limited(&dir, None, &all);
        let mut needles = vec![
            "needs about",
            "parameters",
            "inputs",
            "state histories",
            "outputs",
            "workspace",
            "more than the 10.5 MB available (--max-memory)",
            "shorter sequences (--seq)",
        ];
        needles.extend(extra);
        assert_fails_cleanly(&o, &needles);
    }
}

#[test]
fn a_run_that_fits_is_not_refused() {
    let dir = scratch("memory-fits");
    let lstm = model_path("torch_lstm");
    let small = ["-D", "H=16", "-D", "X=8", "--seq", "20", "--batch", "4"];
    for cmd in ["run", "grad"] {
        // Under the user's figure, and under the address-space limit.
        for (kib, max) in [(None, Some("20M")), (Some(LIMIT_KIB), None)] {
            let mut all = vec![cmd, lstm.as_str()];
            all.extend(small);
            if let Some(m) = max {
                all.extend(["--max-memory", m]);
            }
            let o = cellc_limited(&dir, kib, &all);
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        }
    }
}

#[test]
fn generated_data_is_limited_in_bytes_before_any_is_drawn() {
    let dir = scratch("memory-generate");
    let lstm = model_path("torch_lstm");
    // 11.2 GB of parameters and inputs, refused at once (or, on a machine
    // with less memory, by the run's estimate).
    let start = std::time::Instant::now();
    let o = cellc_limited(
        &dir,
        None,
        &["run", &lstm, "-D", "X=100000000", "-D", "H=2"],
    );
    assert_fails_cleanly(&o, &["GB"]);
    assert!(
        start.elapsed().as_secs() < 5,
        "took {:?}: data was drawn before it was refused",
        start.elapsed()
    );
}

#[test]
fn sizes_too_large_to_count_are_refused_not_wrapped() {
    let dir = scratch("memory-huge");
    let lstm = model_path("torch_lstm");
    for cmd in ["run", "grad"] {
        let o = cellc_limited(
            &dir,
            None,
            &[
                cmd,
                &lstm,
                "-D",
                "X=4294967296",
                "-D",
                "H=4294967296",
                "--seq",
                "4294967296",
                "--batch",
                "4294967296",
                "--max-memory",
                "1T",
            ],
        );
        assert_fails_cleanly(&o, &[]);
    }
}

#[test]
fn max_memory_rejects_a_size_it_cannot_read() {
    let dir = scratch("memory-parse");
    let lstm = model_path("torch_lstm");
    let o = cellc_limited(&dir, None, &["run", &lstm, "--max-memory", "lots"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(err.contains("2G, 512M, 1.5GB"), "{}", text(&o));
}

/// The bytes of a list of arrays.
fn held<D: ndarray::Dimension>(arrays: &[ndarray::Array<f64, D>]) -> u128 {
    arrays.iter().map(|a| a.len() as u128 * 8).sum()
}

#[test]
fn the_estimate_counts_exactly_the_buffers_the_drivers_allocate() {
    use cellc::pipeline::differentiate_step;
    use cellc::runtime::forward::{initial_history, run_forward};
    use cellc::runtime::kernel::Interpreted;
    use cellc::runtime::memory::{Pass, estimate};
    let dir = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/models")).unwrap();
    let mut models: Vec<_> = dir
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cell"))
        .collect();
    models.sort();
    assert!(models.len() > 10, "the models were not found");
    for path in models {
        let step = common::load(path.to_str().unwrap());
        let adj = differentiate_step(&step).unwrap();
        let t = 7;
        let p = common::problem(&step, t, None, false, false, 1);
        let (seq, batch) = (&p.seq, p.seq.batch);
        let mut k = Interpreted::new(&adj.forward, &seq.bindings, batch).unwrap();
        let (traj, residuals) =
            run_forward(&step, &mut k, seq, initial_history(&step, seq)).unwrap();
        let est = estimate(&step, Pass::Grad(&adj), &seq.bindings, t, batch, 8);
        let part = |name: &str| {
            est.parts
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("no part {name}"))
                .1
        };
        let name = path.display();
        assert_eq!(part("parameters"), held(&seq.params), "{name}");
        assert_eq!(part("inputs"), held(&seq.inputs), "{name}");
        assert_eq!(part("state histories"), held(&traj.history), "{name}");
        assert_eq!(part("outputs"), held(&traj.outputs), "{name}");
        assert_eq!(part("residuals"), held(&residuals), "{name}");
        let run = estimate(&step, Pass::Run, &seq.bindings, t, batch, 8);
        assert!(
            run.total() < est.total(),
            "{name}: BPTT holds more than a run"
        );
    }
}

/// An input file is checked by its header against the limit before any of its
/// data is read: a (sparse) 2.56 GB `.npy` under `--max-memory 100M` is
/// refused at once, and the refusal names what was to be read.
#[test]
fn a_file_too_large_for_the_limit_is_refused_before_it_is_read() {
    let dir = scratch("memory-file");
    let bytes = common::npy::raw_npy("<f4", &[20_000_000, 4, 8], &[]);
    let path = dir.join("x.npy");
    std::fs::write(&path, &bytes).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(bytes.len() as u64 + 20_000_000 * 4 * 8 * 4)
        .unwrap();
    drop(file);
    let lstm = model_path("lstm");
    let o = cellc_limited(
        &dir,
        None,
        &[
            "run",
            &lstm,
            "-D",
            "H=4",
            "--input",
            "x.npy",
            "--max-memory",
            "100M",
        ],
    );
    assert_fails_cleanly(&o, &["inputs read 2.6 GB", "(--max-memory)"]);
}

/// A cell too large to derive in the memory available is refused before its
/// adjoint is derived (where deriving it would abort the process): with
/// `--max-memory` for `grad`, and under an address-space limit for `bptt`.
#[test]
fn a_cell_too_large_to_derive_is_refused_before_it_is_derived() {
    let dir = scratch("memory-cell");
    let terms = vec!["x_t"; 100_000].join(" + ");
    let cell = format!(
        "cell c(x: [H]) {{\n state h: [H] = 0\n h_t = tanh({terms} + h_{{t-1}})\n output h\n}}\n"
    );
    std::fs::write(dir.join("big.cell"), cell).unwrap();
    let o = cellc_limited(
        &dir,
        None,
        &["grad", "big.cell", "-D", "H=4", "--max-memory", "100M"],
    );
    assert_fails_cleanly(&o, &["the compiled cell", "the cell itself is too large"]);
    let o = cellc_limited(&dir, Some(300_000), &["bptt", "big.cell"]);
    assert_fails_cleanly(&o, &["this derivation needs about", "address-space limit"]);
}
