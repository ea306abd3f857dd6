//! What System V segments, semaphore sets and message queues share: a key
//! and an id, the permissions of `struct ipc_perm` ([`Perm`]), and the same
//! calls under three names (`shmget`/`semget`/`msgget`,
//! `shmctl`/`semctl`/`msgctl` with `IPC_STAT`, `IPC_SET`, `IPC_RMID`,
//! `*_STAT_ANY` and `*_INFO`).
//!
//! Each kind implements [`Kind`] with its raw calls; the logic is written
//! once here, generic over the kind: open-or-create with the retry loop
//! ([`create`]), [`open`], [`stat`], [`stat_any`] (the slot probe),
//! [`set`] (stat, then `IPC_SET` of owner and mode), [`remove`] and
//! [`list`] (the scan `ipcs` makes). [`Segment`](crate::Segment),
//! [`SemaphoreSet`](crate::SemaphoreSet) and
//! [`MessageQueue`](crate::MessageQueue) add only their own calls.
//!
//! # References
//! - [sysvipc(7)](https://man7.org/linux/man-pages/man7/sysvipc.7.html)
//! - [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html),
//!   [semctl(2)](https://man7.org/linux/man-pages/man2/semctl.2.html),
//!   [msgctl(2)](https://man7.org/linux/man-pages/man2/msgctl.2.html)

use std::mem::MaybeUninit;
use std::ptr;

use libc::c_int;
use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::sys;
use crate::Key;

/// The key that names no object: `*get(IPC_PRIVATE, …)` always creates a new
/// one, reachable only by its id.
pub const IPC_PRIVATE: Key = libc::IPC_PRIVATE;

/// The largest permission mode: the low 9 bits (`rwxrwxrwx`).
pub const MODE_MASK: u32 = 0o777;

/// Owner, creator, key and permission bits of an IPC object: the fields of
/// `struct ipc_perm` that `ipcs` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The key (`IPC_PRIVATE`, 0, for a private object; a segment marked
    /// removed reads 0 too).
    pub key: Key,
    /// Permission bits (the low 9 bits of `mode`).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Creator uid.
    pub cuid: u32,
    /// Creator gid.
    pub cgid: u32,
}

impl Perm {
    /// Reads `struct ipc_perm`.
    pub(crate) fn from_raw(p: &libc::ipc_perm) -> Perm {
        Perm {
            key: sys::perm_key(p),
            mode: p.mode as u32 & MODE_MASK,
            uid: p.uid,
            gid: p.gid,
            cuid: p.cuid,
            cgid: p.cgid,
        }
    }
}

/// What [`Segment::set`](crate::Segment::set),
/// [`SemaphoreSet::set`](crate::SemaphoreSet::set) and
/// [`MessageQueue::set`](crate::MessageQueue::set) change (`IPC_SET`);
/// `None` keeps the current value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetOptions {
    /// New owner uid.
    pub uid: Option<u32>,
    /// New owner gid.
    pub gid: Option<u32>,
    /// New permission bits (low 9 bits).
    pub mode: Option<u32>,
}

/// One kind of System V IPC object: its calls and commands.
pub(crate) trait Kind {
    /// The kernel's description of one object (`struct shmid_ds`, …).
    type Ds: Copy;
    /// What `ipcs` and error messages call one object: `"segment"`.
    const NOUN: &'static str;
    /// The C function that creates and opens: `"shmget"`.
    const GET: &'static str;
    /// The C function that controls: `"shmctl"`.
    const CTL: &'static str;
    /// `*_STAT`: `IPC_STAT` by slot index, returning the id.
    const STAT: c_int;
    /// `*_STAT_ANY` (Linux 4.17): `*_STAT` without the read-permission check.
    const STAT_ANY: c_int;

    /// `*get(key, arg, flags)`; `arg` is the size or the count where the
    /// kind takes one. Returns the raw result (-1 and `errno` on failure).
    fn get(key: Key, arg: usize, flags: c_int) -> c_int;

    /// `*ctl(id, cmd, buf)`. Returns the raw result.
    ///
    /// # Safety
    /// `buf` is null for a command that takes no buffer, else points to a
    /// writable `Ds` (or, for an `*_INFO` command, to the struct it fills).
    unsafe fn ctl(id: c_int, cmd: c_int, buf: *mut Self::Ds) -> c_int;

