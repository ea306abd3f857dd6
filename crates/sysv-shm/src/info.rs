//! The kernel's shared memory limits ([`limits`]), as `ipcs -l` shows them.

use crate::error::Result;
use crate::segment::shmctl_info;
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

/// Reads the limits: `shmctl(0, IPC_INFO, …)` and `shmctl(0, SHM_INFO, …)`.
///
/// # Errors
/// The `errno` of `shmctl`.
///
/// # References
/// - [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html)
/// - [ipcs(1)](https://man7.org/linux/man-pages/man1/ipcs.1.html)
pub fn limits() -> Result<Limits> {
    let (_, info): (_, sys::shminfo) = shmctl_info(libc::IPC_INFO, "IPC_INFO")?;
    let (_, usage): (_, sys::shm_info) = shmctl_info(sys::SHM_INFO, "SHM_INFO")?;
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
