//! `cellc compile`: a cell to an object file and its C header (`aot`).

use super::load::{check_text, read_text};
use super::{DType, Emit, Failure};
use crate::aot::{self, Request, names};
use crate::codegen::{self, Listing};
use crate::data::bind;
use crate::data::generate::{self, GenerateError};
use std::path::Path;

pub struct CompileArgs<'a> {
    pub cell: &'a Path,
    pub define: &'a [(String, usize)],
    pub output: &'a Path,
    pub header: Option<&'a Path>,
    pub batch: usize,
    pub dtype: DType,
    pub prefix: Option<&'a str>,
    pub emit: Option<Emit>,
}

fn written(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    crate::data::write_file(path, bytes).map_err(|e| Failure(format!("error: {e}")))
}

pub fn cmd_compile(a: &CompileArgs) -> Result<(), Failure> {
    let text = read_text(a.cell)?;
    let (step, src) = check_text(a.cell, &text)?;
    let defs = bind::defines(a.define).map_err(|e| Failure(format!("error: {e}")))?;
    let bindings =
        generate::generation_bindings::<f32>(&step, &defs, None, None).map_err(|e| match e {
            GenerateError::Bind(b) => src.locate(&b),
            GenerateError::Unbound { missing, .. } => Failure(format!(
                "error: `cellc compile` fixes every size at compile time, and {} {} not bound\n  = help: give {}",
                missing.join(", "),
                if missing.len() == 1 { "is" } else { "are" },
                missing
                    .iter()
                    .map(|m| format!("-D {m}=SIZE"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
            e => Failure(format!("error: {e}")),
        })?;
    let prefix = match a.prefix {
        Some(p) => {
            if names::c_identifier(p) != p {
                return Err(Failure(format!(
                    "error: --prefix `{p}` is not a C identifier (ASCII letters, digits and `_`, not starting with a digit, not a C keyword)"
                )));
            }
            p.to_string()
        }
        None => names::c_identifier(&step.name),
    };
    let adjoint = crate::pipeline::differentiate_step(&step)?;
    let precision = match a.dtype {
        DType::F32 => codegen::F32,
        DType::F64 => codegen::F64,
    };
    let mut source = format!("cellc compile {}", a.cell.display());
    for d in &step.dims {
        if let Some(v) = bindings.get(&d.name) {
            source.push_str(&format!(" -D {}={v}", d.name));
        }
    }
    source.push_str(&format!(
        " --batch {} --dtype {}",
        a.batch, precision.suffix
    ));
    if a.prefix.is_some() {
        source.push_str(&format!(" --prefix {prefix}"));
    }
    let request = Request {
        step: &step,
        adjoint: &adjoint,
        bindings: &bindings,
        batch: a.batch,
        precision,
        prefix,
        listing: Listing {
            clif: a.emit == Some(Emit::Clif),
            asm: a.emit == Some(Emit::Asm),
        },
        source,
    };
    let compiled = aot::compile(&request).map_err(|e| Failure(format!("error: {e}")))?;
    match a.emit {
        None => written(a.output, &compiled.object)?,
        Some(emit) => {
            let mut text = String::new();
            for (name, clif, asm) in &compiled.listings {
                let body = if emit == Emit::Clif { clif } else { asm };
                text.push_str(&format!("; {name}\n"));
                text.push_str(body.as_deref().unwrap_or("; (not available)\n"));
                text.push('\n');
            }
            written(a.output, text.as_bytes())?;
        }
    }
    if let Some(h) = a.header {
        written(h, compiled.header.as_bytes())?;
    }
    Ok(())
}
