//! Lowering: a fused plan of one step graph, with every size known, → one
//! Cranelift function `step(args, results, scratch)`.
//!
//! The three parameters are pointers: to an array of argument pointers (the
//! graph's arguments, in order, each a contiguous row-major array), to an
//! array of result pointers (likewise, each written in full), and to scratch
//! memory of [`Layout::scratch_len`] elements. Values the plan keeps in memory
//! get a **place**: an argument, a result buffer (a node that is a result is
//! computed straight into it), or a slot of scratch; a view is its root's
//! place moved along the row.
//!
//! Loops run over rows (the batch, when the space is batched) and, within a
//! row, over vectors of [`Precision::lanes`] elements; the last `n mod lanes`
//! elements go through the same vector code with their lanes loaded and
//! stored one at a time, so every element is computed by the same
//! instructions wherever it falls. When every operand is contiguous over the
//! whole space, rows and elements are one flat loop.

use super::CodegenError;
use crate::graph::dim::{Bindings, Type};
use crate::graph::op::{Binary, Op, Unary};
use crate::graph::{Graph, NodeId};
use crate::schedule::{Fused, Home, Item, Loop};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    AbiParam, Endianness, FuncRef, InstBuilder, MemFlagsData, Signature, Type as ClType, Value,
    types,
};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::{FunctionBuilder, Variable};
use cranelift_module::{Linkage, Module};
use std::collections::HashMap;

/// The float type code is generated for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Precision {
    pub scalar: ClType,
    pub vector: ClType,
    pub lanes: usize,
    pub bytes: usize,
    /// Of the runtime routines' names: `cellc_matvec_f32`.
    pub suffix: &'static str,
}

pub const F32: Precision = Precision {
    scalar: types::F32,
    vector: types::F32X4,
    lanes: 4,
    bytes: 4,
    suffix: "f32",
};
pub const F64: Precision = Precision {
    scalar: types::F64,
    vector: types::F64X2,
    lanes: 2,
    bytes: 8,
    suffix: "f64",
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    Arg(usize),
    Result(usize),
    Scratch,
}

/// Where a value in memory is, in elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub base: Base,
    pub offset: usize,
    /// From one batch row to the next.
    pub row_stride: usize,
}

/// The memory of one lowered step.
#[derive(Clone, Debug)]
pub struct Layout {
    pub places: Vec<Option<Place>>,
    pub scratch_len: usize,
}

/// A node's rows (the batch, or 1) and elements per row.
fn extent(ty: &Type, bindings: &Bindings, batch: usize) -> Result<(usize, usize), CodegenError> {
    let mut inner = 1usize;
    for d in &ty.dims {
        let v = d.eval(bindings).map_err(CodegenError::Size)?;
        inner = inner
            .checked_mul(usize::try_from(v).map_err(|_| CodegenError::Size(format!("{d} = {v}")))?)
            .ok_or_else(|| CodegenError::Size(format!("{ty} overflows")))?;
    }
    Ok((if ty.batched { batch } else { 1 }, inner))
}

/// Gives every value the plan keeps in memory its place.
pub fn layout(
    g: &Graph,
    plan: &Fused,
    bindings: &Bindings,
    batch: usize,
    lanes: usize,
) -> Result<Layout, CodegenError> {
    let mut places: Vec<Option<Place>> = vec![None; g.len()];
    let mut scratch_len = 0usize;
    let mut result_of: HashMap<usize, usize> = HashMap::new();
    for (r, out) in g.results.iter().enumerate() {
        result_of.entry(out.node.index()).or_insert(r);
    }
    for id in g.node_ids() {
        let i = id.index();
        let (rows, inner) = extent(&g.node(id).ty, bindings, batch)?;
        places[i] = match &plan.homes[i] {
            Home::Arg(a) => Some(Place {
                base: Base::Arg(*a),
                offset: 0,
                row_stride: inner,
            }),
            Home::Buffer => Some(match result_of.get(&i) {
                Some(&r) => Place {
                    base: Base::Result(r),
                    offset: 0,
                    row_stride: inner,
                },
                None => {
                    let offset = scratch_len;
                    // Slots start on a whole vector, for aligned rows.
                    let len = rows * inner;
                    scratch_len += len.div_ceil(lanes) * lanes;
                    Place {
                        base: Base::Scratch,
                        offset,
                        row_stride: inner,
                    }
                }
            }),
            Home::View { of, start } => {
                let root = places[of.index()].ok_or_else(|| {
                    CodegenError::Plan(format!("a view of %{} which is not in memory", of.index()))
                })?;
                let s = start.eval(bindings).map_err(CodegenError::Size)?;
                Some(Place {
                    offset: root.offset + usize::try_from(s).unwrap_or(0),
                    ..root
                })
            }
            Home::Register | Home::Immediate => None,
        };
    }
    Ok(Layout {
        places,
        scratch_len,
    })
}

