//! The fallback of asynchronous waits (no `futex_waitv`, here forced with
//! `SYSV_SHM_FUTEX_WAITV=0`) when the wake-up signal is someone else's: its
//! threads sleep in slices instead of being woken by a timer signal, and a
//! cancelled or detached wait still settles at once. A test binary of its
//! own: the variable and the handler must be in place before the crate first
//! looks at them.

use std::any::Any;
use std::fs;
use std::mem;
use std::ptr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use sysv_shm::futex::{async_backend, cancel, cancel_range, AsyncBackend, AsyncOutcome};
use sysv_shm::wait::{wake_signal, wake_strategy, WakeStrategy};
use sysv_shm::{Attachment, CreateOptions, Segment, IPC_PRIVATE};

extern "C" fn their_handler(_: libc::c_int) {}

/// How many threads of this process named `sysv-shm-wait` (the pool of
/// `sysv_shm::blocking`) are blocked in a
/// shared `FUTEX_WAIT` (futex(2) with op 0), from /proc/self/task/*/syscall.
fn asleep_on_cells() -> usize {
    let mut n = 0;
    for task in fs::read_dir("/proc/self/task").unwrap().flatten() {
        let p = task.path();
        let comm = fs::read_to_string(p.join("comm")).unwrap_or_default();
        if comm.trim() != sysv_shm::blocking::THREAD_NAME {
            continue;
        }
        let sc = fs::read_to_string(p.join("syscall")).unwrap_or_default();
        let f: Vec<&str> = sc.split_whitespace().collect();
        if f.len() > 2 && f[0] == libc::SYS_futex.to_string() && f[2] == "0x0" {
            n += 1;
        }
    }
    n
}

fn until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < end, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn word(map: &Attachment, off: usize) -> &AtomicI32 {
    // SAFETY: in bounds and aligned in a live mapping, for the test's span.
    unsafe { &*map.as_ptr().add(off).cast::<AtomicI32>() }
}

type Waited = (Option<u64>, mpsc::Receiver<AsyncOutcome>);

fn wait_on(map: &Arc<Attachment>, off: usize, timeout: Option<Duration>) -> Waited {
    let (tx, rx) = mpsc::channel();
    let keep: Arc<dyn Any + Send + Sync> = map.clone();
    let id = map
        .wait_async(
            off,
            0,
            timeout,
            keep,
            Box::new(move |o| tx.send(o).unwrap()),
            None,
        )
        .unwrap();
    (id, rx)
}

#[test]
fn without_the_signal_fallback_threads_sleep_in_slices() {
    std::env::set_var("SYSV_SHM_FUTEX_WAITV", "0");
    let sig = wake_signal();
    // SAFETY: an all-zero sigaction is valid; the handler is set below.
    let mut sa: libc::sigaction = unsafe { mem::zeroed() };
    sa.sa_sigaction = their_handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: a valid action with an async-signal-safe handler (it does nothing).
    assert_eq!(unsafe { libc::sigaction(sig, &sa, ptr::null_mut()) }, 0);
    assert_eq!(wake_strategy(), WakeStrategy::Poll);
    assert_eq!(async_backend(), AsyncBackend::FutexWait);

    let (seg, _) = Segment::create(IPC_PRIVATE, 4096, &CreateOptions::default()).unwrap();
    let map = Arc::new(seg.attach(false).unwrap());
    seg.remove().unwrap();

    // Woken by a notify.
    let (_, rx) = wait_on(&map, 0, None);
    until("the waiter count", || {
        word(&map, 4).load(Ordering::SeqCst) == 1
    });
    word(&map, 0).store(1, Ordering::SeqCst);
    map.notify(0, 1).unwrap();
    assert_eq!(rx.recv().unwrap(), AsyncOutcome::Ok);

    // A timeout longer than a slice: it spans several sleeps and still ends.
    let start = Instant::now();
    let (_, rx) = wait_on(&map, 8, Some(Duration::from_millis(120)));
    assert_eq!(rx.recv().unwrap(), AsyncOutcome::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(120));

    // Cancelled: settles at once; its thread leaves FUTEX_WAIT at the end of
    // its slice (no signal to wake it).
    let (id, rx) = wait_on(&map, 16, None);
    until("one thread asleep on a cell", || asleep_on_cells() == 1);
    assert!(cancel(id.unwrap()));
    assert_eq!(rx.try_recv().unwrap(), AsyncOutcome::Cancelled);
    assert_eq!(word(&map, 20).load(Ordering::SeqCst), 0);
    until("the thread to leave", || asleep_on_cells() == 0);

    // Detached, then unmapped: settles at once, and the thread does not touch
    // the memory when its slice ends.
    let (_, rx) = wait_on(&map, 24, None);
    until("one thread asleep on a cell", || asleep_on_cells() == 1);
    assert_eq!(cancel_range(map.as_ptr() as usize, map.len()), 1);
    assert_eq!(rx.try_recv().unwrap(), AsyncOutcome::Detached);
    let map = Arc::into_inner(map).expect("no wait keeps the mapping");
    map.detach().unwrap();
    until("the thread to leave", || asleep_on_cells() == 0);
}
