//! Ahead of time: a checked cell and its BPTT adjoint → one position-
//! independent object file (cranelift-object) with C entry points, and the C
//! header that documents them (`cellc compile`).
//!
//! The object holds three step functions (the forward step, BPTT's forward
//! step that saves residuals, the adjoint step), compiled by the same
//! lowering as the JIT's (`codegen::emit_step`) for the sizes and batch fixed
//! at compile time; the cell's descriptor (`cellc_rt::driver::desc`); and
//! four exported entry points that pass both to the time loop in
//! `libcellc_rt.a` (`cellc_rt::driver`):
//!
//! - `P_forward_workspace(T)`, `P_backward_workspace(T)`: bytes to allocate;
//! - `P_forward(...)`, `P_backward(...)`: the runs, returning an error code.
//!
//! Every other symbol is local; the undefined ones are the runtime's
//! (`cellc_*`) and the C library's.

mod header;
pub mod names;

use crate::autodiff::StepAdjoint;
use crate::codegen::{self, CodegenError, Emitted, Listing, Precision};
use crate::graph::dim::Bindings;
use crate::graph::step::{ArgKind, Init, StepGraph};
use crate::runtime::kernel::shapes;
use crate::runtime::types::size;
use cellc_rt::driver::desc;
use cranelift_codegen::ir::{AbiParam, InstBuilder, Signature, types};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{DataDescription, FuncId, Linkage, Module};
use cranelift_object::{ObjectBuilder, ObjectModule};

/// What `cellc compile` asks for.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    pub step: &'a StepGraph,
    pub adjoint: &'a StepAdjoint,
    pub bindings: &'a Bindings,
    pub batch: usize,
    pub precision: Precision,
    /// Of every exported symbol and of the header's names (a C identifier).
    pub prefix: String,
    pub listing: Listing,
    /// For the header's first lines: the cell file, the command.
    pub source: String,
}

