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
//! from a small pool instead, asleep in plain `FUTEX_WAIT`; a cancellation
//! wakes that thread alone with a timer signal. See [`async_backend`] and
//! the `fallback` module. The fast path is probed once per process.
//!
//! # References
//! - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
//! - [futex_waitv(2)](https://docs.kernel.org/userspace-api/futex2.html)

use std::any::Any;
use std::sync::atomic::{fence, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::attachment::Attachment;
use crate::error::{Error, Result};
use crate::wait::CancelToken;

mod fallback;

/// `SYS_futex_waitv`: 449 on every architecture (added in Linux 5.16).
const SYS_FUTEX_WAITV: libc::c_long = 449;
/// `FUTEX2_SIZE_U32` for `futex_waitv` entries.
const FUTEX2_SIZE_U32: u32 = 0x02;
/// `FUTEX2_PRIVATE`.
const FUTEX2_PRIVATE: u32 = 128;
/// At most this many futexes per `futex_waitv` call.
const FUTEX_WAITV_MAX: usize = 128;

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

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as crate::sys::TimeT,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

/// `futex(addr, FUTEX_WAIT, expected, timeout)`, shared (not private).
///
/// Retries after `EINTR` with the time that is left. Returns
/// [`WaitOutcome::NotEqual`] for `EAGAIN` (the value differed when the kernel
/// looked) and [`WaitOutcome::TimedOut`] for `ETIMEDOUT`.
///
/// # Safety
/// `addr` must point to a mapped, 4-byte aligned `u32` for the whole call.
///
/// # References
/// - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
pub unsafe fn futex_wait(
    addr: *const AtomicU32,
    expected: u32,
    timeout: Option<Duration>,
) -> Result<WaitOutcome> {
    let deadline = timeout.map(|t| Instant::now().checked_add(t));
    loop {
        let ts = match deadline {
            None => None,
            // A timeout too large for `Instant` is as good as none.
            Some(None) => None,
            Some(Some(d)) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(WaitOutcome::TimedOut);
                }
                Some(timespec(left))
            }
        };
        let tsp = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `addr` is a mapped aligned u32 (caller's contract); `tsp` is
        // null or points to `ts`, which outlives the call. FUTEX_WAIT only
        // reads the word and the timespec.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                addr,
                libc::FUTEX_WAIT,
                expected,
                tsp,
                std::ptr::null::<u32>(),
                0u32,
            )
        };
        match Errno::result(r) {
            Ok(_) => return Ok(WaitOutcome::Ok),
            Err(Errno::EAGAIN) => return Ok(WaitOutcome::NotEqual),
            Err(Errno::ETIMEDOUT) => return Ok(WaitOutcome::TimedOut),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::os("futex", e, "FUTEX_WAIT".to_string())),
        }
    }
}

/// `futex(addr, FUTEX_WAKE, count)`, shared: wakes up to `count` waiters and
/// returns how many it woke.
///
/// # Safety
/// `addr` must point to a mapped, 4-byte aligned `u32` (the kernel only uses
/// the address to find the waiters; it does not write it).
///
/// # References
/// - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
pub unsafe fn futex_wake(addr: *const AtomicU32, count: u32) -> Result<u32> {
    let n = count.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: `addr` is a mapped aligned u32 (caller's contract); FUTEX_WAKE
    // takes no other pointer.
    let r = unsafe { libc::syscall(libc::SYS_futex, addr, libc::FUTEX_WAKE, n) };
    Errno::result(r)
        .map(|n| n as u32)
        .map_err(|e| Error::os("futex", e, "FUTEX_WAKE".to_string()))
}

/// `FUTEX_WAKE | FUTEX_PRIVATE_FLAG`, for words that never leave this process.
fn futex_wake_private(addr: &AtomicU32) {
    // SAFETY: `addr` is a live reference to an aligned u32.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr as *const AtomicU32,
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        )
    };
}

