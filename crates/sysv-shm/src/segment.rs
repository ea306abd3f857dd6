//! [`Segment`]: the kernel object behind a shmid.

use std::mem::MaybeUninit;
use std::ptr;
use std::time::SystemTime;

use nix::errno::Errno;

use crate::attachment::Attachment;
use crate::error::{Error, Result};
use crate::sys;
use crate::Key;

/// The key that names no segment: `shmget(IPC_PRIVATE, …)` always creates a
/// new one, reachable only by its id.
pub const IPC_PRIVATE: Key = libc::IPC_PRIVATE;

/// The largest permission mode: the low 9 bits (`rwxrwxrwx`).
pub const MODE_MASK: u32 = 0o777;

/// How [`Segment::create`] makes a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateOptions {
    /// Permission bits (the low 9 bits of `shmflg`). Default `0o600`.
    pub mode: u32,
    /// `IPC_EXCL`: fail with `EEXIST` if the key is taken. Default `true`.
    /// When `false`, an existing segment of at least the asked size is opened.
    pub exclusive: bool,
    /// `SHM_HUGETLB`: back the segment with huge pages.
    pub huge_pages: bool,
    /// `SHM_NORESERVE`: do not reserve swap space for it.
    pub no_reserve: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            mode: 0o600,
            exclusive: true,
            huge_pages: false,
            no_reserve: false,
        }
    }
}

/// What [`Segment::set`] changes (`IPC_SET`); `None` keeps the current value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetOptions {
    /// New owner uid.
    pub uid: Option<u32>,
    /// New owner gid.
    pub gid: Option<u32>,
    /// New permission bits (low 9 bits).
    pub mode: Option<u32>,
}

/// A snapshot of `struct shmid_ds`, as `shmctl(IPC_STAT)` or `ipcs -m` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The shmid.
    pub id: i32,
    /// The key; reads `IPC_PRIVATE` (0) once the segment is marked removed.
    pub key: Key,
    /// The size asked for at creation (`shm_segsz`), in bytes.
    pub size: usize,
    /// Permission bits (low 9 bits of `shm_perm.mode`).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Creator uid.
    pub cuid: u32,
    /// Creator gid.
    pub cgid: u32,
    /// Pid of the creator (`shm_cpid`).
    pub creator_pid: i32,
    /// Pid of the last `shmat`/`shmdt` (`shm_lpid`).
    pub last_pid: i32,
    /// Number of current attaches (`shm_nattch`).
    pub attach_count: u64,
    /// Last `shmat`, if any.
    pub attach_time: Option<SystemTime>,
    /// Last `shmdt`, if any.
    pub detach_time: Option<SystemTime>,
    /// Last change (creation or `IPC_SET`).
    pub change_time: Option<SystemTime>,
    /// `SHM_DEST`: marked for removal, freed when the last process detaches.
    pub removed: bool,
    /// `SHM_LOCKED`: locked in memory.
    pub locked: bool,
}

impl SegmentInfo {
    pub(crate) fn from_raw(id: i32, ds: &libc::shmid_ds) -> Self {
        let mode = ds.shm_perm.mode as u32;
        let key = sys::perm_key(&ds.shm_perm);
        SegmentInfo {
            id,
            key,
            size: ds.shm_segsz,
            mode: mode & MODE_MASK,
            uid: ds.shm_perm.uid,
            gid: ds.shm_perm.gid,
            cuid: ds.shm_perm.cuid,
            cgid: ds.shm_perm.cgid,
            creator_pid: ds.shm_cpid,
            last_pid: ds.shm_lpid,
            attach_count: crate::sys::ulong(ds.shm_nattch),
            attach_time: sys::epoch_time(ds.shm_atime),
            detach_time: sys::epoch_time(ds.shm_dtime),
            change_time: sys::epoch_time(ds.shm_ctime),
            removed: mode & sys::SHM_DEST != 0,
            locked: mode & sys::SHM_LOCKED != 0,
        }
    }
}

/// Formats a key the way `ipcs` prints it.
pub(crate) fn hex_key(key: Key) -> String {
    format!("0x{:08x}", key as u32)
}

/// A System V shared memory segment, named by its shmid.
///
/// This is only a name: it holds no kernel resource, so it is `Copy` and has
/// no `Drop`. The segment lives in the kernel until [`Segment::remove`] (or
/// `ipcrm -m`) and the last detach; map it with [`Segment::attach`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Segment {
    id: i32,
}

