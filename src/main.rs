//! The `riftstream` binary: tunes the allocator, sets up logging and runs
//! the command line ([`riftstream::cli`]), exiting with its code.

/// mimalloc: workers allocate and free concurrently; glibc's arenas contend.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` (position 15 of `mi_option_e` in mimalloc 3's
/// `mimalloc.h`; the Rust bindings do not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Transparent huge pages off, and freed memory returned to the OS after a
/// second.
///
/// With THP, the kernel zeroes 2 MiB for the first touch of every huge page
/// the allocator's arena reaches, however little of it is used: 2–15% of a
/// windowed job's cycles (varying with how fragmented the arena became) and
/// up to 80% more peak memory than with 4 KiB pages, measured on the
/// reference job (0.3–0.5% of cycles without). mimalloc applies its own
/// `MIMALLOC_ALLOW_THP=0` only at start-up, before `main`, so the process
/// asks the kernel directly; the flag covers the arena reserved earlier too,
/// because the kernel checks it at each fault.
///
/// Window state is allocated and freed in waves (one window's keys at a
/// time): mimalloc's default 10 ms purge delay returned each wave's pages
/// and faulted fresh zeroed ones back in, about 10% of the job's CPU.
///
/// `MIMALLOC_ALLOW_THP` and `MIMALLOC_PURGE_DELAY` (ms) in the environment
/// still decide for themselves.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc reads it on each purge.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
    }
}

fn main() {
    tune_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RIFT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Reads `FAILPOINTS` (crash tests; nothing without the `failpoints` feature).
    let failpoints = fail::FailScenario::setup();
    let code = riftstream::cli::main(std::env::args_os());
    failpoints.teardown();
    std::process::exit(code);
}
