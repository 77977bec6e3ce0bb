//! Where a step's time goes, per kernel and direction: off by default, and when turned on
//! ([`enable`]) every custom op's forward and backward adds its time to a table that
//! [`take`] empties. Times are exclusive: a backward pass that calls other kernels is charged
//! only for its own work, so the rows add up to the time spent in our kernels.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Time and calls by kernel name and direction (true: backward).
type Table = BTreeMap<(&'static str, bool), (Duration, u64)>;

static TABLE: Mutex<Table> = Mutex::new(BTreeMap::new());

thread_local! {
    /// Time of the kernels running inside the ones on this thread's stack, innermost last.
    static CHILDREN: RefCell<Vec<Duration>> = const { RefCell::new(Vec::new()) };
}

/// One row of the table: a kernel's calls in one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct OpTime {
    /// The kernel's name, as in candle's errors.
    pub name: &'static str,
    /// Backward rather than forward.
    pub backward: bool,
    /// Seconds spent, exclusive of the kernels it called.
    pub seconds: f64,
    /// Calls.
    pub calls: u64,
}

/// Turns the timing on or off for the whole process.
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// The rows recorded since the last call, slowest first; the table starts empty again.
pub fn take() -> Vec<OpTime> {
    let table = std::mem::take(&mut *TABLE.lock().unwrap_or_else(PoisonError::into_inner));
    let mut rows: Vec<OpTime> = table
        .into_iter()
        .map(|((name, backward), (time, calls))| OpTime {
            name,
            backward,
            seconds: time.as_secs_f64(),
            calls,
        })
        .collect();
    rows.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    rows
}

/// Runs `f`, charging its time, less that of the kernels it calls, to `name` and direction.
pub(super) fn timed<T>(name: &'static str, backward: bool, f: impl FnOnce() -> T) -> T {
    if !ENABLED.load(Ordering::Relaxed) {
        return f();
    }
    CHILDREN.with(|c| c.borrow_mut().push(Duration::ZERO));
    let start = Instant::now();
    let out = f();
    let total = start.elapsed();
    let children = CHILDREN.with(|c| {
        let mut stack = c.borrow_mut();
        let children = stack.pop().unwrap_or_default();
        if let Some(parent) = stack.last_mut() {
            *parent += total;
        }
        children
    });
    let mut table = TABLE.lock().unwrap_or_else(PoisonError::into_inner);
    let row = table.entry((name, backward)).or_default();
    row.0 += total.saturating_sub(children);
    row.1 += 1;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_kernels_are_charged_once_and_nothing_is_recorded_when_off() {
        let spin = |ms| {
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(ms) {}
        };
        timed("outer", false, || spin(1));
        assert!(take().is_empty(), "recorded while off");
        enable(true);
        timed("outer", true, || {
            spin(20);
            timed("inner", false, || spin(30));
        });
        enable(false);
        let rows = take();
        let time = |name| {
            rows.iter()
                .find(|r| r.name == name)
                .map(|r| (r.seconds, r.backward))
        };
        let (outer, outer_backward) = time("outer").unwrap_or_default();
        let (inner, inner_backward) = time("inner").unwrap_or_default();
        assert_eq!((outer_backward, inner_backward), (true, false));
        assert!(inner >= 0.030, "inner {inner}");
        // The outer op's own work (20 ms), not the 50 ms it took with the inner one.
        assert!((0.020..0.030).contains(&outer), "outer {outer}");
        // Other tests' kernels may land in the table meanwhile; the order holds for all rows.
        assert!(
            rows.windows(2).all(|w| w[0].seconds >= w[1].seconds),
            "slowest first"
        );
    }
}