    /// The `ipc_perm` inside `ds`.
    fn perm(ds: &mut Self::Ds) -> &mut libc::ipc_perm;

    /// `*ctl(0, *_INFO, …)`: the highest slot index in use, and how many
    /// objects of this kind exist.
    fn usage() -> Result<(c_int, u64)>;
}

/// The `stat`, `stat_any` and (but for queues, whose `set` also changes
/// `msg_qbytes`) `set` methods of a kind, written once; each kind's `impl`
/// invokes it with its C names (`shmctl`; the `0, ` of `semctl`'s semnum;
/// the `SHM` of `SHM_STAT_ANY`; `shmid_ds`; its noun; its `ipcs` flag), so
/// that each method's documentation still opens with its own C call.
macro_rules! info_methods {
    ($kind:ident, $info:ident, $ctl:literal, $num:literal, $pre:literal, $ds:literal,
     $noun:literal, $ipcs:literal) => {
        #[doc = concat!("Reads `struct ", $ds, "`: `", $ctl, "(id, ", $num, "IPC_STAT, &buf)`.")]
        ///
        /// # Errors
        #[doc = concat!("`EACCES` without read permission, `EINVAL`/`EIDRM` for no such ", $noun, ".")]
        ///
        /// # References
        #[doc = concat!("- [", $ctl, "(2)](https://man7.org/linux/man-pages/man2/", $ctl, ".2.html)")]
        pub fn stat(&self) -> $crate::Result<$info> {
            $crate::ipc::stat::<$kind>(self.id).map(|ds| $info::from_raw(self.id, &ds))
        }

        #[doc = concat!("Reads `struct ", $ds, "` without read permission: `", $ctl, "(index, ",
            $num, $pre, "_STAT_ANY, &buf)` of the slot of this id (Linux 4.17), as `ipcs ", $ipcs,
            "` does; `None` where the kernel does not know the command or the ", $noun, " is gone.")]
        ///
        /// # References
        #[doc = concat!("- [", $ctl, "(2)](https://man7.org/linux/man-pages/man2/", $ctl, ".2.html)")]
        pub fn stat_any(&self) -> Option<$info> {
            $crate::ipc::stat_any::<$kind>(self.id).map(|ds| $info::from_raw(self.id, &ds))
        }
    };
    ($kind:ident, $info:ident, $ctl:literal, $num:literal, $pre:literal, $ds:literal,
     $noun:literal, $ipcs:literal, set) => {
        $crate::ipc::info_methods!($kind, $info, $ctl, $num, $pre, $ds, $noun, $ipcs);

        #[doc = concat!("Changes owner and mode: `", $ctl, "(id, ", $num, "IPC_SET, &buf)` after `IPC_STAT`.")]
        ///
        /// `IPC_SET` needs no read permission, so an owner may restore a mode
        /// that shuts it out (`0o000`): where `IPC_STAT` fails with `EACCES`, the
        #[doc = concat!("current values come from `", $pre, "_STAT_ANY` (Linux 4.17) instead.")]
        ///
        /// # Errors
        /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for mode
        /// bits outside 0o777; `EPERM` unless the caller is the owner or
        /// creator (or privileged).
        ///
        /// # References
        #[doc = concat!("- [", $ctl, "(2)](https://man7.org/linux/man-pages/man2/", $ctl, ".2.html)")]
        pub fn set(&self, options: &$crate::SetOptions) -> $crate::Result<()> {
            $crate::ipc::set::<$kind>(self.id, options, |_| Ok(()))
        }
    };
}
pub(crate) use info_methods;

/// Formats a key the way `ipcs` prints it.
pub(crate) fn hex_key(key: Key) -> String {
    format!("0x{:08x}", key as u32)
}

/// Refuses permission bits outside [`MODE_MASK`], before any system call.
///
/// # Errors
/// [`Error::InvalidArgument`].
pub(crate) fn check_mode(mode: u32) -> Result<()> {
    if mode & !MODE_MASK != 0 {
        return Err(Error::InvalidArgument(format!(
            "mode 0o{mode:o} has bits outside 0o777"
        )));
    }
    Ok(())
}

/// `*get(key, arg, flags)`: the id.
///
/// # Errors
/// The `errno` of the call, with `context`.
pub(crate) fn get<K: Kind>(
    key: Key,
    arg: usize,
    flags: c_int,
    context: impl FnOnce() -> String,
) -> Result<i32> {
    Errno::result(K::get(key, arg, flags)).map_err(|e| Error::os(K::GET, e, context()))
}

