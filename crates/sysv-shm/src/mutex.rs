//! The robust cross-process mutex: its layout, the identity of a lock
//! holder, and the liveness check that makes the lock robust.
//!
//! The protocol itself (what `lock`, `unlock` and `consistent` do with the
//! words) is described in the README, section "Mutex", and run by
//! `src/mutex.ts` with `Atomics` on the mapping, or through [`word_op`] where
//! the runtime has no zero-copy view. A C program follows the same table.
//!
//! # Layout (32 bytes at a `byteOffset` that is a multiple of 8)
//!
//! | offset | type  | meaning |
//! |-------:|-------|---------|
//! | 0      | u32   | [`MAGIC`] |
//! | 4      | u32   | [`VERSION`] |
//! | 8      | i32   | lock word, the value of a wait cell: `0` free; a TID, or'ed with [`OWNER_DIED`] after a takeover; [`NOT_RECOVERABLE`] |
//! | 12     | u32   | waiters of the wait cell (the cell protocol of [`crate::futex`]) |
//! | 16     | u32   | the holder's TID once it published its start time (`0` before) |
//! | 20     | u32   | the holder's start time, low 32 bits (clock ticks since boot) |
//! | 24     | u32   | handoff: the TID of a waiter that has waited long; other lockers leave a free lock to it |
//! | 28     | u32   | reserved, `0` |
//!
//! # Why a TID plus start time, not a pidfd
//!
//! A pidfd names a process without reuse, but it is an fd of the process
//! that opened it: a waiter in another process cannot get one for the
//! holder from the shared memory, only from its pid, and that `pidfd_open`
//! has the same reuse race as `/proc`. The pair (TID, start time of that
//! thread, field 22 of `/proc/TID/stat`) names one thread for the life of the
//! system: a reused TID has a later start time. It is written in the segment
//! where every process (and a C program) can read it. The TID, not the pid,
//! because worker threads of one process must exclude each other too; a
//! thread's start time is its own (`/proc/TID/stat` of a thread).
//!
//! It needs `/proc` and one pid namespace for every process sharing the lock:
//! a holder in another pid namespace has no `/proc/TID` here and would be
//! taken for dead.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};
use crate::Attachment;

/// `"MTX1"` read as a little-endian u32: the first word of an initialised mutex.
pub const MAGIC: u32 = u32::from_le_bytes(*b"MTX1");
/// The layout version this crate writes and accepts.
pub const VERSION: u32 = 1;
/// Bytes of one mutex.
pub const SIZE: usize = 32;
/// Offset of the lock word (the value of the wait cell).
pub const LOCK: usize = 8;
/// Offset of the published holder TID.
pub const OWNER_TID: usize = 16;
/// Offset of the published holder start time (low 32 bits).
pub const OWNER_START: usize = 20;
/// Offset of the handoff word.
pub const HANDOFF: usize = 24;
/// Bits of the lock word that hold the TID.
pub const TID_MASK: u32 = 0x3fff_ffff;
/// Set in the lock word while the holder took the lock over from a dead one
/// and has not called `consistent()`.
pub const OWNER_DIED: u32 = 0x4000_0000;
/// The lock word of a lock released without `consistent()` after its owner died.
pub const NOT_RECOVERABLE: u32 = TID_MASK;
/// `PID_MAX_LIMIT` of Linux: no TID is above it.
pub const PID_MAX_LIMIT: u32 = 1 << 22;

/// One thread for the life of the system: its TID and the low 32 bits of its
/// start time in clock ticks since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadIdentity {
    /// `gettid()`.
    pub tid: u32,
    /// Field 22 of `/proc/thread-self/stat`, low 32 bits.
    pub start: u32,
}

