//! The IPC-object calls of segments, message queues and semaphore sets for
//! JS, one set per kind with one naming scheme (`shm_*`, `msg_*`, `sem_*`):
//! `create`, `open`, `stat`, `stat_any`, `set`, `remove`, `list`, and the
//! kernel's limits. The owner, creator, key and mode of every kind convert
//! once ([`NativePerm`]); every value passes through unclamped, so that the
//! core's checks see (and report) what JavaScript gave.

use std::time::{SystemTime, UNIX_EPOCH};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use sysv_shm::{
    CreateOptions, MessageQueue, Perm, QueueInfo, QueueOptions, QueueSetOptions, Segment,
    SegmentInfo, SemInfo, SemaphoreSet, SetOptions,
};

use crate::errors::throw;
use crate::semaphore::sem_value;
use crate::to_usize;

/// A core result as a JS one: errors are thrown as the core's kind asks.
fn js<T>(env: &Env, r: sysv_shm::Result<T>) -> Result<T> {
    r.map_err(|e| throw(env, e))
}

/// A time of `struct *id_ds` as milliseconds since the epoch; `null` when
/// the event has not happened.
pub(crate) fn millis(t: Option<SystemTime>) -> Option<f64> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as f64)
}

/// `struct ipc_perm`: the key (as `ipcs` prints it, unsigned), mode, owner
/// and creator.
#[napi(object)]
pub struct NativePerm {
    pub key: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
}

impl From<Perm> for NativePerm {
    fn from(p: Perm) -> Self {
        NativePerm {
            key: p.key as u32,
            mode: p.mode,
            uid: p.uid,
            gid: p.gid,
            cuid: p.cuid,
            cgid: p.cgid,
        }
    }
}

/// What `*get` returned and whether this call created the object.
#[napi(object)]
pub struct NativeCreated {
    pub id: i32,
    pub created: bool,
}

/// Options of `IPC_SET`; absent fields keep their value. `maxBytes`
/// (`msg_qbytes`) is for queues only.
#[napi(object)]
pub struct NativeSetOptions {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: Option<u32>,
    pub max_bytes: Option<f64>,
}

impl NativeSetOptions {
    fn perm(&self) -> SetOptions {
        SetOptions {
            uid: self.uid,
            gid: self.gid,
            mode: self.mode,
        }
    }
}

fn created(id: i32, created: bool) -> NativeCreated {
    NativeCreated { id, created }
}

/// The calls every kind has the same way: `open`, `stat`, `stat_any`,
/// `remove` and `list`, named `{prefix}_open`, … (`get` and `ctl` name the C
/// calls in the generated doc comments).
macro_rules! ipc_calls {
    ($core:ident, $stat:ident, $get:literal, $ctl:literal, $list_core:path,
     $open:ident, $stat_fn:ident, $stat_any:ident, $remove:ident, $list:ident) => {
        #[doc = concat!("`", $get, "(key, 0, 0)`: the id of the existing object of `key`.")]
        #[napi]
        pub fn $open(env: Env, key: i32) -> Result<i32> {
            js(&env, $core::open(key).map(|o| o.id()))
        }

        #[doc = concat!("`", $ctl, "(id, IPC_STAT)`.")]
        #[napi]
        pub fn $stat_fn(env: Env, id: i32) -> Result<$stat> {
            js(&env, $core::from_id(id).stat().map(Into::into))
        }

        #[doc = concat!("`", $ctl, "(slot, *_STAT_ANY)` of the slot of `id` (no read ")]
        #[doc = "permission needed); `null` if it is gone or the kernel is older than 4.17."]
        #[napi]
        pub fn $stat_any(id: i32) -> Option<$stat> {
            $core::from_id(id).stat_any().map(Into::into)
        }

        #[doc = concat!("`", $ctl, "(id, IPC_RMID)`.")]
        #[napi]
        pub fn $remove(env: Env, id: i32) -> Result<()> {
            js(&env, $core::from_id(id).remove())
        }

        #[doc = "Every object of the kind, as `ipcs` lists them (`*_STAT_ANY`)."]
        #[napi]
        pub fn $list(env: Env) -> Result<Vec<$stat>> {
            js(&env, $list_core()).map(|v| v.into_iter().map(Into::into).collect())
        }
    };
}

