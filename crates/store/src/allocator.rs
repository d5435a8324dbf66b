//! Keeping freed memory in the process. Burn's CPU backend allocates and frees buffers of many
//! megabytes at every step; glibc's malloc hands each one back to the kernel (`munmap`) and the
//! next step faults it in again, page by page: about 700,000 page faults in 20 training steps of
//! the tutorial's convnet, 10% of its CPU time (BENCHMARKS.md).

/// Serve large allocations from the heap and keep freed memory for the next step. Call once, at
/// the start of a binary, before the allocations to keep.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's thresholds; it is called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
