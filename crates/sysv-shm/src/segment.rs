//! [`Segment`]: the kernel object behind a shmid.

use std::time::SystemTime;

use libc::c_int;
use nix::errno::Errno;

use crate::attachment::Attachment;
use crate::error::{Error, Result};
use crate::ipc::{self, hex_key, info_methods, Kind, Perm};
use crate::sys;
use crate::Key;

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

/// A snapshot of `struct shmid_ds`, as `shmctl(IPC_STAT)` or `ipcs -m` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The shmid.
    pub id: i32,
    /// Key, owner, creator and mode; the key reads `IPC_PRIVATE` (0) once
    /// the segment is marked removed.
    pub perm: Perm,
    /// The size asked for at creation (`shm_segsz`), in bytes.
    pub size: usize,
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
        SegmentInfo {
            id,
            perm: Perm::from_raw(&ds.shm_perm),
            size: ds.shm_segsz,
            creator_pid: ds.shm_cpid,
            last_pid: ds.shm_lpid,
            attach_count: sys::ulong(ds.shm_nattch),
            attach_time: sys::epoch_time(ds.shm_atime),
            detach_time: sys::epoch_time(ds.shm_dtime),
            change_time: sys::epoch_time(ds.shm_ctime),
            removed: mode & sys::SHM_DEST != 0,
            locked: mode & sys::SHM_LOCKED != 0,
        }
    }
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
        if size == 0 {
            return Err(Error::InvalidArgument(
                "size must be at least 1 byte".into(),
            ));
        }
        let mut flags = 0;
        if options.huge_pages {
            flags |= libc::SHM_HUGETLB;
        }
        if options.no_reserve {
            flags |= libc::SHM_NORESERVE;
        }
        let context = || format!("create key {} size {size}", hex_key(key));
        let (id, created) =
            ipc::create::<Segment>(key, size, options.mode, flags, options.exclusive, context)?;
        Ok((Segment { id }, created))
    }

    /// Opens the existing segment of `key`: `shmget(key, 0, 0)`.
    ///
    /// # Errors
    /// `ENOENT` when no segment has that key (also once it is marked
    /// removed); [`Error::InvalidArgument`] for [`IPC_PRIVATE`](crate::IPC_PRIVATE),
    /// which names no segment.
    ///
    /// # References
    /// - [shmget(2)](https://man7.org/linux/man-pages/man2/shmget.2.html)
    pub fn open(key: Key) -> Result<Segment> {
        ipc::open::<Segment>(key).map(Segment::from_id)
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
        Attachment::new(self.id, read_only, |id| {
            let ds = ipc::stat::<Segment>(id)?;
            Ok((ds.shm_segsz, crate::sys::perm_key(&ds.shm_perm)))
        })
    }
    info_methods!(
        Segment,
        SegmentInfo,
        "shmctl",
        "",
        "SHM",
        "shmid_ds",
        "segment",
        "-m",
        set
    );

    /// Locks the segment in memory: `shmctl(id, SHM_LOCK, NULL)`.
    ///
    /// # Errors
    /// `EPERM` without `CAP_IPC_LOCK` (or beyond `RLIMIT_MEMLOCK`), `ENOMEM`.
    ///
    /// # References
    /// - [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html)
    pub fn lock(&self) -> Result<()> {
        ipc::command::<Segment>(self.id, libc::SHM_LOCK, "lock")
    }

    /// Unlocks the segment: `shmctl(id, SHM_UNLOCK, NULL)`.
    ///
    /// # Errors
    /// `EPERM` unless the caller is the owner or creator (or privileged).
    ///
    /// # References
    /// - [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html)
    pub fn unlock(&self) -> Result<()> {
        ipc::command::<Segment>(self.id, libc::SHM_UNLOCK, "unlock")
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
        ipc::remove::<Segment>(self.id)
    }
}

impl Attachment {
    /// The segment this maps.
    pub fn segment(&self) -> Segment {
        Segment::from_id(self.id())
    }
}

impl Kind for Segment {
    type Ds = libc::shmid_ds;
    const NOUN: &'static str = "segment";
    const GET: &'static str = "shmget";
    const CTL: &'static str = "shmctl";
    const STAT: c_int = sys::SHM_STAT;
    const STAT_ANY: c_int = sys::SHM_STAT_ANY;

    fn get(key: Key, size: usize, flags: c_int) -> c_int {
        // SAFETY: shmget takes plain integers and touches no memory of ours.
        unsafe { libc::shmget(key, size, flags) }
    }

    unsafe fn ctl(id: c_int, cmd: c_int, buf: *mut libc::shmid_ds) -> c_int {
        // SAFETY: the caller's contract (see `Kind::ctl`).
        unsafe { libc::shmctl(id, cmd, buf) }
    }

    fn perm(ds: &mut libc::shmid_ds) -> &mut libc::ipc_perm {
        &mut ds.shm_perm
    }

    fn usage() -> Result<(c_int, u64)> {
        let (max_index, usage): (_, sys::shm_info) = shmctl_info(sys::SHM_INFO, "SHM_INFO")?;
        Ok((max_index, usage.used_ids.max(0) as u64))
    }
}

/// `shmctl(0, cmd, &out)` for `IPC_INFO` (a `shminfo`) or `SHM_INFO` (a
/// `shm_info`): the result and the struct.
pub(crate) fn shmctl_info<T: Default>(cmd: c_int, what: &str) -> Result<(c_int, T)> {
    let mut out = T::default();
    // SAFETY: `out` is a `shminfo` or `shm_info`, the struct the kernel
    // fills for IPC_INFO or SHM_INFO respectively (see shmctl(2)); the cast
    // only matches the C prototype.
    let r = unsafe { libc::shmctl(0, cmd, (&mut out as *mut T).cast()) };
    let r = Errno::result(r).map_err(|e| Error::os("shmctl", e, what.to_string()))?;
    Ok((r, out))
}

/// Lists every segment of this IPC namespace, as `ipcs -m` does:
/// `shmctl(0, SHM_INFO, …)` for the highest index in use, then
/// `shmctl(index, SHM_STAT_ANY, …)` for each index. Kernels before 4.17 do
/// not know `SHM_STAT_ANY`; there it falls back to `SHM_STAT`, which skips
/// segments the caller may not read.
///
/// # Errors
/// The `errno` of `shmctl`.
///
/// # References
/// - [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html)
pub fn list_segments() -> Result<Vec<SegmentInfo>> {
    ipc::list::<Segment, _>(SegmentInfo::from_raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IPC_PRIVATE;

    #[test]
    fn stat_any_finds_the_slot_of_the_id() {
        let (seg, _) = Segment::create(IPC_PRIVATE, 64, &CreateOptions::default()).unwrap();
        let any = seg.stat_any();
        let stat = seg.stat();
        seg.remove().unwrap();
        assert_eq!(any, Some(stat.unwrap()));
        assert!(seg.stat_any().is_none(), "removed: the slot is empty");
    }

    #[test]
    fn list_finds_the_segment_as_stat_shows_it() {
        let (seg, _) = Segment::create(IPC_PRIVATE, 64, &CreateOptions::default()).unwrap();
        let listed = list_segments().map(|all| all.into_iter().find(|s| s.id == seg.id()));
        let stat = seg.stat();
        seg.remove().unwrap();
        assert_eq!(listed.unwrap(), Some(stat.unwrap()));
    }
}