/// Creates an object: `*get(key, arg, IPC_CREAT | IPC_EXCL | mode | flags)`.
/// Returns the id and whether this call created it.
///
/// When `exclusive` is false and the key is taken, opens the existing object
/// instead (`*get(key, arg, 0)`): the create is tried first so that the
/// caller learns whether it made the object; if another process removes it
/// between the two calls (`ENOENT`), both are tried again, up to 8 times.
///
/// # Errors
/// [`Error::InvalidArgument`] for a bad `mode`; the `errno` of the call
/// (`EEXIST` when exclusive and the key is taken); the open's `ENOENT`
/// when the key kept changing hands 8 times (the context says so).
pub(crate) fn create<K: Kind>(
    key: Key,
    arg: usize,
    mode: u32,
    flags: c_int,
    exclusive: bool,
    context: impl Fn() -> String,
) -> Result<(i32, bool)> {
    check_mode(mode)?;
    let flags = libc::IPC_CREAT | libc::IPC_EXCL | mode as c_int | flags;
    if key == IPC_PRIVATE {
        return get::<K>(key, arg, flags, context).map(|id| (id, true));
    }
    const TRIES: u32 = 8;
    let mut removed = None;
    for _ in 0..TRIES {
        match get::<K>(key, arg, flags, &context) {
            Ok(id) => return Ok((id, true)),
            Err(e) if !exclusive && e.errno() == Some(Errno::EEXIST) => {}
            Err(e) => return Err(e),
        }
        // Flags 0: permissions are checked by the use made of the id.
        match get::<K>(key, arg, 0, || open_context(key, arg)) {
            Ok(id) => return Ok((id, false)),
            Err(e) if e.errno() == Some(Errno::ENOENT) => removed = Some(e),
            Err(e) => return Err(e),
        }
    }
    // The real last error, not an invented one: the object was removed
    // between the create and the open every time.
    Err(match removed {
        Some(Error::Os {
            syscall,
            errno,
            context,
        }) => Error::os(
            syscall,
            errno,
            format!("{context}: removed between create and open {TRIES} times in a row"),
        ),
        Some(e) => e,
        None => Error::os(K::GET, Errno::ENOENT, context()),
    })
}

fn open_context(key: Key, arg: usize) -> String {
    match arg {
        0 => format!("open key {}", hex_key(key)),
        n => format!("open key {} size {n}", hex_key(key)),
    }
}

/// Opens the existing object of `key`: `*get(key, 0, 0)`.
///
/// # Errors
/// [`Error::InvalidArgument`] for [`IPC_PRIVATE`], which names no object;
/// `ENOENT` when no object has that key, `EACCES`.
pub(crate) fn open<K: Kind>(key: Key) -> Result<i32> {
    if key == IPC_PRIVATE {
        return Err(Error::InvalidArgument(format!(
            "IPC_PRIVATE names no {}: open it by id",
            K::NOUN
        )));
    }
    get::<K>(key, 0, 0, || open_context(key, 0))
}

/// `*ctl(id, cmd, buf)`.
///
/// # Safety
/// As [`Kind::ctl`].
unsafe fn ctl<K: Kind>(id: i32, cmd: c_int, buf: *mut K::Ds, what: &str) -> Result<c_int> {
    // SAFETY: the caller's contract.
    let r = unsafe { K::ctl(id, cmd, buf) };
    Errno::result(r).map_err(|e| Error::os(K::CTL, e, format!("{what} {} {id}", K::NOUN)))
}

/// `*ctl(id, IPC_STAT, &buf)`.
///
/// # Errors
/// `EACCES` without read permission, `EINVAL`/`EIDRM` for no such object.
pub(crate) fn stat<K: Kind>(id: i32) -> Result<K::Ds> {
    let mut ds = MaybeUninit::<K::Ds>::zeroed();
    // SAFETY: `ds` is a writable `Ds`, which IPC_STAT fills.
    unsafe { ctl::<K>(id, libc::IPC_STAT, ds.as_mut_ptr(), "stat")? };
    // SAFETY: zero is valid for every field (plain integers) and the kernel
    // filled the struct on success.
    Ok(unsafe { ds.assume_init() })
}