/// The value word and the waiter-count word of the cell at `offset`.
fn cell(map: &Attachment, offset: usize) -> Result<(*const AtomicI32, *const AtomicU32)> {
    check_cell(map.len(), offset)?;
    // SAFETY: `offset + 8 <= len` (checked), so both words are in the mapping;
    // the mapping is page aligned and `offset` a multiple of 8, so both are
    // 4-byte aligned as atomics need.
    unsafe {
        let value = map.as_ptr().add(offset).cast::<AtomicI32>();
        let count = map.as_ptr().add(offset + 4).cast::<AtomicU32>();
        Ok((value, count))
    }
}

/// Checks that a wait cell at `offset` is 8-byte aligned and that its 8 bytes
/// lie within `size`.
pub fn check_cell(size: usize, offset: usize) -> Result<()> {
    if offset % CELL_SIZE != 0 {
        return Err(Error::InvalidArgument(format!(
            "byteOffset {offset} is not a multiple of {CELL_SIZE}: a wait cell is an Int32 value and the Uint32 waiter count after it"
        )));
    }
    match offset.checked_add(CELL_SIZE) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::OutOfBounds {
            offset,
            len: CELL_SIZE,
            size,
        }),
    }
}

impl Attachment {
    /// Waits until the cell at `offset` is notified, as `Atomics.wait` does
    /// across processes: returns [`WaitOutcome::NotEqual`] at once if its value
    /// is not `expected`, else sleeps in `FUTEX_WAIT` until a notify, or until
    /// `timeout`. Follows the waiter-count protocol of the [module](self).
    ///
    /// # Errors
    /// `ReadOnly` for a `SHM_RDONLY` attachment (the waiter count must be
    /// written), `OutOfBounds` and `InvalidArgument` for a bad offset.
    ///
    /// # References
    /// - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
    pub fn wait(
        &self,
        offset: usize,
        expected: i32,
        timeout: Option<Duration>,
    ) -> Result<WaitOutcome> {
        if self.read_only() {
            return Err(Error::ReadOnly { id: self.id() });
        }
        let (value, count) = cell(self, offset)?;
        // SAFETY: `cell` returned in-bounds, aligned words of this mapping,
        // which stays mapped while `self` lives; atomics are the only access.
        unsafe {
            if (*value).load(Ordering::SeqCst) != expected {
                return Ok(WaitOutcome::NotEqual);
            }
            (*count).fetch_add(1, Ordering::SeqCst);
            let r = futex_wait(value.cast(), expected as u32, timeout);
            (*count).fetch_sub(1, Ordering::SeqCst);
            r
        }
    }

    /// Wakes up to `count` waiters of the cell at `offset` (in any process)
    /// and returns how many it woke. Makes no system call when the cell's
    /// waiter count is 0. Change the value (sequentially consistent) first.
    ///
    /// Works on read-only attachments: it only reads the waiter count.
    ///
    /// # References
    /// - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
    pub fn notify(&self, offset: usize, count: u32) -> Result<u32> {
        let (value, waiters) = cell(self, offset)?;
        if count == 0 {
            return Ok(0);
        }
        fence(Ordering::SeqCst);
        // SAFETY: as in `wait`.
        if unsafe { (*waiters).load(Ordering::Relaxed) } == 0 {
            return Ok(0);
        }
        // SAFETY: `value` is an in-bounds aligned word of the live mapping.
        unsafe { futex_wake(value.cast(), count) }
    }

