//! The process-wide tokio runtime for I/O from synchronous timely workers
//! (object store, Redis, Kafka admin): workers `block_on` short async calls.

use std::future::Future;
use std::sync::OnceLock;

/// The shared I/O runtime (two threads: I/O bound, the cores belong to timely workers).
pub fn io_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("riftstream-io")
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// Runs `f` to completion from synchronous code (never from inside the runtime).
pub fn block_on<F>(f: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    match tokio::runtime::Handle::try_current() {
        // Called from async code (the CLI's own runtime): run on a scoped thread.
        Ok(_) => std::thread::scope(|s| s.spawn(|| io_runtime().block_on(f)).join().expect("io thread")),
        Err(_) => io_runtime().block_on(f),
    }
}
