//! A counting global allocator, for "allocates nothing in steady state" tests.
//!
//! Each test binary declares it with [`counting_allocator!`](crate::counting_allocator)
//! (a `#[global_allocator]` static must live in the binary), then reads
//! [`allocations`] around the code under test. Counts every `alloc`, `alloc_zeroed` and
//! `realloc` of every thread, except while [`set_counting`] turned counting off and on
//! threads that called [`exclude_this_thread`] (a test's own helper threads).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static COUNTING: AtomicBool = AtomicBool::new(true);
static TRACE: AtomicBool = AtomicBool::new(false);

thread_local! {
    static EXCLUDED: Cell<bool> = const { Cell::new(false) };
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
}

/// The system allocator, counting allocations (declare it with
/// [`counting_allocator!`](crate::counting_allocator)).
pub struct Counting;

/// Declares [`Counting`] as the test binary's global allocator.
#[macro_export]
macro_rules! counting_allocator {
    () => {
        #[global_allocator]
        static COUNTING_ALLOCATOR: $crate::alloc::Counting = $crate::alloc::Counting;
    };
}

/// Allocations counted so far (all threads but excluded ones).
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Turns counting on or off for every thread (on at start).
pub fn set_counting(on: bool) {
    COUNTING.store(on, Ordering::Relaxed);
}

/// Stops counting the calling thread's allocations (for the test's own threads).
pub fn exclude_this_thread() {
    EXCLUDED.with(|c| c.set(true));
}

/// Debug aid: print a backtrace for each counted allocation while on.
pub fn set_trace(on: bool) {
    TRACE.store(on, Ordering::Relaxed);
}

fn count() {
    if !COUNTING.load(Ordering::Relaxed) {
        return;
    }
    // `try_with`: thread-local storage may be gone while a thread exits.
    if EXCLUDED.try_with(Cell::get).unwrap_or(false) {
        return;
    }
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    if TRACE.load(Ordering::Relaxed) && !IN_TRACE.try_with(|c| c.replace(true)).unwrap_or(true) {
        eprintln!("ALLOC {}", std::backtrace::Backtrace::force_capture());
        let _ = IN_TRACE.try_with(|c| c.set(false));
    }
}

// SAFETY: delegates every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`; `ptr` came from System through us.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`; `ptr` came from System through us.
        unsafe { System.dealloc(ptr, layout) }
    }
}
