//! Kill -9 at a chosen step, for the crash tests of `compact` and of the object store: an
//! environment variable set to `STEP:N` makes the process kill itself with SIGKILL the Nth
//! time it reaches that step. Unset, a step costs one variable lookup.

use std::sync::atomic::{AtomicU32, Ordering};

/// One test's kill switch, named by its environment variable.
pub(crate) struct KillPoint {
    variable: &'static str,
    reached: AtomicU32,
}

impl KillPoint {
    pub(crate) const fn new(variable: &'static str) -> Self {
        Self {
            variable,
            reached: AtomicU32::new(0),
        }
    }

    /// Counts `step` and kills the process at the count the variable names.
    pub(crate) fn reached(&self, step: &str) {
        let Ok(wanted) = std::env::var(self.variable) else {
            return;
        };
        let Some((at, count)) = wanted.split_once(':') else {
            return;
        };
        if at == step
            && self.reached.fetch_add(1, Ordering::SeqCst) + 1 == count.parse().unwrap_or(0)
        {
            #[cfg(unix)]
            // SAFETY: raising a signal on this process has no memory-safety precondition.
            unsafe {
                libc::raise(libc::SIGKILL);
            }
            std::process::abort();
        }
    }
}