/// `*ctl(index, cmd, &buf)` for `*_STAT` or `*_STAT_ANY`: the object in slot
/// `index` and its id.
fn stat_slot<K: Kind>(index: c_int, cmd: c_int) -> std::result::Result<(i32, K::Ds), Errno> {
    let mut ds = MaybeUninit::<K::Ds>::zeroed();
    // SAFETY: `ds` is a writable `Ds`, which *_STAT(_ANY) fills.
    let id = Errno::result(unsafe { K::ctl(index, cmd, ds.as_mut_ptr()) })?;
    // SAFETY: zeroed is valid for every field and the kernel filled it.
    Ok((id, unsafe { ds.assume_init() }))
}

/// `*ctl(index, *_STAT_ANY, &buf)` of the slot of `id`, which checks no read
/// permission; `None` where the kernel does not know the command (before
/// 4.17), the slot holds another object, or the object is gone. The slot is
/// the low 15 bits of the id, or the low 24 with `ipcmni_extend` (see
/// `ipcid_to_idx` in the kernel's `ipc/util.h`); the id the call returns
/// tells which is right.
pub(crate) fn stat_any<K: Kind>(id: i32) -> Option<K::Ds> {
    [id & 0x7fff, id & 0xff_ffff].into_iter().find_map(|index| {
        match stat_slot::<K>(index, K::STAT_ANY) {
            Ok((found, ds)) if found == id => Some(ds),
            _ => None,
        }
    })
}

/// Changes owner and mode: `*ctl(id, IPC_SET, &buf)` after `IPC_STAT`;
/// `more` changes what else the kind sets in the same call.
///
/// `IPC_SET` needs no read permission, so an owner may restore a mode that
/// shuts it out (`0o000`): where `IPC_STAT` fails with `EACCES`, the current
/// values come from `*_STAT_ANY` (Linux 4.17) instead.
///
/// # Errors
/// [`Error::InvalidArgument`] for a bad mode (or what `more` refuses);
/// `EPERM` unless the caller is the owner or creator (or privileged).
pub(crate) fn set<K: Kind>(
    id: i32,
    options: &SetOptions,
    more: impl FnOnce(&mut K::Ds) -> Result<()>,
) -> Result<()> {
    if let Some(mode) = options.mode {
        check_mode(mode)?;
    }
    let mut ds = match stat::<K>(id) {
        Err(e) if e.errno() == Some(Errno::EACCES) => stat_any::<K>(id).ok_or(e)?,
        r => r?,
    };
    let perm = K::perm(&mut ds);
    if let Some(uid) = options.uid {
        perm.uid = uid;
    }
    if let Some(gid) = options.gid {
        perm.gid = gid;
    }
    if let Some(mode) = options.mode {
        // The kernel takes only the low 9 bits from IPC_SET.
        perm.mode = mode as _;
    }
    more(&mut ds)?;
    // SAFETY: `ds` is an initialised `Ds`, which IPC_SET reads.
    unsafe { ctl::<K>(id, libc::IPC_SET, &mut ds, "set") }.map(drop)
}

/// Removes the object: `*ctl(id, IPC_RMID, NULL)`.
///
/// # Errors
/// `EPERM` unless the caller is the owner or creator; `EINVAL`/`EIDRM` if it
/// is already gone.
pub(crate) fn remove<K: Kind>(id: i32) -> Result<()> {
    // SAFETY: IPC_RMID takes no buffer.
    unsafe { ctl::<K>(id, libc::IPC_RMID, ptr::null_mut(), "remove") }.map(drop)
}

/// `*ctl(id, cmd, NULL)` for a command of the kind that takes no buffer
/// (`SHM_LOCK`, …).
///
/// # Errors
/// The `errno` of the call.
pub(crate) fn command<K: Kind>(id: i32, cmd: c_int, what: &str) -> Result<()> {
    // SAFETY: the command takes no buffer.
    unsafe { ctl::<K>(id, cmd, ptr::null_mut(), what) }.map(drop)
}

/// Every object of the kind in this IPC namespace, as `ipcs` lists them:
/// `*ctl(0, *_INFO, …)` for the highest index in use, then `*ctl(index,
/// *_STAT_ANY, …)` for each index. Kernels before 4.17 do not know
/// `*_STAT_ANY`; there it falls back to `*_STAT`, which skips objects the
/// caller may not read.
///
/// Each object is turned into the kind's info by `info(id, &ds)`.
///
/// # Errors
/// The `errno` of `*_INFO`, or of a `*_STAT` that fails otherwise than for an
/// empty slot, a removed object or no permission.
pub(crate) fn list<K: Kind, I>(info: impl Fn(i32, &K::Ds) -> I) -> Result<Vec<I>> {
    let (max_index, used) = K::usage()?;
    let mut all = scan::<K>(K::STAT_ANY, max_index)?;
    if all.is_empty() && used > 0 {
        all = scan::<K>(K::STAT, max_index)?;
    }
    Ok(all.iter().map(|(id, ds)| info(*id, ds)).collect())
}

