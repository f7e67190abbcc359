//! Code generation: a step graph's fused plan (`schedule::fuse`) → native
//! code, compiled in process with Cranelift (`cranelift-jit`).
//!
//! [`compile`] fixes every size (the bindings and the batch), lays out the
//! values the plan keeps in memory ([`lower::layout`]), emits one function
//! per step graph ([`lower::Lowerer`]) and returns it callable
//! ([`CompiledStep`]). The plan's calls go to runtime routines
//! ([`helpers`]) registered with the JIT by name; exp, log, tanh, sigmoid
//! and softplus are inline vector code ([`vmath`]), with documented bounds.

pub use cellc_rt::helpers;
pub mod lower;
pub mod vmath;

use crate::graph::Graph;
use crate::graph::dim::Bindings;
use cranelift_codegen::ir::{AbiParam, InstBuilder};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module};
pub use lower::{F32, F64, Precision};

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CodegenError {
    #[error("a size cannot be computed: {0}")]
    Size(String),
    /// A plan the lowering does not accept: a bug of the compiler.
    #[error("the schedule cannot be lowered: {0}")]
    Plan(String),
    #[error("Cranelift failed: {0}")]
    Cranelift(String),
}

/// The signature of a compiled step: argument pointers, result pointers,
/// scratch memory, the step's table of packed weights.
pub use cellc_rt::driver::StepFn;

/// One step graph compiled for fixed sizes, callable until dropped.
pub struct CompiledStep {
    module: Option<JITModule>,
    func: StepFn,
    /// Scratch elements a call needs.
    pub scratch_len: usize,
    pub precision: Precision,
    /// Cranelift instructions emitted, for compile-cost reports.
    pub instructions: usize,
    /// The packed weights of its products with parameter matrices.
    table: Box<helpers::PackTable>,
}

impl CompiledStep {
    /// Runs one step.
    ///
    /// # Safety
    /// `args` and `results` hold one pointer per argument and result of the
    /// graph compiled, each to a contiguous array of the compiled shape and
    /// float type; results do not overlap arguments or each other; `scratch`
    /// holds `scratch_len` elements; an unbatched matrix argument (a
    /// parameter) holds the same values whenever it is at the same address
    /// until [`CompiledStep::forget_packed`] (its packed copy is reused).
    ///
    /// Denormals are flushed to zero while it runs (`kernels::FlushDenormals`):
    /// a saturated tanh RNN produces them, and each costs x86 about a hundred
    /// times an ordinary operation; the interpreter keeps them.
    pub unsafe fn call(&mut self, args: &[*const u8], results: &[*mut u8], scratch: *mut u8) {
        let _flush = cellc_rt::kernels::FlushDenormals::new();
        let table: *mut helpers::PackTable = &mut *self.table;
        // SAFETY: as the caller promises; the table is this step's own.
        unsafe { (self.func)(args.as_ptr(), results.as_ptr(), scratch, table) }
    }
}

impl CompiledStep {
    /// Drops the packed copies of parameter matrices: the next call packs
    /// them again, from the values they then hold.
    pub fn forget_packed(&mut self) {
        self.table.clear();
    }
}

impl Drop for CompiledStep {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: the function pointer dies with `self`; nothing else
            // points into the module's memory.
            unsafe { m.free_memory() };
        }
    }
}

// The module is only read after finalisation: the code is immutable.
unsafe impl Send for CompiledStep {}

fn cranelift<E: std::fmt::Display>(e: E) -> CodegenError {
    CodegenError::Cranelift(e.to_string())
}

/// The host's instruction set, with the features it has (FMA and SSE4.1
/// among them: without them vector fma and rounding become library calls);
/// position-independent for an object file.
pub fn host_isa(pic: bool) -> Result<cranelift_codegen::isa::OwnedTargetIsa, CodegenError> {
    let mut flags = settings::builder();
    flags.set("opt_level", "speed").map_err(cranelift)?;
    flags
        .set("is_pic", if pic { "true" } else { "false" })
        .map_err(cranelift)?;
    flags
        .set("use_colocated_libcalls", "false")
        .map_err(cranelift)?;
    let isa = cranelift_native::builder().map_err(cranelift)?;
    isa.finish(settings::Flags::new(flags)).map_err(cranelift)
}

/// What to keep of a function while it is compiled, for `cellc compile --emit`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// The Cranelift IR, before compilation.
    pub clif: bool,
    /// The machine code as Cranelift prints it (instructions with their
    /// operands, per block).
    pub asm: bool,
}

