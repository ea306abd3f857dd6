//! Asynchronous waits where `futex_waitv(2)` is missing: a thread per
//! pending wait, asleep in plain `FUTEX_WAIT` on its cell.
//!
//! Used when [`async_backend`](super::async_backend) is
//! [`AsyncBackend::FutexWait`](super::AsyncBackend::FutexWait): kernels
//! before 5.16 (Debian 11, Ubuntu 20.04, RHEL 8, Amazon Linux 2), qemu-user
//! up to at least 7.2 and seccomp profiles that deny the call (all answer
//! `ENOSYS` or `EPERM`), or `SYSV_SHM_FUTEX_WAITV=0`.
//!
//! # The design
//!
//! - Each wait is served by a thread of the crate's one pool
//!   ([`crate::blocking`], "sysv-shm-wait"; never libuv's pool): it counts itself in the cell's waiter count, checks
//!   the value and sleeps in `futex(cell, FUTEX_WAIT, expected, timeout)`,
//!   all as a synchronous waiter does, so the protocol of the
//!   [parent module](super) is unchanged and a notify costs nothing more. A
//!   thread whose wait is over waits [`blocking::IDLE`] for the next one,
//!   then ends: starting a thread costs tens of microseconds.
//! - [`cancel`] and [`cancel_range`] take the wait away from its thread
//!   under the wait's lock (dropping its waiter count and settling it at
//!   once, on the caller's thread), then wake that thread alone, privately:
//!   each pooled thread owns a POSIX timer that sends it the wake-up signal of
//!   [`crate::wait`] (installed without `SA_RESTART`, so `FUTEX_WAIT` returns
//!   `EINTR`). The canceller arms it to fire now and then every
//!   [`REFIRE`](crate::wait::REFIRE) until the thread has seen it, which
//!   closes the race of a signal that lands just before the thread enters
//!   the kernel; the thread disarms it. A `FUTEX_WAKE` on the cell would wake
//!   every waiter of the cell in every process instead.
//! - Where the signal cannot be used ([`WakeStrategy::Poll`](crate::wait::WakeStrategy::Poll): someone else
//!   handles it, or it was chosen), or no timer can be made, a thread sleeps
//!   at most [`SLICE`] at a time and looks for a cancellation in between.
//!   Either way a cancelled or detached wait settles at once; only the
//!   thread's return to the pool can take up to `SLICE` longer.
//!
//! A thread touches the cell only under its wait's lock and while the wait
//! is still its own, so once [`cancel_range`] returns no thread reads the
//! range any more (the kernel may still look at the address in a
//! `FUTEX_WAIT` that was about to start: it only reads it, fails with
//! `EFAULT` if it is unmapped, and the timer signal ends that sleep).
//!
//! Costs against `futex_waitv`: a thread (256 KiB of reserved stack, about
//! 12 KiB resident) per pending wait instead of one per 127, and a hand-off
//! to a pooled thread per wait: a `waitAsync`/`notify` round trip between two
//! Node processes measured 40 µs against 24 µs (`npm run bench`).
//!
//! # References
//! - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
//! - [timer_create(2)](https://man7.org/linux/man-pages/man2/timer_create.2.html)

use std::collections::HashMap;
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::sys::futex_wait_once;
use super::{futex_wake_private, timespec, AsyncOutcome, Entry, OnDone};
use crate::blocking;
use crate::error::Result;
use crate::wait::Timer;
/// The longest sleep of a thread that has no timer to wake it.
pub const SLICE: Duration = Duration::from_millis(50);

/// One pending wait and the thread that serves it.
struct Wait {
    id: u64,
    /// The futex word's address, to find the waits of a range.
    addr: usize,
    state: Mutex<State>,
    /// [`ARMED`] once the thread is about to sleep on the cell or is done
    /// with the wait; [`AWAITED`] while `until_armed` sleeps on it.
    armed: AtomicU32,
    /// Set when the thread has left the wait for good (tests).
    #[cfg_attr(not(test), allow(dead_code))]
    released: AtomicBool,
}

struct State {
    /// The wait; `None` once settled (by its thread, `cancel` or `cancel_range`).
    entry: Option<Entry>,
    /// The timer of the thread serving the wait, while it does.
    worker: Option<Timer>,
    /// Whether a canceller armed `worker`, which its thread must then disarm.
    fired: bool,
}

/// `Wait::armed`: the thread has not got that far yet.
const UNARMED: u32 = 0;
/// `Wait::armed`: the thread is about to sleep on the cell, or is done.
const ARMED: u32 = 1;
/// `Wait::armed`: not yet, and `until_armed` sleeps on the word.
const AWAITED: u32 = 2;

