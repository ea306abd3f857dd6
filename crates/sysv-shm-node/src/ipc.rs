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

/// `shmget(key, 0, 0)`: the id of an existing segment.
#[napi]
pub fn shm_open(env: Env, key: i32) -> Result<i32> {
    js(&env, Segment::open(key).map(|s| s.id()))
}

/// `shmctl(id, IPC_STAT)`.
#[napi]
pub fn shm_stat(env: Env, id: i32) -> Result<NativeShmStat> {
    js(&env, Segment::from_id(id).stat().map(Into::into))
}

/// `shmctl(slot, SHM_STAT_ANY)` of the slot of `id` (no read permission
/// needed); `null` if the segment is gone or the kernel is older than 4.17.
#[napi]
pub fn shm_stat_any(id: i32) -> Option<NativeShmStat> {
    Segment::from_id(id).stat_any().map(Into::into)
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

/// `shmctl(id, IPC_RMID)`.
#[napi]
pub fn shm_remove(env: Env, id: i32) -> Result<()> {
    js(&env, Segment::from_id(id).remove())
}

/// Every segment, as `ipcs -m` lists them.
#[napi]
pub fn shm_list(env: Env) -> Result<Vec<NativeShmStat>> {
    js(&env, sysv_shm::list_segments()).map(|v| v.into_iter().map(Into::into).collect())
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

/// `msgget(key, 0)`: the id of an existing queue.
#[napi]
pub fn msg_open(env: Env, key: i32) -> Result<i32> {
    js(&env, MessageQueue::open(key).map(|q| q.id()))
}

/// `msgctl(id, IPC_STAT)`.
#[napi]
pub fn msg_stat(env: Env, id: i32) -> Result<NativeMsgStat> {
    js(&env, MessageQueue::from_id(id).stat().map(Into::into))
}

/// `msgctl(slot, MSG_STAT_ANY)` of the slot of `id` (no read permission
/// needed); `null` if the queue is gone or the kernel is older than 4.17.
#[napi]
pub fn msg_stat_any(id: i32) -> Option<NativeMsgStat> {
    MessageQueue::from_id(id).stat_any().map(Into::into)
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

/// `msgctl(id, IPC_RMID)`.
#[napi]
pub fn msg_remove(env: Env, id: i32) -> Result<()> {
    js(&env, MessageQueue::from_id(id).remove())
}

/// Every queue, as `ipcs -q` lists them.
#[napi]
pub fn msg_list(env: Env) -> Result<Vec<NativeMsgStat>> {
    js(&env, sysv_shm::list_queues()).map(|v| v.into_iter().map(Into::into).collect())
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

/// `semget(key, 0, 0)`.
#[napi]
pub fn sem_open(env: Env, key: i32) -> Result<i32> {
    js(&env, SemaphoreSet::open(key).map(|s| s.id()))
}

/// `semctl(id, 0, IPC_STAT)`.
#[napi]
pub fn sem_stat(env: Env, id: i32) -> Result<NativeSemStat> {
    js(&env, SemaphoreSet::from_id(id).stat().map(Into::into))
}

/// `semctl(slot, 0, SEM_STAT_ANY)` of the slot of `id` (no read permission
/// needed); `null` if the set is gone or the kernel is older than 4.17.
#[napi]
pub fn sem_stat_any(id: i32) -> Option<NativeSemStat> {
    SemaphoreSet::from_id(id).stat_any().map(Into::into)
}

/// `semctl(id, 0, IPC_SET)`.
#[napi]
pub fn sem_set(env: Env, id: i32, options: NativeSetOptions) -> Result<()> {
    js(&env, SemaphoreSet::from_id(id).set(&options.perm()))
}

/// `semctl(id, 0, IPC_RMID)`.
#[napi]
pub fn sem_remove(env: Env, id: i32) -> Result<()> {
    js(&env, SemaphoreSet::from_id(id).remove())
}

/// Every semaphore set, as `ipcs -s` lists them.
#[napi]
pub fn sem_list(env: Env) -> Result<Vec<NativeSemStat>> {
    js(&env, sysv_shm::list_semaphores()).map(|v| v.into_iter().map(Into::into).collect())
}