/// The calling thread's identity: `gettid(2)` and field 22 of
/// `/proc/thread-self/stat`.
///
/// # Errors
/// `Os { syscall: "open" }` if `/proc` is not mounted or unreadable.
///
/// # References
/// - [gettid(2)](https://man7.org/linux/man-pages/man2/gettid.2.html)
/// - [proc_pid_stat(5)](https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html)
pub fn current_thread() -> Result<ThreadIdentity> {
    // SAFETY: gettid takes no argument and cannot fail.
    let tid = unsafe { libc::gettid() } as u32;
    match thread_stat(tid) {
        Ok(Some((_, start))) => Ok(ThreadIdentity {
            tid,
            start: start as u32,
        }),
        Ok(None) => Err(Error::InvalidArgument(format!(
            "/proc/{tid}/stat of the calling thread cannot be parsed"
        ))),
        Err(e) => Err(Error::os(
            "open",
            crate::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            format!("/proc/{tid}/stat"),
        )),
    }
}

/// The state (field 3) and start time (field 22) of `/proc/TID/stat`;
/// `Ok(None)` if the file does not parse.
fn thread_stat(tid: u32) -> std::io::Result<Option<(u8, u64)>> {
    let text = std::fs::read(format!("/proc/{tid}/stat"))?;
    // The name (field 2) is in parentheses and may contain anything, ')'
    // included: the fields after it start after the last ')'.
    let Some(close) = text.iter().rposition(|&b| b == b')') else {
        return Ok(None);
    };
    let rest = String::from_utf8_lossy(&text[close + 1..]);
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next().and_then(|s| s.bytes().next());
    // Field 3 was the state; field 22 is 19 further.
    let start = fields.nth(18).and_then(|s| s.parse::<u64>().ok());
    Ok(state.zip(start))
}

/// Whether the thread `tid` that holds a lock is alive: `/proc/TID/stat`
/// exists, the thread is not a zombie (`Z`) or dead (`X`), and, when the
/// holder published its start time (`start` is `Some`), the low 32 bits of
/// the thread's start time are that. A TID above [`PID_MAX_LIMIT`] or 0 is
/// never alive.
///
/// An unpublished start time (the holder took the lock and has not yet
/// written it: a few instructions) checks existence only: a holder killed
/// in that window whose TID is at once reused keeps the lock until the
/// reusing thread exits (lockers time out; they never take a live lock).
///
/// # References
/// - [proc_pid_stat(5)](https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html)
pub fn holder_alive(tid: u32, start: Option<u32>) -> bool {
    if tid == 0 || tid > PID_MAX_LIMIT {
        return false;
    }
    match thread_stat(tid) {
        Ok(Some((state, s))) => {
            state != b'Z' && state != b'X' && start.map_or(true, |want| want == s as u32)
        }
        // Unparseable but present: do not take a lock from what may be alive.
        Ok(None) => true,
        Err(e) => e.raw_os_error() != Some(libc::ENOENT) && e.raw_os_error() != Some(libc::ESRCH),
    }
}

/// An atomic operation on a u32 word of the mapping, for runtimes without a
/// zero-copy view (`Atomics` needs one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordOp {
    /// Returns the word.
    Load,
    /// Stores the value; returns it.
    Store(u32),
    /// `compare_exchange(expected, new)`; returns the word found (equal to
    /// `expected` when the exchange happened).
    CompareExchange(u32, u32),
}

/// Runs `op` (sequentially consistent) on the u32 at `offset`.
///
/// # Errors
/// `InvalidArgument` if `offset` is not a multiple of 4, `OutOfBounds` past
/// the segment, `ReadOnly` for a store or exchange on a `SHM_RDONLY` mapping.
pub fn word_op(map: &Attachment, offset: usize, op: WordOp) -> Result<u32> {
    if offset % 4 != 0 {
        return Err(Error::InvalidArgument(format!(
            "word offset {offset} is not a multiple of 4"
        )));
    }
    map.check_range(offset, 4)?;
    if map.read_only() && op != WordOp::Load {
        return Err(Error::ReadOnly { id: map.id() });
    }
    // SAFETY: `offset + 4 <= len` (checked) and the mapping is page aligned,
    // so the word is in the mapping and 4-byte aligned; other processes change
    // it only through atomics (the layout's rule), and a plain write of theirs
    // is no less defined for an atomic read; a read-only mapping is only loaded.
    let word = unsafe { &*map.as_ptr().add(offset).cast::<AtomicU32>() };
    Ok(match op {
        WordOp::Load => word.load(Ordering::SeqCst),
        WordOp::Store(v) => {
            word.store(v, Ordering::SeqCst);
            v
        }
        WordOp::CompareExchange(e, n) => word
            .compare_exchange(e, n, Ordering::SeqCst, Ordering::SeqCst)
            .unwrap_or_else(|found| found),
    })
}

