//! The binary's allocator: jemalloc (default feature `jemalloc`) with the options of
//! `.cargo/config.toml`. Declared by `main.rs`; the library leaves the allocator to its user.

/// jemalloc, with the options in `.cargo/config.toml`: it gives freed memory back to the system
/// in the background (glibc's malloc kept most of what a connection flood had used) and costs
/// less CPU per request than glibc's on the load benchmark.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(all(test, feature = "jemalloc"))]
mod tests {
    /// The options of `.cargo/config.toml` reached the binary's jemalloc: without the
    /// background thread, freed pages would stay until the next allocation in their arena.
    #[test]
    fn jemalloc_returns_freed_memory_in_the_background() {
        assert!(tikv_jemalloc_ctl::opt::background_thread::read().unwrap());
        assert!(tikv_jemalloc_ctl::background_thread::read().unwrap());
    }

    /// hyper's 8 KiB read buffers, allocated and freed by every request, come from the
    /// thread's cache: with jemalloc's smaller limits each took the arena's slow path.
    #[test]
    fn per_thread_caches_hold_a_read_buffer() {
        assert_eq!(tikv_jemalloc_ctl::opt::tcache_max::read().unwrap(), 8192);
    }
}
