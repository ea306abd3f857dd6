//! Timeouts and cancellation for System V calls that can only block forever.
//!
//! `msgsnd(2)` and `msgrcv(2)` take no timeout, and `semop(2)` none that can
//! be cancelled: without `IPC_NOWAIT` they sleep until the call can complete,
//! the object is removed (`EIDRM`), or a signal handler runs (`EINTR`, never
//! restarted, even with `SA_RESTART`: see signal(7)). This module turns that
//! last way out into a timeout and a cancellation that cost no CPU while
//! waiting. [`CancelToken`] is the crate's one cancellation: it also ends the
//! asynchronous futex waits of [`crate::futex`].
//!
//! # The design ([`WakeStrategy::Signal`], the default)
//!
//! - Once per process a no-op handler is installed, without `SA_RESTART`, for
//!   one real-time signal, [`wake_signal`] (`SIGRTMAX - 6`). It is only ever
//!   sent to one thread (never to the process), so it disturbs nothing else.
//!   If that signal already has a handler (someone else's) the handler is not
//!   replaced and [`WakeStrategy::Poll`] is used instead.
//! - A call that would block first tries with `IPC_NOWAIT`, so a ready queue
//!   costs one system call and no set-up.
//! - Otherwise, when it has a deadline or a [`CancelToken`], it makes a POSIX
//!   timer (`timer_create(CLOCK_MONOTONIC)` with `SIGEV_THREAD_ID`) that sends
//!   the signal to the waiting thread alone, and blocks in the system call.
//!   The timer is armed for the deadline (`TIMER_ABSTIME`); [`CancelToken::cancel`]
//!   re-arms it to fire at once. Either way the call returns `EINTR`, the
//!   loop sees the deadline passed or the token cancelled, and returns.
//! - The lost-wake-up race (the signal lands after the check and before the
//!   thread enters the kernel, so the handler runs and the call still
//!   sleeps) is closed by arming the timer periodic: it fires again every
//!   [`REFIRE`] until the waiting thread has returned and deleted it.
//! - A wait with neither deadline nor token blocks plainly, with no timer,
//!   whatever the strategy.
//!
//! Waiting costs nothing but the sleeping thread; a wake-up is immediate.
//! Each slow-path wait with a deadline or token costs about four extra
//! system calls (`timer_create`, `timer_settime`, `timer_delete`,
//! `pthread_sigmask`), a few microseconds.
//!
//! # The fallback ([`WakeStrategy::Poll`])
//!
//! Retries with `IPC_NOWAIT`, sleeping between tries from [`POLL_MIN`]
//! doubling to [`POLL_MAX`]. No signal is used, but an idle waiter wakes up
//! to `1 / POLL_MAX` times a second and a message can wait up to [`POLL_MAX`]
//! before it is noticed. Chosen with [`set_wake_strategy`], or automatically
//! when the signal is taken.

use std::mem::{self, MaybeUninit};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;

/// How long a call may block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wait {
    /// `IPC_NOWAIT`: fail at once instead of blocking.
    NoWait,
    /// Block until the call can complete (or is cancelled).
    #[default]
    Forever,
    /// Block at most this long, then fail as `IPC_NOWAIT` would.
    Timeout(Duration),
}

/// How a blocked System V call is woken for its deadline or its
/// cancellation (process-wide): by a thread-directed timer signal, or by
/// polling with `IPC_NOWAIT`; see the module documentation. (Not to be
/// confused with [`crate::channel::SpinPolicy`], how a channel side waits.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeStrategy {
    /// Block in the kernel; a per-thread timer signal ends the wait.
    Signal,
    /// Retry with `IPC_NOWAIT` and sleep between tries.
    Poll,
}

/// How often the timer signal is re-sent until the waiting thread has seen
/// it: bounds the delay of a wake-up that lost the race described in the
/// module documentation.
pub const REFIRE: Duration = Duration::from_millis(1);
/// The first sleep of [`WakeStrategy::Poll`].
pub const POLL_MIN: Duration = Duration::from_micros(50);
/// The longest sleep of [`WakeStrategy::Poll`].
pub const POLL_MAX: Duration = Duration::from_millis(4);

static STRATEGY: AtomicU8 = AtomicU8::new(0);

/// Chooses how timed and cancellable waits sleep, for the whole process.
pub fn set_wake_strategy(strategy: WakeStrategy) {
    STRATEGY.store(
        match strategy {
            WakeStrategy::Signal => 0,
            WakeStrategy::Poll => 1,
        },
        Ordering::Relaxed,
    );
}

