//! Gives the heap back to the OS after a flood: glibc keeps freed memory mapped for reuse, so the
//! buffers of thousands of connections that closed (or were parked) stay in RSS forever unless
//! `malloc_trim` returns the free pages. A periodic check of the server's counters decides
//! (`Shared::take_trim_due`); the trim itself runs off the network threads.

use std::sync::Weak;
use std::time::Duration;

use crate::state::{Shared, ShutdownStage};

/// Four loads of atomics per check. Often enough that RSS falls within a fraction of a second of
/// connections parking or closing; trims stay rare because each needs the count to drop to a quarter
/// of the peak since the last one (at most log4(peak) trims per flood).
const CHECK_EVERY: Duration = Duration::from_millis(250);

pub async fn trim_after_floods(server: Weak<Shared>) {
    let mut ticks = tokio::time::interval(CHECK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(shared) = server.upgrade() else {
            return;
        };
        if *shared.shutdown_receiver().borrow() != ShutdownStage::Running {
            return;
        }
        if shared.take_trim_due() {
            // Walking every arena takes a few milliseconds with a large heap: not on a tokio worker.
            let _ = tokio::task::spawn_blocking(release_free_heap).await;
        }
    }
}

fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only takes the allocator's own locks; 0 keeps no extra padding.
    unsafe {
        libc::malloc_trim(0);
    }
}
