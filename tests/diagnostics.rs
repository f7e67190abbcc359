//! What a bad file gets: the rendered diagnostics of every file in `tests/bad/`,
//! snapshotted one per file.
//!
//! Each file there is a small cell with one mistake, named for it; its first line
//! is a `#` comment saying what is wrong and what the message should say (it is
//! the snapshot's description, so a reviewer reads the claim beside the message).
//! `warn_*.cell` files are valid cells that raise warnings; their snapshot holds
//! the warnings. A snapshot is a claim that the message is right: it names the
//! place, says what is wrong in the language's words and points to the fix.
//!
//! Besides the snapshots: every bad file fails with a `--> bad/NAME.cell:LINE:COL`
//! line and carets, every warning file passes with a warning, and the `cellc
//! check` command exits with status 1 and names `FILE:LINE:COLUMN` on stderr.
//!
//! To accept new or changed snapshots: `INSTA_UPDATE=always cargo test --test
//! diagnostics`, then read every changed `tests/snapshots/diagnostics__*.snap`.

use cellc::check::check_source;
use cellc::diagnostic::render_all;
use cellc::syntax::normalize_source;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// ---------------------------------------------------------------------------
// Helpers

fn bad_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad")
}

/// Every file of the corpus, sorted.
fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(bad_dir())
        .expect("tests/bad exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cell"))
        .collect();
    files.sort();
    files
}

/// `NAME.cell`.
fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

/// The name diagnostics use for a corpus file: `bad/NAME.cell`, the same on
/// every machine.
fn shown_name(path: &Path) -> String {
    format!("bad/{}", file_name(path))
}

/// A valid file that must raise warnings.
fn is_warning_file(path: &Path) -> bool {
    file_name(path).starts_with("warn_")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first line of the file without its `#`: what is wrong, what to say.
fn intent(text: &str) -> String {
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix('#'))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// How checking a file went, with everything it rendered.
enum Outcome {
    Failed(String),
    Passed { warnings: usize, rendered: String },
}

fn outcome(path: &Path) -> Outcome {
    let text = read(path);
    let name = shown_name(path);
    match check_source(&text) {
        Err(failed) => Outcome::Failed(failed.render(&name)),
        Ok(checked) => Outcome::Passed {
            warnings: checked.warnings.len(),
            rendered: render_all(&checked.warnings, &name, &normalize_source(&text)),
        },
    }
}

/// Whether a rendering has a caret line (`  | ...^^^ ...`).
fn has_caret_line(rendered: &str) -> bool {
    rendered.lines().any(|l| {
        l.trim_start()
            .strip_prefix('|')
            .is_some_and(|rest| rest.trim_start().starts_with('^'))
    })
}

fn cellc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cellc"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests"))
        .output()
        .expect("cellc runs")
}

// ---------------------------------------------------------------------------
// The corpus

#[test]
fn corpus_has_enough_files_each_saying_what_is_wrong() {
    let files = corpus();
    let bad = files.iter().filter(|p| !is_warning_file(p)).count();
    let warn = files.len() - bad;
    assert!(bad >= 30, "only {bad} bad files");
    assert!(warn >= 3, "only {warn} warning files");
    for path in &files {
        let text = read(path);
        assert!(
            text.starts_with('#') && !intent(&text).is_empty(),
            "{}: the first line must be a `#` comment saying what is wrong",
            shown_name(path)
        );
    }
}

