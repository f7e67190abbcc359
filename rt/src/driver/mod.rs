//! The time loop of an object from `cellc compile`: forward over sequences,
//! and backpropagation through time, over flat buffers, calling the object's
//! compiled step functions. The object's entry points (`lstm_forward`, ...)
//! call [`cellc_rt_forward`], [`cellc_rt_backward`] and
//! [`cellc_rt_workspace`] with its [`desc::Descriptor`] and step functions.
//!
//! The semantics are the compiler's drivers' (`cellc::runtime::forward` and
//! `backward`), which its tests hold this to: iteration `i` processes, for
//! sequence `b`, position `i` (or `L[b]-1-i` in reverse) while `i < L[b]`;
//! past its length a sequence keeps its states, its outputs are zero and it
//! receives no cotangent. A read `k` steps back reads `k` iterations earlier.
//!
//! Memory: every buffer that grows with `T` or `B` is carved from the
//! caller's workspace, whose size [`cellc_rt_workspace`] gives. A call
//! allocates only its bookkeeping (a few vectors of the cell's argument
//! counts) and the packed copies of its parameter matrices (once per call,
//! on the first step), never per step. Arguments are checked before anything
//! is written: a bad call returns an error code and changes nothing.

pub mod desc;

use crate::helpers::PackTable;
use crate::kernels::{Float, FlushDenormals};
use desc::{ADJOINT, Arg, BPTT_FORWARD, Descriptor, FORWARD, Init};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A compiled step: argument pointers, result pointers, scratch, the table
/// of packed weights.
pub type StepFn = unsafe extern "C" fn(*const *const u8, *const *mut u8, *mut u8, *mut PackTable);

/// The error codes of the entry points, as the generated header names them.
pub const OK: i32 = 0;
/// A pointer that must be given is NULL.
pub const ERR_NULL: i32 = 1;
/// A sequence length is negative or greater than T.
pub const ERR_LENGTH: i32 = 2;
/// The workspace is smaller than the size query gives.
pub const ERR_WORKSPACE: i32 = 3;
/// T is so large that the sizes overflow the address space.
pub const ERR_SIZE: i32 = 4;
/// The object and this runtime library do not match (another version).
pub const ERR_OBJECT: i32 = 5;
/// A bug of cellc: the call stopped, and its outputs are unspecified.
pub const ERR_INTERNAL: i32 = 6;

/// Workspace query modes.
pub const MODE_FORWARD: u32 = 0;
pub const MODE_BACKWARD: u32 = 1;

const ALIGN: usize = 64;

/// Reads the descriptor the object holds.
///
/// # Safety
/// `p` is NULL or points to a descriptor's words (the first two at least).
unsafe fn descriptor(p: *const u64) -> Result<Descriptor, i32> {
    if p.is_null() {
        return Err(ERR_OBJECT);
    }
    // SAFETY: as the caller promises; the length word bounds the rest.
    unsafe {
        if *p != desc::MAGIC {
            return Err(ERR_OBJECT);
        }
        let len = usize::try_from(*p.add(1)).map_err(|_| ERR_OBJECT)?;
        if !(2..=1 << 24).contains(&len) {
            return Err(ERR_OBJECT);
        }
        Descriptor::decode(std::slice::from_raw_parts(p, len)).ok_or(ERR_OBJECT)
    }
}

/// Buffers carved from a workspace, each aligned to 64 bytes; measuring
/// when made by [`Carve::measure`].
struct Carve {
    at: usize,
    end: usize,
}

impl Carve {
    fn measure() -> Carve {
        Carve {
            at: 0,
            end: usize::MAX,
        }
    }

    fn take<T>(&mut self, n: usize) -> Result<*mut T, i32> {
        let start = self.at.checked_add(ALIGN - 1).ok_or(ERR_SIZE)? & !(ALIGN - 1);
        let bytes = n.checked_mul(size_of::<T>()).ok_or(ERR_SIZE)?;
        let end = start.checked_add(bytes).ok_or(ERR_SIZE)?;
        if end > self.end {
            return Err(ERR_WORKSPACE);
        }
        self.at = end;
        Ok(start as *mut T)
    }
}