/// What it produces.
pub struct Compiled {
    pub object: Vec<u8>,
    pub header: String,
    /// Per step function, its name and the listings asked for.
    pub listings: Vec<(String, Option<String>, Option<String>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum AotError {
    #[error(transparent)]
    Codegen(#[from] CodegenError),
    #[error("{0}")]
    Unsupported(String),
}

fn cranelift<E: std::fmt::Display>(e: E) -> CodegenError {
    CodegenError::Cranelift(e.to_string())
}

/// The descriptor of the cell for the driver, from the three emitted steps.
fn descriptor(r: &Request, emitted: &[Emitted; 3]) -> Result<desc::Descriptor, AotError> {
    let step = r.step;
    let b = r.bindings;
    let elems = |g: &crate::graph::Graph| -> Result<Vec<usize>, AotError> {
        let (_, results) = shapes(g, b, r.batch)
            .map_err(|e| AotError::Codegen(CodegenError::Size(e.to_string())))?;
        Ok(results.iter().map(|s| s.iter().product()).collect())
    };
    let graphs = [&step.graph, &r.adjoint.forward, &r.adjoint.backward];
    let mut steps = Vec::new();
    for (g, e) in graphs.iter().zip(emitted) {
        steps.push(desc::Step {
            scratch: e.scratch_len,
            slots: e.slots,
            results: elems(g)?,
        });
    }
    let mut outputs = Vec::new();
    for o in &step.outputs {
        if !o.ty.batched {
            return Err(AotError::Unsupported(format!(
                "output `{}` depends on no input or state (it is the same for every sequence): `cellc compile` needs every output to be per sequence",
                o.name
            )));
        }
        outputs.push(desc::Output {
            n: o.ty.dims.iter().map(|d| size(d, b)).product(),
            batched: true,
        });
    }
    let steps: [desc::Step; 3] = steps.try_into().expect("three steps");
    Ok(desc::Descriptor {
        elem_bytes: r.precision.bytes,
        batch: r.batch,
        depth: step.max_lag().max(1) as usize,
        params: step
            .params
            .iter()
            .map(|p| p.dims.iter().map(|d| size(d, b)).product())
            .collect(),
        inputs: step.inputs.iter().map(|i| size(&i.size, b)).collect(),
        states: step
            .states
            .iter()
            .map(|s| desc::State {
                n: size(&s.size, b),
                init: match s.init {
                    Init::Zero => desc::Init::Zero,
                    Init::Param(p) => desc::Init::Param(p),
                },
            })
            .collect(),
        outputs,
        args: step
            .arg_kinds
            .iter()
            .map(|k| match *k {
                ArgKind::Param(p) => desc::Arg::Param(p),
                ArgKind::Input(i) => desc::Arg::Input(i),
                ArgKind::State { state, lag } => desc::Arg::State {
                    state,
                    lag: lag as usize,
                },
            })
            .collect(),
        steps,
    })
}

/// A signature of pointer-sized (`P`), 32-bit (`I`) and size (`S`)
/// parameters, returning `ret`.
fn signature(module: &ObjectModule, params: &str, ret: Option<types::Type>) -> Signature {
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    for c in params.chars() {
        sig.params.push(AbiParam::new(match c {
            'I' => types::I32,
            _ => ptr,
        }));
    }
    if let Some(t) = ret {
        sig.returns.push(AbiParam::new(t));
    }
    sig
}

/// Defines the exported `name`: a function of `params` that calls the
/// runtime's `target` with the descriptor's address, then `before` (step
/// functions' addresses or a constant), then its own parameters.
#[allow(clippy::too_many_arguments)]
fn define_entry(
    module: &mut ObjectModule,
    name: &str,
    params: &str,
    ret: types::Type,
    target: FuncId,
    descriptor: cranelift_module::DataId,
    steps: &[FuncId],
    mode: Option<i64>,
) -> Result<(), CodegenError> {
    let ptr = module.target_config().pointer_type();
    let mut ctx = module.make_context();
    ctx.func.signature = signature(module, params, Some(ret));
    let gv = module.declare_data_in_func(descriptor, &mut ctx.func);
    let callee = module.declare_func_in_func(target, &mut ctx.func);
    let step_refs: Vec<_> = steps
        .iter()
        .map(|&s| module.declare_func_in_func(s, &mut ctx.func))
        .collect();
    let cfg = module.target_config();
    let mut fbc = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fbc);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let own = b.block_params(entry).to_vec();
        let mut args = vec![b.ins().symbol_value(ptr, gv)];
        if let Some(m) = mode {
            args.push(b.ins().iconst(types::I32, m));
        }
        for f in step_refs {
            args.push(b.ins().func_addr(ptr, f));
        }
        args.extend(own);
        let call = b.ins().call(callee, &args);
        let result = b.inst_results(call)[0];
        b.ins().return_(&[result]);
        b.finalize(cfg);
    }
    let id = module
        .declare_function(name, Linkage::Export, &ctx.func.signature)
        .map_err(cranelift)?;
    module.define_function(id, &mut ctx).map_err(cranelift)?;
    module.clear_context(&mut ctx);
    Ok(())
}

/// Compiles the cell to an object and its header.
pub fn compile(r: &Request) -> Result<Compiled, AotError> {
    let p = &r.prefix;
    let isa = codegen::host_isa(true)?;
    let builder = ObjectBuilder::new(
        isa,
        format!("{p}.o").into_bytes(),
        cranelift_module::default_libcall_names(),
    )
    .map_err(cranelift)?;
    let mut module = ObjectModule::new(builder);
    let graphs = [
        ("forward_step", &r.step.graph),
        ("bptt_forward_step", &r.adjoint.forward),
        ("adjoint_step", &r.adjoint.backward),
    ];
    let mut emitted = Vec::new();
    let mut listings = Vec::new();
    for (what, g) in graphs {
        let name = format!("{p}__{what}");
        let e = codegen::emit_step(
            &mut module,
            &name,
            Linkage::Local,
            g,
            r.bindings,
            r.batch,
            r.precision,
            r.listing,
        )?;
        listings.push((name, e.clif.clone(), e.asm.clone()));
        emitted.push(e);
    }
    let emitted: [Emitted; 3] = emitted.try_into().ok().expect("three steps");
    let d = descriptor(r, &emitted)?;

    let data = module
        .declare_data(&format!("{p}__descriptor"), Linkage::Local, false, false)
        .map_err(cranelift)?;
    let mut dd = DataDescription::new();
    let bytes: Vec<u8> = d.encode().iter().flat_map(|w| w.to_le_bytes()).collect();
    dd.define(bytes.into_boxed_slice());
    dd.set_align(8);
    module.define_data(data, &dd).map_err(cranelift)?;

    let ptr = module.target_config().pointer_type();
    let import = |module: &mut ObjectModule, name: &str, params: &str, ret| {
        let sig = signature(module, params, Some(ret));
        module
            .declare_function(name, Linkage::Import, &sig)
            .map_err(cranelift)
    };
    let rt_workspace = import(&mut module, "cellc_rt_workspace", "PIS", ptr)?;
    let rt_forward = import(&mut module, "cellc_rt_forward", "PPSPPPPIPPPS", types::I32)?;
    let rt_backward = import(
        &mut module,
        "cellc_rt_backward",
        "PPPSPPPPIPPPPPPPS",
        types::I32,
    )?;
    let [fwd, bptt_fwd, adj] = [emitted[0].id, emitted[1].id, emitted[2].id];
    use cellc_rt::driver::{MODE_BACKWARD, MODE_FORWARD};
    define_entry(
        &mut module,
        &format!("{p}_forward_workspace"),
        "S",
        ptr,
        rt_workspace,
        data,
        &[],
        Some(MODE_FORWARD as i64),
    )?;
    define_entry(
        &mut module,
        &format!("{p}_backward_workspace"),
        "S",
        ptr,
        rt_workspace,
        data,
        &[],
        Some(MODE_BACKWARD as i64),
    )?;
    define_entry(
        &mut module,
        &format!("{p}_forward"),
        "SPPPPIPPPS",
        types::I32,
        rt_forward,
        data,
        &[fwd],
        None,
    )?;
    define_entry(
        &mut module,
        &format!("{p}_backward"),
        "SPPPPIPPPPPPPS",
        types::I32,
        rt_backward,
        data,
        &[bptt_fwd, adj],
        None,
    )?;
    let object = module.finish().emit().map_err(cranelift)?;
    let header = header::header(r, &d);
    Ok(Compiled {
        object,
        header,
        listings,
    })
}
