//! Flushing denormals: a saturated tanh RNN in training produces them, and
//! arithmetic on them is many times slower on x86 (PyTorch slowed 3× until it
//! flushed them).

use std::marker::PhantomData;

/// While alive, the kernels run with denormals flushed to zero; a saturated
/// tanh RNN must not slow down.
///
/// On x86-64 it sets MXCSR's FTZ (results that would be denormal become zero)
/// and DAZ (denormal inputs read as zero) for the current thread, and restores
/// the previous MXCSR on drop. A no-op on other architectures. The MXCSR is
/// per thread, so the guard is not `Send`: create one on each thread that runs
/// kernels. Guards nest (each restores what it found).
pub struct FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
    _thread: PhantomData<*const ()>,
}

#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);

impl FlushDenormals {
    pub fn new() -> FlushDenormals {
        #[cfg(target_arch = "x86_64")]
        {
            let saved = read_mxcsr();
            write_mxcsr(saved | FTZ_DAZ);
            FlushDenormals {
                saved,
                _thread: PhantomData,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        FlushDenormals {
            _thread: PhantomData,
        }
    }
}

impl Default for FlushDenormals {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        write_mxcsr(self.saved);
    }
}

#[cfg(target_arch = "x86_64")]
fn read_mxcsr() -> u32 {
    let mut value: u32 = 0;
    // SAFETY: stmxcsr stores the 32-bit MXCSR to the given address, a local.
    unsafe {
        core::arch::asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack, preserves_flags));
    }
    value
}

#[cfg(target_arch = "x86_64")]
fn write_mxcsr(value: u32) {
    // SAFETY: ldmxcsr loads MXCSR from a local; the values written are the saved
    // one or it with FTZ|DAZ set, never reserved bits, so no fault.
    unsafe {
        core::arch::asm!("ldmxcsr [{}]", in(reg) &value, options(nostack, preserves_flags, readonly));
    }
}