impl Segment {
    /// Creates a segment: `shmget(key, size, IPC_CREAT | IPC_EXCL | mode)`.
    ///
    /// With `options.exclusive == false`, opens the existing segment of that
    /// key instead of failing with `EEXIST` (`IPC_CREAT` without `IPC_EXCL`).
    /// Returns the segment and whether this call created it. The kernel
    /// takes memory in whole pages; [`SegmentInfo::size`] keeps `size`.
    ///
    /// # Errors
    /// `EEXIST` (exclusive and the key is taken), `EINVAL` (size out of
    /// `SHMMIN..=SHMMAX`, or larger than an existing segment), `ENOSPC`
    /// (`SHMMNI` or `SHMALL` reached), `ENOMEM`, `EACCES`, `EPERM`
    /// (`SHM_HUGETLB` without the right group).
    ///
    /// # References
    /// - [shmget(2)](https://man7.org/linux/man-pages/man2/shmget.2.html)
    pub fn create(key: Key, size: usize, options: &CreateOptions) -> Result<(Segment, bool)> {
        if options.mode & !MODE_MASK != 0 {
            return Err(Error::InvalidArgument(format!(
                "mode 0o{:o} has bits outside 0o777",
                options.mode
            )));
        }
        if size == 0 {
            return Err(Error::InvalidArgument(
                "size must be at least 1 byte".into(),
            ));
        }
        let mut flags = libc::IPC_CREAT | options.mode as libc::c_int;
        if options.huge_pages {
            flags |= libc::SHM_HUGETLB;
        }
        if options.no_reserve {
            flags |= libc::SHM_NORESERVE;
        }
        let context = || format!("create key {} size {size}", hex_key(key));
        if key == IPC_PRIVATE {
            return shmget(key, size, flags, context).map(|s| (s, true));
        }
        // Try to create first, so that the caller learns whether it did; then
        // fall back to opening. Between the two another process may remove
        // the segment (ENOENT on open): try again a few times.
        for _ in 0..8 {
            match shmget(key, size, flags | libc::IPC_EXCL, context) {
                Ok(seg) => return Ok((seg, true)),
                Err(e) if !options.exclusive && e.errno() == Some(Errno::EEXIST) => {}
                Err(e) => return Err(e),
            }
            // Flags 0: permissions are checked by shmat, for the access asked.
            match shmget(key, size, 0, || {
                format!("open key {} size {size}", hex_key(key))
            }) {
                Ok(seg) => return Ok((seg, false)),
                Err(e) if e.errno() == Some(Errno::ENOENT) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::os("shmget", Errno::EAGAIN, context()))
    }

    /// Opens the existing segment of `key`: `shmget(key, 0, 0)`.
    ///
    /// # Errors
    /// `ENOENT` when no segment has that key (also once it is marked
    /// removed); `EINVAL` for [`IPC_PRIVATE`], which names no segment.
    ///
    /// # References
    /// - [shmget(2)](https://man7.org/linux/man-pages/man2/shmget.2.html)
    pub fn open(key: Key) -> Result<Segment> {
        if key == IPC_PRIVATE {
            return Err(Error::InvalidArgument(
                "IPC_PRIVATE names no segment: open it by id".into(),
            ));
        }
        shmget(key, 0, 0, || format!("open key {}", hex_key(key)))
    }

    /// Names the segment with this shmid, as `ipcs -m` prints it. Makes no
    /// system call: a wrong id shows up as `EINVAL` or `EIDRM` on first use.
    pub const fn from_id(id: i32) -> Segment {
        Segment { id }
    }

    /// The shmid.
    pub const fn id(&self) -> i32 {
        self.id
    }

    /// Maps the segment into this process: `shmat(id, NULL, flags)`, with
    /// `SHM_RDONLY` when `read_only`. The mapping is undone when the returned
    /// [`Attachment`] is dropped.
    ///
    /// # Errors
    /// `EACCES` (no permission for the asked access), `EINVAL` (no such id),
    /// `EIDRM` (removed), `ENOMEM`.
    ///
    /// # References
    /// - [shmat(2)](https://man7.org/linux/man-pages/man2/shmat.2.html)
    pub fn attach(&self, read_only: bool) -> Result<Attachment> {
        Attachment::new(self.id, read_only)
    }

    /// Reads `struct shmid_ds`: `shmctl(id, IPC_STAT, &buf)`.
    ///
    /// # References
    /// - [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html)
    pub fn stat(&self) -> Result<SegmentInfo> {
        let ds = ipc_stat(self.id)?;
        Ok(SegmentInfo::from_raw(self.id, &ds))
    }

    /// Changes owner and mode: `shmctl(id, IPC_SET, &buf)` after `IPC_STAT`.
    ///
    /// `IPC_SET` needs no read permission, so an owner may restore a mode
    /// that shuts it out (`0o000`): where `IPC_STAT` fails with `EACCES`, the
    /// current values come from `SHM_STAT_ANY` (Linux 4.17) instead.
    ///
    /// # Errors
    /// `EPERM` unless the caller is the owner or creator (or privileged).
    ///
    /// # References
    /// - [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html)
    pub fn set(&self, options: &SetOptions) -> Result<()> {
        if let Some(mode) = options.mode {
            if mode & !MODE_MASK != 0 {
                return Err(Error::InvalidArgument(format!(
                    "mode 0o{mode:o} has bits outside 0o777"
                )));
            }
        }
        let mut ds = match ipc_stat(self.id) {
            Err(e) if e.errno() == Some(Errno::EACCES) => stat_any(self.id).ok_or(e)?,
            r => r?,
        };
        if let Some(uid) = options.uid {
            ds.shm_perm.uid = uid;
        }
        if let Some(gid) = options.gid {
            ds.shm_perm.gid = gid;
        }
        if let Some(mode) = options.mode {
            // The kernel takes only the low 9 bits from IPC_SET.
            ds.shm_perm.mode = mode as _;
        }
        self.ctl(libc::IPC_SET, &mut ds, "set")
    }

    /// Locks the segment in memory: `shmctl(id, SHM_LOCK, NULL)`.
    ///
    /// # Errors
    /// `EPERM` without `CAP_IPC_LOCK` (or beyond `RLIMIT_MEMLOCK`), `ENOMEM`.
    ///
    /// # References
    /// - [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html)
    pub fn lock(&self) -> Result<()> {
        self.ctl(libc::SHM_LOCK, ptr::null_mut(), "lock")
    }

    /// Unlocks the segment: `shmctl(id, SHM_UNLOCK, NULL)`.
    ///
    /// # References
    /// - [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html)
    pub fn unlock(&self) -> Result<()> {
        self.ctl(libc::SHM_UNLOCK, ptr::null_mut(), "unlock")
    }

    /// Removes the segment: `shmctl(id, IPC_RMID, NULL)`.
    ///
    /// If processes are still attached the segment is only marked
    /// ([`SegmentInfo::removed`]), its key becomes `IPC_PRIVATE`, and the
    /// kernel frees it at the last detach.
    ///
    /// # Errors
    /// `EPERM` unless the caller is the owner or creator; `EINVAL`/`EIDRM` if
    /// it is already gone.
    ///
    /// # References
    /// - [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html)
    pub fn remove(&self) -> Result<()> {
        self.ctl(libc::IPC_RMID, ptr::null_mut(), "remove")
    }

    fn ctl(&self, cmd: libc::c_int, buf: *mut libc::shmid_ds, what: &str) -> Result<()> {
        // SAFETY: `buf` is null (for commands that take no buffer) or points
        // to a live, initialised `shmid_ds` that the caller owns.
        let r = unsafe { libc::shmctl(self.id, cmd, buf) };
        Errno::result(r)
            .map(drop)
            .map_err(|e| Error::os("shmctl", e, format!("{what} id {}", self.id)))
    }
}

fn shmget(
    key: Key,
    size: usize,
    flags: libc::c_int,
    context: impl FnOnce() -> String,
) -> Result<Segment> {
    // SAFETY: shmget takes plain integers and touches no memory of ours.
    let id = unsafe { libc::shmget(key, size, flags) };
    Errno::result(id)
        .map(|id| Segment { id })
        .map_err(|e| Error::os("shmget", e, context()))
}

pub(crate) fn ipc_stat(id: i32) -> Result<libc::shmid_ds> {
    let mut ds = MaybeUninit::<libc::shmid_ds>::zeroed();
    // SAFETY: `ds` is a writable buffer of the size IPC_STAT fills.
    let r = unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) };
    Errno::result(r).map_err(|e| Error::os("shmctl", e, format!("stat id {id}")))?;
    // SAFETY: zero is a valid bit pattern for every field, and the kernel
    // filled it on success.
    Ok(unsafe { ds.assume_init() })
}

