//! Cross-process wait/notify on a 32-bit cell of a segment: `futex(2)`
//! without `FUTEX_PRIVATE_FLAG`, so that a wake in one process reaches a
//! waiter in another (the kernel keys shared futexes by the page and offset,
//! not by the address).
//!
//! # The wait cell (a cross-process protocol)
//!
//! A wait cell is 8 bytes at an 8-byte aligned offset of the segment:
//!
//! | offset | type  | meaning |
//! |--------|-------|---------|
//! | +0     | `i32` | the value: what `wait` compares and `notify`ers change |
//! | +4     | `u32` | the waiter count: how many threads (any process) are in, or about to enter, `FUTEX_WAIT` on +0 |
//!
//! A waiter increments the count (sequentially consistent), calls
//! `FUTEX_WAIT(+0, expected)` and decrements the count when it returns. A
//! notifier first changes the value with a sequentially consistent store
//! (JS `Atomics.store`, C11 `atomic_store`), then issues a full fence and
//! reads the count: if it is 0 there is nobody to wake and it makes no
//! system call; otherwise it calls `FUTEX_WAKE(+0, n)`. Either the notifier
//! sees the incremented count, or the increment (and so the waiter's
//! `FUTEX_WAIT`, which the kernel checks under its hash-bucket lock) comes
//! after the new value, and the kernel returns `EAGAIN` instead of sleeping:
//! no wake-up is lost. A C program follows the same steps with
//! `__atomic_fetch_add`, `syscall(SYS_futex, …)` and `__atomic_thread_fence`.
//! A waiter killed while asleep leaves the count one too high; that only
//! costs the notifiers a useless `FUTEX_WAKE`.
//!
//! # Asynchronous waits
//!
//! [`wait_async`] does not block its caller nor take a thread per wait: one
//! waiter thread per 127 pending waits sleeps in `futex_waitv(2)` (Linux
//! 5.16) on all of them at once, plus a private control word that is bumped
//! to make it rescan its list (new waits, cancellations, detaches). It
//! completes a wait when the kernel reports that cell as woken, when it finds
//! the cell's value different from the expected one, or at its deadline.
//!
//! Where `futex_waitv` is missing (Linux before 5.16, qemu-user 7.2, a
//! seccomp profile that denies it), or when the environment variable
//! `SYSV_SHM_FUTEX_WAITV` is `0`, each pending wait gets a thread of its own
//! from the crate's one pool ([`crate::blocking`]) instead, asleep in plain
//! `FUTEX_WAIT`; a cancellation wakes that thread alone with a timer signal.
//! See [`async_backend`] and the `fallback` module. The fast path is probed
//! once per process. A [`CancelToken`] in [`AsyncRequest::cancel`] cancels
//! a wait of either backend at once.
//!
//! # Layout
//!
//! This file: the backends' common part (the request, its outcome,
//! [`wait_async`], [`cancel`], [`cancel_range`]). `sys`: the raw `futex(2)`
//! calls ([`futex_wait`], [`futex_wake`]). `cell`: the wait cell protocol on
//! an [`Attachment`](crate::Attachment) (`wait`, `notify`, `wait_async`,
//! [`check_cell`]). `waitv`: the `futex_waitv` waiter threads. `fallback`: a
//! pooled thread per wait.
//!
//! # References
//! - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
//! - [futex_waitv(2)](https://docs.kernel.org/userspace-api/futex2.html)

use std::any::Any;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::error::Result;
use crate::wait::CancelToken;

mod cell;
mod fallback;
mod sys;
mod waitv;

pub use cell::check_cell;
pub use sys::{futex_wait, futex_wake};
use sys::{futex_wake_private, timespec};
use waitv::{FutexWaitv, SYS_FUTEX_WAITV};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The size of a wait cell: the `i32` value and the `u32` waiter count.
pub const CELL_SIZE: usize = 8;

/// The environment variable that, set to `0`, makes asynchronous waits use
/// [`AsyncBackend::FutexWait`] even where `futex_waitv` exists (to test it).
pub const FUTEX_WAITV_ENV: &str = "SYSV_SHM_FUTEX_WAITV";

/// How this process serves asynchronous waits ([`wait_async`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncBackend {
    /// One thread per 127 pending waits, asleep in `futex_waitv(2)` on all of
    /// them (Linux 5.16 and later).
    FutexWaitv,
    /// One pooled thread per pending wait, asleep in `FUTEX_WAIT` on its cell
    /// (where `futex_waitv` is missing, or [`FUTEX_WAITV_ENV`] is `0`).
    FutexWait,
}

