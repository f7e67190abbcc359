//! Runs every file of `tests/filetests/`: IR text in, text out (Cranelift's
//! filetests are the model; the format is in `tests/filetests/README.md`).
//!
//! Each `.ir` file names a test kind, gives a graph in the printer's text form
//! and, after a line `; expect:`, what the kind must make of it:
//!
//! - `test simplify`: the graph printed after `pipeline::simplify`, which verifies what `opt::simplify` leaves (the input must
//!   verify first);
//! - `test verify`: the verifier's error, or `ok`;
//! - `test parse`: the graph printed again, or `error: ` and the reader's error.
//!
//! Every file is run and every failure reported at once, with the file and a
//! line diff; a `VerifyError` variant that no file makes is a failure too. `FILETESTS_BLESS=1` rewrites each expectation with what the test
//! made instead: for writing a new file, never in CI (it refuses when `CI` is
//! set). A blessed expectation is a claim like any other: read it.

use cellc::graph::parse::parse_titled;
use cellc::graph::{VerifyError, print};
use cellc::pipeline::simplify;
use std::fmt::Write;
use std::path::{Path, PathBuf};

const EXPECT: &str = "; expect:";

fn filetests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filetests")
}

/// Every `.ir` file under `dir`, sorted.
fn ir_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("a directory entry").path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "ir") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A file cut into its parts.
struct FileTest {
    kind: String,
    /// The text before `; expect:`, the `test` line blanked so that the
    /// reader's line numbers are the file's.
    input: String,
    /// Everything up to and including the `; expect:` line (what blessing keeps).
    head: String,
    expected: Option<String>,
}

fn split(text: &str) -> Result<FileTest, String> {
    let mut kind = None;
    let mut input = String::new();
    let mut head = String::new();
    let mut expected: Option<String> = None;
    for line in text.split_inclusive('\n') {
        if let Some(e) = expected.as_mut() {
            e.push_str(line);
            continue;
        }
        head.push_str(line);
        let body = line.trim();
        if body == EXPECT {
            expected = Some(String::new());
            continue;
        }
        if kind.is_none() && !body.is_empty() && !body.starts_with(';') {
            match body.strip_prefix("test ") {
                Some(k) => {
                    kind = Some(k.trim().to_string());
                    input.push('\n');
                    continue;
                }
                None => {
                    return Err("the first line that is not a comment must be `test KIND`".into());
                }
            }
        }
        input.push_str(line);
    }
    Ok(FileTest {
        kind: kind.ok_or("no `test KIND` line")?,
        input,
        head,
        expected,
    })
}

/// Every kind of verifier error, each of which has a file in `verify/`.
const VERIFY_ERRORS: [&str; 8] = [
    "OperandNotBefore",
    "OperandPositions",
    "ArgumentWithOperands",
    "MissingArgument",
    "Shape",
    "TypeMismatch",
    "UnresolvedSize",
    "MissingResultNode",
];

/// Does not compile when a variant is added, so that it is added above.
fn verify_error_kind(e: &VerifyError) -> &'static str {
    match e {
        VerifyError::OperandNotBefore { .. } => "OperandNotBefore",
        VerifyError::OperandPositions { .. } => "OperandPositions",
        VerifyError::ArgumentWithOperands { .. } => "ArgumentWithOperands",
        VerifyError::MissingArgument { .. } => "MissingArgument",
        VerifyError::Shape { .. } => "Shape",
        VerifyError::TypeMismatch { .. } => "TypeMismatch",
        VerifyError::UnresolvedSize { .. } => "UnresolvedSize",
        VerifyError::MissingResultNode { .. } => "MissingResultNode",
    }
}