/// Every buffer of a call.
struct Buffers<F> {
    /// Per state, `[K + T, B, n]`: at `K + i` the value after iteration `i`.
    hist: Vec<*mut F>,
    /// Per result of the forward step run: where it is written when not
    /// straight into the history.
    res: Vec<*mut F>,
    /// Per residual, `[T, ...]` (backward only).
    resid: Vec<*mut F>,
    /// Per input, `[B, n]`: the rows of an iteration whose sequences are at
    /// different positions.
    gather: Vec<*mut F>,
    /// Per state, the cotangents of its history (backward only).
    hbar: Vec<*mut F>,
    /// Per state, one step's cotangent with rows past their length zeroed.
    masked: Vec<*mut F>,
    /// Per output, one step's cotangent (gathered, or zero when not given).
    out_cot: Vec<*mut F>,
    /// Per adjoint result (one per argument).
    adj: Vec<*mut F>,
    scratch: *mut u8,
    args: *mut *const u8,
    results: *mut *mut u8,
}

fn carve<F>(d: &Descriptor, backward: bool, t: usize, c: &mut Carve) -> Result<Buffers<F>, i32> {
    let b = d.batch;
    let rows = |n: usize| b.checked_mul(n).ok_or(ERR_SIZE);
    let kt = d.depth.checked_add(t).ok_or(ERR_SIZE)?;
    let mut hist = Vec::new();
    for s in &d.states {
        hist.push(c.take(kt.checked_mul(rows(s.n)?).ok_or(ERR_SIZE)?)?);
    }
    let fwd = &d.steps[if backward { BPTT_FORWARD } else { FORWARD }];
    let visible = d.states.len() + d.outputs.len();
    let mut res = Vec::new();
    for &n in &fwd.results[..visible] {
        res.push(c.take(n)?);
    }
    let mut resid = Vec::new();
    let mut hbar = Vec::new();
    let mut masked = Vec::new();
    let mut out_cot = Vec::new();
    let mut adj = Vec::new();
    if backward {
        for &n in d.residuals() {
            resid.push(c.take(t.checked_mul(n).ok_or(ERR_SIZE)?)?);
        }
        for s in &d.states {
            hbar.push(c.take(kt.checked_mul(rows(s.n)?).ok_or(ERR_SIZE)?)?);
            masked.push(c.take(rows(s.n)?)?);
        }
        for o in &d.outputs {
            out_cot.push(c.take(rows(o.n)?)?);
        }
        for &n in &d.steps[ADJOINT].results {
            adj.push(c.take(n)?);
        }
    }
    let mut gather = Vec::new();
    for &n in &d.inputs {
        gather.push(c.take(rows(n)?)?);
    }
    let (scratch_elems, n_args, n_results) = if backward {
        let (f, a) = (&d.steps[BPTT_FORWARD], &d.steps[ADJOINT]);
        (
            f.scratch.max(a.scratch),
            d.args.len() + d.residuals().len() + visible,
            f.results.len().max(a.results.len()),
        )
    } else {
        (fwd.scratch, d.args.len(), fwd.results.len())
    };
    let scratch = c.take::<u8>(scratch_elems.checked_mul(d.elem_bytes).ok_or(ERR_SIZE)?)?;
    Ok(Buffers {
        hist,
        res,
        resid,
        gather,
        hbar,
        masked,
        out_cot,
        adj,
        scratch,
        args: c.take(n_args)?,
        results: c.take(n_results)?,
    })
}

/// The bytes of workspace a call needs: `mode` is [`MODE_FORWARD`] or
/// [`MODE_BACKWARD`], `steps` is T.
fn workspace_bytes(d: &Descriptor, mode: u32, t: usize) -> Result<usize, i32> {
    let mut c = Carve::measure();
    match d.elem_bytes {
        4 => drop(carve::<f32>(d, mode == MODE_BACKWARD, t, &mut c)?),
        _ => drop(carve::<f64>(d, mode == MODE_BACKWARD, t, &mut c)?),
    }
    // A workspace at any address: room to align its start.
    c.at.checked_add(ALIGN).ok_or(ERR_SIZE)
}

