//! Node-API binding of the `sysv-shm` crate.
//!
//! Thin by design: argument checks with clear messages live in `index.ts`
//! (they run before any call reaches here), syscall wrapping lives in the
//! core crate. This crate converts values, owns the lifetime of mappings
//! shared between a JS handle and its zero-copy `ArrayBuffer`, and turns core
//! errors into `ShmError` objects.

#![cfg(target_os = "linux")]

mod buffer;
mod channel;
mod errors;
pub mod futex;
mod mapping;
pub mod msg;
mod pending;
pub mod semaphore;
mod teardown;

use std::path::Path;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use sysv_shm::{CreateOptions, Segment, SegmentInfo, SetOptions};

pub use channel::ChannelHandle;
pub use mapping::Mapping;

use errors::{invalid, throw, ErrorClass};

/// `struct shmid_ds` as plain values; times are milliseconds since the
/// epoch, or `null` when the event has not happened.
#[napi(object)]
pub struct NativeStat {
    pub id: i32,
    pub key: u32,
    pub size: f64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    pub creator_pid: i32,
    pub last_pid: i32,
    pub attach_count: f64,
    pub attach_time: Option<f64>,
    pub detach_time: Option<f64>,
    pub change_time: Option<f64>,
    pub removed: bool,
    pub locked: bool,
}

fn millis(t: Option<std::time::SystemTime>) -> Option<f64> {
    t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as f64)
}

impl From<SegmentInfo> for NativeStat {
    fn from(s: SegmentInfo) -> Self {
        NativeStat {
            id: s.id,
            key: s.key as u32,
            size: s.size as f64,
            mode: s.mode,
            uid: s.uid,
            gid: s.gid,
            cuid: s.cuid,
            cgid: s.cgid,
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

/// The kernel's limits and usage (`ipcs -l`, `ipcs -u`).
#[napi(object)]
pub struct NativeLimits {
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

/// What `shmget` returned and whether this call created the segment.
#[napi(object)]
pub struct NativeCreated {
    pub id: i32,
    pub created: bool,
}

/// Options of `IPC_SET`; absent fields keep their value.
#[napi(object)]
pub struct NativeSetOptions {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: Option<u32>,
}

/// Registers the `ShmError` class that errors of this addon are made of.
/// Called once per JS environment (main thread or worker) by `index.ts`.
#[napi]
pub fn set_error_class(env: Env, ctor: Unknown) -> Result<()> {
    ErrorClass::register(&env, ctor)
}

/// Records `buffer.constants.MAX_LENGTH`, the largest `ArrayBuffer` this
/// Node.js makes; no zero-copy buffer above it is attempted (the reason is
/// returned instead). Called by `index.ts` when it loads the addon.
#[napi]
pub fn set_max_buffer_length(env: Env, max: f64) -> Result<()> {
    buffer::set_max_length(to_usize(&env, "max", max)? as u64);
    Ok(())
}

/// Checks that a JS number is a whole, non-negative, safe integer; index.ts
/// checks first, so this only guards against direct use of the binding.
pub(crate) fn to_usize(env: &Env, what: &str, v: f64) -> Result<usize> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= 9_007_199_254_740_991.0 {
        Ok(v as usize)
    } else {
        Err(invalid(
            env,
            "ERR_OUT_OF_RANGE",
            &format!("{what} must be a non-negative safe integer, got {v}"),
        ))
    }
}

/// `ftok(3)`: a key from an existing path and a project id (1..=255).
#[napi]
pub fn ftok(env: Env, path: String, proj_id: u32) -> Result<u32> {
    if proj_id == 0 || proj_id > 255 {
        return Err(invalid(
            &env,
            "ERR_OUT_OF_RANGE",
            "projId must be an integer from 1 to 255",
        ));
    }
    sysv_shm::ftok(Path::new(&path), proj_id as u8)
        .map(|k| k as u32)
        .map_err(|e| throw(&env, e))
}

/// `shmget(key, size, IPC_CREAT [| IPC_EXCL] | mode [| SHM_HUGETLB | SHM_NORESERVE])`.
#[napi]
pub fn create(
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
    let (segment, created) = Segment::create(key, size, &options).map_err(|e| throw(&env, e))?;
    Ok(NativeCreated {
        id: segment.id(),
        created,
    })
}

/// `shmget(key, 0, 0)`: the id of an existing segment.
#[napi]
pub fn open(env: Env, key: i32) -> Result<i32> {
    Segment::open(key)
        .map(|s| s.id())
        .map_err(|e| throw(&env, e))
}

/// `shmctl(id, IPC_STAT)`.
#[napi]
pub fn stat(env: Env, id: i32) -> Result<NativeStat> {
    Segment::from_id(id)
        .stat()
        .map(NativeStat::from)
        .map_err(|e| throw(&env, e))
}

/// `shmctl(id, IPC_SET)`.
#[napi]
pub fn set(env: Env, id: i32, options: NativeSetOptions) -> Result<()> {
    let options = SetOptions {
        uid: options.uid,
        gid: options.gid,
        mode: options.mode,
    };
    Segment::from_id(id)
        .set(&options)
        .map_err(|e| throw(&env, e))
}

/// `shmctl(id, SHM_LOCK)` or `shmctl(id, SHM_UNLOCK)`.
#[napi]
pub fn lock(env: Env, id: i32, locked: bool) -> Result<()> {
    let segment = Segment::from_id(id);
    let r = if locked {
        segment.lock()
    } else {
        segment.unlock()
    };
    r.map_err(|e| throw(&env, e))
}

/// `shmctl(id, IPC_RMID)`.
#[napi]
pub fn remove(env: Env, id: i32) -> Result<()> {
    Segment::from_id(id).remove().map_err(|e| throw(&env, e))
}

/// Every segment, as `ipcs -m` lists them.
#[napi]
pub fn list_segments(env: Env) -> Result<Vec<NativeStat>> {
    sysv_shm::list_segments()
        .map(|v| v.into_iter().map(NativeStat::from).collect())
        .map_err(|e| throw(&env, e))
}

/// The kernel's limits (`ipcs -l`) and usage.
#[napi]
pub fn limits(env: Env) -> Result<NativeLimits> {
    let l = sysv_shm::limits().map_err(|e| throw(&env, e))?;
    Ok(NativeLimits {
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
