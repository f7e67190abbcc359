//! Table-driven error cases for the `cellc` binary: each case runs in a fresh
//! directory of its own, and every failing case is reported by name at the
//! end, so that one broken message does not hide the others.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

/// Writes a case's files into its (empty) directory.
pub type Setup = Box<dyn Fn(&Path)>;

/// One command that must fail: with exit status `code`, no panic, nothing on
/// stdout, exactly one error message holding every needle (a needle is found
/// when any of its `|`-separated alternatives is) and none of `absent`, and
/// its directory left exactly as it was, names and bytes: no output file, no
/// temporary file, no existing file touched.
pub struct ErrorCase {
    pub name: String,
    pub setup: Option<Setup>,
    pub args: Vec<String>,
    pub code: i32,
    pub needles: Vec<String>,
    pub absent: Vec<String>,
}

/// A case failing with exit status 1, in a directory holding only what the
/// table's common setup writes.
pub fn fails(name: &str, args: &[&str], needles: &[&str]) -> ErrorCase {
    ErrorCase {
        name: name.to_string(),
        setup: None,
        args: args.iter().map(|a| a.to_string()).collect(),
        code: 1,
        needles: needles.iter().map(|n| n.to_string()).collect(),
        absent: vec![],
    }
}

impl ErrorCase {
    /// The case's own files, written after the table's common ones.
    pub fn with(mut self, setup: impl Fn(&Path) + 'static) -> ErrorCase {
        self.setup = Some(Box::new(setup));
        self
    }

    /// Text the message must not hold.
    pub fn without(mut self, absent: &[&str]) -> ErrorCase {
        self.absent = absent.iter().map(|a| a.to_string()).collect();
        self
    }
}

/// Every file and directory below `dir`, with the bytes of each file.
fn tree(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            let name = path.strip_prefix(dir).unwrap().display().to_string();
            // A symlink is listed with what it points to, not followed.
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                out.insert(name + "/", None);
                stack.push(path);
            } else if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.insert(name, Some(target.display().to_string().into_bytes()));
            } else {
                out.insert(name, Some(fs::read(&path).unwrap()));
            }
        }
    }
    out
}

/// What is wrong with the outcome of `case`, if anything.
fn failure(case: &ErrorCase, common: &dyn Fn(&Path)) -> Option<String> {
    let dir = super::scratch("error-case");
    common(&dir);
    if let Some(setup) = &case.setup {
        setup(&dir);
    }
    let before = tree(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_cellc"))
        .args(&case.args)
        .current_dir(&*dir)
        .output()
        .expect("the cellc binary runs");
    let after = tree(&dir);
    drop(dir);

    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors = stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("error"))
        .count();
    let mut wrong = Vec::new();
    if out.status.code() != Some(case.code) {
        wrong.push(format!(
            "exit status {:?}, not {}",
            out.status.code(),
            case.code
        ));
    }
    if stderr.contains("panicked") {
        wrong.push("a panic".to_string());
    }
    if !stdout.trim().is_empty() {
        wrong.push("output on stdout".to_string());
    }
    if errors != 1 {
        wrong.push(format!("{errors} error messages, not one"));
    }
    for n in &case.needles {
        if !n.split('|').any(|alt| stderr.contains(alt)) {
            wrong.push(format!("the message does not mention {n:?}"));
        }
    }
    for a in &case.absent {
        if stderr.contains(a.as_str()) {
            wrong.push(format!("the message holds {a:?}"));
        }
    }
    if after != before {
        let changed: Vec<&String> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .collect();
        wrong.push(format!("the directory changed: {changed:?}"));
    }
    (!wrong.is_empty()).then(|| {
        format!(
            "{}: {}\n  cellc {}\n  --- stdout:\n{stdout}  --- stderr:\n{stderr}",
            case.name,
            wrong.join("; "),
            case.args.join(" ")
        )
    })
}

/// Runs every case, each in a fresh directory prepared by `common` and then by
/// the case's own setup; fails naming every case that went wrong.
#[track_caller]
pub fn assert_error_cases(common: impl Fn(&Path), cases: Vec<ErrorCase>) {
    let mut names = std::collections::BTreeSet::new();
    for c in &cases {
        assert!(
            names.insert(c.name.as_str()),
            "two cases are named {:?}",
            c.name
        );
    }
    let failures: Vec<String> = cases.iter().filter_map(|c| failure(c, &common)).collect();
    assert!(
        failures.is_empty(),
        "{} of {} error cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