fn scan<K: Kind>(cmd: c_int, max_index: c_int) -> Result<Vec<(i32, K::Ds)>> {
    let mut out = Vec::new();
    for index in 0..=max_index {
        match stat_slot::<K>(index, cmd) {
            Ok(found) => out.push(found),
            // An unused slot, one removed meanwhile, or one we may not read.
            Err(Errno::EINVAL | Errno::EIDRM | Errno::EACCES) => {}
            Err(e) => return Err(Error::os(K::CTL, e, format!("STAT index {index}"))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MessageQueue, Segment, SemaphoreSet};

    fn perm_of<K: Kind>(mut ds: K::Ds) -> Perm {
        Perm::from_raw(K::perm(&mut ds))
    }

    /// Removes the object when dropped, so that a failed assertion leaks none.
    struct Guard<K: Kind>(i32, std::marker::PhantomData<K>);
    impl<K: Kind> Drop for Guard<K> {
        fn drop(&mut self) {
            let _ = remove::<K>(self.0);
        }
    }

    /// The whole life of one object of kind `K`, the same for every kind.
    fn life<K: Kind>(arg: usize) {
        let key = 0x1bc0_0000 | (std::process::id() as i32 & 0xffff) << 4 | arg as i32 & 0xf;
        let none = || String::from("test");
        let (id, created) = create::<K>(key, arg, 0o600, 0, false, none).unwrap();
        let _guard = Guard::<K>(id, std::marker::PhantomData);
        assert!(created);
        assert_eq!(
            create::<K>(key, arg, 0o600, 0, false, none).unwrap(),
            (id, false)
        );
        let taken = create::<K>(key, arg, 0o600, 0, true, none);
        assert_eq!(
            taken.unwrap_err().errno(),
            Some(Errno::EEXIST),
            "{}",
            K::NOUN
        );
        assert_eq!(open::<K>(key).unwrap(), id);
        assert!(matches!(
            open::<K>(IPC_PRIVATE),
            Err(Error::InvalidArgument(_))
        ));
        let bad = create::<K>(key, arg, 0o1777, 0, false, none);
        assert!(matches!(bad, Err(Error::InvalidArgument(_))), "{}", K::NOUN);

        let perm = perm_of::<K>(stat::<K>(id).unwrap());
        assert_eq!((perm.key, perm.mode, perm.uid), (key, 0o600, perm.cuid));
        assert_eq!(stat_any::<K>(id).map(perm_of::<K>), Some(perm));
        // Mode 0: IPC_STAT fails with EACCES (unless privileged), and set
        // still restores the mode through STAT_ANY.
        let zero = SetOptions {
            mode: Some(0),
            ..SetOptions::default()
        };
        set::<K>(id, &zero, |_| Ok(())).unwrap();
        let back = SetOptions {
            mode: Some(0o640),
            ..SetOptions::default()
        };
        set::<K>(id, &back, |_| Ok(())).unwrap();
        let listed = list::<K, _>(|found, ds| (found, perm_of::<K>(*ds))).unwrap();
        let me = listed.into_iter().find(|(found, _)| *found == id);
        assert_eq!(me.map(|(_, perm)| perm.mode), Some(0o640));

        remove::<K>(id).unwrap();
        assert!(stat_any::<K>(id).is_none(), "removed: the slot is empty");
        let gone = stat::<K>(id).err().and_then(|e| e.errno());
        assert!(
            matches!(gone, Some(Errno::EINVAL | Errno::EIDRM)),
            "{gone:?}"
        );
    }

    #[test]
    fn a_segment_lives_as_every_kind_does() {
        life::<Segment>(64);
    }

    #[test]
    fn a_queue_lives_as_every_kind_does() {
        life::<MessageQueue>(0);
    }

    #[test]
    fn a_semaphore_set_lives_as_every_kind_does() {
        life::<SemaphoreSet>(2);
    }
}
