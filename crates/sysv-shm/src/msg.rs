//! [`MessageQueue`]: a System V message queue, with `msgget`, `msgsnd`,
//! `msgrcv` and `msgctl`; [`list_queues`] and [`queue_limits`] are `ipcs -q`
//! and `ipcs -q -l`.
//!
//! A message is a positive type (`mtype`, a C `long`) and 0 or more bytes.
//! On the wire it is `struct msgbuf { long mtype; char mtext[]; }`; this
//! module builds that in a `Vec<c_long>`, so the type is aligned as C aligns
//! it and the text follows it with no padding, as in C and Python.
//!
//! Blocking calls can be given a timeout ([`Wait::Timeout`]) and a
//! [`CancelToken`]; the kernel has neither, see [`crate::wait`] for how they
//! are made (a per-thread timer signal, costing no CPU while waiting).
//!
//! # References
//! - [msgget(2)](https://man7.org/linux/man-pages/man2/msgget.2.html),
//!   [msgop(2)](https://man7.org/linux/man-pages/man2/msgop.2.html),
//!   [msgctl(2)](https://man7.org/linux/man-pages/man2/msgctl.2.html),
//!   [sysvipc(7)](https://man7.org/linux/man-pages/man7/sysvipc.7.html)

use std::mem::{self, MaybeUninit};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

use libc::{c_int, c_long};
use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::ipc::{self, hex_key, info_methods, Kind, Perm, SetOptions};
use crate::sys;
use crate::wait::{self, CancelToken, Stop, Wait};
use crate::Key;

/// `msgctl` command (Linux 4.17): `MSG_STAT` without the read-permission
/// check; from `<linux/msg.h>`.
const MSG_STAT_ANY: c_int = 13;

/// The size of `mtype`, and the alignment of `struct msgbuf`.
const WORD: usize = mem::size_of::<c_long>();

/// How [`MessageQueue::create`] makes a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    /// Permission bits (low 9 bits of `msgflg`). Default `0o600`.
    pub mode: u32,
    /// `IPC_EXCL`: fail with `EEXIST` if the key is taken. Default `true`.
    /// When `false`, an existing queue of that key is opened.
    pub exclusive: bool,
    /// `msg_qbytes` for a queue this call creates (set with `IPC_SET` right
    /// after `msgget`); `None` keeps the kernel's default, `msgmnb`. Above
    /// `msgmnb` it needs `CAP_SYS_RESOURCE`. Ignored for an existing queue.
    pub max_bytes: Option<u64>,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            mode: 0o600,
            exclusive: true,
            max_bytes: None,
        }
    }
}

/// What [`MessageQueue::set`] changes (`IPC_SET`); `None` keeps the value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueSetOptions {
    /// New owner uid.
    pub uid: Option<u32>,
    /// New owner gid.
    pub gid: Option<u32>,
    /// New permission bits (low 9 bits).
    pub mode: Option<u32>,
    /// New `msg_qbytes`; raising it above `msgmnb` needs `CAP_SYS_RESOURCE`.
    pub max_bytes: Option<u64>,
}

/// A snapshot of `struct msqid_ds`, as `msgctl(IPC_STAT)` or `ipcs -q` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// The msqid.
    pub id: i32,
    /// Key, owner, creator and mode.
    pub perm: Perm,
    /// Messages in the queue (`msg_qnum`).
    pub messages: u64,
    /// Bytes of text in the queue (`msg_cbytes`), types not counted.
    pub bytes: u64,
    /// The most bytes of text the queue may hold (`msg_qbytes`); also the
    /// most messages it may hold.
    pub max_bytes: u64,
    /// Pid of the last `msgsnd` (`msg_lspid`), 0 if none.
    pub last_send_pid: i32,
    /// Pid of the last `msgrcv` (`msg_lrpid`), 0 if none.
    pub last_receive_pid: i32,
    /// Last `msgsnd`, if any.
    pub send_time: Option<SystemTime>,
    /// Last `msgrcv`, if any.
    pub receive_time: Option<SystemTime>,
    /// Last change (creation or `IPC_SET`).
    pub change_time: Option<SystemTime>,
}

impl QueueInfo {
    // The field types (msgqnum_t, msglen_t, __msg_cbytes) differ by target.
    #[allow(clippy::unnecessary_cast)]
    fn from_raw(id: i32, ds: &libc::msqid_ds) -> Self {
        QueueInfo {
            id,
            perm: Perm::from_raw(&ds.msg_perm),
            messages: ds.msg_qnum as u64,
            bytes: ds.__msg_cbytes as u64,
            max_bytes: ds.msg_qbytes as u64,
            last_send_pid: ds.msg_lspid,
            last_receive_pid: ds.msg_lrpid,
            send_time: sys::epoch_time(ds.msg_stime),
            receive_time: sys::epoch_time(ds.msg_rtime),
            change_time: sys::epoch_time(ds.msg_ctime),
        }
    }
}

/// One message: its type and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `mtype`: positive.
    pub mtype: i64,
    /// `mtext`.
    pub data: Vec<u8>,
}

