//! Dedicated, fork-safe rayon thread pools sized by `num_threads`.
//!
//! Size: the explicit `num_threads`, else `TASKSPEC_NUM_THREADS`, else the
//! number of cores; never more than [`MAX_THREADS`]. Pools are cached per
//! size. A forked child (for example a torch `DataLoader` worker) inherits
//! the cache but not the worker threads, so the cache remembers the process
//! id that built it and is abandoned (leaked, never joined) when used from
//! another process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};

struct Cache {
    pid: u32,
    pools: HashMap<usize, Arc<ThreadPool>>,
}

fn cache() -> &'static Mutex<Option<Cache>> {
    static CACHE: OnceLock<Mutex<Option<Cache>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(None))
}

/// Most threads a pool may have: far above any real machine, so a larger
/// request is a mistake (e.g. `10**6`) and is refused before any thread starts.
pub const MAX_THREADS: usize = 4096;

/// Number of threads to use when the caller gives none: `TASKSPEC_NUM_THREADS`
/// when it holds an integer in `1..=MAX_THREADS`, else the number of cores.
pub fn default_num_threads() -> usize {
    if let Ok(v) = std::env::var("TASKSPEC_NUM_THREADS") {
        if let Ok(n) = v.trim().parse::<usize>() {
            if (1..=MAX_THREADS).contains(&n) {
                return n;
            }
        }
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
}

/// The pool for `num_threads` threads (`None`: the default size).
pub fn thread_pool(num_threads: Option<usize>) -> Result<Arc<ThreadPool>> {
    let n = match num_threads {
        Some(n) if !(1..=MAX_THREADS).contains(&n) => {
            return Err(Error::invalid(
                "num_threads",
                format!("must be None or between 1 and {MAX_THREADS}, got {n}"),
            ))
        }
        Some(n) => n,
        None => default_num_threads(),
    };
    let pid = std::process::id();
    let mut guard = cache().lock().unwrap_or_else(|e| e.into_inner());
    if guard.as_ref().is_some_and(|c| c.pid != pid) {
        // Inherited across fork: its threads do not exist here. Never drop it
        // (dropping would wait for threads that are gone).
        std::mem::forget(guard.take());
    }
    let c = guard.get_or_insert_with(|| Cache {
        pid,
        pools: HashMap::new(),
    });
    if let Some(p) = c.pools.get(&n) {
        return Ok(p.clone());
    }
    let pool = ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("taskspec-{i}"))
        .build()
        .map_err(|e| {
            Error::Resource(format!(
                "cannot start a pool of {n} threads ({e}); use fewer threads (num_threads or TASKSPEC_NUM_THREADS)"
            ))
        })?;
    let pool = Arc::new(pool);
    c.pools.insert(n, pool.clone());
    Ok(pool)
}