impl Wait {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the wait from its thread (cancellation, detach): drops its waiter
    /// count and returns its callback, and wakes the thread.
    ///
    /// # Safety
    /// The word's memory must be mapped during the call.
    unsafe fn take(&self) -> Option<OnDone> {
        let mut st = self.lock();
        let entry = st.entry.take()?;
        if let Some(t) = st.worker {
            // Under the lock: the thread clears `worker` under it before it
            // disarms, so a timer is never armed after that.
            t.arm(None);
            st.fired = true;
        }
        // SAFETY: mapped (caller's contract); under the lock, so the thread
        // neither reads the count nor returns to the pool meanwhile.
        Some(unsafe { entry.finish() })
    }

    /// Waits (at most 1 ms, as the `futex_waitv` path does) until the thread
    /// is about to sleep on the cell or the wait is over: spins briefly, then
    /// sleeps on `armed` (private futex), so that the thread it waits for can
    /// have this CPU (a spinning caller can hold it up for the whole 1 ms).
    fn until_armed(&self) {
        for _ in 0..64 {
            if self.is_armed() {
                return;
            }
            std::hint::spin_loop();
        }
        let deadline = Instant::now() + Duration::from_millis(1);
        if self
            .armed
            .compare_exchange(UNARMED, AWAITED, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return;
        }
        while !self.is_armed() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let ts = timespec(left);
            // SAFETY: `armed` lives as long as `self`; `ts` outlives the call.
            // FUTEX_WAIT only reads the word and the timespec.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.armed.as_ptr(),
                    libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                    AWAITED,
                    &ts as *const libc::timespec,
                )
            };
        }
    }

    fn is_armed(&self) -> bool {
        self.armed.load(Ordering::SeqCst) == ARMED
    }

    /// Marks the wait armed (see `until_armed`) and wakes whoever waits for that.
    fn arm(&self) {
        if self.armed.swap(ARMED, Ordering::SeqCst) == AWAITED {
            futex_wake_private(&self.armed);
        }
    }
}

static WAITS: OnceLock<Mutex<HashMap<u64, Arc<Wait>>>> = OnceLock::new();

fn waits() -> MutexGuard<'static, HashMap<u64, Arc<Wait>>> {
    WAITS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Starts serving `entry` on a thread of the pool.
///
/// # Safety
/// As [`wait_async`](super::wait_async): the entry's words stay mapped until
/// it settles or [`cancel_range`] is called for their range.
pub(super) unsafe fn start(entry: Entry) -> Result<Option<u64>> {
    // SAFETY: the caller's contract.
    unsafe { start_wait(entry) }.map(|w| Some(w.id))
}

/// [`start`], returning the wait itself (the tests look at it).
unsafe fn start_wait(entry: Entry) -> Result<Arc<Wait>> {
    let wait = Arc::new(Wait {
        id: entry.id,
        addr: entry.addr as usize,
        state: Mutex::new(State {
            entry: Some(entry),
            worker: None,
            fired: false,
        }),
        armed: AtomicU32::new(UNARMED),
        released: AtomicBool::new(false),
    });
    // Listed before a thread can see it, so that `cancel_range` finds it.
    waits().insert(wait.id, Arc::clone(&wait));
    let for_thread = Arc::clone(&wait);
    let started = blocking::spawn(Box::new(move || {
        let settled = serve(&for_thread, blocking::thread_timer());
        drop(for_thread);
        // The callback runs once the thread is back in the pool, so that the
        // next wait, which it may start at once, finds it there.
        settled.map(|(done, outcome)| Box::new(move || done(outcome)) as Box<dyn FnOnce() + Send>)
    }));
    if let Err(e) = started {
        waits().remove(&wait.id);
        // SAFETY: mapped (caller's contract); no thread has the wait.
        if let Some(done) = unsafe { wait.take() } {
            done(AsyncOutcome::NoThread(e.errno().unwrap_or(Errno::EAGAIN)));
        }
        return Err(e);
    }
    wait.until_armed();
    Ok(wait)
}

/// Cancels the wait `id` if this module serves it (see [`super::cancel`]).
pub(super) fn cancel(id: u64) -> bool {
    let Some(wait) = waits().remove(&id) else {
        return false;
    };
    // SAFETY: a listed wait's memory is mapped (its entry holds the keepalive
    // until `finish` has run).
    match unsafe { wait.take() } {
        Some(done) => {
            done(AsyncOutcome::Cancelled);
            true
        }
        None => false,
    }
}

