//! System V semaphore sets: `semget`, `semop`/`semtimedop` and `semctl`, the
//! classic companion of SysV shared memory.
//!
//! [`SemaphoreSet`] names a kernel semaphore set by its semid, as
//! [`Segment`](crate::Segment) does for a segment: it owns nothing and is
//! `Copy`; the set lives until [`SemaphoreSet::remove`] (or `ipcrm -s`).
//!
//! # References
//! - [semget(2)](https://man7.org/linux/man-pages/man2/semget.2.html)
//! - [semop(2)](https://man7.org/linux/man-pages/man2/semop.2.html)
//! - [semctl(2)](https://man7.org/linux/man-pages/man2/semctl.2.html)

use std::time::{Duration, Instant, SystemTime};

use libc::{c_int, c_ushort};
use nix::errno::Errno;

use crate::blocking::{self, OnDone};
use crate::error::{Error, Result};
use crate::ipc::{self, hex_key, info_methods, Kind, Perm};
use crate::segment::CreateOptions;
use crate::sys;
use crate::wait::{self, CancelToken, Stop, Wait};

use crate::Key;

/// `SEMVMX`: the largest value of a semaphore.
pub const SEM_VALUE_MAX: u16 = 32767;

/// `union semun`, which the caller of `semctl` must define (see semctl(2)).
#[repr(C)]
#[derive(Clone, Copy)]
union Semun {
    val: c_int,
    buf: *mut sys::semid_ds,
    array: *mut c_ushort,
}

/// One operation of a `semop` call (`struct sembuf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemOp {
    /// Which semaphore of the set.
    pub index: u16,
    /// Positive: add (release); negative: subtract, waiting while the value
    /// is too small (acquire); zero: wait until the value is 0.
    pub delta: i16,
    /// `SEM_UNDO`: the kernel reverts this operation when the process exits.
    pub undo: bool,
    /// `IPC_NOWAIT`: fail instead of waiting.
    pub nowait: bool,
}

/// The outcome of [`SemaphoreSet::op_async`], which may reach no one: until
/// [`AppliedOps::keep`] takes it, dropping it gives back what the operations
/// took (each negative delta is added back with `IPC_NOWAIT` and the same
/// `SEM_UNDO` flag; a positive delta, a release, stands, as a sent message
/// does; a wait for zero took nothing). `SEM_UNDO` does not cover this: the
/// adjustment belongs to the process, which lives on when only a thread or a
/// worker of it is gone.
///
/// # References
/// - [semop(2)](https://man7.org/linux/man-pages/man2/semop.2.html)
#[derive(Debug)]
#[must_use = "dropping it unkept gives back the units the operations took"]
pub struct AppliedOps {
    set: SemaphoreSet,
    ops: Vec<SemOp>,
    outcome: OpOutcome,
    armed: bool,
}

impl AppliedOps {
    /// How the `semop` ended, without keeping it.
    pub fn outcome(&self) -> OpOutcome {
        self.outcome
    }

    /// Keeps what the operations did (the caller has seen the outcome) and
    /// returns the outcome.
    pub fn keep(mut self) -> OpOutcome {
        self.armed = false;
        self.outcome
    }
}

impl Drop for AppliedOps {
    fn drop(&mut self) {
        if !self.armed || self.outcome != OpOutcome::Done {
            return;
        }
        let back: Vec<SemOp> = self
            .ops
            .iter()
            .filter(|o| o.delta < 0)
            .map(|o| SemOp {
                index: o.index,
                // Saturating: -32768 never applies (beyond SEMVMX, ERANGE).
                delta: o.delta.saturating_neg(),
                undo: o.undo,
                nowait: true,
            })
            .collect();
        if !back.is_empty() {
            // Never blocks, never panics: a set removed meanwhile has no
            // units to give back to.
            let _ = self.set.op(&back, None);
        }
    }
}

/// How a `semop` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpOutcome {
    /// All operations were applied (atomically).
    Done,
    /// `IPC_NOWAIT` was given and the operations would have waited (`EAGAIN`).
    WouldBlock,
    /// The timeout of `semtimedop` elapsed (`EAGAIN`).
    TimedOut,
}