/// How a loop reads one operand.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Access {
    /// Element `j` of the operand's row (of its only row when unbatched).
    Elem { batched: bool },
    /// One value for the whole row.
    Splat { batched: bool },
}

fn access(operand: &Type, space: &Type) -> Access {
    if operand.rank() == space.rank() && (operand.batched || !space.batched || space.rank() > 0) {
        Access::Elem {
            batched: operand.batched,
        }
    } else {
        Access::Splat {
            batched: operand.batched,
        }
    }
}

/// Emits the body of a step function.
pub struct Lowerer<'a, 'b> {
    pub b: FunctionBuilder<'b>,
    pub g: &'a Graph,
    pub plan: &'a Fused,
    pub layout: &'a Layout,
    pub bindings: &'a Bindings,
    pub batch: usize,
    pub prec: Precision,
    pub ptr: ClType,
    /// The entry block's base pointers.
    pub args: Vec<Value>,
    pub results: Vec<Value>,
    pub scratch: Value,
    /// The step's `cellc_rt::helpers::PackTable`.
    pub table: Value,
    /// Slots of the table used so far.
    pub slots: usize,
    pub funcs: HashMap<String, FuncRef>,
}

/// The runtime routines generated code calls: name (without the float
/// suffix), parameter types (`P` pointer/size, `F` float, `I` 32-bit flag).
pub const ROUTINES: &[(&str, &str)] = &[
    ("matvec", "PPPPPPPPI"),
    ("outer", "PPPPPPPP"),
    ("outer_sum", "PPPPPPPP"),
    ("copy", "PPPPPP"),
    ("reduce", "IPPPPP"),
    ("batch_sum", "PPPPP"),
    ("fill", "PFP"),
    ("packed_matvec", "PPPPPPPPPI"),
];

/// At most this many rows go through a packed product (`kernels::Packed`,
/// measured faster than the gemm crate from 1 to 64 rows); more rows (the
/// hoisted products over T·B rows) through the GEMM.
pub const PACKED_MAX_ROWS: usize = 64;

/// Declares every routine in `module` and imports it into `func`.
pub fn import_routines(
    module: &mut dyn Module,
    func: &mut cranelift_codegen::ir::Function,
    prec: Precision,
) -> Result<HashMap<String, FuncRef>, CodegenError> {
    let ptr = module.target_config().pointer_type();
    let mut funcs = HashMap::new();
    for (name, params) in ROUTINES {
        let mut sig = Signature::new(CallConv::triple_default(module.isa().triple()));
        for c in params.chars() {
            sig.params.push(AbiParam::new(match c {
                'P' => ptr,
                'F' => prec.scalar,
                _ => types::I32,
            }));
        }
        let full = format!("cellc_{name}_{}", prec.suffix);
        let id = module
            .declare_function(&full, Linkage::Import, &sig)
            .map_err(|e| CodegenError::Cranelift(e.to_string()))?;
        funcs.insert(name.to_string(), module.declare_func_in_func(id, func));
    }
    Ok(funcs)
}

/// Per row of a loop: each memory operand's row address, and each splat.
struct RowCtx {
    addr: HashMap<usize, Value>,
    splat: HashMap<usize, Value>,
}

impl Lowerer<'_, '_> {
    fn flags(&self) -> MemFlagsData {
        MemFlagsData::new().with_notrap()
    }

    fn iconst(&mut self, v: usize) -> Value {
        self.b.ins().iconst(self.ptr, v as i64)
    }

    /// The address of element `offset` of a place's base.
    fn base_addr(&mut self, p: Place, extra: usize) -> Value {
        let base = match p.base {
            Base::Arg(a) => self.args[a],
            Base::Result(r) => self.results[r],
            Base::Scratch => self.scratch,
        };
        let off = (p.offset + extra) * self.prec.bytes;
        if off == 0 {
            base
        } else {
            self.b.ins().iadd_imm_u(base, off as i64)
        }
    }

