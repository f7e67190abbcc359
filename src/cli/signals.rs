//! Interrupted runs: on SIGINT, SIGTERM or SIGHUP the temporary file of an
//! output being written is removed before the process ends on the signal, so
//! an interrupted `-o` leaves neither a half-written target nor a stray
//! `.NAME.tmp-*` beside it.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use signal_hook::low_level::emulate_default_handler;

/// Starts the thread that waits for the signals. Without it (the handler could
/// not be installed) a signal ends the process as it would anyway.
pub(super) fn remove_temporaries_on_signal() {
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            crate::data::remove_temporaries();
            // End as the signal would have ended us, so the shell sees it.
            let _ = emulate_default_handler(signal);
            std::process::exit(128 + signal);
        }
    });
}