impl AsyncBackend {
    /// `"futex_waitv"` or `"futex"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AsyncBackend::FutexWaitv => "futex_waitv",
            AsyncBackend::FutexWait => "futex",
        }
    }
}

/// The backend of asynchronous waits, chosen once per process: `FutexWait`
/// if [`FUTEX_WAITV_ENV`] is `0` or if `futex_waitv(2)` fails with `ENOSYS`
/// (Linux before 5.16, qemu-user) or `EPERM` (a seccomp filter) when probed
/// with an empty list (which the kernel refuses with `EINVAL`), else
/// `FutexWaitv`.
///
/// # References
/// - [futex_waitv(2)](https://docs.kernel.org/userspace-api/futex2.html)
pub fn async_backend() -> AsyncBackend {
    static BACKEND: OnceLock<AsyncBackend> = OnceLock::new();
    *BACKEND.get_or_init(|| {
        if std::env::var_os(FUTEX_WAITV_ENV).is_some_and(|v| v == "0") {
            return AsyncBackend::FutexWait;
        }
        // SAFETY: no list (null, 0 entries) and no timeout: the kernel reads
        // nothing and refuses the call with EINVAL.
        let r = unsafe {
            libc::syscall(
                SYS_FUTEX_WAITV,
                std::ptr::null::<FutexWaitv>(),
                0 as libc::c_uint,
                0 as libc::c_uint,
                std::ptr::null::<libc::timespec>(),
                libc::CLOCK_MONOTONIC,
            )
        };
        match Errno::result(r) {
            Err(Errno::ENOSYS | Errno::EPERM) => AsyncBackend::FutexWait,
            _ => AsyncBackend::FutexWaitv,
        }
    })
}

/// How a wait ended, as `Atomics.wait` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Woken by a notify (or, as futexes allow, spuriously: re-check the value).
    Ok,
    /// The value was not the expected one: the call did not sleep.
    NotEqual,
    /// The timeout elapsed.
    TimedOut,
}

impl WaitOutcome {
    /// `"ok"`, `"not-equal"` or `"timed-out"`.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitOutcome::Ok => "ok",
            WaitOutcome::NotEqual => "not-equal",
            WaitOutcome::TimedOut => "timed-out",
        }
    }
}

// ---------------------------------------------------------------------------
// Asynchronous waits: futex_waitv multiplexing threads (the `fallback`
// module serves them where futex_waitv is missing).

/// How an asynchronous wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncOutcome {
    /// Woken, or the value was seen different from the expected one.
    Ok,
    /// The deadline passed.
    TimedOut,
    /// [`cancel`] was called.
    Cancelled,
    /// [`cancel_range`] was called (the memory is being unmapped).
    Detached,
    /// The word was not the expected value when the wait was asked for.
    NotEqual,
    /// The kernel refused the wait (the `errno` of `futex_waitv`).
    Failed(Errno),
    /// No thread could be started to serve the wait (the `errno` of
    /// `pthread_create`).
    NoThread(Errno),
}

/// The completion callback of an asynchronous wait.
pub type OnDone = Box<dyn FnOnce(AsyncOutcome) + Send>;

/// One asynchronous wait.
pub struct AsyncRequest {
    /// The 32-bit futex word.
    pub addr: *const AtomicU32,
    /// Sleep while the word equals this.
    pub expected: u32,
    /// A waiter count to increment while the wait sleeps (the waiter thread
    /// increments it just before it sleeps) and decrement at completion.
    pub waiters: Option<*const AtomicU32>,
    /// Relative timeout; `None` waits forever.
    pub timeout: Option<Duration>,
    /// Keeps the memory of `addr` mapped until completion.
    pub keepalive: Arc<dyn Any + Send + Sync>,
    /// Called once, on the waiter thread (or the caller's for [`cancel`]).
    pub on_done: OnDone,
    /// Cancelling it ends the wait at once with [`AsyncOutcome::Cancelled`]
    /// (as [`cancel`] of its id does).
    pub cancel: Option<CancelToken>,
}

struct Entry {
    id: u64,
    addr: *const AtomicU32,
    expected: u32,
    waiters: Option<*const AtomicU32>,
    deadline: Option<Instant>,
    /// Whether the waiter thread has incremented `waiters` for this entry
    /// (it does so just before it sleeps on it).
    counted: bool,
    _keepalive: Arc<dyn Any + Send + Sync>,
    on_done: OnDone,
}

// SAFETY: the raw pointers are addresses in mappings that `_keepalive` keeps
// alive (or that `cancel_range` removes before unmapping); they are only
// dereferenced as atomics, which any thread may do.
unsafe impl Send for Entry {}