/// Which message [`MessageQueue::receive`] takes, and how. The default is
/// any message (`mtype` 0) of any size the kernel allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Receive {
    /// `msgtyp`: 0 takes the first message; `n > 0` the first of type `n`
    /// (with `except`, the first of any other type); `n < 0` the first of
    /// the lowest type `<= |n|`.
    pub mtype: i64,
    /// The largest message text accepted; a longer one fails with `E2BIG`
    /// and stays in the queue (unless `truncate`). `None`: the largest the
    /// kernel allows (`msgmax`).
    pub max_size: Option<usize>,
    /// `MSG_NOERROR`: take a longer message, cut to `max_size` bytes.
    pub truncate: bool,
    /// `MSG_EXCEPT`: with `mtype > 0`, the first message of another type.
    pub except: bool,
}

/// The kernel's message queue limits and usage (`ipcs -q -l`, `ipcs -q -u`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// `MSGMAX`: the largest message text, in bytes (`kernel.msgmax`).
    pub max_message_size: u64,
    /// `MSGMNB`: `msg_qbytes` of a new queue, and the most an unprivileged
    /// owner may set (`kernel.msgmnb`).
    pub default_max_bytes: u64,
    /// `MSGMNI`: how many queues may exist (`kernel.msgmni`).
    pub max_queues: u64,
    /// Queues that exist now.
    pub used_queues: u64,
    /// Messages in all queues now.
    pub total_messages: u64,
    /// Bytes of text in all queues now.
    pub total_bytes: u64,
}

fn msgctl_info(cmd: c_int, what: &str) -> Result<(c_int, libc::msginfo)> {
    let mut info = MaybeUninit::<libc::msginfo>::zeroed();
    // SAFETY: IPC_INFO and MSG_INFO fill a `struct msginfo`; the cast only
    // matches the C prototype (see msgctl(2)).
    let r = unsafe { libc::msgctl(0, cmd, info.as_mut_ptr().cast()) };
    let r = Errno::result(r).map_err(|e| Error::os("msgctl", e, what.to_string()))?;
    // SAFETY: zeroed is valid for every field and the kernel filled it.
    Ok((r, unsafe { info.assume_init() }))
}

/// Reads the limits: `msgctl(0, IPC_INFO, …)` and `msgctl(0, MSG_INFO, …)`.
///
/// # References
/// - [msgctl(2)](https://man7.org/linux/man-pages/man2/msgctl.2.html)
pub fn queue_limits() -> Result<QueueLimits> {
    let (_, info) = msgctl_info(libc::IPC_INFO, "IPC_INFO")?;
    let (_, usage) = msgctl_info(libc::MSG_INFO, "MSG_INFO")?;
    let n = |v: c_int| v.max(0) as u64;
    MSGMAX.store(n(info.msgmax) as usize, Ordering::Relaxed);
    Ok(QueueLimits {
        max_message_size: n(info.msgmax),
        default_max_bytes: n(info.msgmnb),
        max_queues: n(info.msgmni),
        used_queues: n(usage.msgpool),
        total_messages: n(usage.msgmap),
        total_bytes: n(usage.msgtql),
    })
}

/// The last `msgmax` read; 0 before the first read.
static MSGMAX: AtomicUsize = AtomicUsize::new(0);

fn msgmax(refresh: bool) -> Result<usize> {
    let known = MSGMAX.load(Ordering::Relaxed);
    if known > 0 && !refresh {
        return Ok(known);
    }
    let (_, info) = msgctl_info(libc::IPC_INFO, "IPC_INFO")?;
    let max = info.msgmax.max(0) as usize;
    MSGMAX.store(max, Ordering::Relaxed);
    Ok(max)
}

/// Lists every queue of this IPC namespace, as `ipcs -q` does:
/// `msgctl(0, MSG_INFO, …)` for the highest index in use, then
/// `msgctl(index, MSG_STAT_ANY, …)` for each. Kernels before 4.17 do not
/// know `MSG_STAT_ANY`; there it falls back to `MSG_STAT`, which skips
/// queues the caller may not read.
///
/// # Errors
/// The `errno` of `msgctl`.
///
/// # References
/// - [msgctl(2)](https://man7.org/linux/man-pages/man2/msgctl.2.html)
pub fn list_queues() -> Result<Vec<QueueInfo>> {
    ipc::list::<MessageQueue, _>(QueueInfo::from_raw)
}

impl Kind for MessageQueue {
    type Ds = libc::msqid_ds;
    const NOUN: &'static str = "queue";
    const GET: &'static str = "msgget";
    const CTL: &'static str = "msgctl";
    const STAT: c_int = libc::MSG_STAT;
    const STAT_ANY: c_int = MSG_STAT_ANY;

    fn get(key: Key, _: usize, flags: c_int) -> c_int {
        // SAFETY: msgget takes plain integers and touches no memory of ours.
        unsafe { libc::msgget(key, flags) }
    }