/// Ends the waits on words in `start..start + len` (see [`super::cancel_range`]).
pub(super) fn cancel_range(start: usize, len: usize) -> usize {
    if WAITS.get().is_none() {
        return 0;
    }
    let end = start.saturating_add(len);
    let hit: Vec<Arc<Wait>> = {
        let mut all = waits();
        let ids: Vec<u64> = all
            .values()
            .filter(|w| w.addr >= start && w.addr < end)
            .map(|w| w.id)
            .collect();
        ids.iter().filter_map(|id| all.remove(id)).collect()
    };
    let mut n = 0;
    for wait in hit {
        // SAFETY: still mapped: the caller unmaps after we return.
        if let Some(done) = unsafe { wait.take() } {
            done(AsyncOutcome::Detached);
            n += 1;
        }
    }
    n
}

/// What a thread still has to do for a wait it settled: call its callback
/// (after it is back in the pool, so that the next wait, which the callback
/// may start at once, finds it there).
type Settled = Option<(OnDone, AsyncOutcome)>;

/// Serves one wait until it settles or is taken away; `timer` wakes this
/// thread (`None`: sleep in slices).
fn serve(wait: &Wait, timer: Option<Timer>) -> Settled {
    let settled = serve_until_done(wait, timer);
    // Settled (or taken) before it ever slept: `until_armed` need not wait.
    wait.arm();
    wait.released.store(true, Ordering::SeqCst);
    settled
}