/// A snapshot of `struct semid_ds` (`semctl(IPC_STAT)`, `ipcs -s`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemInfo {
    /// The semid.
    pub id: i32,
    /// Key, owner, creator and mode.
    pub perm: Perm,
    /// The number of semaphores in the set.
    pub count: usize,
    /// Last `semop`, if any.
    pub op_time: Option<SystemTime>,
    /// Last change (creation, `IPC_SET`, `SETVAL`, `SETALL`).
    pub change_time: Option<SystemTime>,
}

impl SemInfo {
    // `sem_nsems` is a `c_ulong`; `count` a `usize` of the same width.
    #[allow(clippy::unnecessary_cast)]
    fn from_raw(id: i32, ds: &sys::semid_ds) -> Self {
        SemInfo {
            id,
            perm: Perm::from_raw(&ds.sem_perm),
            count: ds.sem_nsems as usize,
            op_time: sys::epoch_time(ds.sem_otime),
            change_time: sys::epoch_time(ds.sem_ctime),
        }
    }
}

/// `semctl(0, 0, cmd, &info)` for `IPC_INFO` (the limits) or `SEM_INFO`
/// (the same, with the number of sets in `semusz` and of semaphores in
/// `semaem`): the result (for `SEM_INFO`, the highest index in use) and the
/// struct.
fn sem_info(cmd: c_int, what: &str) -> Result<(c_int, sys::seminfo)> {
    let mut info = sys::seminfo::default();
    let arg = Semun {
        buf: (&mut info as *mut sys::seminfo).cast(),
    };
    // SAFETY: IPC_INFO and SEM_INFO fill a `struct seminfo` through the
    // pointer member of the union (see semctl(2)); `info` is one, alive for
    // the call.
    let r = unsafe { libc::semctl(0, 0, cmd, arg) };
    let r = Errno::result(r).map_err(|e| Error::os("semctl", e, what.to_string()))?;
    Ok((r, info))
}

/// `SEMMSL`, the most semaphores in one set (`kernel.sem`, first field),
/// as the kernel tells it: `semctl(0, 0, IPC_INFO, &info)`.
///
/// # Errors
/// The `errno` of `semctl`.
///
/// # References
/// - [semctl(2)](https://man7.org/linux/man-pages/man2/semctl.2.html)
pub fn max_semaphores_per_set() -> Result<usize> {
    let (_, info) = sem_info(libc::IPC_INFO, "IPC_INFO")?;
    Ok(info.semmsl.max(0) as usize)
}

/// Lists every semaphore set of this IPC namespace, as `ipcs -s` does:
/// `semctl(0, 0, SEM_INFO, …)` for the highest index in use, then
/// `semctl(index, 0, SEM_STAT_ANY, …)` for each index. Kernels before 4.17
/// do not know `SEM_STAT_ANY`; there it falls back to `SEM_STAT`, which
/// skips sets the caller may not read.
///
/// # Errors
/// The `errno` of `semctl`.
///
/// # References
/// - [semctl(2)](https://man7.org/linux/man-pages/man2/semctl.2.html)
pub fn list_semaphores() -> Result<Vec<SemInfo>> {
    ipc::list::<SemaphoreSet, _>(SemInfo::from_raw)
}

impl Kind for SemaphoreSet {
    type Ds = sys::semid_ds;
    const NOUN: &'static str = "semaphore set";
    const GET: &'static str = "semget";
    const CTL: &'static str = "semctl";
    const STAT: c_int = libc::SEM_STAT;
    const STAT_ANY: c_int = libc::SEM_STAT_ANY;

    fn get(key: Key, count: usize, flags: c_int) -> c_int {
        // `count` is checked against SEMMSL (a c_int) before a create; an
        // open passes 0.
        let count = c_int::try_from(count).unwrap_or(c_int::MAX);
        // SAFETY: semget takes plain integers.
        unsafe { libc::semget(key, count, flags) }
    }

    unsafe fn ctl(id: c_int, cmd: c_int, buf: *mut sys::semid_ds) -> c_int {
        // SAFETY: the caller's contract (see `Kind::ctl`): `buf` is null or
        // a `semid_ds`, passed in the pointer member of the union.
        unsafe { libc::semctl(id, 0, cmd, Semun { buf }) }
    }

    fn perm(ds: &mut sys::semid_ds) -> &mut libc::ipc_perm {
        &mut ds.sem_perm
    }

    fn usage() -> Result<(c_int, u64)> {
        let (max_index, usage) = sem_info(libc::SEM_INFO, "SEM_INFO")?;
        Ok((max_index, usage.semusz.max(0) as u64))
    }
}

