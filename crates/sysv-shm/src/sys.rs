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

/// `time_t`. The `libc` crate marks it deprecated on musl (it changed to 64
/// bits in musl 1.2); this alias keeps that one allowance in one place.
#[allow(deprecated)]
pub type TimeT = libc::time_t;

/// A time of `struct *id_ds` as a `SystemTime`; `None` for 0 (never).
pub fn epoch_time(t: TimeT) -> Option<std::time::SystemTime> {
    (t > 0).then(|| std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64))
}

/// The key of an `ipc_perm`. The `libc` crate names the field `__key` for
/// glibc and (deprecated) `__ipc_perm_key` for musl.
pub fn perm_key(perm: &libc::ipc_perm) -> libc::key_t {
    #[cfg(target_env = "musl")]
    #[allow(deprecated)]
    let key = perm.__ipc_perm_key;
    #[cfg(not(target_env = "musl"))]
    let key = perm.__key;
    key
}

/// `struct semid_ds` as the kernel fills it on 64-bit Linux
/// (`struct semid64_ds`, which glibc and musl both mirror); the `libc` crate
/// defines none for musl. x86_64 has a padding word after each time
/// (`arch/x86/include/uapi/asm/sembuf.h`); the generic layout, used by
/// aarch64, has none (`include/uapi/asm-generic/sembuf.h`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct semid_ds {
    pub sem_perm: libc::ipc_perm,
    pub sem_otime: TimeT,
    #[cfg(target_arch = "x86_64")]
    unused1: c_ulong,
    pub sem_ctime: TimeT,
    #[cfg(target_arch = "x86_64")]
    unused2: c_ulong,
    pub sem_nsems: c_ulong,
    unused3: c_ulong,
    unused4: c_ulong,
}

#[cfg(not(target_pointer_width = "64"))]
compile_error!(
    "sysv-shm supports 64-bit Linux targets only (the kernel structs here are their 64-bit layout)"
);
