//! Segments that do not outlive their users: [`Attachment::remove_if_attached`].
//!
//! A segment stays in the kernel until it is removed (`IPC_RMID`) *and* no
//! process is attached. If every process that uses it is killed before one
//! of them removes it, it stays forever (until `ipcrm`). Removing it early,
//! while still attached, only marks it (`SHM_DEST`): the processes attached
//! keep using it, and the kernel frees it at the last detach, which the
//! kernel also performs for a process that dies, however it dies.
//!
//! The one cost of removing early: the key stops naming the segment
//! (`shmget(key)` fails with `ENOENT`). Attaching by id still works on Linux
//! (shmat(2): a segment marked for destruction may still be attached), so
//! parties that learn the id some other way can join later. Parties that
//! find the segment by key must all have attached first: hence a number of
//! parties to wait for.

use crate::attachment::Attachment;
use crate::error::{Error, Result};
use crate::ipc;
use crate::segment::Segment;
use crate::sys;

impl Attachment {
    /// Marks the segment removed (`shmctl(id, IPC_RMID, NULL)`) if at least
    /// `parties` attachments exist now (`shm_nattch` of `shmctl(IPC_STAT)`),
    /// counting this one; returns whether the segment is marked removed
    /// afterwards (also when it already was).
    ///
    /// Meant to be called by every party right after it attaches, with the
    /// same `parties`: the attach that brings the count to `parties` marks
    /// the segment, and from then on the kernel frees it when the last
    /// process detaches or dies. `parties == 1` marks it at once.
    ///
    /// `shm_nattch` counts attachments, not processes: a process attached
    /// twice counts twice, and one that detaches before the last party
    /// attaches leaves the count short (the segment then stays until
    /// removed by hand).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `parties == 0`; `EPERM` from `shmctl`
    /// when this user is neither the owner nor the creator of the segment.
    ///
    /// # References
    /// - [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html)
    /// - [shmat(2)](https://man7.org/linux/man-pages/man2/shmat.2.html) (NOTES: attaching a removed segment)
    pub fn remove_if_attached(&self, parties: u64) -> Result<bool> {
        if parties == 0 {
            return Err(Error::InvalidArgument("parties must be at least 1".into()));
        }
        // The segment cannot be freed meanwhile: this attachment holds it.
        let ds = ipc::stat::<Segment>(self.id())?;
        if ds.shm_perm.mode as u32 & sys::SHM_DEST != 0 {
            return Ok(true);
        }
        if sys::ulong(ds.shm_nattch) < parties {
            return Ok(false);
        }
        // Two parties may both see the count reached: removing a segment that
        // is already marked is allowed and changes nothing.
        self.segment().remove()?;
        Ok(true)
    }
}

impl Attachment {
    /// Keeps this mapping out of children made by `fork(2)`:
    /// `madvise(addr, len, MADV_DONTFORK)`.
    ///
    /// A forked child inherits every attachment, and the kernel counts it
    /// (`shm_nattch` goes up by one) until the child execs or exits. A
    /// process that forks only to exec, as Node's `child_process` does, then
    /// shows other processes attach counts that jump while it spawns, which
    /// can mislead [`Attachment::remove_if_attached`]. After this call the
    /// child has no such mapping and the count stays exact. Do not call it
    /// where a forked child must keep using the mapping without exec.
    ///
    /// # References
    /// - [madvise(2)](https://man7.org/linux/man-pages/man2/madvise.2.html)
    pub fn keep_out_of_forks(&self) -> Result<()> {
        // SAFETY: the range is this attachment's mapping (madvise rounds the
        // length up to whole pages, which shmat mapped); MADV_DONTFORK only
        // changes what fork copies, not the memory or its protection.
        let r =
            unsafe { libc::madvise(self.as_ptr().cast(), self.len().max(1), libc::MADV_DONTFORK) };
        nix::errno::Errno::result(r)
            .map(drop)
            .map_err(|e| Error::os("madvise", e, format!("MADV_DONTFORK for id {}", self.id())))
    }
}