/// A System V semaphore set, named by its semid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SemaphoreSet {
    id: i32,
}

impl SemaphoreSet {
    /// Creates a set of `count` semaphores: `semget(key, count, IPC_CREAT |
    /// IPC_EXCL | mode)`, then sets every value to `initial` (`SETALL`) and
    /// runs a no-op `semop` so that `sem_otime` is set: an opener that sees
    /// `op_time` set knows the values are initialised (the classic protocol
    /// of Stevens, UNIX Network Programming vol. 2).
    ///
    /// With `options.exclusive == false`, opens an existing set of that key
    /// instead (its values are left alone). Returns whether this call created
    /// it. `options.huge_pages` and `no_reserve` are ignored.
    ///
    /// # Errors
    /// `EEXIST`, `EINVAL` (`count` above `SEMMSL`, or more than an existing
    /// set has), `ENOSPC` (`SEMMNI` or `SEMMNS` reached), `EACCES`.
    ///
    /// # References
    /// - [semget(2)](https://man7.org/linux/man-pages/man2/semget.2.html)
    pub fn create(
        key: Key,
        count: usize,
        initial: u16,
        options: &CreateOptions,
    ) -> Result<(SemaphoreSet, bool)> {
        ipc::check_mode(options.mode)?;
        let max = max_semaphores_per_set()?;
        if count == 0 || count > max {
            return Err(Error::InvalidArgument(format!(
                "count must be from 1 to {max} (SEMMSL, kernel.sem), got {count}"
            )));
        }
        if initial > SEM_VALUE_MAX {
            return Err(Error::InvalidArgument(format!(
                "initial value must be at most {SEM_VALUE_MAX}, got {initial}"
            )));
        }
        let context = || format!("create key {} count {count}", hex_key(key));
        let (id, created) =
            ipc::create::<SemaphoreSet>(key, count, options.mode, 0, options.exclusive, context)?;
        let set = SemaphoreSet { id };
        if created {
            set.init(count, initial).map(|s| (s, true))
        } else {
            Ok((set, false))
        }
    }

    fn init(self, count: usize, initial: u16) -> Result<SemaphoreSet> {
        let values = vec![initial; count];
        let done = self.set_all(&values).and_then(|_| {
            // Net zero, but sets sem_otime: +1 then -1 (or the reverse at the
            // maximum value, where +1 would fail with ERANGE).
            let (a, b) = if initial == SEM_VALUE_MAX {
                (-1, 1)
            } else {
                (1, -1)
            };
            let ops = [
                SemOp {
                    index: 0,
                    delta: a,
                    undo: false,
                    nowait: true,
                },
                SemOp {
                    index: 0,
                    delta: b,
                    undo: false,
                    nowait: true,
                },
            ];
            self.op(&ops, None).map(drop)
        });
        match done {
            Ok(()) => Ok(self),
            Err(e) => {
                let _ = self.remove();
                Err(e)
            }
        }
    }

    /// Opens the existing set of `key`: `semget(key, 0, 0)`.
    ///
    /// # Errors
    /// `ENOENT` if no set has that key; [`Error::InvalidArgument`] for
    /// `IPC_PRIVATE`.
    ///
    /// # References
    /// - [semget(2)](https://man7.org/linux/man-pages/man2/semget.2.html)
    pub fn open(key: Key) -> Result<SemaphoreSet> {
        ipc::open::<SemaphoreSet>(key).map(SemaphoreSet::from_id)
    }

    /// Names the set with this semid (as `ipcs -s` prints it). No system call.
    pub const fn from_id(id: i32) -> SemaphoreSet {
        SemaphoreSet { id }
    }

    /// The semid.
    pub const fn id(&self) -> i32 {
        self.id
    }