ipc_calls!(
    Segment,
    NativeShmStat,
    "shmget",
    "shmctl",
    sysv_shm::list_segments,
    shm_open,
    shm_stat,
    shm_stat_any,
    shm_remove,
    shm_list
);
ipc_calls!(
    MessageQueue,
    NativeMsgStat,
    "msgget",
    "msgctl",
    sysv_shm::list_queues,
    msg_open,
    msg_stat,
    msg_stat_any,
    msg_remove,
    msg_list
);
ipc_calls!(
    SemaphoreSet,
    NativeSemStat,
    "semget",
    "semctl",
    sysv_shm::list_semaphores,
    sem_open,
    sem_stat,
    sem_stat_any,
    sem_remove,
    sem_list
);

// --- Segments -----------------------------------------------------------

/// `struct shmid_ds` as plain values (times in ms since the epoch).
#[napi(object)]
pub struct NativeShmStat {
    pub id: i32,
    pub perm: NativePerm,
    pub size: f64,
    pub creator_pid: i32,
    pub last_pid: i32,
    pub attach_count: f64,
    pub attach_time: Option<f64>,
    pub detach_time: Option<f64>,
    pub change_time: Option<f64>,
    pub removed: bool,
    pub locked: bool,
}

impl From<SegmentInfo> for NativeShmStat {
    fn from(s: SegmentInfo) -> Self {
        NativeShmStat {
            id: s.id,
            perm: s.perm.into(),
            size: s.size as f64,
            creator_pid: s.creator_pid,
            last_pid: s.last_pid,
            attach_count: s.attach_count as f64,
            attach_time: millis(s.attach_time),
            detach_time: millis(s.detach_time),
            change_time: millis(s.change_time),
            removed: s.removed,
            locked: s.locked,
        }
    }
}

/// `shmget(key, size, IPC_CREAT [| IPC_EXCL] | mode [| SHM_HUGETLB | SHM_NORESERVE])`.
#[napi]
pub fn shm_create(
    env: Env,
    key: i32,
    size: f64,
    mode: u32,
    exclusive: bool,
    huge_pages: bool,
    no_reserve: bool,
) -> Result<NativeCreated> {
    let size = to_usize(&env, "size", size)?;
    let options = CreateOptions {
        mode,
        exclusive,
        huge_pages,
        no_reserve,
    };
    let (segment, new) = js(&env, Segment::create(key, size, &options))?;
    Ok(created(segment.id(), new))
}

/// `shmctl(id, IPC_SET)`.
#[napi]
pub fn shm_set(env: Env, id: i32, options: NativeSetOptions) -> Result<()> {
    js(&env, Segment::from_id(id).set(&options.perm()))
}

/// `shmctl(id, SHM_LOCK)` or `shmctl(id, SHM_UNLOCK)`.
#[napi]
pub fn shm_lock(env: Env, id: i32, locked: bool) -> Result<()> {
    let segment = Segment::from_id(id);
    js(
        &env,
        if locked {
            segment.lock()
        } else {
            segment.unlock()
        },
    )
}

/// The kernel's shared memory limits (`ipcs -l`) and usage.
#[napi(object)]
pub struct NativeShmLimits {
    pub max_segment_size: f64,
    pub min_segment_size: f64,
    pub max_segments: f64,
    pub max_segments_per_process: f64,
    pub max_total_pages: f64,
    pub page_size: f64,
    pub used_segments: f64,
    pub used_pages: f64,
    pub resident_pages: f64,
    pub swapped_pages: f64,
}

/// `shmctl(0, IPC_INFO)` and `shmctl(0, SHM_INFO)`.
#[napi]
pub fn shm_limits(env: Env) -> Result<NativeShmLimits> {
    let l = js(&env, sysv_shm::limits())?;
    Ok(NativeShmLimits {
        max_segment_size: l.max_segment_size as f64,
        min_segment_size: l.min_segment_size as f64,
        max_segments: l.max_segments as f64,
        max_segments_per_process: l.max_segments_per_process as f64,
        max_total_pages: l.max_total_pages as f64,
        page_size: l.page_size as f64,
        used_segments: l.used_segments as f64,
        used_pages: l.used_pages as f64,
        resident_pages: l.resident_pages as f64,
        swapped_pages: l.swapped_pages as f64,
    })
}

// --- Message queues -----------------------------------------------------

/// `struct msqid_ds` as plain values (times in ms since the epoch).
#[napi(object)]
pub struct NativeMsgStat {
    pub id: i32,
    pub perm: NativePerm,
    pub messages: f64,
    pub bytes: f64,
    pub max_bytes: f64,
    pub last_send_pid: i32,
    pub last_receive_pid: i32,
    pub send_time: Option<f64>,
    pub receive_time: Option<f64>,
    pub change_time: Option<f64>,
}