    fn place(&self, id: NodeId) -> Result<Place, CodegenError> {
        self.layout.places[id.index()]
            .ok_or_else(|| CodegenError::Plan(format!("%{} is not in memory", id.index())))
    }

    fn extent(&self, id: NodeId) -> Result<(usize, usize), CodegenError> {
        extent(&self.g.node(id).ty, self.bindings, self.batch)
    }

    fn immediate(&self, id: NodeId) -> Result<f64, CodegenError> {
        match &self.g.node(id).op {
            Op::Const(c) => Ok(*c),
            Op::DimSize(d) => Ok(d.eval(self.bindings).map_err(CodegenError::Size)? as f64),
            other => Err(CodegenError::Plan(format!(
                "{} is not a constant",
                other.name()
            ))),
        }
    }

    fn fconst(&mut self, v: f64) -> Value {
        let s = if self.prec.scalar == types::F32 {
            self.b.ins().f32const(v as f32)
        } else {
            self.b.ins().f64const(v)
        };
        self.b.ins().splat(self.prec.vector, s)
    }

    /// Emits the whole step: every item, then the copies into results that
    /// are not computed in place.
    pub fn emit(&mut self) -> Result<(), CodegenError> {
        for item in &self.plan.items {
            match item {
                Item::Loop(l) => self.emit_loop(l)?,
                Item::Call(id) => self.emit_call(*id)?,
            }
        }
        for (r, out) in self.g.results.iter().enumerate() {
            let here = self.layout.places[out.node.index()];
            if here.is_some_and(|p| p.base == Base::Result(r)) {
                continue;
            }
            let (rows, inner) = self.extent(out.node)?;
            let dst = self.results[r];
            match here {
                Some(p) => {
                    let src = self.base_addr(p, 0);
                    let rs = if self.g.node(out.node).ty.batched {
                        p.row_stride
                    } else {
                        0
                    };
                    let args = [rows, inner];
                    let mut a: Vec<Value> = args.iter().map(|&v| self.iconst(v)).collect();
                    a.push(src);
                    a.push(self.iconst(rs));
                    a.push(dst);
                    a.push(self.iconst(inner));
                    self.call("copy", &a);
                }
                None => {
                    let v = self.immediate(out.node)?;
                    let n = self.iconst(rows * inner);
                    let s = if self.prec.scalar == types::F32 {
                        self.b.ins().f32const(v as f32)
                    } else {
                        self.b.ins().f64const(v)
                    };
                    self.call("fill", &[n, s, dst]);
                }
            }
        }
        Ok(())
    }

    fn call(&mut self, name: &str, args: &[Value]) -> Option<Value> {
        let f = self.funcs[name];
        let inst = self.b.ins().call(f, args);
        self.b.inst_results(inst).first().copied()
    }

    /// A loop counter running `0, step, …` while below `end`, at least once.
    fn counted(
        &mut self,
        end: usize,
        step: usize,
        body: &mut dyn FnMut(&mut Self, Value) -> Result<(), CodegenError>,
    ) -> Result<(), CodegenError> {
        if end == 0 {
            return Ok(());
        }
        if end <= step {
            let zero = self.iconst(0);
            return body(self, zero);
        }
        let var: Variable = self.b.declare_var(self.ptr);
        let zero = self.iconst(0);
        self.b.def_var(var, zero);
        let blk = self.b.create_block();
        let exit = self.b.create_block();
        self.b.ins().jump(blk, &[]);
        self.b.switch_to_block(blk);
        let i = self.b.use_var(var);
        body(self, i)?;
        let next = self.b.ins().iadd_imm_u(i, step as i64);
        self.b.def_var(var, next);
        let more = self
            .b
            .ins()
            .icmp_imm_u(IntCC::UnsignedLessThan, next, end as i64);
        self.b.ins().brif(more, blk, &[], exit, &[]);
        self.b.seal_block(blk);
        self.b.switch_to_block(exit);
        self.b.seal_block(exit);
        Ok(())
    }