    /// Applies `ops` atomically: `semop(id, ops, n)`, or `semtimedop` with a
    /// relative timeout. Retries after `EINTR` with the time left.
    ///
    /// # Errors
    /// `EIDRM` (removed, also while waiting), `EINVAL` (no such set, or an
    /// index out of range), `EFBIG` (index out of range), `ERANGE` (the value
    /// would exceed 32767), `E2BIG` (too many operations), `EACCES`.
    ///
    /// # References
    /// - [semop(2)](https://man7.org/linux/man-pages/man2/semop.2.html)
    pub fn op(&self, ops: &[SemOp], timeout: Option<Duration>) -> Result<OpOutcome> {
        let mut raw = sembufs(ops, false);
        let nowait = ops.iter().any(|o| o.nowait);
        let deadline = timeout.map(|t| Instant::now().checked_add(t));
        let syscall = if timeout.is_some() {
            "semtimedop"
        } else {
            "semop"
        };
        loop {
            let r = match deadline {
                None | Some(None) => {
                    // SAFETY: `raw` holds `raw.len()` initialised sembufs.
                    unsafe { libc::semop(self.id, raw.as_mut_ptr(), raw.len()) }
                }
                Some(Some(d)) => {
                    let left = d.saturating_duration_since(Instant::now());
                    let ts = libc::timespec {
                        tv_sec: left.as_secs() as sys::TimeT,
                        tv_nsec: left.subsec_nanos() as libc::c_long,
                    };
                    // SAFETY: `raw` holds `raw.len()` sembufs and `ts` is a
                    // valid timespec for the call.
                    unsafe {
                        libc::syscall(
                            libc::SYS_semtimedop,
                            self.id,
                            raw.as_mut_ptr(),
                            raw.len(),
                            &ts as *const libc::timespec,
                        ) as c_int
                    }
                }
            };
            match Errno::result(r) {
                Ok(_) => return Ok(OpOutcome::Done),
                Err(Errno::EAGAIN) if nowait => return Ok(OpOutcome::WouldBlock),
                Err(Errno::EAGAIN) if timeout.is_some() => return Ok(OpOutcome::TimedOut),
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    return Err(Error::os(
                        syscall,
                        e,
                        format!("{} on id {}", describe(ops), self.id),
                    ))
                }
            }
        }
    }

    /// [`SemaphoreSet::op`] that `cancel` can interrupt at once: one
    /// `semop(id, ops, n)` with `IPC_NOWAIT`, then, if it would block, a
    /// blocking `semop` that the wake-up signal of [`crate::wait`] ends
    /// (`EINTR`) when the deadline passes or the token is cancelled (see
    /// `wait::interruptible`). Nothing is applied unless the whole call succeeds.
    ///
    /// # Errors
    /// As [`SemaphoreSet::op`]; [`Error::Cancelled`] when `cancel` is
    /// cancelled first; `EIDRM` when the set is removed while waiting.
    ///
    /// # References
    /// - [semop(2)](https://man7.org/linux/man-pages/man2/semop.2.html)
    /// - [signal(7)](https://man7.org/linux/man-pages/man7/signal.7.html): `semop` is never
    ///   restarted after a signal handler.
    pub fn op_cancellable(
        &self,
        ops: &[SemOp],
        timeout: Option<Duration>,
        cancel: &CancelToken,
    ) -> Result<OpOutcome> {
        let start = Instant::now();
        let mut blocking = sembufs(ops, false);
        let mut nowait = sembufs(ops, true);
        let id = self.id;
        let context = || format!("{} on id {id}", describe(ops));
        let mut waited = false;
        // With a timeout, `semtimedop` (with no kernel timeout: the timer of
        // `wait::interruptible` keeps the deadline), as `op` names it.
        let syscall = if timeout.is_some() {
            "semtimedop"
        } else {
            "semop"
        };
        let mut attempt = |block: bool| -> std::result::Result<(), Errno> {
            let raw = if block { &mut blocking } else { &mut nowait };
            let r = if timeout.is_some() {
                // SAFETY: `raw` holds `raw.len()` initialised sembufs; a null
                // timeout is allowed (semtimedop then behaves as semop).
                unsafe {
                    libc::syscall(
                        libc::SYS_semtimedop,
                        id,
                        raw.as_mut_ptr(),
                        raw.len(),
                        std::ptr::null::<libc::timespec>(),
                    ) as c_int
                }
            } else {
                // SAFETY: `raw` holds `raw.len()` initialised sembufs.
                unsafe { libc::semop(id, raw.as_mut_ptr(), raw.len()) }
            };
            match Errno::result(r) {
                Ok(_) => Ok(()),
                // Removed while we waited between two tries (poll strategy):
                // the id is gone (EINVAL), but for the caller the set was
                // removed while it waited, as in one blocking semop.
                Err(Errno::EINVAL) if waited => Err(Errno::EIDRM),
                Err(e) => {
                    waited |= e == Errno::EAGAIN;
                    Err(e)
                }
            }
        };
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        match retry_eintr(|| attempt(false)) {
            Ok(()) => return Ok(OpOutcome::Done),
            Err(Errno::EAGAIN) if ops.iter().any(|o| o.nowait) => return Ok(OpOutcome::WouldBlock),
            Err(Errno::EAGAIN) => {}
            Err(e) => return Err(Error::os(syscall, e, context())),
        }
        let wait = timeout.map_or(Wait::Forever, Wait::Timeout);
        match wait::interruptible(start, wait, Some(cancel), Errno::EAGAIN, attempt) {
            Ok(()) => Ok(OpOutcome::Done),
            Err(Stop::TimedOut) => Ok(OpOutcome::TimedOut),
            Err(Stop::Cancelled) => Err(Error::Cancelled),
            Err(Stop::Os(e)) => Err(Error::os(syscall, e, context())),
        }
    }

    /// Runs [`SemaphoreSet::op_cancellable`] on a thread of the pool of
    /// [`crate::blocking`] and reports to `on_done` there; `on_done` is
    /// called exactly once (see [`blocking::run`]). The operations it
    /// applied are given back when the [`AppliedOps`] is dropped unkept: a
    /// unit taken for a caller that is gone (a terminated worker) is not lost.
    pub fn op_async(
        &self,
        ops: Vec<SemOp>,
        timeout: Option<Duration>,
        cancel: CancelToken,
        on_done: OnDone<AppliedOps>,
    ) {
        let set = *self;
        blocking::run(
            move || {
                let outcome = set.op_cancellable(&ops, timeout, &cancel)?;
                Ok(AppliedOps {
                    set,
                    ops,
                    outcome,
                    armed: true,
                })
            },
            on_done,
        );
    }

    fn ctl(&self, index: usize, cmd: c_int, arg: Semun, what: &str) -> Result<c_int> {
        // Checked, not cast: `1 << 32 as c_int` would be semaphore 0.
        let index = c_int::try_from(index).map_err(|_| {
            Error::InvalidArgument(format!(
                "semaphore index {index} is out of range (beyond a C int; see max_semaphores_per_set)"
            ))
        })?;
        // SAFETY: `arg` is the union semctl(2) expects for `cmd`: a value, or
        // a pointer to a live buffer of the size the command uses.
        let r = unsafe { libc::semctl(self.id, index, cmd, arg) };
        Errno::result(r).map_err(|e| Error::os("semctl", e, format!("{what} id {}", self.id)))
    }

    /// The value of semaphore `index`: `semctl(id, index, GETVAL)`.
    pub fn value(&self, index: usize) -> Result<u16> {
        self.ctl(index, libc::GETVAL, Semun { val: 0 }, "GETVAL")
            .map(|v| v as u16)
    }

    /// Sets semaphore `index`: `semctl(id, index, SETVAL, value)`. Clears
    /// every process's undo adjustment of it, and wakes waiters that can go.
    pub fn set_value(&self, index: usize, value: u16) -> Result<()> {
        if value > SEM_VALUE_MAX {
            return Err(Error::InvalidArgument(format!(
                "value must be at most {SEM_VALUE_MAX}, got {value}"
            )));
        }
        self.ctl(
            index,
            libc::SETVAL,
            Semun {
                val: c_int::from(value),
            },
            "SETVAL",
        )
        .map(drop)
    }

    /// Every value: `semctl(id, 0, GETALL, array)`.
    pub fn values(&self) -> Result<Vec<u16>> {
        let n = self.stat()?.count;
        let mut out = vec![0u16; n];
        self.ctl(
            0,
            libc::GETALL,
            Semun {
                array: out.as_mut_ptr(),
            },
            "GETALL",
        )?;
        Ok(out)
    }

    /// Sets every value: `semctl(id, 0, SETALL, array)`; `values` must have one
    /// entry per semaphore.
    pub fn set_all(&self, values: &[u16]) -> Result<()> {
        if let Some(v) = values.iter().find(|&&v| v > SEM_VALUE_MAX) {
            return Err(Error::InvalidArgument(format!(
                "values must be at most {SEM_VALUE_MAX}, got {v}"
            )));
        }
        let n = self.stat()?.count;
        if values.len() != n {
            return Err(Error::InvalidArgument(format!(
                "the set has {n} semaphores, {} values were given",
                values.len()
            )));
        }
        let mut copy = values.to_vec();
        self.ctl(
            0,
            libc::SETALL,
            Semun {
                array: copy.as_mut_ptr(),
            },
            "SETALL",
        )
        .map(drop)
    }

    /// How many processes wait for semaphore `index` to increase
    /// (`GETNCNT`) and to become zero (`GETZCNT`).
    pub fn waiting(&self, index: usize) -> Result<(u32, u32)> {
        let n = self.ctl(index, libc::GETNCNT, Semun { val: 0 }, "GETNCNT")?;
        let z = self.ctl(index, libc::GETZCNT, Semun { val: 0 }, "GETZCNT")?;
        Ok((n as u32, z as u32))
    }

    /// The pid of the last process that operated on semaphore `index` (`GETPID`).
    pub fn last_pid(&self, index: usize) -> Result<i32> {
        self.ctl(index, libc::GETPID, Semun { val: 0 }, "GETPID")
    }
    info_methods!(
        SemaphoreSet,
        SemInfo,
        "semctl",
        "0, ",
        "SEM",
        "semid_ds",
        "set",
        "-s",
        set
    );

    /// Removes the set at once: `semctl(id, 0, IPC_RMID)`. Processes waiting
    /// in `semop` wake with `EIDRM`.
    ///
    /// # Errors
    /// `EPERM` unless the caller is the owner or creator; `EINVAL`/`EIDRM` if
    /// it is already gone.
    ///
    /// # References
    /// - [semctl(2)](https://man7.org/linux/man-pages/man2/semctl.2.html)
    pub fn remove(&self) -> Result<()> {
        ipc::remove::<SemaphoreSet>(self.id)
    }
}

