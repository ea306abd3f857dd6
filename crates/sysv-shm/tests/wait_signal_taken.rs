//! When the wake-up signal already has someone else's handler, the crate
//! leaves it alone and waits by polling instead. A test binary of its own:
//! the handler must be installed before the crate first looks at the signal.

use std::mem;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use sysv_shm::wait::{wake_signal, wake_strategy, WakeStrategy};
use sysv_shm::{CancelToken, Errno, MessageQueue, QueueOptions, Receive, Wait, IPC_PRIVATE};

/// Removes the queue when dropped, so a failed assertion leaves nothing.
struct Cleanup(MessageQueue);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self.0.remove();
    }
}

static THEIRS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn their_handler(_: libc::c_int) {
    THEIRS.fetch_add(1, Ordering::Relaxed);
}

fn handler_of(sig: libc::c_int) -> libc::sighandler_t {
    // SAFETY: an all-zero sigaction is valid; querying only.
    let mut old: libc::sigaction = unsafe { mem::zeroed() };
    // SAFETY: null new action (query), `old` writable.
    assert_eq!(unsafe { libc::sigaction(sig, ptr::null(), &mut old) }, 0);
    old.sa_sigaction
}

#[test]
fn a_taken_signal_is_left_alone_and_waits_poll() {
    let sig = wake_signal();
    let theirs = their_handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: an all-zero sigaction is valid; the handler is set below.
    let mut sa: libc::sigaction = unsafe { mem::zeroed() };
    sa.sa_sigaction = theirs;
    // SAFETY: a valid action with an async-signal-safe handler (an atomic add).
    assert_eq!(unsafe { libc::sigaction(sig, &sa, ptr::null_mut()) }, 0);

    assert_eq!(wake_strategy(), WakeStrategy::Poll);
    assert_eq!(handler_of(sig), theirs, "their handler is kept");

    let (q, _) = MessageQueue::create(IPC_PRIVATE, &QueueOptions::default()).unwrap();
    let _cleanup = Cleanup(q);
    let any = Receive::default();
    let e = q
        .receive(&any, Wait::Timeout(Duration::from_millis(30)))
        .unwrap_err();
    assert_eq!(e.errno(), Some(Errno::ENOMSG));

    let token = CancelToken::new();
    let t2 = token.clone();
    let waiter =
        thread::spawn(move || q.receive_cancellable(&Receive::default(), Wait::Forever, &t2));
    thread::sleep(Duration::from_millis(20));
    token.cancel();
    assert_eq!(
        waiter.join().unwrap().unwrap_err(),
        sysv_shm::Error::Cancelled
    );

    q.send(3, b"polled", Wait::NoWait).unwrap();
    let m = q
        .receive(&any, Wait::Timeout(Duration::from_secs(10)))
        .unwrap();
    assert_eq!((m.mtype, m.data.as_slice()), (3, &b"polled"[..]));
    assert_eq!(THEIRS.load(Ordering::Relaxed), 0, "their handler never ran");
}