    /// Starts an asynchronous wait on the cell at `offset` (see [`wait_async`]):
    /// `Ok(None)` if the value is not `expected`, else the id of the wait.
    /// `on_done` is called exactly once, also when this returns an error.
    ///
    /// `keepalive` must keep this attachment mapped until `on_done` runs or
    /// [`cancel_range`] is called for its address range, whichever is first.
    /// `cancel` ends the wait with [`AsyncOutcome::Cancelled`] at once.
    pub fn wait_async(
        &self,
        offset: usize,
        expected: i32,
        timeout: Option<Duration>,
        keepalive: Arc<dyn Any + Send + Sync>,
        on_done: OnDone,
        cancel: Option<&CancelToken>,
    ) -> Result<Option<u64>> {
        let checked = if self.read_only() {
            Err(Error::ReadOnly { id: self.id() })
        } else {
            cell(self, offset)
        };
        let (value, count) = match checked {
            Ok(c) => c,
            Err(e) => {
                on_done(AsyncOutcome::Failed(e.errno().unwrap_or(Errno::EINVAL)));
                return Err(e);
            }
        };
        let req = AsyncRequest {
            addr: value.cast(),
            expected: expected as u32,
            waiters: Some(count),
            timeout,
            keepalive,
            on_done,
            cancel: cancel.cloned(),
        };
        // SAFETY: both words are in this mapping, which the caller keeps
        // mapped through `keepalive` until completion or `cancel_range`.
        unsafe { wait_async(req) }
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

struct Shard {
    entries: Mutex<Vec<Entry>>,
    /// Bumped (and woken) whenever `entries` changes under the thread.
    control: AtomicU32,
    /// The `control` value of the list the thread is about to sleep on.
    armed: AtomicU32,
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn poke(&self) -> u32 {
        let seq = self.control.fetch_add(1, Ordering::SeqCst).wrapping_add(1);
        futex_wake_private(&self.control);
        seq
    }

    /// Waits (briefly) until the thread sleeps on a list made at `seq` or
    /// later, so that a wait is normally in the kernel's queue when
    /// `wait_async` returns, as a synchronous wait is: a `FUTEX_WAKE` right
    /// after then counts it. Gives up after 1 ms, not to hold up the caller's
    /// event loop on a busy machine (the wait still completes, by the value
    /// check, if the notify comes before the thread is in the kernel).
    fn until_armed(&self, seq: u32) {
        let start = Instant::now();
        let mut spins = 0u32;
        while (self.armed.load(Ordering::SeqCst).wrapping_sub(seq) as i32) < 0 {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else if start.elapsed() > Duration::from_millis(1) {
                return;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// `struct futex_waitv` of `<linux/futex.h>`.
#[repr(C)]
#[derive(Clone, Copy)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

static SHARDS: OnceLock<Mutex<Vec<Arc<Shard>>>> = OnceLock::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn shards() -> MutexGuard<'static, Vec<Arc<Shard>>> {
    SHARDS
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
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
pub unsafe fn wait_async(req: AsyncRequest) -> Result<Option<u64>> {
    if req.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
        (req.on_done)(AsyncOutcome::Cancelled);
        return Ok(None);
    }
    let token = req.cancel.clone();
    // SAFETY: the caller's contract, passed on.
    let id = unsafe { start_async(req) }?;
    if let (Some(token), Some(id)) = (token, id) {
        // Takes the wait off its thread (`futex_waitv` list or fallback
        // thread) and settles it; at once if cancelled meanwhile.
        token.on_cancel(move || {
            cancel(id);
        });
    }
    Ok(id)
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
    // The room check and the push are one critical section: both under
    // `all`, the only place where entries are added (the threads and the
    // cancels only take them out). Were the push done after `all` is
    // released, two callers could both see room for one more and overfill a
    // list past what one futex_waitv takes (EINVAL for all of its waits).
    let mut all = shards();
    let room = all
        .iter()
        .find(|s| s.lock().len() < FUTEX_WAITV_MAX - 1)
        .map(Arc::clone);
    let shard = match room {
        Some(shard) => {
            shard.lock().push(entry);
            shard
        }
        None => {
            let shard = Arc::new(Shard {
                entries: Mutex::new(Vec::new()),
                control: AtomicU32::new(0),
                armed: AtomicU32::new(u32::MAX),
            });
            let for_thread = Arc::clone(&shard);
            let spawned = std::thread::Builder::new()
                .name("sysv-shm-waiter".into())
                .stack_size(256 * 1024)
                .spawn(move || {
                    // As the pool's threads (`crate::blocking`): the
                    // application's signals go to its own threads.
                    crate::wait::block_stray_signals();
                    run(&for_thread)
                });
            if let Err(e) = spawned {
                let errno = Errno::from_raw(e.raw_os_error().unwrap_or(libc::EAGAIN));
                // SAFETY: the entry's memory is mapped (caller's contract).
                (unsafe { entry.finish() })(AsyncOutcome::NoThread(errno));
                return Err(Error::ThreadStart { errno });
            }
            // Not yet in `all`: no other caller can see it before the push.
            shard.lock().push(entry);
            all.push(Arc::clone(&shard));
            shard
        }
    };
    drop(all);
    let seq = shard.poke();
    shard.until_armed(seq);
    Ok(Some(id))
}

/// Cancels a pending asynchronous wait: its `on_done` runs now, on this
/// thread, with [`AsyncOutcome::Cancelled`]. Returns `false` if it had
/// already completed.
pub fn cancel(id: u64) -> bool {
    if fallback::cancel(id) {
        return true;
    }
    let all: Vec<Arc<Shard>> = shards().clone();
    for shard in all {
        let mut entries = shard.lock();
        if let Some(i) = entries.iter().position(|e| e.id == id) {
            let entry = entries.swap_remove(i);
            // SAFETY: listed entries are mapped.
            let done = unsafe { entry.finish() };
            drop(entries);
            shard.poke();
            done(AsyncOutcome::Cancelled);
            return true;
        }
    }
    false
}

/// Ends every pending wait whose word lies in `start..start + len` with
/// [`AsyncOutcome::Detached`], before that memory is unmapped. When this
/// returns, no waiter thread reads that memory any more. Returns how many.
pub fn cancel_range(start: usize, len: usize) -> usize {
    let mut n = fallback::cancel_range(start, len);
    let Some(lock) = SHARDS.get() else {
        return n;
    };
    let all: Vec<Arc<Shard>> = lock.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for shard in all {
        let mut done = Vec::new();
        {
            let mut entries = shard.lock();
            let mut i = 0;
            while i < entries.len() {
                let a = entries[i].addr as usize;
                if a >= start && a < start.saturating_add(len) {
                    let entry = entries.swap_remove(i);
                    // SAFETY: still mapped: the caller unmaps after we return.
                    done.push(unsafe { entry.finish() });
                } else {
                    i += 1;
                }
            }
        }
        if !done.is_empty() {
            shard.poke();
        }
        n += done.len();
        for d in done {
            d(AsyncOutcome::Detached);
        }
    }
    n
}

fn monotonic_now() -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts
}

fn add(ts: libc::timespec, d: Duration) -> libc::timespec {
    let mut sec = ts
        .tv_sec
        .saturating_add(d.as_secs().min(i64::MAX as u64 / 2) as crate::sys::TimeT);
    let mut nsec = ts.tv_nsec + d.subsec_nanos() as libc::c_long;
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}

/// The loop of one waiter thread.
fn run(shard: &Shard) {
    let mut woken: Option<u64> = None;
    let mut list: Vec<FutexWaitv> = Vec::with_capacity(FUTEX_WAITV_MAX);
    let mut ids: Vec<u64> = Vec::with_capacity(FUTEX_WAITV_MAX);
    loop {
        let mut done: Vec<(OnDone, AsyncOutcome)> = Vec::new();
        let mut next_deadline: Option<Instant> = None;
        list.clear();
        ids.clear();
        {
            let mut entries = shard.lock();
            let seq = shard.control.load(Ordering::SeqCst);
            let now = Instant::now();
            let mut i = 0;
            while i < entries.len() {
                let e = &mut entries[i];
                if let (false, Some(w)) = (e.counted, e.waiters) {
                    // The waiter count goes up just before this thread
                    // sleeps on the cell (and checks its value), as the
                    // protocol wants of a waiter.
                    // SAFETY: listed entries are mapped; atomic access.
                    unsafe { (*w).fetch_add(1, Ordering::SeqCst) };
                    e.counted = true;
                }
                let e = &entries[i];
                // SAFETY: listed entries are mapped; atomic load.
                let changed = unsafe { (*e.addr).load(Ordering::SeqCst) } != e.expected;
                let outcome = if woken == Some(e.id) || changed {
                    Some(AsyncOutcome::Ok)
                } else if e.deadline.is_some_and(|d| d <= now) {
                    Some(AsyncOutcome::TimedOut)
                } else {
                    None
                };
                if let Some(outcome) = outcome {
                    let entry = entries.swap_remove(i);
                    // SAFETY: listed entries are mapped.
                    done.push((unsafe { entry.finish() }, outcome));
                } else {
                    if let Some(d) = e.deadline {
                        next_deadline = Some(next_deadline.map_or(d, |n| n.min(d)));
                    }
                    i += 1;
                }
            }
            list.push(FutexWaitv {
                val: u64::from(seq),
                uaddr: &shard.control as *const AtomicU32 as u64,
                flags: FUTEX2_SIZE_U32 | FUTEX2_PRIVATE,
                reserved: 0,
            });
            for e in entries.iter() {
                list.push(FutexWaitv {
                    val: u64::from(e.expected),
                    uaddr: e.addr as u64,
                    flags: FUTEX2_SIZE_U32,
                    reserved: 0,
                });
                ids.push(e.id);
            }
        }
        woken = None;
        for (d, outcome) in done {
            d(outcome);
        }
        let timeout = next_deadline
            .map(|d| add(monotonic_now(), d.saturating_duration_since(Instant::now())));
        let tsp = timeout
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        shard.armed.store(list[0].val as u32, Ordering::SeqCst);
        // SAFETY: `list` holds `list.len()` valid entries; their addresses are
        // the control word (lives as long as `shard`) or words of entries that
        // were listed a moment ago. If one has since been unmapped, the
        // control word was bumped first and the kernel returns EAGAIN or
        // EFAULT without writing anything. `tsp` is null or points to
        // `timeout`.
        let r = unsafe {
            libc::syscall(
                SYS_FUTEX_WAITV,
                list.as_ptr(),
                list.len() as libc::c_uint,
                0 as libc::c_uint,
                tsp,
                libc::CLOCK_MONOTONIC,
            )
        };
        match Errno::result(r) {
            Ok(0) => {}
            Ok(i) => woken = ids.get(i as usize - 1).copied(),
            Err(Errno::EAGAIN | Errno::ETIMEDOUT | Errno::EINTR | Errno::EFAULT) => {}
            Err(e) => fail_all(shard, e),
        }
    }
}

/// Ends every wait of a shard with the kernel's error (e.g. `ENOSYS`).
fn fail_all(shard: &Shard, e: Errno) {
    let done: Vec<_> = {
        let mut entries = shard.lock();
        // SAFETY: listed entries are mapped while the lock is held
        // (`cancel_range` takes it before anything is unmapped).
        entries
            .drain(..)
            .map(|entry| unsafe { entry.finish() })
            .collect()
    };
    for d in done {
        d(AsyncOutcome::Failed(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CreateOptions, Segment, IPC_PRIVATE};
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
        let tx1 = tx.clone();
        let id = map
            .wait_async(
                16,
                0,
                None,
                keep.clone(),
                Box::new(move |o| tx1.send(o).unwrap()),
                None,
            )
            .unwrap()
            .unwrap();
        value(&map, 16).store(1, Ordering::SeqCst);
        map.notify(16, 1).unwrap();
        assert_eq!(rx.recv().unwrap(), AsyncOutcome::Ok);
        assert!(!cancel(id));

        let tx2 = tx.clone();
        let t = Some(Duration::from_millis(5));
        map.wait_async(
            24,
            0,
            t,
            keep.clone(),
            Box::new(move |o| tx2.send(o).unwrap()),
            None,
        )
        .unwrap();
        assert_eq!(rx.recv().unwrap(), AsyncOutcome::TimedOut);

        let tx3 = tx.clone();
        let id = map
            .wait_async(
                32,
                0,
                None,
                keep.clone(),
                Box::new(move |o| tx3.send(o).unwrap()),
                None,
            )
            .unwrap()
            .unwrap();
        assert!(cancel(id));
        assert_eq!(rx.recv().unwrap(), AsyncOutcome::Cancelled);

        let tx4 = tx.clone();
        map.wait_async(
            40,
            0,
            None,
            keep,
            Box::new(move |o| tx4.send(o).unwrap()),
            None,
        )
        .unwrap();
        assert_eq!(cancel_range(map.as_ptr() as usize, map.len()), 1);
        assert_eq!(rx.recv().unwrap(), AsyncOutcome::Detached);
        assert_eq!(value(&map, 44).load(Ordering::SeqCst), 0);
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