/// The workspace a call needs, in bytes; 0 when the object does not match
/// this runtime or T makes the size overflow.
///
/// # Safety
/// `desc` is the descriptor of an object from `cellc compile`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cellc_rt_workspace(desc: *const u64, mode: u32, steps: usize) -> usize {
    // SAFETY: as the caller promises.
    let d = match unsafe { descriptor(desc) } {
        Ok(d) => d,
        Err(_) => return 0,
    };
    if mode > MODE_BACKWARD {
        return 0;
    }
    workspace_bytes(&d, mode, steps).unwrap_or(0)
}

/// `n` pointers from a table that may be NULL (then all are NULL).
///
/// # Safety
/// A table that is not NULL holds `n` pointers.
unsafe fn table<P: Copy>(p: *const P, n: usize, null: P) -> Vec<P> {
    if p.is_null() {
        vec![null; n]
    } else {
        // SAFETY: as the caller promises.
        unsafe { std::slice::from_raw_parts(p, n).to_vec() }
    }
}

/// What a call reads and writes, by entry point argument.
struct Io {
    t: usize,
    params: Vec<*const u8>,
    inputs: Vec<*const u8>,
    init: Vec<*const u8>,
    lengths: Option<Vec<usize>>,
    reverse: bool,
    outputs: Vec<*mut u8>,
    last: Vec<*mut u8>,
    // Backward only.
    dy: Vec<*const u8>,
    dlast: Vec<*const u8>,
    dparams: Vec<*mut u8>,
    dinputs: Vec<*mut u8>,
    dinit: Vec<*mut u8>,
}

impl Io {
    fn position(&self, b: usize, it: usize) -> Option<usize> {
        let len = self.lengths.as_ref().map_or(self.t, |l| l[b]);
        (it < len).then(|| if self.reverse { len - 1 - it } else { it })
    }
}

