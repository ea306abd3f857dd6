//! The `futex_waitv(2)` waiter threads ("sysv-shm-waiter"): one thread
//! sleeps on up to 127 cells at once (plus its list's control word), see the
//! [parent module](super) for the design.
//!
//! # References
//! - [futex_waitv(2)](https://www.kernel.org/doc/html/latest/userspace-api/futex2.html)

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::sys::futex_wake_private;
use super::{AsyncOutcome, Entry, OnDone};
use crate::error::{Error, Result};

/// `SYS_futex_waitv`: 449 on every architecture (added in Linux 5.16).
pub(super) const SYS_FUTEX_WAITV: libc::c_long = 449;
/// `FUTEX2_SIZE_U32` for `futex_waitv` entries.
pub(super) const FUTEX2_SIZE_U32: u32 = 0x02;
/// `FUTEX2_PRIVATE`.
pub(super) const FUTEX2_PRIVATE: u32 = 128;
/// At most this many futexes per `futex_waitv` call.
pub(super) const FUTEX_WAITV_MAX: usize = 128;

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
pub(super) struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

static SHARDS: OnceLock<Mutex<Vec<Arc<Shard>>>> = OnceLock::new();

fn shards() -> MutexGuard<'static, Vec<Arc<Shard>>> {
    SHARDS
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Lists `entry` on a waiter thread with room whose list does not hold its
/// word yet (starting one if none has).
///
/// # Safety
/// As [`super::wait_async`]: the entry's words stay mapped until it settles
/// or [`super::cancel_range`] is called for their range.
pub(super) unsafe fn start(entry: Entry) -> Result<Option<u64>> {
    let id = entry.id;
    // The room check and the push are one critical section: both under
    // `all`, the only place where entries are added (the threads and the
    // cancels only take them out). Were the push done after `all` is
    // released, two callers could both see room for one more and overfill a
    // list past what one futex_waitv takes (EINVAL for all of its waits).
    //
    // A list never holds one word twice: a FUTEX_WAKE wakes every entry of
    // the word in the task (notify counts each), but futex_waitv returns one
    // index, so another entry of the same word, its value unchanged, would
    // be listed again and sleep for ever. A second wait on a word goes to
    // another thread (a new one if every list with room has the word).
    let mut all = shards();
    let room = all
        .iter()
        .find(|s| {
            let listed = s.lock();
            listed.len() < FUTEX_WAITV_MAX - 1
                && !listed.iter().any(|e| std::ptr::eq(e.addr, entry.addr))
        })
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

/// Cancels the wait `id` if a waiter thread serves it (see [`super::cancel`]).
pub(super) fn cancel(id: u64) -> bool {
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

/// Ends the waits on words in `start..start + len` (see [`super::cancel_range`]).
pub(super) fn cancel_range(start: usize, len: usize) -> usize {
    let mut n = 0;
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
