//! Kernel ABI items that the `libc` crate does not define.
//!
//! Values are from `<linux/shm.h>`, `<linux/sem.h>` and `<linux/ipc.h>`;
//! see shmctl(2) and semctl(2).

use libc::{c_int, c_ulong};

/// `shmctl` command: like `IPC_STAT`, but takes an index into the kernel's
/// table (0 ..= the value `SHM_INFO` returns) and returns the shmid.
pub const SHM_STAT: c_int = 13;
/// `shmctl` command: usage counters (`struct shm_info`); returns the highest
/// used index.
pub const SHM_INFO: c_int = 14;
/// `shmctl` command (Linux 4.17): `SHM_STAT` without the read-permission check.
pub const SHM_STAT_ANY: c_int = 15;

/// `shm_perm.mode` bit: the segment is marked for destruction (`IPC_RMID`
/// while still attached).
pub const SHM_DEST: u32 = 0o1000;
/// `shm_perm.mode` bit: the segment is locked in memory (`SHM_LOCK`).
pub const SHM_LOCKED: u32 = 0o2000;

/// `struct shminfo`, filled by `shmctl(_, IPC_INFO, _)`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct shminfo {
    pub shmmax: c_ulong,
    pub shmmin: c_ulong,
    pub shmmni: c_ulong,
    pub shmseg: c_ulong,
    pub shmall: c_ulong,
    pub unused: [c_ulong; 4],
}

/// `struct shm_info`, filled by `shmctl(_, SHM_INFO, _)`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct shm_info {
    pub used_ids: c_int,
    pub shm_tot: c_ulong,
    pub shm_rss: c_ulong,
    pub shm_swp: c_ulong,
    pub swap_attempts: c_ulong,
    pub swap_successes: c_ulong,
}

/// Widens a C `unsigned long` (32 or 64 bits by target) to `u64`.
#[allow(clippy::useless_conversion)]
pub fn ulong(v: c_ulong) -> u64 {
    u64::from(v)
}

/// `struct seminfo`, filled by `semctl(_, _, IPC_INFO | SEM_INFO, _)`. For
/// `SEM_INFO`, `semusz` is the number of sets and `semaem` of semaphores.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct seminfo {
    pub semmap: c_int,
    pub semmni: c_int,
    pub semmns: c_int,
    pub semmnu: c_int,
    pub semmsl: c_int,
    pub semopm: c_int,
    pub semume: c_int,
    pub semusz: c_int,
    pub semvmx: c_int,
    pub semaem: c_int,
}
