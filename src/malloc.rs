//! What rim asks of the C allocator (glibc's malloc, which Rust's default
//! allocator and SQLite both use): fewer arenas, big blocks as mappings of
//! their own, and free memory given back when the server is idle. Elsewhere
//! (musl, other systems) these do nothing.

/// Arenas glibc may make at most. Each thread that allocates while another
/// holds an arena's lock gets a new arena, up to eight per core by default,
/// and memory freed in one arena serves only that arena: on a 1M-message
/// database, after history reads and searches and a quiet spell in which
/// [`give_back_memory`] ran, RSS stayed at 29.3 MB with the default (16
/// arenas on 2 cores), 22.9-26.4 MB with 4 (four runs), 22.6 MB with 2 and
/// 20.9 MB with one (`rim-bench --scenario history`, 2026-12-03). Two cost
/// about a fifth more server CPU at 5,000 msgs/s (BENCHMARKS.md); four cost
/// nothing measurable (direct closed loop 45,835 against 45,725 msgs/s, 4.2
/// against 4.1 CPU-s per 5 s at 5,000 msgs/s). So: one per core, at least
/// four.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let arenas = i32::try_from(cores.max(4)).unwrap_or(i32::MAX);
        // SAFETY: mallopt only changes allocator parameters; called before
        // the runtime starts its threads, it applies to every arena made.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

/// Makes every allocation of 128 KiB or more a mapping of its own, returned
/// to the system when freed. glibc does so by default, but raises that
/// threshold to the size of each such block freed, up to 32 MiB: after the
/// first hash, the next argon2 buffer would come from the heap and stay
/// there (measured at 19 MiB a hash: 27.8 MB RSS after one registration, for
/// good, and 19 MiB more for each hashing thread). Setting the threshold
/// once turns the raising off. Process-wide, and harmless to the rest:
/// SQLite's caches and the connections' buffers are far smaller.
pub fn release_big_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is safe to call
    // at any time, from any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Returns the allocator's free memory to the system. SQLite's cache pages
/// are small allocations, made on whichever thread ran the query (each of
/// tokio's blocking threads may use an arena of its own), so freeing them
/// leaves them in the arenas; measured on a 1M-message database: 58.5 MB
/// RSS after a burst of history and search, for good. glibc's `malloc_trim`
/// gives the free pages of every arena back.
pub fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it may
    // be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