/// The strategy in effect: [`WakeStrategy::Poll`] if asked for, or if the
/// wake-up signal could not be claimed.
pub fn wake_strategy() -> WakeStrategy {
    if STRATEGY.load(Ordering::Relaxed) == 1 || !handler_installed() {
        WakeStrategy::Poll
    } else {
        WakeStrategy::Signal
    }
}

/// The real-time signal used to interrupt a waiting thread: `SIGRTMAX - 6`.
pub fn wake_signal() -> libc::c_int {
    libc::SIGRTMAX() - 6
}

/// Blocks every signal in the calling thread: `pthread_sigmask(SIG_SETMASK,
/// all)`. For a thread that only waits on behalf of sysv-shm: the
/// process-directed signals of the application (`SIGCHLD` of its children,
/// `SIGINT`, ...) then go to its own threads instead of interrupting this
/// one's blocking call with `EINTR`. The wake-up signal is unblocked for the
/// span of each wait that uses it, as on any thread.
///
/// # References
/// - [pthread_sigmask(3)](https://man7.org/linux/man-pages/man3/pthread_sigmask.3.html)
/// - [signal(7)](https://man7.org/linux/man-pages/man7/signal.7.html): `msgrcv`, `msgsnd` and
///   `semop` are never restarted after a handler, whatever `SA_RESTART` says.
pub fn block_stray_signals() {
    // SAFETY: an all-zero sigset_t is a valid object for sigfillset.
    let mut set: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; the mask changed is the calling
    // thread's own.
    unsafe {
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, ptr::null_mut());
    }
}

extern "C" fn on_wake_signal(_: libc::c_int) {}

/// Installs the no-op handler once; false if the signal belongs to someone else.
fn handler_installed() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let sig = wake_signal();
        let mut old = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: querying only (null new action); `old` is a writable sigaction.
        if unsafe { libc::sigaction(sig, ptr::null(), old.as_mut_ptr()) } != 0 {
            return false;
        }
        // SAFETY: zeroed is valid for sigaction and the kernel filled it.
        let old = unsafe { old.assume_init() };
        let ours = on_wake_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        if old.sa_sigaction != libc::SIG_DFL
            && old.sa_sigaction != libc::SIG_IGN
            && old.sa_sigaction != ours
        {
            return false;
        }
        // SAFETY: an all-zero sigaction is valid (empty mask, no flags); the
        // handler is set below.
        let mut sa: libc::sigaction = unsafe { mem::zeroed() };
        sa.sa_sigaction = ours;
        // No SA_RESTART: the point is that the interrupted call returns EINTR.
        sa.sa_flags = 0;
        // SAFETY: `sa` is a valid action whose handler is async-signal-safe
        // (it does nothing).
        unsafe { libc::sigaction(sig, &sa, ptr::null_mut()) == 0 }
    })
}

/// A POSIX timer that sends [`wake_signal`] to one thread (also used by the
/// threads of the pool of [`crate::blocking`]: one each, for every wait they serve).
#[derive(Clone, Copy)]
pub(crate) struct Timer(libc::timer_t);

// SAFETY: a timer_t is a process-wide id; timer_settime may be called on it
// from any thread. Its deletion is serialised with every use by the token's
// mutex (see `Registration`).
unsafe impl Send for Timer {}

impl Timer {
    /// `timer_create(CLOCK_MONOTONIC, {SIGEV_THREAD_ID, wake_signal, gettid()})`.
    pub(crate) fn for_this_thread() -> Result<Timer, Errno> {
        // SAFETY: an all-zero sigevent is valid; the fields used are set below.
        let mut sev: libc::sigevent = unsafe { mem::zeroed() };
        sev.sigev_notify = libc::SIGEV_THREAD_ID;
        sev.sigev_signo = wake_signal();
        // SAFETY: gettid takes no arguments and cannot fail.
        sev.sigev_notify_thread_id = unsafe { libc::gettid() };
        let mut id = MaybeUninit::<libc::timer_t>::uninit();
        // SAFETY: `sev` is a valid sigevent and `id` a writable timer_t.
        let r = unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut sev, id.as_mut_ptr()) };
        Errno::result(r)?;
        // SAFETY: timer_create succeeded, so it wrote the id.
        Ok(Timer(unsafe { id.assume_init() }))
    }

    /// Fires at `first` (absolute CLOCK_MONOTONIC, or `None` for now), then
    /// every [`REFIRE`].
    pub(crate) fn arm(self, first: Option<libc::timespec>) {
        let (value, flags) = match first {
            Some(at) => (at, libc::TIMER_ABSTIME),
            None => (
                libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 1,
                },
                0,
            ),
        };
        let spec = libc::itimerspec {
            it_interval: timespec(REFIRE),
            it_value: value,
        };
        // SAFETY: the timer is live (see `Timer`'s Send note) and `spec` valid.
        // It cannot fail for a live timer and a valid spec.
        unsafe { libc::timer_settime(self.0, flags, &spec, ptr::null_mut()) };
    }

    /// Stops the timer (a signal already sent may still be delivered).
    pub(crate) fn disarm(self) {
        // SAFETY: an all-zero itimerspec is valid (and means "disarm").
        let spec: libc::itimerspec = unsafe { mem::zeroed() };
        // SAFETY: as in `arm`.
        unsafe { libc::timer_settime(self.0, 0, &spec, ptr::null_mut()) };
    }

    pub(crate) fn delete(self) {
        // SAFETY: the timer is live and deleted once (the caller owns it).
        unsafe { libc::timer_delete(self.0) };
    }
}