    unsafe fn ctl(id: c_int, cmd: c_int, buf: *mut libc::msqid_ds) -> c_int {
        // SAFETY: the caller's contract (see `Kind::ctl`).
        unsafe { libc::msgctl(id, cmd, buf) }
    }

    fn perm(ds: &mut libc::msqid_ds) -> &mut libc::ipc_perm {
        &mut ds.msg_perm
    }

    fn usage() -> Result<(c_int, u64)> {
        let (max_index, usage) = msgctl_info(libc::MSG_INFO, "MSG_INFO")?;
        Ok((max_index, usage.msgpool.max(0) as u64))
    }
}

/// The largest receive buffer kept per thread, in words (64 KiB).
const SCRATCH_WORDS: usize = 64 * 1024 / WORD;

thread_local! {
    /// Each thread's reusable message buffer.
    static SCRATCH: std::cell::Cell<Vec<MaybeUninit<c_long>>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A `struct msgbuf` in memory aligned for its `long mtype`. Not
/// initialised: only what `msgrcv` or [`MsgBuf::message`] wrote is read, so
/// a receive with a large `max_size` costs an allocation, never a zero-fill
/// of `max_size` bytes (16 MiB: 1.3 ms per call when it was zeroed).
struct MsgBuf {
    words: Vec<MaybeUninit<c_long>>,
}

impl MsgBuf {
    /// Room for `size` bytes of text.
    fn with_room(size: usize) -> MsgBuf {
        let n = 1 + size.div_ceil(WORD);
        let mut words = Vec::with_capacity(n);
        // SAFETY: the capacity is `n`, and `MaybeUninit` needs no
        // initialisation.
        unsafe { words.set_len(n) };
        MsgBuf { words }
    }

    /// Room for `size` bytes, reusing this thread's buffer when it is not too
    /// large (no allocation and no zeroing per call).
    fn scratch(size: usize) -> MsgBuf {
        let words = 1 + size.div_ceil(WORD);
        if words > SCRATCH_WORDS {
            return MsgBuf::with_room(size);
        }
        let mut buf = SCRATCH.with(|s| s.take());
        if buf.len() < words {
            buf.resize(words, MaybeUninit::uninit());
        }
        buf.truncate(words);
        MsgBuf { words: buf }
    }

    /// Gives a buffer from [`MsgBuf::scratch`] back to this thread.
    fn recycle(self) {
        if self.words.capacity() <= SCRATCH_WORDS {
            SCRATCH.with(|s| s.replace(self.words));
        }
    }

    /// A message to send: `mtype` and a copy of `len` bytes at `data`.
    ///
    /// # Safety
    /// `data` must be readable for `len` bytes.
    unsafe fn message(mtype: c_long, data: *const u8, len: usize) -> MsgBuf {
        let mut buf = MsgBuf::scratch(len);
        buf.words[0] = MaybeUninit::new(mtype);
        // SAFETY: the buffer has room for `len` bytes after the first word
        // (with_room), `data` is readable for `len` bytes (the caller's
        // contract), and a fresh Vec does not overlap it.
        unsafe { ptr::copy_nonoverlapping(data, buf.words.as_mut_ptr().add(1).cast::<u8>(), len) };
        buf
    }

    fn as_mut_ptr(&mut self) -> *mut libc::c_void {
        self.words.as_mut_ptr().cast()
    }

    fn as_ptr(&self) -> *const libc::c_void {
        self.words.as_ptr().cast()
    }

    /// The type and the first `len` bytes of text.
    ///
    /// # Safety
    /// The type and those `len` bytes must have been written (by a
    /// successful `msgrcv` that returned at least `len`).
    // c_long is i32 on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    unsafe fn take(&self, len: usize) -> Message {
        let len = len.min((self.words.len() - 1) * WORD);
        let mut data = vec![0u8; len];
        // SAFETY: `len` bytes after the first word are within the buffer
        // (clamped above), and `data` is a distinct allocation of `len`.
        unsafe {
            ptr::copy_nonoverlapping(
                self.words.as_ptr().add(1).cast::<u8>(),
                data.as_mut_ptr(),
                len,
            )
        };
        Message {
            // SAFETY: written (the caller's contract).
            mtype: i64::from(unsafe { self.words[0].assume_init() }),
            data,
        }
    }
}

/// A System V message queue, named by its msqid.
///
/// Like [`Segment`](crate::Segment) this is only a name: `Copy`, no `Drop`.
/// The queue and its messages live in the kernel until
/// [`MessageQueue::remove`] (or `ipcrm -q`); then every blocked sender and
/// receiver wakes with `EIDRM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageQueue {
    id: i32,
}