/// `ops` as `struct sembuf`s; with `IPC_NOWAIT` on every one if `nowait`.
fn sembufs(ops: &[SemOp], nowait: bool) -> Vec<libc::sembuf> {
    ops.iter()
        .map(|o| libc::sembuf {
            sem_num: o.index,
            sem_op: o.delta,
            sem_flg: ((if o.undo { libc::SEM_UNDO } else { 0 })
                | (if o.nowait || nowait {
                    libc::IPC_NOWAIT
                } else {
                    0
                })) as libc::c_short,
        })
        .collect()
}

/// Calls `f` again while it fails with `EINTR`.
fn retry_eintr<T>(
    mut f: impl FnMut() -> std::result::Result<T, Errno>,
) -> std::result::Result<T, Errno> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

fn describe(ops: &[SemOp]) -> String {
    let parts: Vec<String> = ops
        .iter()
        .map(|o| {
            format!(
                "sem {} {:+}{}",
                o.index,
                o.delta,
                if o.undo { " undo" } else { "" }
            )
        })
        .collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Removes its set when dropped, so that a failed assertion leaks none.
    struct Guard(Option<SemaphoreSet>);

    impl Guard {
        /// `IPC_RMID` now (the drop then does nothing).
        fn remove(&mut self) -> Result<()> {
            self.0.take().map_or(Ok(()), |s| s.remove())
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(set) = self.0.take() {
                // Never panics: a set already gone is nothing to remove.
                let _ = set.remove();
            }
        }
    }

    /// A new private set and the guard that removes it.
    fn private(count: usize, initial: u16, options: &CreateOptions) -> (SemaphoreSet, Guard) {
        let (set, _) = SemaphoreSet::create(libc::IPC_PRIVATE, count, initial, options).unwrap();
        (set, Guard(Some(set)))
    }

    #[test]
    fn an_async_op_dropped_unkept_gives_back_what_it_took() {
        let (set, _guard) = private(2, 0, &CreateOptions::default());
        set.set_all(&[3, 0]).unwrap();
        let run = |ops: Vec<SemOp>| {
            let (tx, rx) = std::sync::mpsc::channel();
            set.op_async(
                ops,
                None,
                CancelToken::new(),
                Box::new(move |r| tx.send(r).unwrap()),
            );
            rx.recv().unwrap().unwrap()
        };
        let op = |index, delta, undo| SemOp {
            index,
            delta,
            undo,
            nowait: false,
        };
        // Took 2 of semaphore 0 (with SEM_UNDO) and released 1 of semaphore 1.
        let applied = run(vec![op(0, -2, true), op(1, 1, false)]);
        assert_eq!(applied.outcome(), OpOutcome::Done);
        assert_eq!(set.values().unwrap(), vec![1, 1]);
        drop(applied);
        // The take given back, the release standing.
        assert_eq!(set.values().unwrap(), vec![3, 1]);
        // Kept: nothing given back.
        assert_eq!(run(vec![op(0, -1, false)]).keep(), OpOutcome::Done);
        assert_eq!(set.values().unwrap(), vec![2, 1]);
        // Not applied (would block): nothing to give back.
        let nowait = SemOp {
            nowait: true,
            ..op(0, -5, false)
        };
        drop(run(vec![nowait]));
        assert_eq!(set.values().unwrap(), vec![2, 1]);
    }

    #[test]
    fn the_guard_removes_the_set_when_a_test_panics() {
        let id = std::panic::catch_unwind(|| {
            let (set, _guard) = private(1, 0, &CreateOptions::default());
            std::panic::resume_unwind(Box::new(set.id()));
        })
        .unwrap_err();
        let id = *id.downcast::<i32>().unwrap();
        let gone = SemaphoreSet::from_id(id).stat().unwrap_err();
        assert_eq!(gone.errno(), Some(Errno::EINVAL));
    }

    #[test]
    fn create_values_ops_and_remove() {
        let (set, created) =
            SemaphoreSet::create(libc::IPC_PRIVATE, 3, 2, &CreateOptions::default()).unwrap();
        let mut guard = Guard(Some(set));
        assert!(created);
        assert_eq!(set.values().unwrap(), vec![2, 2, 2]);
        assert!(set.stat().unwrap().op_time.is_some(), "initialised");
        let take = |n: i16, nowait| SemOp {
            index: 1,
            delta: -n,
            undo: true,
            nowait,
        };
        assert_eq!(set.op(&[take(2, true)], None).unwrap(), OpOutcome::Done);
        assert_eq!(
            set.op(&[take(1, true)], None).unwrap(),
            OpOutcome::WouldBlock
        );
        let t = Some(Duration::from_millis(2));
        assert_eq!(set.op(&[take(1, false)], t).unwrap(), OpOutcome::TimedOut);
        set.set_value(1, 5).unwrap();
        assert_eq!(set.value(1).unwrap(), 5);
        set.set_all(&[0, 1, 2]).unwrap();
        assert_eq!(set.values().unwrap(), vec![0, 1, 2]);
        assert_eq!(set.waiting(0).unwrap(), (0, 0));
        let zero = SemOp {
            index: 0,
            delta: 0,
            undo: false,
            nowait: true,
        };
        assert_eq!(set.op(&[zero], None).unwrap(), OpOutcome::Done);
        assert!(set.set_all(&[1]).is_err());
        guard.remove().unwrap();
        assert_eq!(set.value(0).unwrap_err().errno(), Some(Errno::EINVAL));
    }

    #[test]
    fn list_finds_the_set_as_stat_shows_it() {
        let options = CreateOptions {
            mode: 0o640,
            ..CreateOptions::default()
        };
        let (set, mut guard) = private(4, 1, &options);
        let listed = list_semaphores().unwrap();
        let me = listed.iter().find(|s| s.id == set.id()).cloned();
        let stat = set.stat().unwrap();
        guard.remove().unwrap();
        assert_eq!(me, Some(stat.clone()));
        assert_eq!((stat.count, stat.perm.mode, stat.perm.key), (4, 0o640, 0));
        assert!(!list_semaphores().unwrap().iter().any(|s| s.id == set.id()));
    }

    #[test]
    fn stat_any_finds_the_slot_of_the_id() {
        let (set, mut guard) = private(2, 0, &CreateOptions::default());
        let any = set.stat_any();
        let stat = set.stat().unwrap();
        guard.remove().unwrap();
        assert_eq!(any, Some(stat));
        assert!(set.stat_any().is_none(), "removed: the slot is empty");
    }

    #[test]
    fn an_index_beyond_c_int_is_an_error_not_semaphore_0() {
        let (set, _guard) = private(1, 7, &CreateOptions::default());
        let big = 1usize << 32;
        let got = (set.value(big), set.set_value(big, 3), set.waiting(big));
        assert!(
            matches!(got.0, Err(Error::InvalidArgument(_))),
            "{:?}",
            got.0
        );
        assert!(
            matches!(got.1, Err(Error::InvalidArgument(_))),
            "{:?}",
            got.1
        );
        assert!(
            matches!(got.2, Err(Error::InvalidArgument(_))),
            "{:?}",
            got.2
        );
        assert_eq!(set.value(0).unwrap(), 7, "semaphore 0 untouched");
    }
}
