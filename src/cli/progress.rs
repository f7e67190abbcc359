//! The progress display of a long `run` or `grad`: a bar on stderr that
//! advances once per time step, forward and then backward.
//!
//! It is ticked by [`Ticking`], a kernel that wraps the step's kernel, so the
//! runtime's time-loop drivers need no hook and the runtime does not depend on
//! indicatif. It is drawn only when stderr is a terminal and not under
//! `--quiet`, and only once the run has lasted `DELAY` (a short run, or
//! anything a script captures, never sees it); it is cleared when the run
//! ends. `CELLC_PROGRESS_DELAY_MS` overrides the delay, for tests.

use crate::graph::op::Real;
use crate::runtime::kernel::{KernelError, StepKernel};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};
use ndarray::{ArrayViewD, ArrayViewMutD};
use std::cell::Cell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

const DELAY: Duration = Duration::from_secs(2);

/// The bar of one command (absent when it is not to be drawn).
pub(super) struct Progress {
    bar: Option<ProgressBar>,
    start: Instant,
    delay: Duration,
    shown: Cell<bool>,
    phase: Cell<&'static str>,
}

impl Progress {
    /// A bar of `steps` kernel calls, hidden until the delay has passed.
    pub(super) fn new(steps: usize) -> Progress {
        let wanted = std::io::stderr().is_terminal() && !super::report::quiet();
        let bar = wanted.then(|| {
            let style = ProgressStyle::with_template(
                "{msg:>8} [{bar:30}] {pos}/{len} steps, {elapsed} (about {eta} left)",
            )
            .expect("a valid template")
            .progress_chars("=> ");
            ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::hidden())
                .with_style(style)
                .with_finish(ProgressFinish::AndClear)
        });
        let delay = std::env::var("CELLC_PROGRESS_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(DELAY, Duration::from_millis);
        Progress {
            bar,
            start: Instant::now(),
            delay,
            shown: Cell::new(false),
            phase: Cell::new(""),
        }
    }

    /// One step of `phase` done.
    fn tick(&self, phase: &'static str) {
        let Some(bar) = &self.bar else { return };
        let new_phase = self.phase.get() != phase;
        if new_phase {
            self.phase.set(phase);
            bar.set_message(phase);
        }
        let appears = !self.shown.get() && self.start.elapsed() >= self.delay;
        if appears {
            self.shown.set(true);
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        bar.inc(1);
        // A phase's first step is drawn whatever the refresh rate: a phase
        // shorter than one refresh would otherwise never show.
        if self.shown.get() && (new_phase || appears) {
            bar.force_draw();
        }
    }

    /// Clears the bar before the command prints its result.
    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// `kernel`, ticking this bar under the name `phase` at every step.
    pub(super) fn ticking<'a, K>(&'a self, kernel: K, phase: &'static str) -> Ticking<'a, K> {
        Ticking {
            kernel,
            progress: self,
            phase,
        }
    }
}

/// A step kernel that ticks a [`Progress`] after each call of the kernel it
/// wraps (one call is one time step of the whole batch).
pub(super) struct Ticking<'a, K> {
    kernel: K,
    progress: &'a Progress,
    phase: &'static str,
}

impl<F: Real, K: StepKernel<F>> StepKernel<F> for Ticking<'_, K> {
    fn arg_shapes(&self) -> &[Vec<usize>] {
        self.kernel.arg_shapes()
    }

    fn result_shapes(&self) -> &[Vec<usize>] {
        self.kernel.result_shapes()
    }

    fn run(
        &mut self,
        args: &[ArrayViewD<'_, F>],
        results: &mut [ArrayViewMutD<'_, F>],
    ) -> Result<(), KernelError> {
        self.kernel.run(args, results)?;
        self.progress.tick(self.phase);
        Ok(())
    }

    fn parameters_changed(&mut self) {
        self.kernel.parameters_changed()
    }
}