thread_local! {
    static THREAD_TIMER: std::cell::Cell<Option<Timer>> = const { std::cell::Cell::new(None) };
}

/// The timer that wakes the calling thread, where one is set for it (the
/// threads of [`crate::blocking`]'s pool own one each); `None` elsewhere.
pub(crate) fn thread_timer() -> Option<Timer> {
    THREAD_TIMER.with(std::cell::Cell::get)
}

/// Sets (or clears) the calling thread's timer (see [`thread_timer`]).
pub(crate) fn set_thread_timer(timer: Option<Timer>) {
    THREAD_TIMER.with(|t| t.set(timer));
}

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs() as crate::sys::TimeT,
        tv_nsec: d.subsec_nanos() as _,
    }
}

fn monotonic_now() -> libc::timespec {
    let mut ts = MaybeUninit::<libc::timespec>::zeroed();
    // SAFETY: `ts` is a writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, ts.as_mut_ptr()) };
    // SAFETY: zeroed is valid and clock_gettime filled it.
    unsafe { ts.assume_init() }
}

// tv_nsec is i32 on some 32-bit targets.
#[allow(clippy::useless_conversion)]
fn add(ts: libc::timespec, d: Duration) -> libc::timespec {
    let secs = crate::sys::TimeT::try_from(d.as_secs()).unwrap_or(crate::sys::TimeT::MAX);
    let mut sec = ts.tv_sec.saturating_add(secs);
    let mut nsec = i64::from(ts.tv_nsec) + i64::from(d.subsec_nanos());
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    }
}

/// How long from `now` to `deadline` (zero if passed).
#[allow(clippy::useless_conversion)]
fn until(now: libc::timespec, deadline: libc::timespec) -> Duration {
    let ns = |t: libc::timespec| i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec);
    let d = ns(deadline) - ns(now);
    Duration::from_nanos(d.clamp(0, i128::from(u64::MAX)) as u64)
}

fn reached(now: libc::timespec, deadline: libc::timespec) -> bool {
    (now.tv_sec, now.tv_nsec) >= (deadline.tv_sec, deadline.tv_nsec)
}

/// How a cancelled token wakes one waiter.
enum Waker {
    /// Fire the waiting thread's timer (its blocking call returns `EINTR`).
    Timer(Timer),
    /// Unpark a thread that polls.
    Thread(Thread),
    /// Take the wait away from whoever serves it (e.g. a `futex_waitv` entry).
    Call(Box<dyn Fn() + Send + Sync>),
}

struct Registration {
    id: u64,
    waker: Waker,
}

#[derive(Default)]
struct TokenInner {
    cancelled: AtomicBool,
    waiters: Mutex<Vec<Registration>>,
}

/// Cancels blocking calls made with it, from any thread.
///
/// Pass a clone to a call that may block (e.g.
/// [`MessageQueue::send_cancellable`](crate::MessageQueue::send_cancellable));
/// [`CancelToken::cancel`] makes every such call, now or later, fail with
/// [`Error::Cancelled`](crate::Error::Cancelled) at once, unless it has
/// already completed. The one cancellation of this crate: it interrupts
/// `msgrcv`, `msgsnd`, `semop` and the fallback's `FUTEX_WAIT` (a timer
/// signal makes them return `EINTR`) and takes a `futex_waitv` wait off its
/// thread's list. Cheap to clone; all clones are the same token.
#[derive(Clone, Default)]
pub struct CancelToken(Arc<TokenInner>);

