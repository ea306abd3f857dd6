//! The raw `futex(2)` calls: `FUTEX_WAIT` and `FUTEX_WAKE` on shared words,
//! and a private wake for this process's own words.
//!
//! # References
//! - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)

use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::WaitOutcome;
use crate::error::{Error, Result};

pub(super) fn timespec(d: Duration) -> libc::timespec {
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
                Some(left)
            }
        };
        // SAFETY: `addr` is a mapped aligned u32 (caller's contract).
        let r = unsafe { futex_wait_once(addr as usize, expected, ts) };
        match r {
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
pub(super) fn futex_wake_private(addr: &AtomicU32) {
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

/// `FUTEX_WAIT` once, shared; `Ok` when woken (or spuriously).
///
/// # Safety
/// `addr` must be a 4-byte aligned address; the kernel only reads it (and
/// fails with `EFAULT` if it is not mapped).
pub(super) unsafe fn futex_wait_once(
    addr: usize,
    expected: u32,
    left: Option<Duration>,
) -> std::result::Result<(), Errno> {
    let ts = left.map(timespec);
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: the kernel reads the aligned word at `addr` (caller's contract)
    // and `*tsp`, which outlives the call.
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
    Errno::result(r).map(drop)
}