impl Entry {
    /// Drops the waiter count this entry holds and hands back the callback.
    ///
    /// # Safety
    /// The entry's memory must still be mapped (it is while it is listed).
    unsafe fn finish(self) -> OnDone {
        if let (true, Some(w)) = (self.counted, self.waiters) {
            // SAFETY: mapped (caller's contract), aligned, atomic access.
            unsafe { (*w).fetch_sub(1, Ordering::SeqCst) };
        }
        self.on_done
    }
}

/// Starts an asynchronous wait on a 32-bit futex word and returns its id.
///
/// `on_done` is called exactly once: at once, on this thread, with
/// [`AsyncOutcome::NotEqual`] (and the result is `Ok(None)`) if the word is
/// not `expected` now, or with [`AsyncOutcome::Failed`] if no waiter thread
/// could be started; else later, from a waiter thread, or from [`cancel`] or
/// [`cancel_range`].
///
/// # Safety
/// `req.addr` (and `req.waiters`) must be aligned words that stay mapped
/// until `on_done` runs or [`cancel_range`] is called for their range.
///
/// Served by the backend of [`async_backend`].
///
/// # Errors
/// The error of spawning a thread.
pub unsafe fn wait_async(mut req: AsyncRequest) -> Result<Option<u64>> {
    if req.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
        (req.on_done)(AsyncOutcome::Cancelled);
        return Ok(None);
    }
    let Some(token) = req.cancel.clone() else {
        // SAFETY: the caller's contract, passed on.
        return unsafe { start_async(req) };
    };
    // The wait's id once it is listed (0, no id, until then). The token's
    // call takes the wait off its thread (`futex_waitv` list or fallback
    // thread) and settles it; registered before the start, so that the
    // completion, which may come first, can unregister it: a token used for
    // many waits (the channel's `recvAsync` loop) keeps none of them.
    let started = Arc::new(AtomicU64::new(0));
    let listed = Arc::clone(&started);
    let registration = token.on_cancel(move || {
        let id = listed.load(Ordering::SeqCst);
        if id != 0 {
            cancel(id);
        }
    });
    let on_done = req.on_done;
    let t = token.clone();
    req.on_done = Box::new(move |outcome| {
        t.unregister(registration);
        on_done(outcome);
    });
    // SAFETY: the caller's contract, passed on.
    let id = unsafe { start_async(req) };
    if let Ok(Some(id)) = id {
        started.store(id, Ordering::SeqCst);
        // Cancelled before the id was stored: the call above found none.
        if token.is_cancelled() {
            cancel(id);
        }
    }
    id
}