/// `shmctl(index, SHM_STAT_ANY)` of the slot of `id`, which checks no read
/// permission; `None` where the kernel does not know the command (before
/// 4.17) or the slot holds another segment. The slot is the low 15 bits of
/// the id, or the low 24 with `ipcmni_extend` (see `ipcid_to_idx` in the
/// kernel's `ipc/util.h`); the id the call returns tells which is right.
pub(crate) fn stat_any(id: i32) -> Option<libc::shmid_ds> {
    [id & 0x7fff, id & 0xff_ffff].into_iter().find_map(|index| {
        let mut ds = MaybeUninit::<libc::shmid_ds>::zeroed();
        // SAFETY: `ds` is a writable `shmid_ds`, which SHM_STAT_ANY fills.
        let r = unsafe { libc::shmctl(index, sys::SHM_STAT_ANY, ds.as_mut_ptr()) };
        // SAFETY: zeroed is valid for every field and the kernel filled it
        // when the call succeeded (it returned the id).
        (r == id).then(|| unsafe { ds.assume_init() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_any_finds_the_slot_of_the_id() {
        let (seg, _) = Segment::create(IPC_PRIVATE, 64, &CreateOptions::default()).unwrap();
        let any = stat_any(seg.id()).map(|ds| SegmentInfo::from_raw(seg.id(), &ds));
        let stat = seg.stat();
        seg.remove().unwrap();
        assert_eq!(any, Some(stat.unwrap()));
        assert!(stat_any(seg.id()).is_none(), "removed: the slot is empty");
    }
}
