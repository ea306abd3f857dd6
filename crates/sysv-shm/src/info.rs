//! System-wide views: every segment ([`list_segments`]) and the kernel's
//! limits ([`limits`]), as `ipcs -m` and `ipcs -l` show them.

use std::mem::MaybeUninit;

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::segment::SegmentInfo;
use crate::sys::{self, ulong};

/// The kernel's shared memory limits and current usage (`ipcs -l`, `ipcs -u`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `SHMMAX`: the largest segment, in bytes (`kernel.shmmax`).
    pub max_segment_size: u64,
    /// `SHMMIN`: the smallest segment, in bytes (1 on Linux).
    pub min_segment_size: u64,
    /// `SHMMNI`: how many segments may exist system-wide (`kernel.shmmni`).
    pub max_segments: u64,
    /// `SHMSEG`: how many segments one process may attach.
    pub max_segments_per_process: u64,
    /// `SHMALL`: total pages of all segments together (`kernel.shmall`).
    pub max_total_pages: u64,
    /// The page size, in bytes: memory is taken in whole pages.
    pub page_size: u64,
    /// Segments that exist now.
    pub used_segments: u64,
    /// Pages allocated to all segments now.
    pub used_pages: u64,
    /// Of those, pages resident in memory.
    pub resident_pages: u64,
    /// Of those, pages swapped out.
    pub swapped_pages: u64,
}

fn shmctl_into<T: Default>(cmd: libc::c_int, what: &str) -> Result<(libc::c_int, T)> {
    let mut out = T::default();
    // SAFETY: `out` is a `shminfo` or `shm_info`, the struct the kernel
    // fills for IPC_INFO or SHM_INFO respectively (see shmctl(2)); the cast
    // only matches the C prototype.
    let r = unsafe { libc::shmctl(0, cmd, (&mut out as *mut T).cast()) };
    let r = Errno::result(r).map_err(|e| Error::os("shmctl", e, what.to_string()))?;
    Ok((r, out))
}

/// Reads the limits: `shmctl(0, IPC_INFO, …)` and `shmctl(0, SHM_INFO, …)`.
///
/// # References
/// - [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html)
/// - [ipcs(1)](https://man7.org/linux/man-pages/man1/ipcs.1.html)
pub fn limits() -> Result<Limits> {
    let (_, info): (_, sys::shminfo) = shmctl_into(libc::IPC_INFO, "IPC_INFO")?;
    let (_, usage): (_, sys::shm_info) = shmctl_into(sys::SHM_INFO, "SHM_INFO")?;
    // SAFETY: sysconf takes an integer and touches no memory.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Ok(Limits {
        max_segment_size: ulong(info.shmmax),
        min_segment_size: ulong(info.shmmin),
        max_segments: ulong(info.shmmni),
        max_segments_per_process: ulong(info.shmseg),
        max_total_pages: ulong(info.shmall),
        page_size: if page > 0 { page as u64 } else { 4096 },
        used_segments: usage.used_ids.max(0) as u64,
        used_pages: ulong(usage.shm_tot),
        resident_pages: ulong(usage.shm_rss),
        swapped_pages: ulong(usage.shm_swp),
    })
}

/// Lists every segment of this IPC namespace, as `ipcs -m` does:
/// `shmctl(0, SHM_INFO, …)` for the highest index in use, then
/// `shmctl(index, SHM_STAT_ANY, …)` for each index. Kernels before 4.17 do
/// not know `SHM_STAT_ANY`; there it falls back to `SHM_STAT`, which skips
/// segments the caller may not read.
///
/// # References
/// - [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html)
pub fn list_segments() -> Result<Vec<SegmentInfo>> {
    let (max_index, usage): (_, sys::shm_info) = shmctl_into(sys::SHM_INFO, "SHM_INFO")?;
    let all = scan(sys::SHM_STAT_ANY, max_index)?;
    if all.is_empty() && usage.used_ids > 0 {
        return scan(sys::SHM_STAT, max_index);
    }
    Ok(all)
}

fn scan(cmd: libc::c_int, max_index: libc::c_int) -> Result<Vec<SegmentInfo>> {
    let mut out = Vec::new();
    for index in 0..=max_index {
        let mut ds = MaybeUninit::<libc::shmid_ds>::zeroed();
        // SAFETY: `ds` is a writable `shmid_ds`, which SHM_STAT(_ANY) fills.
        let r = unsafe { libc::shmctl(index, cmd, ds.as_mut_ptr()) };
        match Errno::result(r) {
            Ok(id) => {
                // SAFETY: zeroed is valid for every field and the kernel
                // filled the struct on success.
                let ds = unsafe { ds.assume_init() };
                out.push(SegmentInfo::from_raw(id, &ds));
            }
            // An unused slot, one removed meanwhile, or one we may not read.
            Err(Errno::EINVAL | Errno::EIDRM | Errno::EACCES) => {}
            Err(e) => return Err(Error::os("shmctl", e, format!("SHM_STAT index {index}"))),
        }
    }
    Ok(out)
}