/// One step function emitted into a module.
pub struct Emitted {
    pub id: cranelift_module::FuncId,
    /// Scratch elements a call needs.
    pub scratch_len: usize,
    /// Slots of its table of packed weights.
    pub slots: usize,
    /// Cranelift instructions emitted, for compile-cost reports.
    pub instructions: usize,
    pub clif: Option<String>,
    pub asm: Option<String>,
}

/// The signature of a step function ([`StepFn`]) in `module`.
pub fn step_signature(module: &dyn Module) -> cranelift_codegen::ir::Signature {
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    for _ in 0..4 {
        sig.params.push(AbiParam::new(ptr));
    }
    sig
}

/// Emits `g`, compiled for the bindings, batch and float type, into
/// `module` as a function named `name` of the [`StepFn`] signature: what
/// the JIT ([`compile`]) and `cellc compile`'s object both run.
#[allow(clippy::too_many_arguments)]
pub fn emit_step<M: Module>(
    module: &mut M,
    name: &str,
    linkage: Linkage,
    g: &Graph,
    bindings: &Bindings,
    batch: usize,
    prec: Precision,
    listing: Listing,
) -> Result<Emitted, CodegenError> {
    // What runs is the graph with shared subexpressions (one `[h; x]` where
    // the equations build it twice) and no dead code, exact for NaN; the
    // schedule `cellc graph --schedule` prints is of the same graph.
    let simplified = crate::opt::share(g).map_err(|e| CodegenError::Plan(e.to_string()))?;
    let g = &simplified;
    let plan = crate::schedule::fuse(g);
    let layout = lower::layout(g, &plan, bindings, batch, prec.lanes)?;
    let ptr = module.target_config().pointer_type();
    let mut ctx = module.make_context();
    ctx.func.signature = step_signature(module);
    let funcs = lower::import_routines(module, &mut ctx.func, prec)?;
    let mut fbc = FunctionBuilderContext::new();
    let slots;
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fbc);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let params = b.block_params(entry).to_vec();
        let flags = cranelift_codegen::ir::MemFlagsData::new().with_notrap();
        let pointers = |b: &mut FunctionBuilder, base, n: usize| -> Vec<_> {
            (0..n)
                .map(|i| b.ins().load(ptr, flags, base, (i * 8) as i32))
                .collect()
        };
        let args = pointers(&mut b, params[0], g.args.len());
        let results = pointers(&mut b, params[1], g.results.len());
        let mut low = lower::Lowerer {
            b,
            g,
            plan: &plan,
            layout: &layout,
            bindings,
            batch,
            prec,
            ptr,
            args,
            results,
            scratch: params[2],
            table: params[3],
            slots: 0,
            funcs,
        };
        low.emit()?;
        low.b.ins().return_(&[]);
        slots = low.slots;
        low.b.finalize(module.target_config());
    }
    let instructions = ctx.func.dfg.num_insts();
    let clif = listing.clif.then(|| ctx.func.display().to_string());
    ctx.set_disasm(listing.asm);
    let id = module
        .declare_function(name, linkage, &ctx.func.signature)
        .map_err(cranelift)?;
    module.define_function(id, &mut ctx).map_err(cranelift)?;
    let asm = if listing.asm {
        ctx.compiled_code().and_then(|c| c.vcode.clone())
    } else {
        None
    };
    module.clear_context(&mut ctx);
    Ok(Emitted {
        id,
        scratch_len: layout.scratch_len,
        slots,
        instructions,
        clif,
        asm,
    })
}

/// Compiles `g` for the bindings, batch and float type, in process.
pub fn compile(
    g: &Graph,
    bindings: &Bindings,
    batch: usize,
    prec: Precision,
) -> Result<CompiledStep, CodegenError> {
    let mut jb = JITBuilder::with_isa(host_isa(false)?, cranelift_module::default_libcall_names());
    for (name, ptr) in helpers::symbols() {
        jb.symbol(name, ptr);
    }
    let mut module = JITModule::new(jb);
    let step = emit_step(
        &mut module,
        "step",
        Linkage::Local,
        g,
        bindings,
        batch,
        prec,
        Listing::default(),
    )?;
    module.finalize_definitions().map_err(cranelift)?;
    let code = module.get_finalized_function(step.id);
    // SAFETY: the function was built with exactly this signature.
    let func: StepFn = unsafe { std::mem::transmute::<*const u8, StepFn>(code) };
    Ok(CompiledStep {
        module: Some(module),
        func,
        scratch_len: step.scratch_len,
        precision: prec,
        instructions: step.instructions,
        table: Box::new(helpers::PackTable::new(step.slots)),
    })
}
