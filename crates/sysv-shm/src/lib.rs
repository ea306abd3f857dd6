//! Safe System V shared memory for Linux: `shmget`, `shmat`, `shmdt`,
//! `shmctl` and `ftok`, with RAII detach.
//!
//! - [`Segment`] names a kernel segment by its shmid; it owns nothing.
//! - [`Attachment`] is one mapping of it (`shmat`), detached on drop (`shmdt`).
//!   It never lends `&[u8]` over memory that other processes can change.
//! - [`list_segments`] and [`limits`] are `ipcs -m` and `ipcs -l`.
//! - [`MessageQueue`] names a message queue by its msqid (`msgget`, `msgsnd`,
//!   `msgrcv`, `msgctl`); [`list_queues`] and [`queue_limits`] are `ipcs -q`
//!   and `ipcs -q -l`. Blocking calls take a timeout and a [`CancelToken`]
//!   (see [`wait`]).
//! - [`SemaphoreSet`] names a semaphore set by its semid (`semget`,
//!   `semop`, `semctl`); [`list_semaphores`] is `ipcs -s`.
//! - The three share one IPC-object module: key and id, [`Perm`] (owner,
//!   creator, mode), create-or-open, `stat`, `stat_any`, `set`, `remove` and
//!   the listing are written once, generic over the kind.
//!
//! ```no_run
//! use sysv_shm::{Segment, CreateOptions, IPC_PRIVATE};
//!
//! let (seg, _created) = Segment::create(IPC_PRIVATE, 4096, &CreateOptions::default())?;
//! let map = seg.attach(false)?;
//! map.write(0, b"hello")?;
//! let mut out = [0u8; 5];
//! map.read(0, &mut out)?;
//! assert_eq!(&out, b"hello");
//! seg.remove()?; // freed once `map` is dropped
//! # Ok::<(), sysv_shm::Error>(())
//! ```
//!
//! # References
//! - [shmget(2)](https://man7.org/linux/man-pages/man2/shmget.2.html),
//!   [shmop(2)](https://man7.org/linux/man-pages/man2/shmop.2.html),
//!   [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html),
//!   [ftok(3)](https://man7.org/linux/man-pages/man3/ftok.3.html),
//!   [sysvipc(7)](https://man7.org/linux/man-pages/man7/sysvipc.7.html)

#![cfg(target_os = "linux")]

mod attachment;
pub mod blocking;
pub mod channel;
mod cleanup;
mod error;
pub mod futex;
mod info;
mod ipc;
mod msg;
pub mod mutex;
pub mod pubsub;
mod segment;
mod sem;
mod sys;
pub mod wait;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub use attachment::{attachment_limit, live_attachments, Attachment};
pub use error::{Error, Result};
pub use info::{limits, Limits};
pub use ipc::{Perm, SetOptions, IPC_PRIVATE, MODE_MASK};
pub use msg::{
    list_queues, queue_limits, Message, MessageQueue, QueueInfo, QueueLimits, QueueOptions,
    QueueSetOptions, Receive,
};
pub use nix::errno::Errno;
pub use segment::{list_segments, CreateOptions, Segment, SegmentInfo};
pub use sem::{
    list_semaphores, max_semaphores_per_set, AppliedOps, OpOutcome, SemInfo, SemOp, SemaphoreSet,
    SEM_VALUE_MAX,
};
pub use wait::{CancelToken, Wait};

/// A System V IPC key (`key_t`). `ipcs` prints it as 32-bit hex.
pub type Key = libc::key_t;

/// Makes a key from an existing path and a project id: `ftok(3)`.
///
/// Only the low 8 bits of `proj_id` are used, and it must not be 0 there.
///
/// # Errors
/// `ENOENT`, `EACCES`, … from `stat(2)` of the path.
///
/// # References
/// - [ftok(3)](https://man7.org/linux/man-pages/man3/ftok.3.html)
pub fn ftok(path: &Path, proj_id: u8) -> Result<Key> {
    if proj_id == 0 {
        return Err(Error::InvalidArgument(
            "ftok: proj_id must not be 0 in its low 8 bits".into(),
        ));
    }
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::InvalidArgument(format!("ftok: path {path:?} contains a NUL byte")))?;
    // SAFETY: `cpath` is a valid NUL-terminated string for the whole call.
    let key = unsafe { libc::ftok(cpath.as_ptr(), libc::c_int::from(proj_id)) };
    Errno::result(key).map_err(|e| Error::os("ftok", e, format!("path {path:?} projId {proj_id}")))
}