/// [`wait_async`] without the token.
///
/// # Safety
/// As [`wait_async`].
unsafe fn start_async(req: AsyncRequest) -> Result<Option<u64>> {
    // SAFETY: mapped and aligned (caller's contract).
    if unsafe { (*req.addr).load(Ordering::SeqCst) } != req.expected {
        (req.on_done)(AsyncOutcome::NotEqual);
        return Ok(None);
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let entry = Entry {
        id,
        addr: req.addr,
        expected: req.expected,
        waiters: req.waiters,
        deadline: req.timeout.and_then(|t| Instant::now().checked_add(t)),
        counted: false,
        _keepalive: req.keepalive,
        on_done: req.on_done,
    };
    if async_backend() == AsyncBackend::FutexWait {
        // SAFETY: the caller's contract, passed on.
        return unsafe { fallback::start(entry) };
    }
    // SAFETY: the caller's contract, passed on.
    unsafe { waitv::start(entry) }
}

/// Cancels a pending asynchronous wait: its `on_done` runs now, on this
/// thread, with [`AsyncOutcome::Cancelled`]. Returns `false` if it had
/// already completed.
pub fn cancel(id: u64) -> bool {
    if fallback::cancel(id) {
        return true;
    }
    waitv::cancel(id)
}

/// Ends every pending wait whose word lies in `start..start + len` with
/// [`AsyncOutcome::Detached`], before that memory is unmapped. When this
/// returns, no waiter thread reads that memory any more. Returns how many.
pub fn cancel_range(start: usize, len: usize) -> usize {
    fallback::cancel_range(start, len) + waitv::cancel_range(start, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attachment::Attachment;
    use crate::error::Error;
    use crate::{CreateOptions, Segment, IPC_PRIVATE};
    use std::sync::atomic::AtomicI32;
    use std::sync::mpsc;

    fn segment() -> (Segment, Attachment) {
        sized(4096)
    }

    fn sized(size: usize) -> (Segment, Attachment) {
        let (seg, _) = Segment::create(IPC_PRIVATE, size, &CreateOptions::default()).unwrap();
        let map = seg.attach(false).unwrap();
        seg.remove().unwrap();
        (seg, map)
    }

    fn value(map: &Attachment, off: usize) -> &AtomicI32 {
        // SAFETY: in bounds and aligned in a live mapping, for the test's span.
        unsafe { &*map.as_ptr().add(off).cast::<AtomicI32>() }
    }

    #[test]
    fn wait_notify_between_threads() {
        let (_seg, map) = segment();
        let map = Arc::new(map);
        let m = Arc::clone(&map);
        let waiter = std::thread::spawn(move || m.wait(8, 0, None).unwrap());
        // The value never changes, so only a wake-up ends the wait. The waiter
        // counts itself before it sleeps: notify until it was really asleep.
        let mut woken = 0;
        while woken == 0 {
            woken = map.notify(8, u32::MAX).unwrap();
            std::thread::yield_now();
        }
        assert_eq!(woken, 1);
        assert_eq!(waiter.join().unwrap(), WaitOutcome::Ok);
        assert_eq!(value(&map, 12).load(Ordering::SeqCst), 0);
    }

    #[test]
    fn not_equal_timed_out_and_checks() {
        let (_seg, map) = segment();
        assert_eq!(map.wait(0, 1, None).unwrap(), WaitOutcome::NotEqual);
        let t = Some(Duration::from_millis(1));
        assert_eq!(map.wait(0, 0, t).unwrap(), WaitOutcome::TimedOut);
        assert_eq!(map.notify(0, 1).unwrap(), 0);
        assert!(matches!(map.wait(4, 0, t), Err(Error::InvalidArgument(_))));
        assert!(matches!(
            map.wait(4096, 0, t),
            Err(Error::OutOfBounds { .. })
        ));
    }

    #[test]
    fn async_wait_completes_times_out_and_cancels() {
        let (_seg, map) = segment();
        let map = Arc::new(map);
        let (tx, rx) = mpsc::channel();
        let keep: Arc<dyn Any + Send + Sync> = map.clone();
        // An asynchronous wait on the cell at `off` (value 0) that reports to `rx`.
        let start = |off: usize, timeout: Option<Duration>| {
            let tx = tx.clone();
            let done: OnDone = Box::new(move |o| tx.send(o).unwrap());
            map.wait_async(off, 0, timeout, keep.clone(), done, None)
                .unwrap()
        };
        let id = start(16, None).unwrap();
        value(&map, 16).store(1, Ordering::SeqCst);
        map.notify(16, 1).unwrap();
        assert_eq!(rx.recv().unwrap(), AsyncOutcome::Ok);
        assert!(!cancel(id));

        start(24, Some(Duration::from_millis(5)));
        assert_eq!(rx.recv().unwrap(), AsyncOutcome::TimedOut);

        let id = start(32, None).unwrap();
        assert!(cancel(id));
        assert_eq!(rx.recv().unwrap(), AsyncOutcome::Cancelled);

        start(40, None);
        assert_eq!(cancel_range(map.as_ptr() as usize, map.len()), 1);
        assert_eq!(rx.recv().unwrap(), AsyncOutcome::Detached);
        assert_eq!(value(&map, 44).load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_token_holds_no_registration_of_a_completed_wait() {
        // As `recvAsync` does: one token for many waits, each completed
        // (woken, not equal, timed out). None may leave its cancel call on
        // the token (the list grew per wait, and a later cancel ran them all).
        let (_seg, map) = segment();
        let map = Arc::new(map);
        let token = CancelToken::new();
        let keep: Arc<dyn Any + Send + Sync> = map.clone();
        for round in 0..50i32 {
            let (tx, rx) = mpsc::channel();
            let (tx1, tx2, tx3) = (tx.clone(), tx.clone(), tx);
            let on = |tx: mpsc::Sender<AsyncOutcome>| -> OnDone {
                Box::new(move |o| tx.send(o).unwrap())
            };
            let t = Some(&token);
            value(&map, 48).store(round, Ordering::SeqCst);
            map.wait_async(48, round, None, keep.clone(), on(tx1), t)
                .unwrap();
            value(&map, 48).store(round + 1, Ordering::SeqCst);
            map.notify(48, 1).unwrap();
            assert_eq!(rx.recv().unwrap(), AsyncOutcome::Ok);
            map.wait_async(48, round, None, keep.clone(), on(tx2), t)
                .unwrap();
            assert_eq!(rx.recv().unwrap(), AsyncOutcome::NotEqual);
            let short = Some(Duration::from_millis(1));
            map.wait_async(56, 0, short, keep.clone(), on(tx3), t)
                .unwrap();
            assert_eq!(rx.recv().unwrap(), AsyncOutcome::TimedOut);
        }
        assert_eq!(token.registrations(), 0);
        // The token still cancels a pending wait, and that one unregisters too.
        let (tx, rx) = mpsc::channel();
        map.wait_async(
            56,
            0,
            None,
            keep,
            Box::new(move |o| tx.send(o).unwrap()),
            Some(&token),
        )
        .unwrap();
        assert_eq!(token.registrations(), 1);
        token.cancel();
        assert_eq!(rx.recv().unwrap(), AsyncOutcome::Cancelled);
        assert_eq!(token.registrations(), 0);
    }

    #[test]
    fn async_waits_on_one_word_all_wake_without_a_change() {
        // Several waits on one word in one process (they may share a
        // futex_waitv list): notify(n) without changing the value wakes all
        // n. futex_waitv reports one index per return; a second entry of the
        // same address in the same list was woken too, saw the value
        // unchanged and slept again for ever.
        let (_seg, map) = segment();
        let map = Arc::new(map);
        let keep: Arc<dyn Any + Send + Sync> = map.clone();
        for n in [2u32, 3, 5] {
            for _round in 0..20 {
                let (tx, rx) = mpsc::channel();
                for _ in 0..n {
                    let tx = tx.clone();
                    map.wait_async(
                        64,
                        0,
                        None,
                        keep.clone(),
                        Box::new(move |o| tx.send(o).unwrap()),
                        None,
                    )
                    .unwrap();
                }
                drop(tx);
                // Each wait counts itself before it sleeps: notify until all n
                // were woken together or one by one.
                let mut woken = 0;
                while woken < n {
                    woken += map.notify(64, n - woken).unwrap();
                    std::thread::yield_now();
                }
                // A lost wake-up never arrives: a hang guard (a minute, far
                // beyond any wake-up on a loaded machine), not a bound on speed.
                let guard = Duration::from_secs(60);
                let got: Vec<_> = (0..n).map(|_| rx.recv_timeout(guard)).collect();
                let got: Vec<_> = got.into_iter().map(|r| r.ok()).collect();
                assert_eq!(got, vec![Some(AsyncOutcome::Ok); n as usize]);
            }
        }
    }

    #[test]
    fn concurrent_async_waits_from_many_threads_all_complete() {
        // 8 threads start 1,000 waits each at the same moment, 10 rounds:
        // the adds to the waiter lists race (a list overfilled past 128
        // futexes failed all of its waits with EINVAL from futex_waitv; one
        // round showed it about once in six runs, ten nearly always).
        const THREADS: usize = 8;
        const EACH: usize = 1000;
        let (_seg, map) = sized(8 * THREADS * EACH);
        let map = Arc::new(map);
        let mut outcomes = std::collections::BTreeMap::new();
        for _round in 0..10 {
            for c in 0..THREADS * EACH {
                value(&map, 8 * c).store(0, Ordering::SeqCst);
            }
            let (tx, rx) = mpsc::channel();
            let start = Arc::new(std::sync::Barrier::new(THREADS));
            let starters: Vec<_> = (0..THREADS)
                .map(|k| {
                    let (map, tx, start) = (Arc::clone(&map), tx.clone(), Arc::clone(&start));
                    std::thread::spawn(move || {
                        start.wait();
                        for i in 0..EACH {
                            let keep: Arc<dyn Any + Send + Sync> = map.clone();
                            let tx = tx.clone();
                            let off = 8 * (k * EACH + i);
                            map.wait_async(
                                off,
                                0,
                                None,
                                keep,
                                Box::new(move |o| tx.send(o).unwrap()),
                                None,
                            )
                            .unwrap();
                        }
                    })
                })
                .collect();
            drop(tx);
            for s in starters {
                s.join().unwrap();
            }
            for c in 0..THREADS * EACH {
                value(&map, 8 * c).store(1, Ordering::SeqCst);
                map.notify(8 * c, 1).unwrap();
            }
            for o in rx.iter().take(THREADS * EACH) {
                *outcomes.entry(format!("{o:?}")).or_insert(0) += 1;
            }
        }
        let expected = std::collections::BTreeMap::from([("Ok".to_string(), 10 * THREADS * EACH)]);
        assert_eq!(outcomes, expected);
    }
}