    /// The operands a loop reads from memory, and the members it stores.
    fn loop_memory(&self, l: &Loop) -> (Vec<NodeId>, Vec<NodeId>) {
        let members: std::collections::HashSet<usize> = l.nodes.iter().map(|n| n.index()).collect();
        let mut reads = Vec::new();
        for &id in &l.nodes {
            for o in self.g.operands(id) {
                let inside = members.contains(&o.index());
                let imm = self.plan.homes[o.index()] == Home::Immediate;
                if !inside && !imm && !reads.contains(&o) {
                    reads.push(o);
                }
            }
        }
        let stores = l
            .nodes
            .iter()
            .copied()
            .filter(|n| self.plan.homes[n.index()] == Home::Buffer)
            .collect();
        (reads, stores)
    }

    fn emit_loop(&mut self, l: &Loop) -> Result<(), CodegenError> {
        let (rows, inner) = extent(&l.space, self.bindings, self.batch)?;
        let (reads, stores) = self.loop_memory(l);
        // One flat loop when every row follows the last in memory.
        let mut flat = rows > 1;
        for &o in &reads {
            let p = self.place(o)?;
            let flat_ok = match access(&self.g.node(o).ty, &l.space) {
                Access::Elem { batched: true } => p.row_stride == inner,
                Access::Elem { batched: false } => false,
                Access::Splat { batched } => !batched,
            };
            flat &= flat_ok;
        }
        let (outer, n) = if flat {
            (1, rows * inner)
        } else {
            (rows, inner)
        };
        let lanes = self.prec.lanes;
        let whole = n / lanes * lanes;
        let rest = n - whole;
        self.counted(outer, 1, &mut |me: &mut Self, row: Value| {
            // Row addresses and splats.
            let mut ctx = RowCtx {
                addr: HashMap::new(),
                splat: HashMap::new(),
            };
            for &o in reads.iter().chain(stores.iter()) {
                let p = me.place(o)?;
                let ty = me.g.node(o).ty.clone();
                let is_store = stores.contains(&o);
                let acc = if is_store {
                    Access::Elem {
                        batched: ty.batched,
                    }
                } else {
                    access(&ty, &l.space)
                };
                let base = me.base_addr(p, 0);
                let batched = match acc {
                    Access::Elem { batched } | Access::Splat { batched } => batched,
                };
                let addr = if batched && outer > 1 {
                    let stride = (p.row_stride * me.prec.bytes) as i64;
                    let off = me.b.ins().imul_imm_u(row, stride);
                    me.b.ins().iadd(base, off)
                } else {
                    base
                };
                match acc {
                    Access::Elem { .. } => {
                        ctx.addr.insert(o.index(), addr);
                    }
                    Access::Splat { .. } => {
                        let flags = me.flags();
                        let s = me.b.ins().load(me.prec.scalar, flags, addr, 0);
                        let v = me.b.ins().splat(me.prec.vector, s);
                        ctx.splat.insert(o.index(), v);
                    }
                }
            }
            if whole > 0 {
                me.counted(whole, lanes, &mut |me: &mut Self, j: Value| {
                    me.emit_body(l, &ctx, j, lanes)
                })?;
            }
            if rest > 0 {
                let j = me.iconst(whole);
                me.emit_body(l, &ctx, j, rest)?;
            }
            Ok(())
        })
    }

    /// The loop's members at element `j` (an index), `live` lanes of a vector.
    fn emit_body(
        &mut self,
        l: &Loop,
        ctx: &RowCtx,
        j: Value,
        live: usize,
    ) -> Result<(), CodegenError> {
        let byte = self.b.ins().imul_imm_u(j, self.prec.bytes as i64);
        let mut regs: HashMap<usize, Value> = HashMap::new();
        for &id in &l.nodes {
            let mut vals = Vec::new();
            for o in self.g.operands(id) {
                let v = if let Some(&v) = regs.get(&o.index()) {
                    v
                } else if self.plan.homes[o.index()] == Home::Immediate {
                    let c = self.immediate(o)?;
                    self.fconst(c)
                } else if let Some(&v) = ctx.splat.get(&o.index()) {
                    v
                } else {
                    let a = ctx.addr[&o.index()];
                    let a = self.b.ins().iadd(a, byte);
                    self.load(a, live)
                };
                vals.push(v);
            }
            let v = self.elementwise(id, &vals)?;
            regs.insert(id.index(), v);
            if self.plan.homes[id.index()] == Home::Buffer {
                let a = ctx.addr[&id.index()];
                let a = self.b.ins().iadd(a, byte);
                self.store(v, a, live);
            }
        }
        Ok(())
    }

