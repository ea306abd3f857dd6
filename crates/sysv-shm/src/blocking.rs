//! The one home of blocking calls made off the caller's thread: one thread
//! pool and one completion type, for every kind of wait of this crate
//! (`futex`'s fallback waits, message-queue sends and receives, semaphore
//! operations). Cancellation is [`CancelToken`](crate::CancelToken) (in
//! [`crate::wait`]), which interrupts any of these calls at once.
//!
//! # The pool
//!
//! - One thread per pending call, named `sysv-shm-wait` (never libuv's pool,
//!   which a wait of unbounded length would starve). A thread whose call is
//!   over waits [`IDLE`] for the next one, then ends: starting a thread costs
//!   tens of microseconds, about as much as a round trip.
//! - Each thread blocks every signal but the wake-up signal of
//!   [`crate::wait`] (`pthread_sigmask`): the process-directed signals of the
//!   application (`SIGCHLD` of its children, `SIGINT`, ...) go to its own
//!   threads instead of interrupting a blocking call here with `EINTR`.
//! - Where the signal strategy is in use ([`WakeStrategy::Signal`]), each
//!   thread owns a POSIX timer that sends it that signal
//!   (`thread_timer`): a canceller arms it to end the thread's blocking
//!   call (`futex`, `msgrcv`, `msgsnd`, `semop` all return `EINTR`), so a
//!   wait costs no `timer_create` of its own.
//! - A job's completion runs on its thread after the thread is back in the
//!   pool, so that a call the completion starts at once finds it there.
//!
//! # References
//! - [pthread_sigmask(3)](https://man7.org/linux/man-pages/man3/pthread_sigmask.3.html)
//! - [timer_create(2)](https://man7.org/linux/man-pages/man2/timer_create.2.html)

use std::mem;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::wait::{set_thread_timer, wake_signal, wake_strategy, Timer, WakeStrategy};

/// How long a thread whose call is over waits for the next one before it ends.
pub const IDLE: Duration = Duration::from_secs(2);

/// The name of the pool's threads (`/proc/PID/task/TID/comm`).
pub const THREAD_NAME: &str = "sysv-shm-wait";

/// What a pooled call reports when it ends, exactly once: its result, or
/// [`Error::ThreadStart`] if no thread could run it,
/// [`Error::Cancelled`] if its token was cancelled first.
pub type OnDone<T> = Box<dyn FnOnce(Result<T>) + Send>;

/// What a job leaves to do once its thread is back in the pool.
pub(crate) type Then = Option<Box<dyn FnOnce() + Send>>;

/// A unit of work for a pooled thread.
pub(crate) type Job = Box<dyn FnOnce() -> Then + Send>;

pub(crate) use crate::wait::thread_timer;

/// Runs `work` on a pooled thread and reports its result to `on_done` there
/// (see [`OnDone`]). `on_done` is called exactly once: if no thread can be
/// started, on this thread, with [`Error::ThreadStart`].
pub fn run<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
    on_done: OnDone<T>,
) {
    // Shared with the job: a thread that fails to start drops the job unrun,
    // and `on_done` must still run (it settles a promise).
    let slot = Arc::new(Mutex::new(Some(on_done)));
    let for_job = Arc::clone(&slot);
    let started = spawn(Box::new(move || {
        let result = work();
        take(&for_job).map(|done| Box::new(move || done(result)) as Box<dyn FnOnce() + Send>)
    }));
    if let Err(e) = started {
        if let Some(done) = take(&slot) {
            done(Err(e));
        }
    }
}

fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).take()
}

type Idle = Vec<(u64, mpsc::Sender<Job>)>;

static IDLE_THREADS: Mutex<Idle> = Mutex::new(Vec::new());

fn idle() -> MutexGuard<'static, Idle> {
    IDLE_THREADS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hands `job` to an idle pooled thread, or to a new one:
/// `pthread_create(3)` through `std::thread`.
///
/// # Errors
/// [`Error::ThreadStart`] with the `errno` of `pthread_create` (`EAGAIN`:
/// out of threads or memory); the job is dropped unrun.
///
/// # References
/// - [pthread_create(3)](https://man7.org/linux/man-pages/man3/pthread_create.3.html)
pub(crate) fn spawn(mut job: Job) -> Result<()> {
    loop {
        let taken = idle().pop();
        match taken {
            Some((_, tx)) => match tx.send(job) {
                Ok(()) => return Ok(()),
                // That thread is gone (it cannot be, but then try another).
                Err(mpsc::SendError(j)) => job = j,
            },
            None => break,
        }
    }
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .stack_size(256 * 1024)
        .spawn(move || serve(id, job, &tx, &rx))
        .map(drop)
        .map_err(|e| Error::ThreadStart {
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EAGAIN)),
        })
}

/// The life of a pooled thread: `first`, then what comes until [`IDLE`] passes.
fn serve(id: u64, first: Job, tx: &mpsc::Sender<Job>, rx: &mpsc::Receiver<Job>) {
    let timer = prepare_thread();
    set_thread_timer(timer);
    let mut then = first();
    loop {
        idle().push((id, tx.clone()));
        if let Some(then) = then.take() {
            then();
        }
        let next = match rx.recv_timeout(IDLE) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                let mut list = idle();
                if let Some(i) = list.iter().position(|(x, _)| *x == id) {
                    list.swap_remove(i);
                    break;
                }
                drop(list);
                // Taken from the list just now: its job is on the way.
                match rx.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        then = next();
    }
    set_thread_timer(None);
    if let Some(t) = timer {
        // No call refers to it any more: each clears its use before it ends.
        t.delete();
    }
}

/// Blocks every signal but the wake-up signal (when it is ours), and makes
/// this thread's timer where the signal strategy is in use.
fn prepare_thread() -> Option<Timer> {
    crate::wait::block_stray_signals();
    if wake_strategy() != WakeStrategy::Signal {
        return None;
    }
    // SAFETY: an all-zero sigset_t is a valid object for sigemptyset/sigaddset.
    let mut set: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; the mask changed is this thread's own.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, wake_signal());
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, ptr::null_mut());
    }
    Timer::for_this_thread().ok()
}

/// How many pooled threads wait for a job (tests).
#[cfg(test)]
pub(crate) fn idle_count() -> usize {
    idle().len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn run_reports_once_and_reuses_the_thread() {
        let (tx, rx) = channel();
        let tx2 = tx.clone();
        run(
            || Ok(std::thread::current().id()),
            Box::new(move |r| tx.send(r.unwrap()).unwrap()),
        );
        let first = rx.recv().unwrap();
        // The completion ran after the thread went back to the pool.
        assert!(idle_count() >= 1);
        run(
            || Ok(std::thread::current().id()),
            Box::new(move |r| tx2.send(r.unwrap()).unwrap()),
        );
        let second = rx.recv().unwrap();
        assert_ne!(first, std::thread::current().id());
        // Under a parallel test run another job may take the idle thread:
        // only say that both ran on pooled threads.
        assert_ne!(second, std::thread::current().id());
    }
}