impl std::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::Acquire)
    }

    /// Cancels: every call waiting with this token wakes up and fails with
    /// [`Error::Cancelled`](crate::Error::Cancelled) (unless it completed
    /// first); later calls fail so at once.
    pub fn cancel(&self) {
        if self.0.cancelled.swap(true, Ordering::AcqRel) {
            return;
        }
        let calls: Vec<Registration> = {
            let mut waiters = self.lock();
            for r in waiters.iter() {
                match &r.waker {
                    // Fire now, then every REFIRE until the waiter stops the timer.
                    Waker::Timer(t) => t.arm(None),
                    Waker::Thread(t) => t.unpark(),
                    Waker::Call(_) => {}
                }
            }
            let (calls, rest) = waiters
                .drain(..)
                .partition(|r| matches!(r.waker, Waker::Call(_)));
            *waiters = rest;
            calls
        };
        // Outside the lock: a call may settle the wait, which may unregister.
        for r in calls {
            if let Waker::Call(f) = r.waker {
                f();
            }
        }
    }

    /// Calls `f` (once) when the token is cancelled, at once if it already
    /// is: how a wait that no signal ends (a `futex_waitv` entry) is taken
    /// off its thread. `f` must not block. Returns the registration's id:
    /// the wait's completion passes it to [`CancelToken::unregister`].
    pub(crate) fn on_cancel(&self, f: impl Fn() + Send + Sync + 'static) -> u64 {
        self.register(Waker::Call(Box::new(f)))
    }

    /// How many waits are registered with the token now.
    #[cfg(test)]
    pub(crate) fn registrations(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Registration>> {
        self.0.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self, waker: Waker) -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut waiters = self.lock();
        // Cancelled before the registration was seen: wake at once.
        if self.is_cancelled() {
            match waker {
                Waker::Timer(t) => t.arm(None),
                Waker::Thread(t) => t.unpark(),
                Waker::Call(f) => {
                    drop(waiters);
                    f();
                    return id;
                }
            }
            return id;
        }
        waiters.push(Registration { id, waker });
        id
    }

    /// Removes registration `id` (a no-op if the cancel took it already).
    pub(crate) fn unregister(&self, id: u64) {
        self.lock().retain(|r| r.id != id);
    }
}

/// Why a wait ended without the call completing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The system call failed with this errno.
    Os(Errno),
    /// The deadline passed; the last `IPC_NOWAIT` try would still block.
    TimedOut,
    /// The token was cancelled.
    Cancelled,
}

/// Restores the calling thread's signal mask if we had to unblock the signal.
struct Unblocked(Option<libc::sigset_t>);

impl Unblocked {
    fn new() -> Unblocked {
        // SAFETY: an all-zero sigset_t is a valid object for sigemptyset/sigaddset.
        let mut set: libc::sigset_t = unsafe { mem::zeroed() };
        let mut old = MaybeUninit::<libc::sigset_t>::zeroed();
        // SAFETY: `set` and `old` are valid sigset_t objects.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, wake_signal());
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, old.as_mut_ptr());
        }
        // SAFETY: pthread_sigmask filled `old` (zeroed is valid anyway).
        let old = unsafe { old.assume_init() };
        // SAFETY: `old` is a valid sigset_t.
        let was_blocked = unsafe { libc::sigismember(&old, wake_signal()) } == 1;
        Unblocked(was_blocked.then_some(old))
    }
}

impl Drop for Unblocked {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            // SAFETY: `old` is the mask this thread had; restoring it is sound.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, ptr::null_mut()) };
        }
    }
}

/// The slow path of a call that would block, made interruptible by the
/// deadline and the token (not to be confused with [`Wait`], how long a call
/// may block, nor with `Attachment::wait`, a futex wait): calls `attempt(block)` until it
/// succeeds, fails, times out or is cancelled. `attempt(false)` must use
/// `IPC_NOWAIT` and fail with `would_block` when it would block;
/// `attempt(true)` must block. `EINTR` is retried. `start` is when the call
/// began (the deadline counts from it).
pub(crate) fn interruptible<T>(
    start: Instant,
    wait: Wait,
    cancel: Option<&CancelToken>,
    would_block: Errno,
    mut attempt: impl FnMut(bool) -> Result<T, Errno>,
) -> Result<T, Stop> {
    let timeout = match wait {
        Wait::NoWait => return Err(Stop::Os(would_block)),
        Wait::Forever => None,
        Wait::Timeout(d) => Some(d),
    };
    if cancel.is_some_and(CancelToken::is_cancelled) {
        return Err(Stop::Cancelled);
    }
    if timeout.is_none() && cancel.is_none() {
        // Nothing can end the wait early: block plainly, whatever the strategy.
        loop {
            match attempt(true) {
                Ok(v) => return Ok(v),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Stop::Os(e)),
            }
        }
    }
    let deadline = timeout.map(|d| add(monotonic_now(), d.saturating_sub(start.elapsed())));
    match wake_strategy() {
        WakeStrategy::Signal => {
            if let Some(r) = wait_signal(deadline, cancel, would_block, &mut attempt) {
                return r;
            }
            // No timer could be made (RLIMIT_SIGPENDING, …): poll instead.
            wait_poll(deadline, cancel, would_block, &mut attempt)
        }
        WakeStrategy::Poll => wait_poll(deadline, cancel, would_block, &mut attempt),
    }
}