    fn load(&mut self, addr: Value, live: usize) -> Value {
        let flags = self.flags();
        if live == self.prec.lanes {
            return self.b.ins().load(self.prec.vector, flags, addr, 0);
        }
        let mut v = self.fconst(0.0);
        for k in 0..live {
            let s = self
                .b
                .ins()
                .load(self.prec.scalar, flags, addr, (k * self.prec.bytes) as i32);
            v = self.b.ins().insertlane(v, s, k as u8);
        }
        v
    }

    fn store(&mut self, v: Value, addr: Value, live: usize) {
        let flags = self.flags();
        if live == self.prec.lanes {
            self.b.ins().store(flags, v, addr, 0);
            return;
        }
        for k in 0..live {
            let s = self.b.ins().extractlane(v, k as u8);
            self.b
                .ins()
                .store(flags, s, addr, (k * self.prec.bytes) as i32);
        }
    }

    /// Lanes of `a` where `mask` is set, of `b` elsewhere.
    fn select(&mut self, mask: Value, a: Value, b: Value) -> Value {
        let flags = MemFlagsData::new().with_endianness(Endianness::Little);
        let m = self.b.ins().bitcast(self.prec.vector, flags, mask);
        self.b.ins().bitselect(m, a, b)
    }

    fn elementwise(&mut self, id: NodeId, v: &[Value]) -> Result<Value, CodegenError> {
        let op = self.g.node(id).op.clone();
        Ok(match op {
            Op::Binary(bin) => match bin {
                Binary::Add => self.b.ins().fadd(v[0], v[1]),
                Binary::Sub => self.b.ins().fsub(v[0], v[1]),
                Binary::Mul => self.b.ins().fmul(v[0], v[1]),
                Binary::Div => self.b.ins().fdiv(v[0], v[1]),
            },
            Op::Unary(u) => self.unary(u, v[0]),
            Op::Broadcast(_) | Op::StopGradient => v[0],
            Op::Zeros(_) => self.fconst(0.0),
            other => {
                return Err(CodegenError::Plan(format!(
                    "{} is not elementwise",
                    other.name()
                )));
            }
        })
    }

    fn unary(&mut self, u: Unary, x: Value) -> Value {
        let zero = self.fconst(0.0);
        let one = self.fconst(1.0);
        match u {
            Unary::Neg => self.b.ins().fneg(x),
            Unary::Abs => self.b.ins().fabs(x),
            Unary::Sqrt => self.b.ins().sqrt(x),
            // max(x, 0) with NaN kept: 0 where x ≤ 0, else x.
            Unary::Relu => {
                let le = self.b.ins().fcmp(FloatCC::LessThanOrEqual, x, zero);
                self.select(le, zero, x)
            }
            Unary::Step => {
                let gt = self.b.ins().fcmp(FloatCC::GreaterThan, x, zero);
                let le = self.b.ins().fcmp(FloatCC::LessThanOrEqual, x, zero);
                let low = self.select(le, zero, x);
                self.select(gt, one, low)
            }
            Unary::Sign => {
                let gt = self.b.ins().fcmp(FloatCC::GreaterThan, x, zero);
                let lt = self.b.ins().fcmp(FloatCC::LessThan, x, zero);
                let minus = self.b.ins().fneg(one);
                let low = self.select(lt, minus, x);
                self.select(gt, one, low)
            }
            Unary::Exp => super::vmath::exp(&mut self.b, self.prec.vector, x),
            Unary::Log => super::vmath::log(&mut self.b, self.prec.vector, x),
            Unary::Tanh => super::vmath::tanh(&mut self.b, self.prec.vector, x),
            Unary::Sigmoid => super::vmath::sigmoid(&mut self.b, self.prec.vector, x),
            Unary::Softplus => super::vmath::softplus(&mut self.b, self.prec.vector, x),
        }
    }