impl MessageQueue {
    /// Creates a queue: `msgget(key, IPC_CREAT | IPC_EXCL | mode)`, then, if
    /// `options.max_bytes` is given, `msgctl(IPC_SET)` of `msg_qbytes`.
    ///
    /// With `options.exclusive == false`, opens the existing queue of that
    /// key instead of failing with `EEXIST`. Returns the queue and whether
    /// this call created it. If setting `msg_qbytes` fails, the new queue is
    /// removed before the error is returned.
    ///
    /// # Errors
    /// `EEXIST` (exclusive and the key is taken), `ENOSPC` (`MSGMNI` queues
    /// exist), `EACCES`, `ENOMEM`; `EPERM` for `max_bytes` above `msgmnb`
    /// without `CAP_SYS_RESOURCE`.
    ///
    /// # References
    /// - [msgget(2)](https://man7.org/linux/man-pages/man2/msgget.2.html)
    pub fn create(key: Key, options: &QueueOptions) -> Result<(MessageQueue, bool)> {
        let context = || format!("create queue key {}", hex_key(key));
        let (id, created) =
            ipc::create::<MessageQueue>(key, 0, options.mode, 0, options.exclusive, context)?;
        let queue = MessageQueue { id };
        if let (true, Some(max)) = (created, options.max_bytes) {
            let set = QueueSetOptions {
                max_bytes: Some(max),
                ..QueueSetOptions::default()
            };
            if let Err(e) = queue.set(&set) {
                // Never leave behind a queue that nobody got to use.
                let _ = queue.remove();
                return Err(e);
            }
        }
        Ok((queue, created))
    }

    /// Opens the existing queue of `key`: `msgget(key, 0)`.
    ///
    /// # Errors
    /// `ENOENT` when no queue has that key; `EACCES`;
    /// [`Error::InvalidArgument`] for [`IPC_PRIVATE`](crate::IPC_PRIVATE).
    ///
    /// # References
    /// - [msgget(2)](https://man7.org/linux/man-pages/man2/msgget.2.html)
    pub fn open(key: Key) -> Result<MessageQueue> {
        ipc::open::<MessageQueue>(key).map(MessageQueue::from_id)
    }

    /// Names the queue with this msqid, as `ipcs -q` prints it. Makes no
    /// system call: a wrong id shows up as `EINVAL` or `EIDRM` on first use.
    pub const fn from_id(id: i32) -> MessageQueue {
        MessageQueue { id }
    }

    /// The msqid.
    pub const fn id(&self) -> i32 {
        self.id
    }

    /// Sends a message: `msgsnd(id, {mtype, data}, data.len(), flags)`.
    ///
    /// A full queue (its `msg_qbytes` reached, in bytes or in messages)
    /// makes the call wait as `wait` says. [`Wait::NoWait`] and an expired
    /// [`Wait::Timeout`] fail with `EAGAIN`. A blocking send of a message
    /// longer than `msg_qbytes`, which could never fit, fails with `E2BIG`
    /// instead of sleeping forever.
    ///
    /// # Errors
    /// `EAGAIN` (full), `EIDRM` (removed, also while waiting), `EINVAL`
    /// (no such queue, or `data` longer than `msgmax`), `EACCES` (no write
    /// permission), `E2BIG` (see above), `ENOMEM`. An `mtype` below 1 is an
    /// [`Error::InvalidArgument`].
    ///
    /// # References
    /// - [msgop(2)](https://man7.org/linux/man-pages/man2/msgop.2.html)
    pub fn send(&self, mtype: i64, data: &[u8], wait: Wait) -> Result<()> {
        // SAFETY: a slice is readable for its length.
        unsafe { self.send_raw(mtype, data.as_ptr(), data.len(), wait, None) }
    }

    /// [`MessageQueue::send`] that `token` can cancel while it waits; a
    /// cancelled send fails with [`Error::Cancelled`] and sends nothing.
    pub fn send_cancellable(
        &self,
        mtype: i64,
        data: &[u8],
        wait: Wait,
        token: &CancelToken,
    ) -> Result<()> {
        // SAFETY: a slice is readable for its length.
        unsafe { self.send_raw(mtype, data.as_ptr(), data.len(), wait, Some(token)) }
    }

