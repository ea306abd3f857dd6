//! The one error type of this crate.

use std::fmt;

use nix::errno::Errno;

/// What went wrong in a call of this crate.
///
/// A failed system call carries its `errno` and the name of the call
/// ([`Error::Os`]); the other variants are argument checks made before any
/// system call.
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

    /// The `errno` of a failed system call, if this is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Os { errno, .. } => Some(*errno),
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