/// One last `IPC_NOWAIT` try at the deadline: a message that arrived just in
/// time is still taken.
fn last_try<T>(
    would_block: Errno,
    attempt: &mut impl FnMut(bool) -> Result<T, Errno>,
) -> Result<T, Stop> {
    loop {
        match attempt(false) {
            Ok(v) => return Ok(v),
            Err(Errno::EINTR) => continue,
            Err(e) if e == would_block => return Err(Stop::TimedOut),
            Err(e) => return Err(Stop::Os(e)),
        }
    }
}

fn wait_signal<T>(
    deadline: Option<libc::timespec>,
    cancel: Option<&CancelToken>,
    would_block: Errno,
    attempt: &mut impl FnMut(bool) -> Result<T, Errno>,
) -> Option<Result<T, Stop>> {
    // Called with a deadline or a token (or both): there is a timer, the
    // pooled thread's own (see `crate::blocking`) or one made for this wait.
    let _unblocked = Unblocked::new();
    let pooled = thread_timer();
    let timer = match pooled.map_or_else(Timer::for_this_thread, Ok) {
        Ok(t) => t,
        Err(_) => return None,
    };
    let registration = cancel.map(|token| (token, token.register(Waker::Timer(timer))));
    if let Some(at) = deadline {
        timer.arm(Some(at));
    }
    let result = loop {
        if cancel.is_some_and(CancelToken::is_cancelled) {
            break Err(Stop::Cancelled);
        }
        if deadline.is_some_and(|d| reached(monotonic_now(), d)) {
            break last_try(would_block, attempt);
        }
        match attempt(true) {
            Ok(v) => break Ok(v),
            Err(Errno::EINTR) => continue,
            Err(e) => break Err(Stop::Os(e)),
        }
    };
    // Unregister before deleting, under the token's lock, so that `cancel`
    // never arms a deleted timer.
    if let Some((token, id)) = registration {
        token.unregister(id);
    }
    if pooled.is_some() {
        // The thread keeps its timer for the next call; a signal already
        // sent only makes a later blocking call retry after `EINTR`.
        timer.disarm();
    } else {
        timer.delete();
    }
    Some(result)
}

fn wait_poll<T>(
    deadline: Option<libc::timespec>,
    cancel: Option<&CancelToken>,
    would_block: Errno,
    attempt: &mut impl FnMut(bool) -> Result<T, Errno>,
) -> Result<T, Stop> {
    let registration =
        cancel.map(|token| (token, token.register(Waker::Thread(std::thread::current()))));
    let mut sleep = POLL_MIN;
    let result = loop {
        if cancel.is_some_and(CancelToken::is_cancelled) {
            break Err(Stop::Cancelled);
        }
        match attempt(false) {
            Ok(v) => break Ok(v),
            Err(Errno::EINTR) => continue,
            Err(e) if e == would_block => {}
            Err(e) => break Err(Stop::Os(e)),
        }
        let mut nap = sleep;
        if let Some(d) = deadline {
            let now = monotonic_now();
            if reached(now, d) {
                break Err(Stop::TimedOut);
            }
            let left = until(now, d);
            nap = nap.min(left);
        }
        // park_timeout: `cancel` unparks us at once.
        std::thread::park_timeout(nap);
        sleep = (sleep * 2).min(POLL_MAX);
    };
    if let Some((token, id)) = registration {
        token.unregister(id);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespec_arithmetic() {
        let t = libc::timespec {
            tv_sec: 5,
            tv_nsec: 999_999_999,
        };
        let far = add(t, Duration::MAX);
        assert_eq!(far.tv_sec, crate::sys::TimeT::MAX);
        let u = add(t, Duration::from_nanos(2));
        assert_eq!((u.tv_sec, u.tv_nsec), (6, 1));
        assert!(reached(u, t));
        assert!(!reached(t, u));
        assert_eq!(until(t, u), Duration::from_nanos(2));
        assert_eq!(until(u, t), Duration::ZERO);
    }

    #[test]
    fn handler_is_installed_and_signal_is_real_time() {
        assert!(wake_signal() >= libc::SIGRTMIN());
        assert!(handler_installed());
    }
}
