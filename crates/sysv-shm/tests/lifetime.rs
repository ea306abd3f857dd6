//! Lifetime helpers of the core: `remove_if_attached` (a segment the kernel
//! frees once its parties are gone) and `keep_out_of_forks` (attach counts
//! that forked children do not inflate).

use std::sync::{Mutex, MutexGuard};

use sysv_shm::{CreateOptions, Error, Segment, IPC_PRIVATE};

/// A fork copies every attachment of the process, also those of tests on
/// other threads (that is the point of `keep_out_of_forks`): take turns.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// `shm_nattch` as a child made by a bare `fork(2)` sees it, reported
/// through a pipe (the child only makes system calls, then `_exit`s).
fn nattch_in_forked_child(seg: Segment) -> u64 {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) returns.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child below calls only async-signal-safe functions.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut ds = std::mem::MaybeUninit::<libc::shmid_ds>::zeroed();
        // SAFETY: `ds` is a writable shmid_ds.
        let r = unsafe { libc::shmctl(seg.id(), libc::IPC_STAT, ds.as_mut_ptr()) };
        // SAFETY: zeroed is a valid shmid_ds; the kernel filled it if r == 0.
        let ds = unsafe { ds.assume_init() };
        #[allow(clippy::useless_conversion)]
        let n: u64 = if r == 0 {
            u64::from(ds.shm_nattch)
        } else {
            u64::MAX
        };
        // SAFETY: writes 8 bytes from a live local to the pipe, then exits
        // without running destructors or atexit handlers.
        unsafe {
            libc::write(fds[1], (&n as *const u64).cast(), 8);
            libc::_exit(0)
        }
    }
    let mut n = 0u64;
    // SAFETY: reads 8 bytes into a live local; closes our descriptors; reaps the child.
    unsafe {
        libc::close(fds[1]);
        assert_eq!(libc::read(fds[0], (&mut n as *mut u64).cast(), 8), 8);
        libc::close(fds[0]);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    n
}

#[test]
fn a_forked_child_counts_as_an_attachment_unless_kept_out_of_forks() {
    let _g = serial();
    let (seg, _) = Segment::create(IPC_PRIVATE, 8192, &CreateOptions::default()).unwrap();
    let map = seg.attach(false).unwrap();
    seg.remove().unwrap();
    assert_eq!(nattch_in_forked_child(seg), 2, "fork copies the attachment");
    map.keep_out_of_forks().unwrap();
    assert_eq!(nattch_in_forked_child(seg), 1, "the child has no copy");
    // The parent's mapping is unaffected.
    map.write(8191, b"x").unwrap();
    let mut b = [0u8];
    map.read(8191, &mut b).unwrap();
    assert_eq!(&b, b"x");
}

#[test]
fn remove_if_attached_waits_for_the_count_and_tolerates_a_second_marking() {
    let _g = serial();
    let (seg, _) = Segment::create(IPC_PRIVATE, 64, &CreateOptions::default()).unwrap();
    let a = seg.attach(false).unwrap();
    assert!(!a.remove_if_attached(2).unwrap());
    assert!(!seg.stat().unwrap().removed);
    let b = seg.attach(true).unwrap();
    assert!(b.remove_if_attached(2).unwrap());
    assert!(
        a.remove_if_attached(2).unwrap(),
        "already marked: true, no error"
    );
    assert!(a.remove_if_attached(1).unwrap());
    assert!(matches!(
        a.remove_if_attached(0),
        Err(Error::InvalidArgument(_))
    ));
    let st = seg.stat().unwrap();
    assert!(st.removed);
    assert_eq!(st.perm.key, IPC_PRIVATE);
    drop(a);
    // A removed segment can still be attached by id (Linux), and is freed at the last detach.
    let c = seg.attach(false).unwrap();
    drop(b);
    drop(c);
    assert!(seg.stat().is_err());
}