/// A full memory barrier (`atomic_thread_fence(memory_order_seq_cst)` in
/// C11; `dmb ish` on arm64, nothing beyond a compiler barrier is needed on
/// x86-64 after a locked instruction).
///
/// For the seqlock of the publish/subscribe slots ([`crate::pubsub`]): the
/// data of a slot is copied with plain loads and stores, which a release store
/// or acquire load does not order in the direction the seqlock needs. The
/// writer must make its "being written" mark visible before any of its data
/// stores (a store-store order after a store), and a reader must finish its
/// data loads before it reads the stamp and length again (a load-load order
/// before a load). On arm64 neither comes from JavaScript's `Atomics` (V8
/// compiles them to `stlr`/`ldar`), so `src/words.ts` calls this between
/// the two. A fence in a called function orders the caller's accesses too:
/// the hardware does not know function boundaries.
///
/// # References
/// - [atomic_thread_fence](https://en.cppreference.com/w/c/atomic/atomic_thread_fence)
/// - Linux `Documentation/memory-barriers.txt` and `include/linux/seqlock.h`
pub fn fence() {
    std::sync::atomic::fence(Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_thread_is_alive_and_a_wrong_start_is_not() {
        let me = current_thread().unwrap();
        assert!(holder_alive(me.tid, Some(me.start)));
        assert!(holder_alive(me.tid, None));
        assert!(!holder_alive(me.tid, Some(me.start.wrapping_add(1))));
        assert!(!holder_alive(0, None));
        assert!(!holder_alive(PID_MAX_LIMIT + 1, None));
    }

    #[test]
    fn another_thread_has_its_own_tid_and_is_dead_once_joined() {
        let me = current_thread().unwrap();
        let other = std::thread::spawn(|| current_thread().unwrap())
            .join()
            .unwrap();
        assert_ne!(me.tid, other.tid);
        // The thread is gone soon after the join (TIDs are handed out cyclically: not reused at
        // once). Not at once: the join returns when the kernel clears the thread's TID word,
        // which it does before the thread has finished exiting (and qemu-user clears it before
        // its host thread exits): /proc/TID may still show it for a moment, as a waiter of the
        // lock would see it. Bounded: 10 s, a correctness bound, not a speed one.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while holder_alive(other.tid, Some(other.start)) {
            assert!(
                std::time::Instant::now() < deadline,
                "thread {} still alive 10 s after its join",
                other.tid
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn word_ops_check_the_offset() {
        let (seg, _) = crate::Segment::create(crate::IPC_PRIVATE, 64, &Default::default()).unwrap();
        let map = seg.attach(false).unwrap();
        let _ = seg.remove();
        assert!(word_op(&map, 2, WordOp::Load).is_err());
        assert!(word_op(&map, 64, WordOp::Load).is_err());
        assert_eq!(word_op(&map, 8, WordOp::Store(7)).unwrap(), 7);
        assert_eq!(word_op(&map, 8, WordOp::CompareExchange(1, 2)).unwrap(), 7);
        assert_eq!(word_op(&map, 8, WordOp::CompareExchange(7, 2)).unwrap(), 7);
        assert_eq!(word_op(&map, 8, WordOp::Load).unwrap(), 2);
    }
}