/// Reads the lengths: B values in `0..=T`.
///
/// # Safety
/// `lengths` is NULL or holds `batch` values.
unsafe fn lengths(lengths: *const i32, batch: usize, t: usize) -> Result<Option<Vec<usize>>, i32> {
    if lengths.is_null() {
        return Ok(None);
    }
    // SAFETY: as the caller promises.
    let raw = unsafe { std::slice::from_raw_parts(lengths, batch) };
    raw.iter()
        .map(|&l| {
            usize::try_from(l)
                .ok()
                .filter(|&l| l <= t)
                .ok_or(ERR_LENGTH)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Where every sequence is at one iteration.
struct Iteration {
    positions: Vec<Option<usize>>,
    uniform: Option<usize>,
    all_valid: bool,
}

impl Iteration {
    fn new(io: &Io, batch: usize, it: usize) -> Iteration {
        let positions: Vec<Option<usize>> = (0..batch).map(|b| io.position(b, it)).collect();
        let uniform = match positions.first() {
            Some(&Some(p)) if positions.iter().all(|q| *q == Some(p)) => Some(p),
            _ => None,
        };
        let all_valid = positions.iter().all(Option::is_some);
        Iteration {
            positions,
            uniform,
            all_valid,
        }
    }
}

/// A mutable slice of `n` elements at `p`.
///
/// # Safety
/// `p` holds `n` elements nothing else refers to while the slice lives.
unsafe fn slice<'a, F>(p: *mut F, n: usize) -> &'a mut [F] {
    unsafe { std::slice::from_raw_parts_mut(p, n) }
}

/// Rows of an iteration from `[T, B, n]` data at `src`: in place when every
/// sequence is at one position; else gathered into `buf`, zero past a length.
///
/// # Safety
/// `src` holds `[T, B, n]`, `buf` `[B, n]`.
unsafe fn rows_of<F: Float>(src: *const F, n: usize, it: &Iteration, buf: *mut F) -> *const F {
    let b = it.positions.len();
    match it.uniform {
        Some(pos) => unsafe { src.add(pos * b * n) },
        None => {
            for (r, p) in it.positions.iter().enumerate() {
                // SAFETY: rows within the buffers the caller promises.
                let dst = unsafe { slice(buf.add(r * n), n) };
                match p {
                    Some(pos) => dst.copy_from_slice(unsafe {
                        std::slice::from_raw_parts(src.add((pos * b + r) * n), n)
                    }),
                    None => dst.fill(F::ZERO),
                }
            }
            buf
        }
    }
}

/// The forward loop (of the forward step, or of BPTT's, saving residuals).
///
/// # Safety
/// The buffers are carved for this descriptor and T; `io` holds pointers of
/// the documented sizes.
unsafe fn run_forward<F: Float>(
    d: &Descriptor,
    step: StepFn,
    io: &Io,
    buf: &Buffers<F>,
    backward: bool,
) {
    let (b, k, t) = (d.batch, d.depth, io.t);
    let fwd = &d.steps[if backward { BPTT_FORWARD } else { FORWARD }];
    let ns = d.states.len();
    let mut table = PackTable::new(fwd.slots);
    // SAFETY (the whole body): every pointer is into a buffer of the size
    // the descriptor gives, carved or promised by the caller.
    unsafe {
        for (s, st) in d.states.iter().enumerate() {
            let n = st.n;
            let h = slice(buf.hist[s], (k + t) * b * n);
            h[..(k - 1) * b * n].fill(F::ZERO);
            let row0 = &mut h[(k - 1) * b * n..k * b * n];
            match (io.init[s].is_null(), st.init) {
                (false, _) => {
                    row0.copy_from_slice(std::slice::from_raw_parts(io.init[s] as *const F, b * n))
                }
                (true, Init::Param(p)) => {
                    let v = std::slice::from_raw_parts(io.params[p] as *const F, n);
                    row0.chunks_mut(n).for_each(|r| r.copy_from_slice(v));
                }
                (true, Init::Zero) => row0.fill(F::ZERO),
            }
        }
        for (o, out) in d.outputs.iter().zip(&io.outputs) {
            if !out.is_null() {
                slice(*out as *mut F, t * b * o.n).fill(F::ZERO);
            }
        }
        let args = slice(buf.args, d.args.len());
        let results = slice(buf.results, fwd.results.len());
        for it in 0..t {
            let iter = Iteration::new(io, b, it);
            let inputs: Vec<*const F> = (0..d.inputs.len())
                .map(|i| rows_of(io.inputs[i] as *const F, d.inputs[i], &iter, buf.gather[i]))
                .collect();
            for (slot, a) in args.iter_mut().zip(&d.args) {
                *slot = match *a {
                    Arg::Param(p) => io.params[p],
                    Arg::Input(i) => inputs[i] as *const u8,
                    Arg::State { state, lag } => {
                        let n = d.states[state].n;
                        buf.hist[state].add((k + it - lag) * b * n) as *const u8
                    }
                };
            }
            // A new state goes straight into its history slot when every
            // sequence takes the step and it has one row per sequence.
            let direct: Vec<bool> = (0..ns)
                .map(|s| iter.all_valid && fwd.results[s] == b * d.states[s].n)
                .collect();
            for (r, slot) in results.iter_mut().enumerate() {
                *slot = if r < ns && direct[r] {
                    buf.hist[r].add((k + it) * b * d.states[r].n) as *mut u8
                } else if r < buf.res.len() {
                    buf.res[r] as *mut u8
                } else {
                    let x = r - buf.res.len();
                    buf.resid[x].add(it * fwd.results[r]) as *mut u8
                };
            }
            step(args.as_ptr(), results.as_ptr(), buf.scratch, &mut table);
            for (s, st) in d.states.iter().enumerate() {
                if direct[s] {
                    continue;
                }
                let n = st.n;
                let h = buf.hist[s];
                let new = buf.res[s] as *const F;
                let batched = fwd.results[s] == b * n;
                for (r, p) in iter.positions.iter().enumerate() {
                    let src = match p {
                        Some(_) if batched => new.add(r * n),
                        Some(_) => new,
                        None => h.add(((k + it - 1) * b + r) * n) as *const F,
                    };
                    std::ptr::copy_nonoverlapping(src, h.add(((k + it) * b + r) * n), n);
                }
            }
            for (o, out) in d.outputs.iter().enumerate() {
                let dst = io.outputs[o] as *mut F;
                if dst.is_null() {
                    continue;
                }
                let v = buf.res[ns + o] as *const F;
                for (r, p) in iter.positions.iter().enumerate() {
                    if let Some(pos) = p {
                        let src = if out.batched { v.add(r * out.n) } else { v };
                        std::ptr::copy_nonoverlapping(src, dst.add((pos * b + r) * out.n), out.n);
                    }
                }
            }
        }
        for (s, st) in d.states.iter().enumerate() {
            if !io.last[s].is_null() {
                let n = st.n;
                std::ptr::copy_nonoverlapping(
                    buf.hist[s].add((k + t - 1) * b * n),
                    io.last[s] as *mut F,
                    b * n,
                );
            }
        }
    }
}

/// `dst += src`, elementwise.
fn add_into<F: Float>(dst: &mut [F], src: &[F]) {
    dst.iter_mut().zip(src).for_each(|(a, &b)| *a = *a + b);
}

/// BPTT: the forward loop saving residuals, then the adjoint step from the
/// last iteration to the first.
///
/// # Safety
/// As [`run_forward`].
unsafe fn run_backward<F: Float>(
    d: &Descriptor,
    fwd: StepFn,
    adj: StepFn,
    io: &Io,
    buf: &Buffers<F>,
) {
    // SAFETY (the whole body): as in `run_forward`.
    unsafe {
        run_forward(d, fwd, io, buf, true);
        let (b, k, t) = (d.batch, d.depth, io.t);
        let ad = &d.steps[ADJOINT];
        let resid = d.residuals();
        let mut table = PackTable::new(ad.slots);
        for (s, st) in d.states.iter().enumerate() {
            let n = st.n;
            let h = slice(buf.hbar[s], (k + t) * b * n);
            h.fill(F::ZERO);
            if !io.dlast[s].is_null() {
                let c = std::slice::from_raw_parts(io.dlast[s] as *const F, b * n);
                add_into(&mut h[(k + t - 1) * b * n..(k + t) * b * n], c);
            }
        }
        for (o, out) in d.outputs.iter().enumerate() {
            slice(buf.out_cot[o], b * out.n).fill(F::ZERO);
        }
        for (p, &n) in d.params.iter().enumerate() {
            if !io.dparams[p].is_null() {
                slice(io.dparams[p] as *mut F, n).fill(F::ZERO);
            }
        }
        for (i, &n) in d.inputs.iter().enumerate() {
            if !io.dinputs[i].is_null() {
                slice(io.dinputs[i] as *mut F, t * b * n).fill(F::ZERO);
            }
        }
        let n_args = d.args.len() + resid.len() + d.states.len() + d.outputs.len();
        let args = slice(buf.args, n_args);
        let results = slice(buf.results, ad.results.len());
        for (slot, r) in results.iter_mut().zip(&buf.adj) {
            *slot = *r as *mut u8;
        }
        for it in (0..t).rev() {
            let iter = Iteration::new(io, b, it);
            let mut a = 0;
            let inputs: Vec<*const F> = (0..d.inputs.len())
                .map(|i| rows_of(io.inputs[i] as *const F, d.inputs[i], &iter, buf.gather[i]))
                .collect();
            for kind in &d.args {
                args[a] = match *kind {
                    Arg::Param(p) => io.params[p],
                    Arg::Input(i) => inputs[i] as *const u8,
                    Arg::State { state, lag } => {
                        let n = d.states[state].n;
                        buf.hist[state].add((k + it - lag) * b * n) as *const u8
                    }
                };
                a += 1;
            }
            for (x, &n) in resid.iter().enumerate() {
                args[a] = buf.resid[x].add(it * n) as *const u8;
                a += 1;
            }
            // Rows past their length get no cotangent: they took no step.
            for (s, st) in d.states.iter().enumerate() {
                let n = st.n;
                let c = buf.hbar[s].add((k + it) * b * n);
                args[a] = if iter.all_valid {
                    c as *const u8
                } else {
                    let m = slice(buf.masked[s], b * n);
                    m.copy_from_slice(std::slice::from_raw_parts(c, b * n));
                    for (r, p) in iter.positions.iter().enumerate() {
                        if p.is_none() {
                            m[r * n..(r + 1) * n].fill(F::ZERO);
                        }
                    }
                    buf.masked[s] as *const u8
                };
                a += 1;
            }
            for (o, out) in d.outputs.iter().enumerate() {
                args[a] = if io.dy[o].is_null() {
                    // Stays zero: nothing is gathered into it.
                    buf.out_cot[o] as *const u8
                } else {
                    rows_of(io.dy[o] as *const F, out.n, &iter, buf.out_cot[o]) as *const u8
                };
                a += 1;
            }
            adj(args.as_ptr(), results.as_ptr(), buf.scratch, &mut table);
            for (x, kind) in d.args.iter().enumerate() {
                let g = buf.adj[x] as *const F;
                match *kind {
                    Arg::Param(p) => {
                        if !io.dparams[p].is_null() {
                            let n = d.params[p];
                            add_into(
                                slice(io.dparams[p] as *mut F, n),
                                std::slice::from_raw_parts(g, n),
                            );
                        }
                    }
                    Arg::Input(i) => {
                        let dst = io.dinputs[i] as *mut F;
                        if dst.is_null() {
                            continue;
                        }
                        let n = d.inputs[i];
                        for (r, p) in iter.positions.iter().enumerate() {
                            if let Some(pos) = p {
                                add_into(
                                    slice(dst.add((pos * b + r) * n), n),
                                    std::slice::from_raw_parts(g.add(r * n), n),
                                );
                            }
                        }
                    }
                    Arg::State { state, lag } => {
                        let n = d.states[state].n;
                        add_into(
                            slice(buf.hbar[state].add((k + it - lag) * b * n), b * n),
                            std::slice::from_raw_parts(g, b * n),
                        );
                    }
                }
            }
            // Rows past their length carried the state unchanged.
            if !iter.all_valid {
                for (s, st) in d.states.iter().enumerate() {
                    let n = st.n;
                    for (r, p) in iter.positions.iter().enumerate() {
                        if p.is_none() {
                            let up = buf.hbar[s].add(((k + it) * b + r) * n) as *const F;
                            let low = buf.hbar[s].add(((k + it - 1) * b + r) * n);
                            add_into(slice(low, n), std::slice::from_raw_parts(up, n));
                        }
                    }
                }
            }
        }
        for (s, st) in d.states.iter().enumerate() {
            let n = st.n;
            let g0 = std::slice::from_raw_parts(buf.hbar[s].add((k - 1) * b * n), b * n);
            if !io.dinit[s].is_null() {
                slice(io.dinit[s] as *mut F, b * n).copy_from_slice(g0);
            }
            // A learned initial value collects its state's gradient over the
            // batch, unless a value was given in its place.
            if let Init::Param(p) = st.init
                && io.init[s].is_null()
                && !io.dparams[p].is_null()
            {
                let dst = slice(io.dparams[p] as *mut F, n);
                g0.chunks(n).for_each(|row| add_into(dst, row));
            }
        }
    }
}

/// Checks a call and runs it; every check comes before the first write.
///
/// # Safety
/// As the entry points promise.
unsafe fn call(
    desc: *const u64,
    steps: [Option<StepFn>; 2],
    mut io: Io,
    lengths_ptr: *const i32,
    ws: *mut u8,
    ws_bytes: usize,
    backward: bool,
) -> i32 {
    // SAFETY: as the caller promises.
    let d = match unsafe { descriptor(desc) } {
        Ok(d) => d,
        Err(e) => return e,
    };
    let (Some(first), Some(second)) = (steps[0], steps[1].or(steps[0])) else {
        return ERR_OBJECT;
    };
    if io.params.iter().any(|p| p.is_null()) || io.inputs.iter().any(|p| p.is_null()) {
        return ERR_NULL;
    }
    io.lengths = match unsafe { lengths(lengths_ptr, d.batch, io.t) } {
        Ok(l) => l,
        Err(e) => return e,
    };
    let mode = if backward {
        MODE_BACKWARD
    } else {
        MODE_FORWARD
    };
    let need = match workspace_bytes(&d, mode, io.t) {
        Ok(n) => n,
        Err(e) => return e,
    };
    if ws.is_null() {
        return ERR_NULL;
    }
    if ws_bytes < need {
        return ERR_WORKSPACE;
    }
    let start = ws as usize;
    let mut c = Carve {
        at: start,
        end: start + ws_bytes,
    };
    let run = || -> Result<(), i32> {
        let _flush = FlushDenormals::new();
        // SAFETY: the buffers are carved from the caller's workspace, of
        // the size checked above; the caller's arrays are as documented.
        unsafe {
            if d.elem_bytes == 4 {
                let buf = carve::<f32>(&d, backward, io.t, &mut c)?;
                if backward {
                    run_backward(&d, first, second, &io, &buf);
                } else {
                    run_forward(&d, first, &io, &buf, false);
                }
            } else {
                let buf = carve::<f64>(&d, backward, io.t, &mut c)?;
                if backward {
                    run_backward(&d, first, second, &io, &buf);
                } else {
                    run_forward(&d, first, &io, &buf, false);
                }
            }
        }
        Ok(())
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(())) => OK,
        Ok(Err(e)) => e,
        Err(_) => ERR_INTERNAL,
    }
}

/// The counts a call's pointer tables hold.
///
/// # Safety
/// `desc` is NULL or a descriptor's words.
unsafe fn counts(desc: *const u64) -> Option<(usize, usize, usize, usize)> {
    let d = unsafe { descriptor(desc) }.ok()?;
    Some((
        d.params.len(),
        d.inputs.len(),
        d.states.len(),
        d.outputs.len(),
    ))
}

/// Runs the cell forward over `steps` steps; see the generated header.
///
/// # Safety
/// The pointers are as the generated header documents them.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn cellc_rt_forward(
    desc: *const u64,
    step: Option<StepFn>,
    steps: usize,
    params: *const *const u8,
    inputs: *const *const u8,
    init: *const *const u8,
    lengths: *const i32,
    reverse: i32,
    outputs: *const *mut u8,
    last: *const *mut u8,
    ws: *mut u8,
    ws_bytes: usize,
) -> i32 {
    // SAFETY: as the caller promises.
    unsafe {
        let Some((np, ni, ns, no)) = counts(desc) else {
            return ERR_OBJECT;
        };
        if params.is_null() && np > 0 || inputs.is_null() && ni > 0 {
            return ERR_NULL;
        }
        let null = std::ptr::null::<u8>();
        let null_mut = std::ptr::null_mut::<u8>();
        let io = Io {
            t: steps,
            params: table(params, np, null),
            inputs: table(inputs, ni, null),
            init: table(init, ns, null),
            lengths: None,
            reverse: reverse != 0,
            outputs: table(outputs, no, null_mut),
            last: table(last, ns, null_mut),
            dy: vec![],
            dlast: vec![],
            dparams: vec![],
            dinputs: vec![],
            dinit: vec![],
        };
        call(desc, [step, None], io, lengths, ws, ws_bytes, false)
    }
}

/// BPTT over `steps` steps; see the generated header.
///
/// # Safety
/// The pointers are as the generated header documents them.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn cellc_rt_backward(
    desc: *const u64,
    forward: Option<StepFn>,
    adjoint: Option<StepFn>,
    steps: usize,
    params: *const *const u8,
    inputs: *const *const u8,
    init: *const *const u8,
    lengths: *const i32,
    reverse: i32,
    dy: *const *const u8,
    dlast: *const *const u8,
    dparams: *const *mut u8,
    dinputs: *const *mut u8,
    dinit: *const *mut u8,
    outputs: *const *mut u8,
    ws: *mut u8,
    ws_bytes: usize,
) -> i32 {
    // SAFETY: as the caller promises.
    unsafe {
        let Some((np, ni, ns, no)) = counts(desc) else {
            return ERR_OBJECT;
        };
        if params.is_null() && np > 0 || inputs.is_null() && ni > 0 || adjoint.is_none() {
            return if adjoint.is_none() {
                ERR_OBJECT
            } else {
                ERR_NULL
            };
        }
        let null = std::ptr::null::<u8>();
        let null_mut = std::ptr::null_mut::<u8>();
        let io = Io {
            t: steps,
            params: table(params, np, null),
            inputs: table(inputs, ni, null),
            init: table(init, ns, null),
            lengths: None,
            reverse: reverse != 0,
            outputs: table(outputs, no, null_mut),
            last: vec![null_mut; ns],
            dy: table(dy, no, null),
            dlast: table(dlast, ns, null),
            dparams: table(dparams, np, null_mut),
            dinputs: table(dinputs, ni, null_mut),
            dinit: table(dinit, ns, null_mut),
        };
        call(desc, [forward, adjoint], io, lengths, ws, ws_bytes, true)
    }
}