/// What the test kind makes of the input, and the kind of verifier error if
/// one was the result.
fn run(kind: &str, input: &str) -> Result<(String, Option<&'static str>), String> {
    let read = parse_titled(input);
    let mut error_kind = None;
    let text = match kind {
        "parse" => match read {
            Ok((title, g)) => print::text(&g, &title),
            Err(e) => format!("error: {e}\n"),
        },
        "verify" => {
            let (_, g) = read.map_err(|e| format!("the input does not read: {e}"))?;
            match g.verify() {
                Ok(()) => "ok\n".into(),
                Err(e) => {
                    error_kind = Some(verify_error_kind(&e));
                    format!("{e}\n")
                }
            }
        }
        "simplify" => {
            let (title, g) = read.map_err(|e| format!("the input does not read: {e}"))?;
            g.verify()
                .map_err(|e| format!("the input does not verify: {e}"))?;
            let s = simplify(&g).map_err(|e| format!("simplify failed: {e}"))?;
            print::text(&s, &title)
        }
        k => return Err(format!("unknown test kind `{k}` (parse, verify, simplify)")),
    };
    Ok((text, error_kind))
}

/// Expected and actual lines, `-` for a line only expected, `+` for one only
/// made (a longest-common-subsequence diff; the files are small).
fn diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut lcs = vec![vec![0usize; a.len() + 1]; e.len() + 1];
    for i in (0..e.len()).rev() {
        for j in (0..a.len()).rev() {
            lcs[i][j] = if e[i] == a[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < e.len() || j < a.len() {
        if i < e.len() && j < a.len() && e[i] == a[j] {
            let _ = writeln!(out, "   {}", e[i]);
            i += 1;
            j += 1;
        } else if i < e.len() && (j == a.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "  -{}", e[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "  +{}", a[j]);
            j += 1;
        }
    }
    out
}

/// Blank lines at the end do not count.
fn normalised(s: &str) -> String {
    format!("{}\n", s.trim_end())
}

#[test]
fn filetests() {
    let bless = std::env::var_os("FILETESTS_BLESS").is_some_and(|v| v == "1");
    assert!(
        !(bless && std::env::var_os("CI").is_some()),
        "FILETESTS_BLESS is for writing tests by hand, not for CI"
    );
    let dir = filetests_dir();
    let files = ir_files(&dir);
    assert!(!files.is_empty(), "no .ir files in {}", dir.display());
    let mut failures = Vec::new();
    let mut blessed = 0;
    let mut verify_errors_seen = Vec::new();
    for path in &files {
        let name = path
            .strip_prefix(&dir)
            .unwrap_or(path)
            .display()
            .to_string();
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let test = match split(&text) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let actual = match run(&test.kind, &test.input) {
            Ok((a, error_kind)) => {
                verify_errors_seen.extend(error_kind);
                normalised(&a)
            }
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let expected = test.expected.as_deref().map(normalised);
        if expected.as_deref() == Some(actual.as_str()) {
            continue;
        }
        if bless {
            let mut head = test.head.clone();
            if test.expected.is_none() {
                if !head.ends_with('\n') {
                    head.push('\n');
                }
                head.push_str(EXPECT);
                head.push('\n');
            }
            std::fs::write(path, format!("{head}{actual}"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            blessed += 1;
            continue;
        }
        match expected {
            None => failures.push(format!(
                "{name}: no `{EXPECT}` line; the test made:\n{actual}"
            )),
            Some(expected) => failures.push(format!(
                "{name}: test {} made other text (-expected +actual):\n{}",
                test.kind,
                diff(&expected, &actual)
            )),
        }
    }
    for kind in VERIFY_ERRORS {
        if !verify_errors_seen.contains(&kind) {
            failures.push(format!(
                "verify/: no file makes a VerifyError::{kind}; each kind has one"
            ));
        }
    }
    if blessed > 0 {
        eprintln!("FILETESTS_BLESS: rewrote {blessed} expectation(s); read them before committing");
    }
    assert!(
        failures.is_empty(),
        "{} of {} filetests failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn diff_marks_what_differs() {
    assert_eq!(diff("a\nb\nc\n", "a\nx\nc\n"), "   a\n  -b\n  +x\n   c\n");
}
