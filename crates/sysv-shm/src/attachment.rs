//! [`Attachment`]: one mapping of a segment into this process.

use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use nix::errno::Errno;

use crate::error::{Error, Result};

/// Attachments of this process that are mapped now (made by this crate).
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// How many attachments this process may hold at once: half of
/// `vm.max_map_count` (read once from `/proc/sys/vm/max_map_count`; 65530,
/// the kernel default, if it cannot be read).
///
/// Each attachment is one memory mapping. At `vm.max_map_count` mappings
/// every `mmap` of the process fails, including the allocator's and the
/// JavaScript engine's, which then abort the process. Refusing attachments
/// at half of it leaves the other half to the rest of the process. The
/// limit matters where detaching is left to a garbage collector that may
/// run late (Node: finalizers only run once the event loop turns).
pub fn attachment_limit() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let max = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(65530);
        (max / 2).max(1)
    })
}

/// How many attachments made by this crate are mapped in this process now.
pub fn live_attachments() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// A segment mapped into this process by `shmat(2)`; `Drop` runs `shmdt(2)`.
///
/// Other processes can write the mapped memory at any time, so this type
/// never hands out `&[u8]` or `&mut [u8]` over it (that would promise Rust
/// that the bytes do not change). Data moves in and out through
/// [`Attachment::read`] and [`Attachment::write`], which copy with raw
/// pointers, or through [`Attachment::as_ptr`] for callers that take on the
/// unsafety themselves (atomics, futexes), as `memmap2::MmapRaw` does.
#[derive(Debug)]
pub struct Attachment {
    ptr: NonNull<u8>,
    len: usize,
    id: i32,
    /// The key at attach time, from the same `IPC_STAT` as `len`.
    key: i32,
    read_only: bool,
}

// SAFETY: the mapping belongs to the whole process, not to a thread; the type
// only holds its address. Concurrent access goes through raw-pointer copies
// that are no less defined than another process writing the same bytes.
unsafe impl Send for Attachment {}
// SAFETY: as for `Send`; every method takes `&self` and copies through raw
// pointers, never creating references into the mapping.
unsafe impl Sync for Attachment {}

