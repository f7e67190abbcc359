//! The text of the command line, as a person reads it: `--help` (every
//! argument described, no milestone names, an output description and examples
//! that run), `--quiet`, one note for all converted arrays, aligned summaries,
//! and the progress display (only on a terminal).

mod common;

use cellc::data::{ArrayData, write_npy, write_npz};
use cellc::rng::SplitMix64;
use clap::CommandFactory;
use common::scratch;
use ndarray::{ArrayD, IxDyn};
use std::path::Path;
use std::process::{Command, Output};
use unicode_width::UnicodeWidthStr;

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cellc"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn context(args: &[&str], o: &Output) -> String {
    format!(
        "cellc {}\n--- exit: {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
        args.join(" "),
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    )
}

#[track_caller]
fn ok(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let o = run(dir, args, env);
    assert_eq!(o.status.code(), Some(0), "{}", context(args, &o));
    (text(&o.stdout), text(&o.stderr))
}

fn model(name: &str) -> String {
    format!("{}/models/{name}.cell", env!("CARGO_MANIFEST_DIR"))
}

/// Every subcommand's name, as `cellc --help` lists them (`help` aside).
fn subcommands() -> Vec<String> {
    let cmd = cellc::cli::Cli::command();
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    assert!(names.len() >= 8, "{names:?}");
    names
}

fn help_of(sub: Option<&str>) -> String {
    let dir = scratch("help");
    let args: Vec<&str> = sub.into_iter().chain(["--help"]).collect();
    ok(&dir, &args, &[]).0
}

// ---------------------------------------------------------------------------
// --help
// ---------------------------------------------------------------------------

#[test]
fn help_names_no_milestone_and_describes_every_argument() {
    let milestone = |t: &str| {
        let t = t.to_lowercase();
        (1..10).any(|n| t.contains(&format!("part {n}"))) || t.contains("later part")
    };
    let top = help_of(None);
    assert!(!milestone(&top), "{top}");
    for sub in subcommands() {
        let help = help_of(Some(&sub));
        assert!(
            !milestone(&help),
            "`cellc {sub} --help` names a milestone\n{help}"
        );
        assert!(
            help.contains("Output"),
            "`{sub}`: says what it outputs\n{help}"
        );
        assert!(
            help.contains("Examples:\n  cellc ") || help.contains("Example, once built:\n  cellc "),
            "`{sub}`: has an example\n{help}"
        );
    }
    // Every argument of every command has a help line.
    let cmd = cellc::cli::Cli::command();
    let mut missing = Vec::new();
    for arg in cmd.get_arguments() {
        if arg.get_help().is_none() {
            missing.push(format!("cellc --{}", arg.get_id()));
        }
    }
    for sub in cmd.get_subcommands() {
        assert!(
            sub.get_about().is_some(),
            "`{}` has no about",
            sub.get_name()
        );
        for arg in sub.get_arguments() {
            if arg.get_help().is_none() {
                missing.push(format!("cellc {} {}", sub.get_name(), arg.get_id()));
            }
        }
    }
    assert!(missing.is_empty(), "arguments without help: {missing:?}");
}

#[test]
fn help_says_which_arrays_the_output_file_holds() {
    let run = help_of(Some("run"));
    assert!(run.contains("NAME.last"), "{run}");
    let grad = help_of(Some("grad"));
    assert!(
        grad.contains("NAME.init") && grad.contains("NAME_0"),
        "{grad}"
    );
}

/// The example lines of a help text, and whether each is of a command that is
/// built (under "Examples:") or not yet (under "Example, once built:").
fn examples(help: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut built = None;
    for line in help.lines() {
        if line.starts_with("Examples:") {
            built = Some(true);
        } else if line.starts_with("Example, once built:") {
            built = Some(false);
        } else if let (Some(b), Some(cmd)) = (built, line.strip_prefix("  cellc ")) {
            out.push((format!("cellc {cmd}"), b));
        } else if !line.starts_with("  ") {
            built = None;
        }
    }
    out
}

