//! Linux: SIGINT and SIGTERM blocked before `main`, from a constructor the C runtime calls
//! right after the dynamic loader (`.init_array`), so that a signal sent as soon as portlab is
//! exec'd waits, pending, until `main` has decided what it does with it (without this, a
//! signal in the first 1.5 ms killed the run with nothing written).

/// Blocks SIGINT and SIGTERM in the main thread (threads started later inherit the mask
/// until [`portlab::sys::release_stop_signals`] — called by `main` before anything else —
/// unblocks it).
extern "C" fn block_stop_signals() {
    portlab::sys::block_stop_signals();
}

#[used]
#[link_section = ".init_array"]
static BLOCK_STOP_SIGNALS: extern "C" fn() = block_stop_signals;
