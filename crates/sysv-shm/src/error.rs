//! The one error type of this crate.

use std::fmt;

use nix::errno::Errno;

/// What went wrong in a call of this crate.
///
/// A failed system call carries its `errno` and the name of the call
/// ([`Error::Os`], only for real system calls); every other way a call can
/// end without its result has a variant of its own: argument checks made
/// before any system call, states of a handle ([`Error::ReadOnly`],
/// [`Error::Detached`], [`Error::Closed`]), a cancelled wait
/// ([`Error::Cancelled`]), a segment that is not what it should be
/// ([`Error::NotAChannel`], [`Error::ChannelCorrupt`]) and a thread that
/// could not start ([`Error::ThreadStart`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed.
    Os {
        /// The C function that failed: `"shmget"`, `"shmat"`, `"shmdt"`,
        /// `"shmctl"`, `"ftok"` or `"madvise"`.
        syscall: &'static str,
        /// The `errno` it set.
        errno: Errno,
        /// What was attempted, e.g. `"create key 0x0000abcd size 4096"`.
        context: String,
    },
    /// `offset + len` is past the end of the segment.
    OutOfBounds {
        /// The first byte asked for.
        offset: usize,
        /// How many bytes were asked for.
        len: usize,
        /// The size of the segment.
        size: usize,
    },
    /// A write was attempted through a read-only (`SHM_RDONLY`) attachment.
    ReadOnly {
        /// The shmid of the segment.
        id: i32,
    },
    /// An argument was refused before any system call.
    InvalidArgument(String),
    /// `shmat` was not called: this process already holds
    /// [`attachment_limit`](crate::attachment_limit) attachments.
    TooManyAttachments {
        /// Attachments mapped now.
        live: usize,
        /// The most this process may hold (half of `vm.max_map_count`).
        limit: usize,
    },
    /// A blocking call was cancelled by its
    /// [`CancelToken`](crate::CancelToken) before it completed; it had no
    /// effect (nothing sent, received or applied).
    Cancelled,
    /// No thread could be started for a blocking call (`pthread_create`
    /// failed, usually `EAGAIN`: out of threads or memory).
    ThreadStart {
        /// The `errno` of `pthread_create`.
        errno: Errno,
    },
    /// The handle was detached (or an asynchronous wait on it ended by the
    /// detach).
    Detached {
        /// The shmid of the segment.
        id: i32,
    },
    /// A send on a closed channel.
    Closed {
        /// The shmid of the channel.
        id: i32,
    },
    /// The segment does not hold a sysv-shm channel (too small, or its header
    /// is not one).
    NotAChannel {
        /// The shmid of the segment.
        id: i32,
        /// Why, e.g. `"64 bytes is too small"`.
        detail: String,
    },
    /// A word of a channel segment breaks the layout's rules (another process
    /// wrote it, by a bug or on purpose): nothing was read or written with it.
    ChannelCorrupt {
        /// The shmid of the channel.
        id: i32,
        /// The word that is wrong: `"head"`, `"tail"` or `"record length"`.
        field: &'static str,
        /// What was found, with the values, e.g. `"tail 12 is not a multiple of 8"`.
        detail: String,
    },
}

impl Error {
    pub(crate) fn os(syscall: &'static str, errno: Errno, context: impl Into<String>) -> Self {
        Error::Os {
            syscall,
            errno,
            context: context.into(),
        }
    }

    /// The `errno` of a failed system call (or of `pthread_create`), if this
    /// is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Os { errno, .. } | Error::ThreadStart { errno } => Some(*errno),
            _ => None,
        }
    }

    /// The name of the failed system call, if this is one.
    pub fn syscall(&self) -> Option<&'static str> {
        match self {
            Error::Os { syscall, .. } => Some(syscall),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Os {
                syscall,
                errno,
                context,
            } => {
                write!(
                    f,
                    "{syscall} failed ({context}): {errno:?}: {}",
                    errno.desc()
                )?;
                match hint(syscall, *errno) {
                    Some(hint) => write!(f, " ({hint})"),
                    None => Ok(()),
                }
            }
            Error::OutOfBounds { offset, len, size } => write!(
                f,
                "range {offset}..{} is out of bounds for a segment of {size} bytes",
                *offset as u128 + *len as u128
            ),
            Error::ReadOnly { id } => write!(
                f,
                "segment {id} is attached read-only (SHM_RDONLY); writing is not allowed"
            ),
            Error::InvalidArgument(msg) => f.write_str(msg),
            Error::TooManyAttachments { live, limit } => write!(
                f,
                "this process already holds {live} attachments, the most allowed ({limit}, half of \
                 vm.max_map_count): every attachment is a memory mapping, and a process out of \
                 mappings cannot allocate memory; detach attachments that are no longer used"
            ),
            Error::Cancelled => f.write_str("the wait was cancelled; the call had no effect"),
            Error::ThreadStart { errno } => write!(
                f,
                "no thread could be started for a blocking call (pthread_create: {errno:?}: {})",
                errno.desc()
            ),
            Error::Detached { id } => {
                write!(f, "segment {id} has been detached from this handle")
            }
            Error::Closed { id } => {
                write!(f, "channel {id} is closed: no more messages can be sent")
            }
            Error::NotAChannel { id, detail } => {
                write!(f, "segment {id} is not a sysv-shm channel: {detail}")
            }
            Error::ChannelCorrupt { id, field, detail } => write!(
                f,
                "channel {id} is corrupt: bad {field}: {detail} (another process wrote words \
                 that break the channel layout; nothing was read or written with them)"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// What an errno of a shared memory call usually means, where its
/// `strerror` text does not say (see shmget(2), shmat(2)).
fn hint(syscall: &str, errno: Errno) -> Option<&'static str> {
    Some(match (syscall, errno) {
        ("shmget", Errno::ENOSPC) => {
            "the system-wide limit of segments (kernel.shmmni) or of shared memory pages \
             (kernel.shmall) is reached; see limits()"
        }
        ("shmget", Errno::EINVAL) => {
            "the size is outside kernel.shmmin..kernel.shmmax, or larger than the existing \
             segment of this key"
        }
        ("shmget", Errno::ENOMEM) => "not enough memory for a segment of this size",
        ("shmat", Errno::ENOMEM) => "no address space or memory mappings left in this process",
        ("shmat" | "shmctl", Errno::EINVAL) => "no segment has this id, or it was removed",
        ("shmat" | "shmctl", Errno::EIDRM) => "the segment was removed",
        _ => return None,
    })
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