    /// [`MessageQueue::send`] of `len` bytes at `data`, which are copied with
    /// raw reads before the first system call, so they may be memory that
    /// others can change (shared memory, a `SharedArrayBuffer`): no
    /// reference is ever made over them.
    ///
    /// # Safety
    /// `data` must be readable for `len` bytes during the call.
    pub unsafe fn send_raw(
        &self,
        mtype: i64,
        data: *const u8,
        len: usize,
        wait: Wait,
        token: Option<&CancelToken>,
    ) -> Result<()> {
        let start = Instant::now();
        let t = c_long::try_from(mtype)
            .ok()
            .filter(|t| *t >= 1)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "message type must be an integer from 1 to {}, got {mtype}",
                    c_long::MAX
                ))
            })?;
        // SAFETY: `data` is readable for `len` bytes (the caller's contract).
        let buf = unsafe { MsgBuf::message(t, data, len) };
        let context = || format!("send type {mtype}, {len} bytes to queue {}", self.id);
        let id = self.id;
        let attempt = |block: bool| -> std::result::Result<(), Errno> {
            let flags = if block { 0 } else { libc::IPC_NOWAIT };
            // SAFETY: `buf` is a msgbuf with `len` bytes of text after mtype;
            // msgsnd only reads it.
            let r = unsafe { libc::msgsnd(id, buf.as_ptr(), len, flags) };
            Errno::result(r).map(drop)
        };
        // Fast path: the queue has room.
        let first = loop {
            match attempt(false) {
                Err(Errno::EINTR) => continue,
                r => break r,
            }
        };
        match first {
            Ok(()) => {
                buf.recycle();
                return Ok(());
            }
            Err(Errno::EAGAIN) if wait != Wait::NoWait => {
                // Before sleeping: could it ever fit?
                let max = self.stat()?.max_bytes;
                if len as u64 > max {
                    return Err(Error::os(
                        "msgsnd",
                        Errno::E2BIG,
                        format!(
                            "{}: the message can never fit, the queue holds at most {max} bytes (msg_qbytes)",
                            context()
                        ),
                    ));
                }
            }
            Err(Errno::EINVAL) => return Err(send_einval(len, context())),
            Err(e) => return Err(Error::os("msgsnd", e, context())),
        }
        wait::interruptible(start, wait, token, Errno::EAGAIN, attempt).map_err(|stop| match stop {
            Stop::Os(Errno::EINVAL) => send_einval(len, context()),
            stop => stop_error("msgsnd", stop, wait, context()),
        })
    }

    /// Receives a message: `msgrcv(id, buf, max_size, mtype, flags)`.
    ///
    /// Which message, and how long a text is accepted, is in `what`. No
    /// matching message makes the call wait as `wait` says; [`Wait::NoWait`]
    /// and an expired [`Wait::Timeout`] fail with `ENOMSG`.
    ///
    /// # Errors
    /// `ENOMSG` (none), `E2BIG` (the message is longer than `max_size`; it
    /// stays in the queue), `EIDRM` (removed, also while waiting), `EINVAL`
    /// (no such queue), `EACCES` (no read permission).
    ///
    /// # References
    /// - [msgop(2)](https://man7.org/linux/man-pages/man2/msgop.2.html)
    pub fn receive(&self, what: &Receive, wait: Wait) -> Result<Message> {
        self.receive_impl(what, wait, None)
    }

    /// [`MessageQueue::receive`] that `token` can cancel while it waits; a
    /// cancelled receive fails with [`Error::Cancelled`] and takes no message.
    pub fn receive_cancellable(
        &self,
        what: &Receive,
        wait: Wait,
        token: &CancelToken,
    ) -> Result<Message> {
        self.receive_impl(what, wait, Some(token))
    }

    fn receive_impl(
        &self,
        what: &Receive,
        wait: Wait,
        token: Option<&CancelToken>,
    ) -> Result<Message> {
        let start = Instant::now();
        let t = c_long::try_from(what.mtype).map_err(|_| {
            Error::InvalidArgument(format!(
                "message type {} is out of the range of a C long",
                what.mtype
            ))
        })?;
        if what.except && t <= 0 {
            return Err(Error::InvalidArgument(
                "except (MSG_EXCEPT) needs a message type above 0".into(),
            ));
        }
        let mut flags = 0;
        if what.truncate {
            flags |= libc::MSG_NOERROR;
        }
        if what.except {
            flags |= libc::MSG_EXCEPT;
        }
        let mut max = match what.max_size {
            Some(n) => n,
            None => msgmax(false)?,
        };
        loop {
            let r = self.receive_once(t, max, flags, what, wait, token, start);
            match r {
                // Default size, and the kernel's msgmax was raised since we
                // read it: read it again and retry with a larger buffer.
                Err(Error::Os {
                    errno: Errno::E2BIG,
                    ..
                }) if what.max_size.is_none() => {
                    let now = msgmax(true)?;
                    if now <= max {
                        return r;
                    }
                    max = now;
                }
                r => return r,
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn receive_once(
        &self,
        t: c_long,
        max: usize,
        flags: c_int,
        what: &Receive,
        wait: Wait,
        token: Option<&CancelToken>,
        start: Instant,
    ) -> Result<Message> {
        let mut buf = MsgBuf::scratch(max);
        let id = self.id;
        let context = || {
            let except = if what.except { " except" } else { "" };
            format!(
                "receive type{except} {} (up to {max} bytes) from queue {id}",
                what.mtype
            )
        };
        let mut attempt = |block: bool| -> std::result::Result<usize, Errno> {
            let f = if block {
                flags
            } else {
                flags | libc::IPC_NOWAIT
            };
            // SAFETY: `buf` has room for mtype and `max` bytes of text
            // (with_room), which is all msgrcv writes.
            let r = unsafe { libc::msgrcv(id, buf.as_mut_ptr(), max, t, f) };
            Errno::result(r).map(|n| n as usize)
        };
        let first = loop {
            match attempt(false) {
                Err(Errno::EINTR) => continue,
                r => break r,
            }
        };
        let n = match first {
            Ok(n) => n,
            Err(Errno::ENOMSG) if wait != Wait::NoWait => {
                wait::interruptible(start, wait, token, Errno::ENOMSG, attempt)
                    .map_err(|stop| stop_error("msgrcv", stop, wait, context()))?
            }
            Err(e) => return Err(Error::os("msgrcv", e, context())),
        };
        // SAFETY: msgrcv succeeded: it wrote the type and `n` bytes of text.
        let message = unsafe { buf.take(n) };
        buf.recycle();
        Ok(message)
    }
    info_methods!(
        MessageQueue,
        QueueInfo,
        "msgctl",
        "",
        "MSG",
        "msqid_ds",
        "queue",
        "-q"
    );

    /// Changes owner, mode and `msg_qbytes`: `msgctl(id, IPC_SET, &buf)`
    /// after `IPC_STAT`.
    ///
    /// The caller needs no read permission: without it the current values
    /// come from `MSG_STAT_ANY` (Linux 4.17).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for mode bits outside 0o777 or a
    /// `max_bytes` beyond `msglen_t`; `EPERM` unless the caller is the owner
    /// or creator (or privileged), or for `max_bytes` above `msgmnb` without
    /// `CAP_SYS_RESOURCE`.
    ///
    /// # References
    /// - [msgctl(2)](https://man7.org/linux/man-pages/man2/msgctl.2.html)
    pub fn set(&self, options: &QueueSetOptions) -> Result<()> {
        let perm = SetOptions {
            uid: options.uid,
            gid: options.gid,
            mode: options.mode,
        };
        ipc::set::<MessageQueue>(self.id, &perm, |ds| {
            if let Some(max) = options.max_bytes {
                // msglen_t is 32 bits on some targets.
                #[allow(clippy::useless_conversion)]
                let qbytes = max.try_into().map_err(|_| {
                    Error::InvalidArgument(format!("maxBytes {max} does not fit in msglen_t"))
                })?;
                ds.msg_qbytes = qbytes;
            }
            Ok(())
        })
    }

    /// Removes the queue at once: `msgctl(id, IPC_RMID, NULL)`. Its messages
    /// are discarded and every blocked sender and receiver fails with `EIDRM`.
    ///
    /// # Errors
    /// `EPERM` unless the caller is the owner or creator; `EINVAL`/`EIDRM` if
    /// it is already gone.
    ///
    /// # References
    /// - [msgctl(2)](https://man7.org/linux/man-pages/man2/msgctl.2.html)
    pub fn remove(&self) -> Result<()> {
        ipc::remove::<MessageQueue>(self.id)
    }
}

/// `EINVAL` from msgsnd: say whether the message was too long for msgmax.
fn send_einval(len: usize, context: String) -> Error {
    match msgmax(true) {
        Ok(max) if len > max => Error::os(
            "msgsnd",
            Errno::EINVAL,
            format!("{context}: longer than msgmax, {max} bytes"),
        ),
        _ => Error::os("msgsnd", Errno::EINVAL, context),
    }
}

fn stop_error(syscall: &'static str, stop: Stop, wait: Wait, context: String) -> Error {
    match stop {
        Stop::Os(e) => Error::os(syscall, e, context),
        Stop::TimedOut => {
            let (errno, what) = if syscall == "msgsnd" {
                (Errno::EAGAIN, "the queue stayed full")
            } else {
                (Errno::ENOMSG, "no message came")
            };
            let ms = match wait {
                Wait::Timeout(d) => d.as_secs_f64() * 1000.0,
                _ => 0.0,
            };
            Error::os(syscall, errno, format!("{context}: {what} for {ms} ms"))
        }
        Stop::Cancelled => Error::Cancelled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::{set_wake_strategy, WakeStrategy};
    use crate::IPC_PRIVATE;
    use std::sync::Mutex;
    use std::thread;
    use std::time::Duration;

    /// Tests that switch the process-wide wait strategy hold this.
    static STRATEGY: Mutex<()> = Mutex::new(());

    struct Q(MessageQueue);
    impl Drop for Q {
        fn drop(&mut self) {
            let _ = self.0.remove();
        }
    }
    fn private() -> Q {
        Q(MessageQueue::create(IPC_PRIVATE, &QueueOptions::default())
            .unwrap()
            .0)
    }
    fn any() -> Receive {
        Receive::default()
    }
    fn of(mtype: i64) -> Receive {
        Receive {
            mtype,
            ..Receive::default()
        }
    }

    #[test]
    fn msgbuf_layout_is_c_struct_msgbuf() {
        // SAFETY: a slice is readable for its length.
        let b = unsafe { MsgBuf::message(7, b"abc".as_ptr(), 3) };
        assert_eq!(b.words.len(), 2);
        // SAFETY: `message` wrote the type.
        assert_eq!(unsafe { b.words[0].assume_init() }, 7);
        // SAFETY: the buffer holds at least 8 + 3 bytes.
        let text = unsafe { std::slice::from_raw_parts(b.as_ptr().cast::<u8>().add(WORD), 3) };
        assert_eq!(text, b"abc");
        assert_eq!(b.as_ptr() as usize % mem::align_of::<c_long>(), 0);
        assert_eq!(MsgBuf::with_room(0).words.len(), 1);
        assert_eq!(MsgBuf::with_room(9).words.len(), 3);
    }

    #[test]
    fn send_receive_types_and_order() {
        let q = private();
        for (t, d) in [(3, "c"), (1, "a1"), (2, "b"), (1, "a2"), (5, "e")] {
            q.0.send(t, d.as_bytes(), Wait::NoWait).unwrap();
        }
        let st = q.0.stat().unwrap();
        assert_eq!(st.messages, 5);
        assert_eq!(st.bytes, 7);
        assert_eq!(st.last_send_pid, std::process::id() as i32);
        // >0: first of exactly that type.
        let m = q.0.receive(&of(1), Wait::NoWait).unwrap();
        assert_eq!((m.mtype, m.data.as_slice()), (1, &b"a1"[..]));
        // <0: lowest type <= |t|, first of it.
        let m = q.0.receive(&of(-4), Wait::NoWait).unwrap();
        assert_eq!((m.mtype, m.data.as_slice()), (1, &b"a2"[..]));
        // except: first of another type.
        let ex = Receive {
            mtype: 3,
            except: true,
            ..any()
        };
        let m = q.0.receive(&ex, Wait::NoWait).unwrap();
        assert_eq!(m.mtype, 2);
        // 0: first in the queue.
        let m = q.0.receive(&any(), Wait::NoWait).unwrap();
        assert_eq!((m.mtype, m.data.as_slice()), (3, &b"c"[..]));
        let e = q.0.receive(&of(4), Wait::NoWait).unwrap_err();
        assert_eq!(e.errno(), Some(Errno::ENOMSG));
        assert_eq!(e.syscall(), Some("msgrcv"));
        assert_eq!(q.0.receive(&any(), Wait::NoWait).unwrap().mtype, 5);
    }

    #[test]
    fn e2big_leaves_the_message_and_truncate_cuts_it() {
        let q = private();
        q.0.send(1, b"0123456789", Wait::NoWait).unwrap();
        let small = Receive {
            max_size: Some(4),
            ..any()
        };
        let e = q.0.receive(&small, Wait::NoWait).unwrap_err();
        assert_eq!(e.errno(), Some(Errno::E2BIG));
        assert_eq!(q.0.stat().unwrap().messages, 1);
        let cut = Receive {
            truncate: true,
            ..small
        };
        assert_eq!(q.0.receive(&cut, Wait::NoWait).unwrap().data, b"0123");
        assert_eq!(q.0.stat().unwrap().messages, 0);
    }

    #[test]
    fn empty_message_and_message_at_msgmax() {
        let q = private();
        q.0.send(9, b"", Wait::NoWait).unwrap();
        let m = q.0.receive(&any(), Wait::NoWait).unwrap();
        assert_eq!((m.mtype, m.data.len()), (9, 0));
        let max = queue_limits().unwrap().max_message_size as usize;
        let big: Vec<u8> = (0..max).map(|i| (i % 251) as u8).collect();
        q.0.send(1, &big, Wait::NoWait).unwrap();
        assert_eq!(q.0.receive(&any(), Wait::NoWait).unwrap().data, big);
        let too_big = vec![0u8; max + 1];
        let e = q.0.send(1, &too_big, Wait::NoWait).unwrap_err();
        assert_eq!(e.errno(), Some(Errno::EINVAL));
        assert!(e.to_string().contains("msgmax"), "{e}");
    }

    #[test]
    fn bad_arguments_are_refused_before_the_call() {
        let q = MessageQueue::from_id(i32::MAX);
        assert!(matches!(
            q.send(0, b"x", Wait::NoWait),
            Err(Error::InvalidArgument(_))
        ));
        let ex = Receive {
            mtype: 0,
            except: true,
            ..any()
        };
        assert!(matches!(
            q.receive(&ex, Wait::NoWait),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            MessageQueue::open(IPC_PRIVATE),
            Err(Error::InvalidArgument(_))
        ));
        let e = MessageQueue::create(
            IPC_PRIVATE,
            &QueueOptions {
                mode: 0o1000,
                ..QueueOptions::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)));
    }

    #[test]
    fn full_queue_eagain_timeout_and_never_fits() {
        let q = Q(MessageQueue::create(
            IPC_PRIVATE,
            &QueueOptions {
                max_bytes: Some(16),
                ..QueueOptions::default()
            },
        )
        .unwrap()
        .0);
        assert_eq!(q.0.stat().unwrap().max_bytes, 16);
        q.0.send(1, &[1; 16], Wait::NoWait).unwrap();
        let e = q.0.send(1, b"x", Wait::NoWait).unwrap_err();
        assert_eq!(e.errno(), Some(Errno::EAGAIN));
        let e =
            q.0.send(1, b"x", Wait::Timeout(Duration::from_millis(30)))
                .unwrap_err();
        assert_eq!(e.errno(), Some(Errno::EAGAIN));
        assert!(e.to_string().contains("stayed full"), "{e}");
        let e = q.0.send(1, &[0; 17], Wait::Forever).unwrap_err();
        assert_eq!(e.errno(), Some(Errno::E2BIG));
    }

    fn timeout_and_wakeup(strategy: WakeStrategy) {
        let _g = STRATEGY.lock().unwrap_or_else(|p| p.into_inner());
        set_wake_strategy(strategy);
        let q = private();
        let t0 = Instant::now();
        let e =
            q.0.receive(&any(), Wait::Timeout(Duration::from_millis(50)))
                .unwrap_err();
        assert!(t0.elapsed() >= Duration::from_millis(50));
        assert_eq!(e.errno(), Some(Errno::ENOMSG));
        // A sender in another thread wakes a timed receiver.
        let id = q.0.id();
        let sender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            MessageQueue::from_id(id)
                .send(4, b"late", Wait::Forever)
                .unwrap();
        });
        let m =
            q.0.receive(&of(4), Wait::Timeout(Duration::from_secs(30)))
                .unwrap();
        assert_eq!(m.data, b"late");
        sender.join().unwrap();
        // Cancel wakes a receiver waiting forever, and takes nothing.
        let token = CancelToken::new();
        let t2 = token.clone();
        let waiter = thread::spawn(move || {
            MessageQueue::from_id(id).receive_cancellable(&any(), Wait::Forever, &t2)
        });
        thread::sleep(Duration::from_millis(20));
        token.cancel();
        let e = waiter.join().unwrap().unwrap_err();
        assert_eq!(e, Error::Cancelled);
        // An already-cancelled token still takes a message that is there.
        q.0.send(1, b"ready", Wait::NoWait).unwrap();
        let m =
            q.0.receive_cancellable(&any(), Wait::Forever, &token)
                .unwrap();
        assert_eq!(m.data, b"ready");
        assert_eq!(
            q.0.receive_cancellable(&any(), Wait::Forever, &token)
                .unwrap_err(),
            Error::Cancelled
        );
        // Removal wakes a blocked receiver with EIDRM.
        let waiter =
            thread::spawn(move || MessageQueue::from_id(id).receive(&any(), Wait::Forever));
        thread::sleep(Duration::from_millis(20));
        q.0.remove().unwrap();
        let e = waiter.join().unwrap().unwrap_err();
        assert!(
            matches!(e.errno(), Some(Errno::EIDRM | Errno::EINVAL)),
            "{e}"
        );
        set_wake_strategy(WakeStrategy::Signal);
    }

    #[test]
    fn timeout_and_wakeup_with_signal() {
        timeout_and_wakeup(WakeStrategy::Signal);
    }

    #[test]
    fn timeout_and_wakeup_with_poll() {
        timeout_and_wakeup(WakeStrategy::Poll);
    }

    #[test]
    fn many_cancels_race_with_the_wait() {
        let _g = STRATEGY.lock().unwrap_or_else(|p| p.into_inner());
        set_wake_strategy(WakeStrategy::Signal);
        let q = private();
        let id = q.0.id();
        // Cancel at every point of the wait's set-up: none may hang.
        for i in 0..200u64 {
            let token = CancelToken::new();
            let t2 = token.clone();
            let waiter = thread::spawn(move || {
                MessageQueue::from_id(id).receive_cancellable(&any(), Wait::Forever, &t2)
            });
            if i % 2 == 0 {
                thread::sleep(Duration::from_micros(i * 5));
            }
            token.cancel();
            let e = waiter.join().unwrap().unwrap_err();
            assert_eq!(e, Error::Cancelled);
        }
    }

    #[test]
    fn list_and_limits() {
        let q = private();
        let all = list_queues().unwrap();
        let me = all.iter().find(|i| i.id == q.0.id()).unwrap();
        assert_eq!(me.perm.key, IPC_PRIVATE);
        assert_eq!(me.perm.mode, 0o600);
        let l = queue_limits().unwrap();
        assert!(l.max_message_size > 0 && l.default_max_bytes > 0 && l.max_queues > 0);
        assert!(l.used_queues >= 1);
        assert_eq!(q.0.stat().unwrap().max_bytes, l.default_max_bytes);
    }

    #[test]
    fn keyed_create_open_set() {
        let key = 0x4d51_0000 | (std::process::id() as i32 & 0xffff);
        let (a, created) = MessageQueue::create(key, &QueueOptions::default()).unwrap();
        let _a = Q(a);
        assert!(created);
        let e = MessageQueue::create(key, &QueueOptions::default()).unwrap_err();
        assert_eq!(e.errno(), Some(Errno::EEXIST));
        let (b, created) = MessageQueue::create(
            key,
            &QueueOptions {
                exclusive: false,
                max_bytes: Some(1),
                ..QueueOptions::default()
            },
        )
        .unwrap();
        assert!(!created);
        assert_eq!(b, a);
        assert_ne!(a.stat().unwrap().max_bytes, 1, "not applied to an open");
        assert_eq!(MessageQueue::open(key).unwrap(), a);
        a.set(&QueueSetOptions {
            mode: Some(0o640),
            max_bytes: Some(100),
            ..QueueSetOptions::default()
        })
        .unwrap();
        let st = a.stat().unwrap();
        assert_eq!((st.perm.mode, st.max_bytes, st.perm.key), (0o640, 100, key));
    }
}
