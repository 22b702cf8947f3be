//! The process's memory allocator: jemalloc, set to hand memory that connections no longer use back to
//! the kernel.
//!
//! A burst of connections allocates per-connection buffers that are freed once the connections go idle.
//! glibc's malloc keeps most of those pages resident (they sit between live allocations of its arenas);
//! jemalloc groups allocations by size class, so the freed buffers leave whole pages empty, and its
//! background thread returns them within about a second (`dirty_decay_ms`) even when no request arrives
//! to trigger it. Measured in docs/benchmarks.md: 10,000 idle keep-alive connections cost about a third
//! of the memory they cost under glibc.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once when it starts. `_RJEM_MALLOC_CONF` in the environment overrides them.
///
/// - `background_thread`: purge unused pages from a thread of its own, not only on allocation.
/// - `dirty_decay_ms:1000`: return freed pages after about a second (the default is ten).
/// - `muzzy_decay_ms:0`: release them outright instead of keeping them in a second, lazily freed stage.
#[allow(unsafe_code, non_upper_case_globals)] // jemalloc looks this symbol up by name
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";