#[test]
fn bad_files_fail_with_a_located_error_and_warning_files_pass_with_a_warning() {
    let mut problems = Vec::new();
    for path in corpus() {
        let name = shown_name(&path);
        match (is_warning_file(&path), outcome(&path)) {
            (false, Outcome::Failed(rendered)) => {
                if !rendered.starts_with("error: ") {
                    problems.push(format!(
                        "{name}: does not start with `error: `:\n{rendered}"
                    ));
                }
                if !rendered.contains(&format!("--> {name}:")) {
                    problems.push(format!(
                        "{name}: no `--> {name}:LINE:COL` line:\n{rendered}"
                    ));
                }
                if !has_caret_line(&rendered) {
                    problems.push(format!("{name}: no `^` caret line:\n{rendered}"));
                }
            }
            (false, Outcome::Passed { rendered, .. }) => {
                problems.push(format!(
                    "{name}: expected an error, but the file passed\n{rendered}"
                ));
            }
            (true, Outcome::Failed(rendered)) => {
                problems.push(format!(
                    "{name}: expected to pass with warnings:\n{rendered}"
                ));
            }
            (true, Outcome::Passed { warnings, rendered }) => {
                if warnings == 0 {
                    problems.push(format!("{name}: passed without a warning"));
                } else if !rendered.starts_with("warning: ")
                    || !rendered.contains(&format!("--> {name}:"))
                    || !has_caret_line(&rendered)
                {
                    problems.push(format!("{name}: warning not located:\n{rendered}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn bad_file_diagnostics() {
    insta::glob!("bad/*.cell", |path| {
        let rendered = match outcome(path) {
            Outcome::Failed(r) => r,
            Outcome::Passed { rendered, .. } => rendered,
        };
        insta::with_settings!({
            description => intent(&read(path)),
            omit_expression => true,
        }, {
            insta::assert_snapshot!(rendered);
        });
    });
}

/// Regression: when several known names were equally close to an unknown one,
/// the suggestion depended on hash order and changed from run to run (`W_g`
/// got `W_f`, `W_i` or `W_o`), so a snapshot of it was flaky. Ties now go to
/// the alphabetically first name.
#[test]
fn suggestions_are_deterministic() {
    for file in [
        "unknown_name_tied_suggestion.cell",
        "unknown_name_undeclared_param.cell",
    ] {
        let path = bad_dir().join(file);
        let first = match outcome(&path) {
            Outcome::Failed(r) => r,
            Outcome::Passed { .. } => panic!("{file} passed"),
        };
        for _ in 0..20 {
            let again = match outcome(&path) {
                Outcome::Failed(r) => r,
                Outcome::Passed { .. } => panic!("{file} passed"),
            };
            assert_eq!(
                first, again,
                "the diagnostics of {file} change between runs"
            );
        }
    }
}

#[test]
fn unknown_name_suggests_the_close_declared_name() {
    let path = bad_dir().join("unknown_name_close_suggestion.cell");
    let Outcome::Failed(rendered) = outcome(&path) else {
        panic!("passed");
    };
    assert!(
        rendered.contains("unknown name `W_Z`") && rendered.contains("did you mean `W_z`?"),
        "{rendered}"
    );
    // With a tie the suggestion must still be one of the tied names.
    let path = bad_dir().join("unknown_name_tied_suggestion.cell");
    let Outcome::Failed(rendered) = outcome(&path) else {
        panic!("passed");
    };
    assert!(
        ["W_f", "W_i", "W_o"]
            .iter()
            .any(|s| rendered.contains(&format!("did you mean `{s}`?"))),
        "{rendered}"
    );
}

// ---------------------------------------------------------------------------
// The command line

#[test]
fn cellc_check_exits_1_and_names_file_line_column_on_stderr() {
    for (file, place) in [
        (
            "bad/state_read_without_time.cell",
            "bad/state_read_without_time.cell:6:30",
        ),
        (
            "bad/syntax_missing_equals.cell",
            "bad/syntax_missing_equals.cell:6:9",
        ),
        (
            "bad/shape_matvec_inner_mismatch.cell",
            "bad/shape_matvec_inner_mismatch.cell:6:18",
        ),
    ] {
        let out = cellc(&["check", file]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "cellc check {file}\nstderr:\n{stderr}"
        );
        assert!(
            stderr.contains(place),
            "expected `{place}` on stderr:\n{stderr}"
        );
        assert!(stderr.contains("error: "), "{stderr}");
    }
}

#[test]
fn cellc_check_passes_a_warning_file_and_prints_the_warning() {
    let out = cellc(&["check", "bad/warn_unused_param.cell"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(
        stderr.contains("warning: parameter `b` is never used")
            && stderr.contains("bad/warn_unused_param.cell:4:17"),
        "{stderr}"
    );
}

#[test]
fn cellc_check_of_a_missing_file_fails_without_panicking() {
    let out = cellc(&["check", "bad/no_such_file.cell"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

// ---------------------------------------------------------------------------
// Messages in the user's words (issue 7, item 4): each case as reproduced
// with `cellc check`, its key words and where it points.

/// The rendering of the error `text` fails with, as `t.cell`.
fn error_rendered(text: &str) -> String {
    match check_source(text) {
        Err(failed) => failed.render("t.cell"),
        Ok(_) => panic!("expected an error for:\n{text}"),
    }
}

/// Asserts the rendering's `-->` line names `LINE:COL`.
fn assert_points_at(rendered: &str, line_col: &str) {
    assert!(
        rendered.contains(&format!("--> t.cell:{line_col}\n")),
        "expected `--> t.cell:{line_col}`:\n{rendered}"
    );
}

/// Whether `rendered` shows an unknown of shape inference (`?0`).
fn shows_an_unknown(rendered: &str) -> bool {
    rendered
        .match_indices('?')
        .any(|(i, _)| rendered[i + 1..].starts_with(|c: char| c.is_ascii_digit()))
}

const GRU_WITH_DOT_FOR_CIRCLE: &str = "\
cell gru(x: [X]) {
    state h: [H] = 0
    param W_z, W_r, W_h

    z_t = σ(W_z · [h_{t-1}; x_t])
    r_t = σ(W_r · [h_{t-1}; x_t])
    h̃_t = tanh(W_h · [r_t ∘ h_{t-1}; x_t])
    h_t = (1 - z_t) ∘ h_{t-1} + z_t · h̃_t

    output h
}
";

#[test]
fn dot_between_two_vectors_gives_their_shapes_and_suggests_circle() {
    let r = error_rendered(GRU_WITH_DOT_FOR_CIRCLE);
    // It said "but found a vector [?0]".
    assert!(!shows_an_unknown(&r), "{r}");
    assert!(
        r.starts_with("error: `·` needs a matrix on the left, but found a vector [H]\n"),
        "{r}"
    );
    assert!(r.contains("write `∘`"), "{r}");
    assert_points_at(&r, "8:37");
}

#[test]
fn dot_between_vectors_of_different_sizes_does_not_suggest_circle() {
    let r = error_rendered(
        "cell c(x: [X]) {\n    state h: [H] = 0\n    h_t = h_{t-1} · x_t\n    output h\n}\n",
    );
    assert!(r.contains("needs a matrix on the left"), "{r}");
    assert!(!r.contains("`∘`"), "{r}");
}

#[test]
fn a_name_read_twice_is_declared_once_in_the_message() {
    let r = error_rendered(
        "cell c(x: [X]) {\n    state h: [H] = 0\n    param W\n    h_t = tanh(W · W · x_t)\n    output h\n}\n",
    );
    assert!(!shows_an_unknown(&r), "{r}");
    assert!(
        r.contains("`·` needs a vector on the right, but found a matrix [W_rows, W_cols]"),
        "{r}"
    );
    assert_eq!(r.matches("`W` declared here").count(), 1, "{r}");
    assert_points_at(&r, "4:18");
}

#[test]
fn an_unclosed_subscript_brace_is_named_at_the_brace() {
    let r = error_rendered(
        "cell c(x: [X]) {\n    state h: [H] = 0\n    param W\n    h_t = tanh(W · h_{t-1)\n    output h\n}\n",
    );
    assert!(r.starts_with("error: unclosed `{` in a subscript\n"), "{r}");
    assert!(r.contains("expected `}` before this `)`"), "{r}");
    assert!(r.contains("`_{t-1}`"), "{r}");
    assert_points_at(&r, "4:22");
}

#[test]
fn a_fractional_lag_is_a_whole_number_of_steps() {
    for (lag, col) in [("h_{t-1.5}", "4:25"), ("h[t-1.5]", "4:24")] {
        let r = error_rendered(&format!(
            "cell c(x: [X]) {{\n    state h: [H] = 0\n    param W\n    h_t = tanh(W · {lag})\n    output h\n}}\n"
        ));
        assert!(
            r.starts_with("error: a time lag is a whole number of steps, not `1.5`\n"),
            "{r}"
        );
        assert_points_at(&r, col);
    }
}

#[test]
fn a_number_without_its_leading_zero_suggests_it() {
    let r = error_rendered(
        "cell c(x: [X]) {\n    state h: [H] = 0\n    param W\n    h_t = tanh(W · h_{t-1}) * .5\n    output h\n}\n",
    );
    assert!(
        r.starts_with("error: a number starts with a digit: write `0.5`, not `.5`\n"),
        "{r}"
    );
    assert_points_at(&r, "4:31");
}

#[test]
fn a_missing_close_paren_is_shown_at_its_opening_paren() {
    // The next statement is a keyword, or an equation (pest stopped at its `=`).
    for next in ["output h", "y_t = h_t\n    output h"] {
        let r = error_rendered(&format!(
            "cell c(x: [X]) {{\n    state h: [H] = 0\n    param W, U\n    h_t = tanh(W · h_{{t-1}} + U · x_t\n    {next}\n}}\n"
        ));
        assert!(r.starts_with("error: unclosed `(`\n"), "{r}");
        assert!(r.contains("this `(` is never closed"), "{r}");
        assert!(r.contains("expected `)` before this statement"), "{r}");
        assert_points_at(&r, "4:15");
    }
}

#[test]
fn a_paren_open_at_the_end_of_the_file_is_shown_at_its_opening() {
    let r = error_rendered("cell c(x: [X]) {\n    state h: [H] = 0\n    h_t = tanh(x_t");
    assert!(r.starts_with("error: unclosed `(`\n"), "{r}");
    assert!(r.contains("expected `)` before the end of the file"), "{r}");
    assert_points_at(&r, "3:15");
}

#[test]
fn a_bracket_closed_by_a_paren_is_shown_at_its_opening() {
    let r = error_rendered(
        "cell c(x: [X]) {\n    state h: [H] = 0\n    param W\n    h_t = tanh(W · [h_{t-1}; x_t)\n    output h\n}\n",
    );
    assert!(r.starts_with("error: unclosed `[`\n"), "{r}");
    assert!(r.contains("expected `]` before this `)`"), "{r}");
    assert_points_at(&r, "4:20");
}

/// The printed source line and the caret line under it, for the first `^`.
fn source_and_carets(rendered: &str) -> (String, String) {
    let lines: Vec<&str> = rendered.lines().collect();
    let i = lines
        .iter()
        .position(|l| {
            l.split_once(" | ")
                .is_some_and(|(_, r)| r.trim_start().starts_with('^'))
        })
        .unwrap_or_else(|| panic!("no caret line:\n{rendered}"));
    let text = |l: &str| {
        l.split_once(" | ")
            .map_or(String::new(), |(_, r)| r.to_string())
    };
    (text(lines[i - 1]), text(lines[i]))
}

/// The screen column of byte `i` of `line`: combining marks take none.
fn screen_column(line: &str, i: usize) -> usize {
    line[..i]
        .chars()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .count()
}

#[test]
fn a_long_line_is_shown_around_its_error_with_the_caret_under_it() {
    // ~2,000 characters, the unknown name `q_t` near column 1,500; terms with
    // multi-byte characters and a combining mark (`h̃`) before it.
    for term in ["x_t", "σ(x_t) ∘ x_t", "u_{x} ∘ x_t", "h̃_t"] {
        let before = [term; 2_000].join(" + ");
        let cut = before
            .char_indices()
            .nth(1_500)
            .map_or(before.len(), |(i, _)| i);
        let before = &before[..before[..cut].rfind(" + ").unwrap()];
        let text = format!(
            "cell c(x: [X]) {{\n    state h: [X] = 0\n    param u_x\n    h̃_t = x_t\n    h_t = {before} + q_t + {}\n    output h\n}}\n",
            ["x_t"; 150].join(" + ")
        );
        let r = error_rendered(&text);
        assert!(r.starts_with("error: unknown name `q`"), "{r}");
        let (shown, carets) = source_and_carets(&r);
        assert!(shown.starts_with('…') && shown.ends_with('…'), "{shown}");
        assert!(
            shown.chars().count() <= 100,
            "{} chars: {shown}",
            shown.chars().count()
        );
        let q = shown.find("q_t").expect("the error in view");
        let caret = carets.find('^').unwrap();
        assert_eq!(
            screen_column(&shown, q),
            screen_column(&carets, caret),
            "caret not under `q_t` ({term}):\n{shown}\n{carets}"
        );
    }
}

#[test]
fn a_short_line_is_shown_whole() {
    let r = error_rendered(
        "cell c(x: [X]) {\n    state h: [H] = 0\n    param h̃\n    h_t = h̃ ∘ h_{t-1} + q_t\n    output h\n}\n",
    );
    let (shown, carets) = source_and_carets(&r);
    assert_eq!(shown, "    h_t = h̃ ∘ h_{t-1} + q_t");
    let q = shown.find("q_t").unwrap();
    assert_eq!(
        screen_column(&shown, q),
        screen_column(&carets, carets.find('^').unwrap())
    );
}