/// The files the examples stand for: the user's data of `models/lstm.cell`
/// with X = 8, H = 16 (T = 20, B = 4), as the help's module says.
fn example_files(dir: &Path) {
    let (t, b, x, h) = (20, 4, 8, 16);
    let mut rng = SplitMix64::new(7);
    let mut params: Vec<(String, ArrayData)> = Vec::new();
    for n in ["W_f", "W_i", "W_C", "W_o"] {
        params.push((n.into(), ArrayData::F32(rng.uniform(&[h, h + x], 0.5))));
    }
    for n in ["b_f", "b_i", "b_C", "b_o"] {
        params.push((n.into(), ArrayData::F32(rng.uniform(&[h], 0.3))));
    }
    write_npz(&dir.join("params.npz"), &params).unwrap();
    write_npy(
        &dir.join("x.npy"),
        &ArrayData::F32(rng.uniform(&[t, b, x], 1.0)),
    )
    .unwrap();
    let h0 = vec![("h".to_string(), ArrayData::F32(rng.uniform(&[b, h], 0.5)))];
    write_npz(&dir.join("h0.npz"), &h0).unwrap();
    let lengths = ArrayD::from_shape_vec(IxDyn(&[b]), vec![20i64, 7, 0, 13]).unwrap();
    write_npy(&dir.join("lengths.npy"), &ArrayData::Int(lengths)).unwrap();
    let dy = vec![(
        "h".to_string(),
        ArrayData::F32(rng.uniform(&[t, b, h], 1.0)),
    )];
    write_npz(&dir.join("dy.npz"), &dy).unwrap();
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
        dir.join("models"),
    )
    .unwrap();
}

