//! "Detection allocates nothing per match" (ARCHITECTURE.md), checked: once a
//! `Scratch` is warm, scanning text full of candidates for every shipped
//! detector, validators and context look-ups included, makes no allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use hallpass_detect::{DetectorSet, Scratch, ValidateCtx};

/// Counts allocations made on a thread while it is counting; other threads
/// (the test harness) are not counted.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the thread's locals may already be gone while it exits.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call is passed straight to the system allocator; the
// bookkeeping touches only const-initialised thread-locals, which never
// allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    ALLOCATIONS.with(Cell::get)
}

/// One candidate, at least, for every shipped detector and validator.
const TEXT: &str = "\
Pupil name: Amira Ashdown\nNHS number: 943 476 5919\nTel: 0161 496 0123\n\n\
DOB: 04/05/2014, born 4th of May 2014, date of birth 04-May-14\n\
UPN: A820200114001 and ULN 9276308686\n\
NI number AB 12 34 56 C; part number AB123456C\n\
Passport number 123456789; driving licence MORGA753116SM9IJ\n\
Sort code 40-12-34, account number 31926819\n\
Card 4111 1111 1111 1111, 4111111111111111, IBAN GB82 WEST 1234 5698 7654 32\n\
Her asthma and his EHC plan; the policy mentions self-harm.\n\
Password: Kestrel-Lantern-7429, password: must be changed, PIN: 4821\n\
AKIAABCDEFGHIJKLMNOP and -----BEGIN PRIVATE KEY-----\n";

#[test]
fn a_warm_scan_allocates_nothing() {
    let set = DetectorSet::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../detectors"))
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = ValidateCtx {
        today: (2026, 11, 23),
    };
    let mut scratch = Scratch::new(&set);
    let mut found = 0;
    set.scan(&mut scratch, TEXT, &ctx, |_| found += 1);
    assert!(
        found >= 12,
        "the text exercises the detectors: {found} hits"
    );

    let mut again = 0;
    let n = allocations(|| set.scan(&mut scratch, TEXT, &ctx, |_| again += 1));
    assert_eq!(again, found);
    assert_eq!(n, 0, "a warm scan allocated {n} times");
}
