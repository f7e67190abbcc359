//! The descriptor: what the time loop needs to know of a compiled cell, as
//! 64-bit words the compiler writes into the object (`cellc compile`) and the
//! driver reads back. Defined once, here, for both sides.
//!
//! Words, in order: the magic, the word count, the element size in bytes
//! (4 or 8), the batch, the history depth `K`, the counts of parameters,
//! inputs, states, outputs and step arguments; then per parameter its
//! elements; per input its row size; per state its row size and initial
//! value (0 zero, `p + 1` learned parameter `p`); per output its row size and
//! whether it is batched; per step argument its kind (0 parameter, 1 input,
//! 2 state), index and lag; then three steps (forward, BPTT's forward, the
//! adjoint), each with its scratch elements, its packed-weight slots, its
//! result count and each result's elements.

/// "cellcAO1": the format's name and version.
pub const MAGIC: u64 = u64::from_le_bytes(*b"cellcAO1");

/// How a state starts when the caller gives no initial value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    Zero,
    /// The learned parameter of this index (a vector of the state's size).
    Param(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State {
    /// Elements per batch row.
    pub n: usize,
    pub init: Init,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Output {
    /// Elements per batch row.
    pub n: usize,
    /// Whether the step computes one row per sequence; an unbatched output
    /// (of parameters only) is the same for every row.
    pub batched: bool,
}

/// What a step argument is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    Param(usize),
    Input(usize),
    /// The state read `lag` steps back (`lag >= 1`).
    State {
        state: usize,
        lag: usize,
    },
}

/// One compiled step function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Scratch elements a call needs.
    pub scratch: usize,
    /// Slots of its table of packed weights.
    pub slots: usize,
    /// Elements of each result.
    pub results: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// 4 (f32) or 8 (f64).
    pub elem_bytes: usize,
    pub batch: usize,
    /// `K = max(1, largest lag)`: states kept before the first step.
    pub depth: usize,
    /// Elements of each parameter.
    pub params: Vec<usize>,
    /// Elements per batch row of each input.
    pub inputs: Vec<usize>,
    pub states: Vec<State>,
    pub outputs: Vec<Output>,
    pub args: Vec<Arg>,
    /// The forward step (results: new states, then outputs), BPTT's forward
    /// step (the same, then residuals), the adjoint step (results: the
    /// cotangent of each argument; arguments: the forward step's, then the
    /// residuals, the cotangent of each new state and of each output).
    pub steps: [Step; 3],
}

pub const FORWARD: usize = 0;
pub const BPTT_FORWARD: usize = 1;
pub const ADJOINT: usize = 2;

impl Descriptor {
    pub fn encode(&self) -> Vec<u64> {
        let w = |n: usize| n as u64;
        let mut out = vec![
            MAGIC,
            0,
            w(self.elem_bytes),
            w(self.batch),
            w(self.depth),
            w(self.params.len()),
            w(self.inputs.len()),
            w(self.states.len()),
            w(self.outputs.len()),
            w(self.args.len()),
        ];
        out.extend(self.params.iter().map(|&n| w(n)));
        out.extend(self.inputs.iter().map(|&n| w(n)));
        for s in &self.states {
            out.push(w(s.n));
            out.push(match s.init {
                Init::Zero => 0,
                Init::Param(p) => w(p + 1),
            });
        }
        for o in &self.outputs {
            out.push(w(o.n));
            out.push(o.batched as u64);
        }
        for a in &self.args {
            out.extend(match *a {
                Arg::Param(p) => [0, w(p), 0],
                Arg::Input(i) => [1, w(i), 0],
                Arg::State { state, lag } => [2, w(state), w(lag)],
            });
        }
        for s in &self.steps {
            out.push(w(s.scratch));
            out.push(w(s.slots));
            out.push(w(s.results.len()));
            out.extend(s.results.iter().map(|&n| w(n)));
        }
        out[1] = out.len() as u64;
        out
    }

