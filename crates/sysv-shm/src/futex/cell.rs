//! The wait cell protocol on an [`Attachment`]: an `Int32` value and the
//! `Uint32` count of its waiters (see the [parent module](super)), with
//! [`Attachment::wait`], [`Attachment::notify`] and [`Attachment::wait_async`].

use std::any::Any;
use std::sync::atomic::{fence, AtomicI32, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;

use super::sys::{futex_wait, futex_wake};
use super::{wait_async, AsyncOutcome, AsyncRequest, OnDone, WaitOutcome, CELL_SIZE};
use crate::attachment::Attachment;
use crate::error::{Error, Result};
use crate::wait::CancelToken;

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
    /// `timeout`. Follows the waiter-count protocol of the [module](crate::futex).
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
    /// [`cancel_range`](super::cancel_range) is called for its address range, whichever is first.
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