#[test]
fn every_example_of_the_help_runs() {
    let dir = scratch("help-examples");
    example_files(&dir);
    let bin = Path::new(env!("CARGO_BIN_EXE_cellc")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut helps = vec![("cellc".to_string(), help_of(None))];
    for sub in subcommands() {
        helps.push((format!("cellc {sub}"), help_of(Some(&sub))));
    }
    let mut count = 0;
    for (whose, help) in &helps {
        let found = examples(help);
        assert!(!found.is_empty(), "`{whose} --help` has no example");
        for (line, built) in found {
            count += 1;
            // Through a shell, as a user pastes it (redirections included).
            let o = Command::new("sh")
                .args(["-c", &line])
                .env("PATH", &path)
                .current_dir(&*dir)
                .output()
                .unwrap();
            let what = format!(
                "`{line}` (from `{whose} --help`)\n--- exit: {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
                o.status.code(),
                text(&o.stdout),
                text(&o.stderr)
            );
            if built {
                assert_eq!(o.status.code(), Some(0), "{what}");
                // What it says it writes is there.
                let words: Vec<&str> = line.split_whitespace().collect();
                for w in words.windows(2) {
                    if w[0] == "-o" || w[0] == ">" {
                        assert!(dir.join(w[1]).is_file(), "no `{}`: {what}", w[1]);
                    }
                }
            } else {
                assert_eq!(o.status.code(), Some(1), "{what}");
                assert!(text(&o.stderr).contains("not available yet"), "{what}");
            }
        }
    }
    assert!(count >= 15, "{count} examples");
}

// ---------------------------------------------------------------------------
// --quiet, notes
// ---------------------------------------------------------------------------

#[test]
fn quiet_drops_notes_but_keeps_warnings_errors_and_stdout() {
    let dir = scratch("quiet");
    let lstm = model("lstm");
    let generated = ["run", lstm.as_str(), "-D", "X=3", "-D", "H=4"];
    let (out, err) = ok(&dir, &generated, &[]);
    assert!(err.contains("note: using generated"), "{err}");
    let (out_q, err_q) = ok(&dir, &[&generated[..], &["--quiet"]].concat(), &[]);
    assert_eq!(err_q, "", "--quiet: nothing on stderr");
    assert_eq!(out_q, out, "--quiet keeps the summary on stdout");
    // -q after or before the command, with -o: no "wrote" line.
    let (_, err) = ok(&dir, &[&generated[..], &["-o", "o.npz"]].concat(), &[]);
    assert!(err.contains("wrote 3 arrays"), "{err}");
    let (_, err_q) = ok(
        &dir,
        &[&["-q"], &generated[..], &["-o", "o.npz"]].concat(),
        &[],
    );
    assert_eq!(err_q, "");
    let grad = ["grad", lstm.as_str(), "-D", "X=3", "-D", "H=4", "-q"];
    let (out, err) = ok(&dir, &grad, &[]);
    assert_eq!(err, "", "no --cotangent note either");
    assert!(out.contains("W_f"), "{out}");

    // A warning of the cell stays.
    let src = "cell w(x: [X]) {\n    state h: [H]\n    param W, Unused\n    h_t = tanh(W · [h_{t-1}; x_t])\n    output h\n}\n";
    std::fs::write(dir.join("w.cell"), src).unwrap();
    let (_, err) = ok(&dir, &["check", "w.cell", "-q"], &[]);
    assert!(err.contains("warning") && err.contains("Unused"), "{err}");
    // So does a warning about the data (NaN in the input).
    let mut x = SplitMix64::new(1).uniform::<f32>(&[5, 2, 3], 1.0);
    x[[1, 0, 0]] = f32::NAN;
    write_npy(&dir.join("xnan.npy"), &ArrayData::F32(x)).unwrap();
    let args = [
        "run",
        lstm.as_str(),
        "-D",
        "H=4",
        "--input",
        "xnan.npy",
        "-q",
    ];
    let (_, err) = ok(&dir, &args, &[]);
    assert!(err.contains("warning") && err.contains("NaN"), "{err}");
    // And an error.
    let o = run(&dir, &["run", "nothere.cell", "-q"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("nothere.cell"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn one_note_lists_every_converted_array() {
    let dir = scratch("converted");
    let lstm = model("lstm");
    example_files(&dir);
    let args = [
        "run",
        &lstm,
        "--params",
        "params.npz",
        "--input",
        "x.npy",
        "--init",
        "h0.npz",
        "--dtype",
        "f64",
        "-o",
        "o.npz",
    ];
    let (_, err) = ok(&dir, &args, &[]);
    let notes: Vec<&str> = err.lines().filter(|l| l.starts_with("note:")).collect();
    assert_eq!(notes.len(), 1, "one note\n{err}");
    let note = notes[0];
    assert!(
        note.contains("converted to float64") && note.contains("float32"),
        "{note}"
    );
    for name in ["W_f", "W_i", "W_C", "W_o", "b_f", "b_i", "b_C", "b_o"] {
        assert!(note.contains(name), "names {name}: {note}");
    }
    for file in ["`params.npz`", "`x.npy`", "`h0.npz`"] {
        assert!(note.contains(file), "names {file}: {note}");
    }
    // The same files for a float32 run: nothing to convert, no note.
    let (_, err) = ok(&dir, &args[..args.len() - 4], &[]);
    assert!(!err.contains("note"), "{err}");

    // Two source dtypes, files met in the order float64, float16, float64:
    // still one note, each dtype once.
    let f64_npz = |file: &str, arrays: Vec<(String, ArrayData)>| {
        let arrays: Vec<(String, ArrayData)> = arrays
            .into_iter()
            .map(|(n, a)| match a {
                ArrayData::F32(a) => (n, ArrayData::F64(a.mapv(f64::from))),
                other => (n, other),
            })
            .collect();
        write_npz(&dir.join(file), &arrays).unwrap();
    };
    f64_npz(
        "p64.npz",
        cellc::data::read_npz(&dir.join("params.npz"))
            .unwrap()
            .into_iter()
            .map(|(n, a)| (n, a.data))
            .collect(),
    );
    f64_npz(
        "h64.npz",
        cellc::data::read_npz(&dir.join("h0.npz"))
            .unwrap()
            .into_iter()
            .map(|(n, a)| (n, a.data))
            .collect(),
    );
    save_f16_zeros(&dir.join("x16.npy"), &[20, 4, 8]);
    let args = [
        "run", &lstm, "--params", "p64.npz", "--input", "x16.npy", "--init", "h64.npz", "-o",
        "o.npz",
    ];
    let (_, err) = ok(&dir, &args, &[]);
    let notes: Vec<&str> = err.lines().filter(|l| l.starts_with("note:")).collect();
    assert_eq!(notes.len(), 1, "one note\n{err}");
    assert_eq!(notes[0].matches("float64").count(), 1, "{}", notes[0]);
    assert_eq!(notes[0].matches("float16").count(), 1, "{}", notes[0]);
    assert!(
        notes[0].contains("`p64.npz`") && notes[0].contains("`h64.npz` (h)"),
        "{}",
        notes[0]
    );
}

/// A `.npy` of float16 zeros (the crate's writer has no float16).
fn save_f16_zeros(path: &Path, shape: &[usize]) {
    let zeros = vec![0u8; 2 * shape.iter().product::<usize>()];
    std::fs::write(path, common::npy::raw_npy("<f2", shape, &zeros)).unwrap();
}

// ---------------------------------------------------------------------------
// Aligned summaries
// ---------------------------------------------------------------------------

/// The display column at which `needle` starts in `line`.
fn column(line: &str, needle: &str) -> usize {
    let at = line
        .find(needle)
        .unwrap_or_else(|| panic!("no {needle} in {line}"));
    line[..at].width()
}

#[test]
fn summaries_align_on_the_longest_name() {
    let dir = scratch("aligned");
    // torch_lstm: `weight_ih_l0` next to `x` and `h.init`.
    let (out, _) = ok(
        &dir,
        &["grad", &model("torch_lstm"), "-D", "X=3", "-D", "H=4"],
        &[],
    );
    let rows: Vec<&str> = out.lines().filter(|l| l.contains("mean")).collect();
    assert!(rows.len() >= 7, "{out}");
    assert!(
        out.contains("weight_ih_l0") && out.contains("\n  x "),
        "{out}"
    );
    for needle in ["[", "mean", "std"] {
        let cols: Vec<usize> = rows.iter().map(|r| column(r, needle)).collect();
        assert!(
            cols.iter().all(|c| *c == cols[0]),
            "`{needle}` at {cols:?}\n{out}"
        );
    }

    // check: shapes in one column, whatever the length of the names.
    let src = "cell n(x: [X]) {\n    state h: [H]\n    param W_recurrent_long_name, b, γ: [H]\n    h_t = γ ∘ tanh(W_recurrent_long_name · [h_{t-1}; x_t] + b)\n    output h\n}\n";
    std::fs::write(dir.join("n.cell"), src).unwrap();
    let (out, _) = ok(&dir, &["check", "n.cell"], &[]);
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| {
            ["input", "state", "param", "output"]
                .iter()
                .any(|k| l.trim_start().starts_with(k))
        })
        .collect();
    assert!(rows.len() >= 6, "{out}");
    let cols: Vec<usize> = rows.iter().map(|r| column(r, "[")).collect();
    assert!(
        cols.iter().all(|c| *c == cols[0]),
        "shapes at {cols:?}\n{out}"
    );
}

// ---------------------------------------------------------------------------
// Progress
// ---------------------------------------------------------------------------

/// A grad long enough for the display to tick, with no delay before it shows.
fn long_grad(dir: &Path) -> Vec<String> {
    [
        "grad",
        &model("lstm"),
        "-D",
        "X=4",
        "-D",
        "H=8",
        "--seq",
        "10000",
        "--batch",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("-o{}", dir.join("g.npz").display())])
    .collect()
}

const NO_DELAY: (&str, &str) = ("CELLC_PROGRESS_DELAY_MS", "0");

#[test]
fn no_progress_display_when_stderr_is_not_a_terminal() {
    let dir = scratch("progress-pipe");
    let args = long_grad(&dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_, err) = ok(&dir, &args, &[NO_DELAY]);
    assert!(
        !err.contains("steps") && !err.contains('\r') && !err.contains('\x1b'),
        "no progress display into a pipe\n{err}"
    );
}

/// `script` gives the command a terminal; the display shows there (and not
/// under --quiet). Skipped where `script` (util-linux) is missing.
#[test]
fn progress_display_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` command to give cellc a terminal");
        return;
    }
    let dir = scratch("progress-tty");
    let bin = env!("CARGO_BIN_EXE_cellc");
    let on_tty = |extra: &str| {
        let line = format!("{bin} {} {extra}", long_grad(&dir).join(" "));
        let o = Command::new("script")
            .args(["-q", "-e", "-c", &line, "/dev/null"])
            .env(NO_DELAY.0, NO_DELAY.1)
            .current_dir(&*dir)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{line}\n{}", text(&o.stdout));
        text(&o.stdout)
    };
    let shown = on_tty("");
    assert!(
        shown.contains("steps") && shown.contains("forward") && shown.contains("backward"),
        "a progress display, forward then backward\n{shown:?}"
    );
    let quiet = on_tty("--quiet");
    assert!(!quiet.contains("steps"), "none under --quiet\n{quiet:?}");
}