    /// Reads the words back; `None` when they are not a descriptor of this
    /// format or do not hold together (an object from another version).
    pub fn decode(words: &[u64]) -> Option<Descriptor> {
        let mut r = Reader { words, at: 0 };
        if r.next()? != MAGIC || r.next()? as usize != words.len() {
            return None;
        }
        let elem_bytes = r.size()?;
        let batch = r.size()?;
        let depth = r.size()?;
        let counts: Vec<usize> = (0..5).map(|_| r.size()).collect::<Option<_>>()?;
        let (np, ni, ns, no, na) = (counts[0], counts[1], counts[2], counts[3], counts[4]);
        let params = (0..np).map(|_| r.size()).collect::<Option<Vec<_>>>()?;
        let inputs = (0..ni).map(|_| r.size()).collect::<Option<Vec<_>>>()?;
        let states = (0..ns)
            .map(|_| {
                let n = r.size()?;
                let init = match r.size()? {
                    0 => Init::Zero,
                    p if p <= np => Init::Param(p - 1),
                    _ => return None,
                };
                Some(State { n, init })
            })
            .collect::<Option<Vec<_>>>()?;
        let outputs = (0..no)
            .map(|_| {
                Some(Output {
                    n: r.size()?,
                    batched: r.size()? != 0,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let args = (0..na)
            .map(|_| {
                let (kind, index, lag) = (r.size()?, r.size()?, r.size()?);
                match kind {
                    0 if index < np => Some(Arg::Param(index)),
                    1 if index < ni => Some(Arg::Input(index)),
                    2 if index < ns && (1..=depth).contains(&lag) => {
                        Some(Arg::State { state: index, lag })
                    }
                    _ => None,
                }
            })
            .collect::<Option<Vec<_>>>()?;
        let mut step = || -> Option<Step> {
            let scratch = r.size()?;
            let slots = r.size()?;
            let n = r.size()?;
            let results = (0..n).map(|_| r.size()).collect::<Option<Vec<_>>>()?;
            Some(Step {
                scratch,
                slots,
                results,
            })
        };
        let steps = [step()?, step()?, step()?];
        let d = Descriptor {
            elem_bytes,
            batch,
            depth,
            params,
            inputs,
            states,
            outputs,
            args,
            steps,
        };
        d.consistent().then_some(d)
    }

    /// The counts and sizes the driver relies on: a new state has one row
    /// or one per sequence; an output is as its flag says; the adjoint gives
    /// each argument's cotangent in the argument's shape.
    fn consistent(&self) -> bool {
        let b = self.batch;
        let visible = self.states.len() + self.outputs.len();
        let visible_ok = |results: &[usize]| {
            results.len() >= visible
                && self
                    .states
                    .iter()
                    .zip(results)
                    .all(|(s, &r)| r == s.n || r == b * s.n)
                && self
                    .outputs
                    .iter()
                    .zip(&results[self.states.len()..])
                    .all(|(o, &r)| r == if o.batched { b * o.n } else { o.n })
        };
        let adjoint_ok = self
            .args
            .iter()
            .zip(&self.steps[ADJOINT].results)
            .all(|(a, &r)| {
                r == match *a {
                    Arg::Param(p) => self.params[p],
                    Arg::Input(i) => b * self.inputs[i],
                    Arg::State { state, .. } => b * self.states[state].n,
                }
            });
        matches!(self.elem_bytes, 4 | 8)
            && b >= 1
            && self.depth >= 1
            && self.steps[FORWARD].results.len() == visible
            && visible_ok(&self.steps[FORWARD].results)
            && visible_ok(&self.steps[BPTT_FORWARD].results)
            && self.steps[ADJOINT].results.len() == self.args.len()
            && adjoint_ok
    }

    /// The residuals BPTT's forward step saves at each step.
    pub fn residuals(&self) -> &[usize] {
        let visible = self.states.len() + self.outputs.len();
        &self.steps[BPTT_FORWARD].results[visible..]
    }
}

struct Reader<'a> {
    words: &'a [u64],
    at: usize,
}

impl Reader<'_> {
    fn next(&mut self) -> Option<u64> {
        let w = *self.words.get(self.at)?;
        self.at += 1;
        Some(w)
    }

    fn size(&mut self) -> Option<usize> {
        usize::try_from(self.next()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_reads_back_as_written_and_a_damaged_one_does_not() {
        let d = Descriptor {
            elem_bytes: 4,
            batch: 3,
            depth: 2,
            params: vec![12, 4],
            inputs: vec![3],
            states: vec![State {
                n: 4,
                init: Init::Param(1),
            }],
            outputs: vec![Output {
                n: 4,
                batched: true,
            }],
            args: vec![
                Arg::Param(0),
                Arg::Input(0),
                Arg::State { state: 0, lag: 2 },
            ],
            steps: [
                Step {
                    scratch: 10,
                    slots: 1,
                    results: vec![12, 12],
                },
                Step {
                    scratch: 11,
                    slots: 1,
                    results: vec![12, 12, 12],
                },
                Step {
                    scratch: 12,
                    slots: 0,
                    results: vec![12, 9, 12],
                },
            ],
        };
        let words = d.encode();
        assert_eq!(Descriptor::decode(&words), Some(d.clone()));
        assert_eq!(d.residuals(), &[12]);
        assert_eq!(Descriptor::decode(&words[..words.len() - 1]), None);
        let mut bad = words.clone();
        bad[0] ^= 1;
        assert_eq!(Descriptor::decode(&bad), None);
        // A lag deeper than the history.
        let mut deep = d;
        deep.args[2] = Arg::State { state: 0, lag: 3 };
        assert_eq!(Descriptor::decode(&deep.encode()), None);
    }
}