impl Attachment {
    /// `shmat(id, NULL, flags)`, then `size_and_key_of(id)`, the size of the
    /// segment (`shm_segsz`) and its key, read by the caller's `IPC_STAT`:
    /// after the attach, so that a refused attach reports `shmat`'s error.
    pub(crate) fn new(
        id: i32,
        read_only: bool,
        size_and_key_of: impl FnOnce(i32) -> Result<(usize, i32)>,
    ) -> Result<Attachment> {
        // Take a place in the budget first; give it back unless an
        // `Attachment` (whose detach gives it back) comes out of this.
        let limit = attachment_limit();
        let live = LIVE.fetch_add(1, Ordering::Relaxed);
        if live >= limit {
            LIVE.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::TooManyAttachments { live, limit });
        }
        let flags = if read_only { libc::SHM_RDONLY } else { 0 };
        // SAFETY: a null address lets the kernel choose where to map, so no
        // existing mapping of ours is replaced.
        let addr = unsafe { libc::shmat(id, ptr::null(), flags) };
        let addr = Errno::result(addr).map_err(|e| {
            LIVE.fetch_sub(1, Ordering::Relaxed);
            let how = if read_only { "read-only" } else { "read-write" };
            Error::os("shmat", e, format!("attach id {id} {how}"))
        })?;
        let ptr = NonNull::new(addr.cast::<u8>()).ok_or_else(|| {
            LIVE.fetch_sub(1, Ordering::Relaxed);
            Error::os(
                "shmat",
                Errno::EINVAL,
                format!("attach id {id}: null address"),
            )
        })?;
        let mut attachment = Attachment {
            ptr,
            len: 0,
            id,
            key: 0,
            read_only,
        };
        // The size asked for at creation; the mapping is that rounded up to
        // whole pages, so every byte below it is mapped. If IPC_STAT fails,
        // `?` drops the attachment, which detaches.
        (attachment.len, attachment.key) = size_and_key_of(id)?;
        Ok(attachment)
    }

    /// The shmid of the segment.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The segment's key as `shmctl(IPC_STAT)` read it right after the
    /// `shmat` (`0` for `IPC_PRIVATE` and for a segment marked removed), so
    /// that a caller that attached by id needs no second `IPC_STAT`.
    ///
    /// # References
    /// - [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html)
    pub fn key(&self) -> i32 {
        self.key
    }

    /// The size of the segment in bytes (`shm_segsz`); every byte below it
    /// is mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the segment has zero bytes (never, for a live segment).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether this is a `SHM_RDONLY` mapping: writing through it would raise
    /// `SIGSEGV`.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The address of the mapping. Reading or writing through it is the
    /// caller's responsibility: other processes may change the bytes at any
    /// time, and a read-only mapping must not be written.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Checks that `offset..offset + len` lies within the segment.
    pub fn check_range(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::OutOfBounds {
                offset,
                len,
                size: self.len,
            }),
        }
    }

    /// Copies `dst.len()` bytes starting at `offset` out of the segment.
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        // SAFETY: `dst` is a valid writable buffer of `dst.len()` bytes.
        unsafe { self.read_raw(offset, dst.as_mut_ptr(), dst.len()) }
    }

    /// Copies `src` into the segment at `offset`.
    pub fn write(&self, offset: usize, src: &[u8]) -> Result<()> {
        // SAFETY: `src` is a valid readable buffer of `src.len()` bytes.
        unsafe { self.write_raw(offset, src.as_ptr(), src.len()) }
    }

    /// Copies `len` bytes starting at `offset` out of the segment into `dst`.
    ///
    /// `dst` may overlap the mapping (the copy is a `memmove`).
    ///
    /// # Safety
    /// `dst` must be valid for writes of `len` bytes.
    pub unsafe fn read_raw(&self, offset: usize, dst: *mut u8, len: usize) -> Result<()> {
        self.check_range(offset, len)?;
        if len == 0 {
            // `dst` may be null (the view of a detached ArrayBuffer), which
            // `ptr::copy` does not allow even for zero bytes.
            return Ok(());
        }
        // SAFETY: the range is within the mapping (checked above) and `dst`
        // is writable for `len` bytes (the caller's contract). `ptr::copy`
        // allows the two to overlap.
        unsafe { ptr::copy(self.ptr.as_ptr().add(offset), dst, len) };
        Ok(())
    }

    /// Copies `len` bytes from `src` into the segment at `offset`.
    ///
    /// `src` may overlap the mapping (the copy is a `memmove`).
    ///
    /// # Safety
    /// `src` must be valid for reads of `len` bytes.
    pub unsafe fn write_raw(&self, offset: usize, src: *const u8, len: usize) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly { id: self.id });
        }
        self.check_range(offset, len)?;
        if len == 0 {
            // `src` may be null: see `read_raw`.
            return Ok(());
        }
        // SAFETY: the mapping is writable (not SHM_RDONLY, checked above),
        // the range is within it, and `src` is readable for `len` bytes (the
        // caller's contract). `ptr::copy` allows the two to overlap.
        unsafe { ptr::copy(src, self.ptr.as_ptr().add(offset), len) };
        Ok(())
    }

    /// Detaches now: `shmdt(addr)`, reporting its error (which `Drop` cannot).
    ///
    /// # References
    /// - [shmdt(2)](https://man7.org/linux/man-pages/man2/shmdt.2.html)
    pub fn detach(self) -> Result<()> {
        let this = std::mem::ManuallyDrop::new(self);
        this.shmdt()
    }

    fn shmdt(&self) -> Result<()> {
        // SAFETY: `ptr` is the address shmat returned and that has not been
        // detached: `detach` consumes `self` and `Drop` runs at most once.
        let r = unsafe { libc::shmdt(self.ptr.as_ptr().cast()) };
        Errno::result(r)
            .map(|_| {
                LIVE.fetch_sub(1, Ordering::Relaxed);
            })
            .map_err(|e| Error::os("shmdt", e, format!("detach id {}", self.id)))
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // shmdt can only fail for an address that is not an attachment, which
        // the type rules out; there is nothing to do with an error in drop.
        let _ = self.shmdt();
    }
}