impl From<QueueInfo> for NativeMsgStat {
    fn from(q: QueueInfo) -> Self {
        NativeMsgStat {
            id: q.id,
            perm: q.perm.into(),
            messages: q.messages as f64,
            bytes: q.bytes as f64,
            max_bytes: q.max_bytes as f64,
            last_send_pid: q.last_send_pid,
            last_receive_pid: q.last_receive_pid,
            send_time: millis(q.send_time),
            receive_time: millis(q.receive_time),
            change_time: millis(q.change_time),
        }
    }
}

fn to_max_bytes(env: &Env, v: Option<f64>) -> Result<Option<u64>> {
    v.map(|v| to_usize(env, "maxBytes", v).map(|n| n as u64))
        .transpose()
}

/// `msgget(key, IPC_CREAT [| IPC_EXCL] | mode)`, then `IPC_SET` of `msg_qbytes`.
#[napi]
pub fn msg_create(
    env: Env,
    key: i32,
    mode: u32,
    exclusive: bool,
    max_bytes: Option<f64>,
) -> Result<NativeCreated> {
    let options = QueueOptions {
        mode,
        exclusive,
        max_bytes: to_max_bytes(&env, max_bytes)?,
    };
    let (queue, new) = js(&env, MessageQueue::create(key, &options))?;
    Ok(created(queue.id(), new))
}

/// `msgctl(id, IPC_SET)`, with `msg_qbytes`.
#[napi]
pub fn msg_set(env: Env, id: i32, options: NativeSetOptions) -> Result<()> {
    let perm = options.perm();
    let options = QueueSetOptions {
        uid: perm.uid,
        gid: perm.gid,
        mode: perm.mode,
        max_bytes: to_max_bytes(&env, options.max_bytes)?,
    };
    js(&env, MessageQueue::from_id(id).set(&options))
}

/// The kernel's message queue limits and usage (`ipcs -q -l`, `ipcs -q -u`).
#[napi(object)]
pub struct NativeMsgLimits {
    pub max_message_size: f64,
    pub default_max_bytes: f64,
    pub max_queues: f64,
    pub used_queues: f64,
    pub total_messages: f64,
    pub total_bytes: f64,
}

/// `msgctl(0, IPC_INFO)` and `msgctl(0, MSG_INFO)`.
#[napi]
pub fn msg_limits(env: Env) -> Result<NativeMsgLimits> {
    let l = js(&env, sysv_shm::queue_limits())?;
    Ok(NativeMsgLimits {
        max_message_size: l.max_message_size as f64,
        default_max_bytes: l.default_max_bytes as f64,
        max_queues: l.max_queues as f64,
        used_queues: l.used_queues as f64,
        total_messages: l.total_messages as f64,
        total_bytes: l.total_bytes as f64,
    })
}

// --- Semaphore sets -----------------------------------------------------

/// `struct semid_ds` as plain values (times in ms since the epoch).
#[napi(object)]
pub struct NativeSemStat {
    pub id: i32,
    pub perm: NativePerm,
    pub count: f64,
    pub op_time: Option<f64>,
    pub change_time: Option<f64>,
}

impl From<SemInfo> for NativeSemStat {
    fn from(s: SemInfo) -> Self {
        NativeSemStat {
            id: s.id,
            perm: s.perm.into(),
            count: s.count as f64,
            op_time: millis(s.op_time),
            change_time: millis(s.change_time),
        }
    }
}

/// `semget(key, count, IPC_CREAT [| IPC_EXCL] | mode)`, then `SETALL
/// initial`. The core checks `count` against the kernel's `SEMMSL`.
#[napi]
pub fn sem_create(
    env: Env,
    key: i32,
    count: f64,
    initial: u32,
    mode: u32,
    exclusive: bool,
) -> Result<NativeCreated> {
    let count = to_usize(&env, "count", count)?;
    let initial = js(&env, sem_value(initial))?;
    let options = CreateOptions {
        mode,
        exclusive,
        ..CreateOptions::default()
    };
    let (set, new) = js(&env, SemaphoreSet::create(key, count, initial, &options))?;
    Ok(created(set.id(), new))
}

/// `semctl(id, 0, IPC_SET)`.
#[napi]
pub fn sem_set(env: Env, id: i32, options: NativeSetOptions) -> Result<()> {
    js(&env, SemaphoreSet::from_id(id).set(&options.perm()))
}