fn serve_until_done(wait: &Wait, timer: Option<Timer>) -> Settled {
    let mut woken = false;
    let mut failed: Option<Errno> = None;
    loop {
        let (addr, expected, deadline) = {
            let mut guard = wait.lock();
            let st = &mut *guard;
            let Some(e) = st.entry.as_mut() else {
                // Cancelled or detached: the canceller settled it.
                st.worker = None;
                let fired = mem::replace(&mut st.fired, false);
                drop(guard);
                if let (true, Some(t)) = (fired, timer) {
                    t.disarm();
                }
                return None;
            };
            st.worker = timer;
            if let (false, Some(w)) = (e.counted, e.waiters) {
                // Counted just before this thread sleeps on the cell, as the
                // protocol wants of a waiter.
                // SAFETY: the wait is still ours, under its lock: mapped.
                unsafe { (*w).fetch_add(1, Ordering::SeqCst) };
                e.counted = true;
            }
            // SAFETY: as above; atomic load of an aligned word.
            let changed = unsafe { (*e.addr).load(Ordering::SeqCst) } != e.expected;
            let outcome = if woken || changed {
                Some(AsyncOutcome::Ok)
            } else if e.deadline.is_some_and(|d| d <= Instant::now()) {
                Some(AsyncOutcome::TimedOut)
            } else {
                failed.map(AsyncOutcome::Failed)
            };
            if let Some(outcome) = outcome {
                st.worker = None;
                let entry = st.entry.take();
                // SAFETY: mapped: the wait was ours until now, and under the
                // lock `cancel_range` cannot return before the count drops.
                let done = entry.map(|e| unsafe { e.finish() });
                drop(guard);
                waits().remove(&wait.id);
                return done.map(|d| (d, outcome));
            }
            (e.addr as usize, e.expected, e.deadline)
        };
        wait.arm();
        let mut left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if timer.is_none() {
            left = Some(left.map_or(SLICE, |l| l.min(SLICE)));
        }
        // SAFETY: a word of a mapping a moment ago; if it has been unmapped
        // since, the wait was taken away (and the timer fired) first, and the
        // kernel only reads the address.
        match unsafe { futex_wait_once(addr, expected, left) } {
            Ok(()) => woken = true,
            Err(Errno::EAGAIN | Errno::ETIMEDOUT | Errno::EINTR) => {}
            Err(e) => failed = Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::futex::{cancel as cancel_any, cancel_range as cancel_range_any, NEXT_ID};
    use crate::{Attachment, CreateOptions, Segment, IPC_PRIVATE};
    use std::any::Any;
    use std::sync::atomic::{AtomicI32, AtomicU32};
    use std::sync::mpsc::{self, Receiver};

    fn segment() -> Arc<Attachment> {
        let (seg, _) = Segment::create(IPC_PRIVATE, 4096, &CreateOptions::default()).unwrap();
        let map = seg.attach(false).unwrap();
        seg.remove().unwrap();
        Arc::new(map)
    }

    fn word(map: &Attachment, off: usize) -> &AtomicI32 {
        // SAFETY: in bounds and aligned in a live mapping, for the test's span.
        unsafe { &*map.as_ptr().add(off).cast::<AtomicI32>() }
    }

    /// Starts a fallback wait on the cell at `off` (value expected 0).
    fn wait_on(
        map: &Arc<Attachment>,
        off: usize,
        timeout: Option<Duration>,
    ) -> (Arc<Wait>, Receiver<AsyncOutcome>) {
        let (tx, rx) = mpsc::channel();
        let keep: Arc<dyn Any + Send + Sync> = map.clone();
        let entry = Entry {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            addr: word(map, off) as *const AtomicI32 as *const AtomicU32,
            expected: 0,
            waiters: Some(word(map, off + 4) as *const AtomicI32 as *const AtomicU32),
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
            counted: false,
            _keepalive: keep,
            on_done: Box::new(move |o| tx.send(o).unwrap()),
        };
        // SAFETY: the words are in `map`, which the entry keeps mapped.
        let w = unsafe { start_wait(entry) }.unwrap();
        (w, rx)
    }

    fn until(what: &str, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < end, "gave up waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn fallback_completes_times_out_cancels_and_detaches() {
        let map = segment();
        // Woken by a notify from another thread.
        let (w, rx) = wait_on(&map, 0, None);
        until("the waiter count", || {
            word(&map, 4).load(Ordering::SeqCst) == 1
        });
        word(&map, 0).store(1, Ordering::SeqCst);
        map.notify(0, 1).unwrap();
        assert_eq!(rx.recv().unwrap(), AsyncOutcome::Ok);
        assert!(!cancel_any(w.id), "settled waits are not listed");
        assert_eq!(word(&map, 4).load(Ordering::SeqCst), 0);

        // Timed out.
        let (_, rx) = wait_on(&map, 8, Some(Duration::from_millis(5)));
        assert_eq!(rx.recv().unwrap(), AsyncOutcome::TimedOut);
        assert_eq!(word(&map, 12).load(Ordering::SeqCst), 0);

        // Cancelled: settles at once, and the timer signal frees the thread,
        // which would otherwise sleep in FUTEX_WAIT forever (no timeout).
        let (w, rx) = wait_on(&map, 16, None);
        until("the thread to sleep", || {
            w.is_armed() && word(&map, 20).load(Ordering::SeqCst) == 1
        });
        assert!(cancel_any(w.id));
        assert_eq!(rx.try_recv().unwrap(), AsyncOutcome::Cancelled);
        assert_eq!(word(&map, 20).load(Ordering::SeqCst), 0);
        until("the cancelled wait's thread to leave it", || {
            w.released.load(Ordering::SeqCst)
        });
        assert!(!cancel_any(w.id));

        // Detached: the range is given up, then really unmapped; the thread
        // must neither touch it nor stay asleep.
        let (w, rx) = wait_on(&map, 24, None);
        until("the thread to sleep", || w.is_armed());
        let (start, len) = (map.as_ptr() as usize, map.len());
        assert_eq!(cancel_range_any(start, len), 1);
        assert_eq!(rx.try_recv().unwrap(), AsyncOutcome::Detached);
        assert_eq!(word(&map, 28).load(Ordering::SeqCst), 0);
        let map = Arc::into_inner(map).expect("no wait keeps the mapping");
        map.detach().unwrap();
        until("the detached wait's thread to leave it", || {
            w.released.load(Ordering::SeqCst)
        });
    }

    #[test]
    fn fallback_serves_many_waits_with_a_thread_each() {
        let map = segment();
        let n = 40;
        let waits: Vec<_> = (0..n).map(|k| wait_on(&map, 8 * k, None)).collect();
        until("every waiter count", || {
            (0..n).all(|k| word(&map, 8 * k + 4).load(Ordering::SeqCst) == 1)
        });
        // Each sleeps on its own cell: waking one cell wakes exactly one.
        for k in (0..n).rev() {
            until("the thread asleep", || waits[k].0.is_armed());
            word(&map, 8 * k).store(1, Ordering::SeqCst);
            map.notify(8 * k, u32::MAX).unwrap();
            assert_eq!(waits[k].1.recv().unwrap(), AsyncOutcome::Ok);
        }
        assert!((0..n).all(|k| word(&map, 8 * k + 4).load(Ordering::SeqCst) == 0));
        // Their threads go back to the pool to wait for more work.
        until("idle threads", || crate::blocking::idle_count() >= n / 2);
    }
}