    fn emit_call(&mut self, id: NodeId) -> Result<(), CodegenError> {
        let g = self.g;
        let node = g.node(id);
        let ops = g.operands(id);
        let out = self.place(id)?;
        let dst = self.base_addr(out, 0);
        let (rows, _) = self.extent(id)?;
        let ty = |n: NodeId| &g.node(n).ty;
        // An operand's pointer and row stride (0: the same row for every row).
        let operand = |me: &mut Self, o: NodeId| -> Result<(Value, usize), CodegenError> {
            let p = me.place(o)?;
            let rs = if ty(o).batched { p.row_stride } else { 0 };
            Ok((me.base_addr(p, 0), rs))
        };
        match &node.op {
            Op::MatVec | Op::MatTVec => {
                let (w, w_rs) = operand(self, ops[0])?;
                let (v, v_rs) = operand(self, ops[1])?;
                let dims = &ty(ops[0]).dims;
                let m = dims[0].eval(self.bindings).map_err(CodegenError::Size)? as usize;
                let n = dims[1].eval(self.bindings).map_err(CodegenError::Size)? as usize;
                // A parameter's matrix (an unbatched argument) at few rows:
                // packed once, reused at every step.
                let constant =
                    matches!(self.plan.homes[ops[0].index()], Home::Arg(_)) && !ty(ops[0]).batched;
                if constant && rows <= PACKED_MAX_ROWS {
                    let slot = self.slots;
                    self.slots += 1;
                    let mut a = vec![self.table];
                    for s in [slot, rows, m, n] {
                        a.push(self.iconst(s));
                    }
                    a.push(w);
                    a.push(v);
                    a.push(self.iconst(v_rs));
                    a.push(dst);
                    a.push(
                        self.b
                            .ins()
                            .iconst(types::I32, i64::from(node.op == Op::MatTVec)),
                    );
                    self.call("packed_matvec", &a);
                    return Ok(());
                }
                let sizes = [rows, m, n];
                let mut a: Vec<Value> = sizes.iter().map(|&s| self.iconst(s)).collect();
                a.push(w);
                a.push(self.iconst(w_rs));
                a.push(v);
                a.push(self.iconst(v_rs));
                a.push(dst);
                a.push(
                    self.b
                        .ins()
                        .iconst(types::I32, i64::from(node.op == Op::MatTVec)),
                );
                self.call("matvec", &a);
            }
            Op::Outer | Op::OuterSum => {
                let (x, x_rs) = operand(self, ops[0])?;
                let (y, y_rs) = operand(self, ops[1])?;
                let (_, m) = self.extent(ops[0])?;
                let (_, n) = self.extent(ops[1])?;
                let rows = if node.op == Op::OuterSum {
                    self.batch
                } else {
                    rows
                };
                let sizes = [rows, m, n];
                let mut a: Vec<Value> = sizes.iter().map(|&s| self.iconst(s)).collect();
                a.push(x);
                a.push(self.iconst(x_rs));
                a.push(y);
                a.push(self.iconst(y_rs));
                a.push(dst);
                let name = if node.op == Op::Outer {
                    "outer"
                } else {
                    "outer_sum"
                };
                self.call(name, &a);
            }
            Op::Concat => {
                let (_, total) = self.extent(id)?;
                let mut col = 0;
                for &o in &ops {
                    let (src, src_rs) = operand(self, o)?;
                    let (_, n) = self.extent(o)?;
                    let at = self.b.ins().iadd_imm_u(dst, (col * self.prec.bytes) as i64);
                    let mut a = vec![self.iconst(rows), self.iconst(n), src];
                    a.push(self.iconst(src_rs));
                    a.push(at);
                    a.push(self.iconst(total));
                    self.call("copy", &a);
                    col += n;
                }
            }
            Op::Sum | Op::Max | Op::ArgMaxMask => {
                let (src, src_rs) = operand(self, ops[0])?;
                let (rows, n) = self.extent(ops[0])?;
                let kind = match node.op {
                    Op::Sum => cellc_rt::helpers::REDUCE_SUM,
                    Op::Max => cellc_rt::helpers::REDUCE_MAX,
                    _ => cellc_rt::helpers::REDUCE_ARGMAX_MASK,
                };
                let k = self.b.ins().iconst(types::I32, kind);
                let mut a = vec![k, self.iconst(rows), self.iconst(n), src];
                a.push(self.iconst(src_rs));
                a.push(dst);
                self.call("reduce", &a);
            }
            Op::BatchSum => {
                let (src, src_rs) = operand(self, ops[0])?;
                let (rows, n) = self.extent(ops[0])?;
                let mut a = vec![self.iconst(rows), self.iconst(n), src];
                a.push(self.iconst(src_rs));
                a.push(dst);
                self.call("batch_sum", &a);
            }
            other => {
                return Err(CodegenError::Plan(format!(
                    "no routine computes {}",
                    other.name()
                )));
            }
        }
        Ok(())
    }
}
