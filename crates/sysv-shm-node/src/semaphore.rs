//! System V semaphore sets for JS: thin functions over `sysv_shm::sem`.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use sysv_shm::sem::{OpOutcome, SemInfo, SemOp, SemaphoreSet};
use sysv_shm::{CreateOptions, SetOptions};

use crate::errors::{invalid, throw};
use crate::futex::timeout;
use crate::pending::{self, WaitToken};
use crate::{to_usize, NativeSetOptions};

/// One operation of `semop`.
#[napi(object)]
pub struct NativeSemOp {
    /// A number, not a `u32`: napi-rs converts with `ToUint32`, which wraps
    /// 2**32 to 0 (semaphore 0) before any check could see it.
    pub index: f64,
    /// A number, for the same reason (`ToInt32` wraps too).
    pub delta: f64,
    pub undo: bool,
    pub nowait: bool,
}

/// `struct semid_ds` as plain values (times in ms since the epoch).
#[napi(object)]
pub struct NativeSemStat {
    pub id: i32,
    pub key: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    pub count: u32,
    pub op_time: Option<f64>,
    pub change_time: Option<f64>,
}

fn millis(t: Option<std::time::SystemTime>) -> Option<f64> {
    t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as f64)
}

impl From<SemInfo> for NativeSemStat {
    fn from(s: SemInfo) -> Self {
        NativeSemStat {
            id: s.id,
            key: s.key as u32,
            mode: s.mode,
            uid: s.uid,
            gid: s.gid,
            cuid: s.cuid,
            cgid: s.cgid,
            count: s.count as u32,
            op_time: millis(s.op_time),
            change_time: millis(s.change_time),
        }
    }
}

/// What `semget` returned and whether this call created the set.
#[napi(object)]
pub struct NativeSemCreated {
    pub id: i32,
    pub created: bool,
}

fn ops(env: &Env, ops: &[NativeSemOp]) -> Result<Vec<SemOp>> {
    ops.iter()
        .map(|o| {
            let whole = |v: f64| v.is_finite() && v.fract() == 0.0;
            let index_ok = whole(o.index) && (0.0..=f64::from(u16::MAX)).contains(&o.index);
            let delta_ok = whole(o.delta) && (-32767.0..=32767.0).contains(&o.delta);
            if !index_ok || !delta_ok {
                return Err(invalid(
                    env,
                    "ERR_OUT_OF_RANGE",
                    &format!(
                        "semop index {} (0 to 65535) delta {} (-32767 to 32767) out of range",
                        o.index, o.delta
                    ),
                ));
            }
            Ok(SemOp {
                // Both checked above: whole numbers within the target types.
                index: o.index as u16,
                delta: o.delta as i16,
                undo: o.undo,
                nowait: o.nowait,
            })
        })
        .collect()
}

fn outcome(o: OpOutcome) -> &'static str {
    match o {
        OpOutcome::Done => "ok",
        OpOutcome::WouldBlock => "would-block",
        OpOutcome::TimedOut => "timed-out",
    }
}

/// `semget(key, count, IPC_CREAT [| IPC_EXCL] | mode)`, then `SETALL initial`.
#[napi]
pub fn sem_create(
    env: Env,
    key: i32,
    count: u32,
    initial: u32,
    mode: u32,
    exclusive: bool,
) -> Result<NativeSemCreated> {
    let initial = u16::try_from(initial).unwrap_or(u16::MAX);
    let options = CreateOptions {
        mode,
        exclusive,
        ..CreateOptions::default()
    };
    let (set, created) =
        SemaphoreSet::create(key, count as usize, initial, &options).map_err(|e| throw(&env, e))?;
    Ok(NativeSemCreated {
        id: set.id(),
        created,
    })
}

/// `semget(key, 0, 0)`.
#[napi]
pub fn sem_open(env: Env, key: i32) -> Result<i32> {
    SemaphoreSet::open(key)
        .map(|s| s.id())
        .map_err(|e| throw(&env, e))
}

/// `semop`/`semtimedop`: `"ok"`, `"would-block"` or `"timed-out"`.
#[napi]
pub fn sem_op(
    env: Env,
    id: i32,
    list: Vec<NativeSemOp>,
    timeout_ms: Option<f64>,
) -> Result<&'static str> {
    let list = ops(&env, &list)?;
    let timeout = timeout(&env, timeout_ms)?;
    SemaphoreSet::from_id(id)
        .op(&list, timeout)
        .map(outcome)
        .map_err(|e| throw(&env, e))
}

/// `semop` on a pooled thread (`sysv_shm::blocking`) that `token` cancels
/// at once (also when the JS environment is torn down, so that a terminated
/// worker's thread takes no unit); the promise resolves to `"ok"` or
/// `"timed-out"`, or rejects as `semOp` throws (`ABORT_ERR` if cancelled).
#[napi(ts_return_type = "Promise<'ok' | 'would-block' | 'timed-out'>")]
pub fn sem_op_async<'a>(
    env: &'a Env,
    id: i32,
    list: Vec<NativeSemOp>,
    timeout_ms: Option<f64>,
    token: &WaitToken,
) -> Result<Object<'a>> {
    let list = ops(env, &list)?;
    let timeout = timeout(env, timeout_ms)?;
    let (promise, settle) = pending::promise(env, &token.token, outcome)?;
    SemaphoreSet::from_id(id).op_async(list, timeout, token.token.clone(), settle);
    Ok(promise)
}

/// `GETVAL`.
#[napi]
pub fn sem_get_value(env: Env, id: i32, index: f64) -> Result<u32> {
    let index = to_usize(&env, "index", index)?;
    SemaphoreSet::from_id(id)
        .value(index)
        .map(u32::from)
        .map_err(|e| throw(&env, e))
}

/// `SETVAL`.
#[napi]
pub fn sem_set_value(env: Env, id: i32, index: f64, value: u32) -> Result<()> {
    let index = to_usize(&env, "index", index)?;
    let value = u16::try_from(value).unwrap_or(u16::MAX);
    SemaphoreSet::from_id(id)
        .set_value(index, value)
        .map_err(|e| throw(&env, e))
}

/// `GETALL`.
#[napi]
pub fn sem_get_all(env: Env, id: i32) -> Result<Vec<u32>> {
    SemaphoreSet::from_id(id)
        .values()
        .map(|v| v.into_iter().map(u32::from).collect())
        .map_err(|e| throw(&env, e))
}

/// `SETALL`.
#[napi]
pub fn sem_set_all(env: Env, id: i32, values: Vec<u32>) -> Result<()> {
    let values: Vec<u16> = values
        .into_iter()
        .map(|v| u16::try_from(v).unwrap_or(u16::MAX))
        .collect();
    SemaphoreSet::from_id(id)
        .set_all(&values)
        .map_err(|e| throw(&env, e))
}

/// `[GETNCNT, GETZCNT, GETPID]` of semaphore `index`.
#[napi]
pub fn sem_counts(env: Env, id: i32, index: f64) -> Result<Vec<i32>> {
    let index = to_usize(&env, "index", index)?;
    let set = SemaphoreSet::from_id(id);
    let (n, z) = set.waiting(index).map_err(|e| throw(&env, e))?;
    let pid = set.last_pid(index).map_err(|e| throw(&env, e))?;
    Ok(vec![n as i32, z as i32, pid])
}

/// `IPC_STAT`.
#[napi]
pub fn sem_stat(env: Env, id: i32) -> Result<NativeSemStat> {
    SemaphoreSet::from_id(id)
        .stat()
        .map(NativeSemStat::from)
        .map_err(|e| throw(&env, e))
}

/// `IPC_SET`.
#[napi]
pub fn sem_set(env: Env, id: i32, options: NativeSetOptions) -> Result<()> {
    let options = SetOptions {
        uid: options.uid,
        gid: options.gid,
        mode: options.mode,
    };
    SemaphoreSet::from_id(id)
        .set(&options)
        .map_err(|e| throw(&env, e))
}

/// `IPC_RMID`.
#[napi]
pub fn sem_remove(env: Env, id: i32) -> Result<()> {
    SemaphoreSet::from_id(id)
        .remove()
        .map_err(|e| throw(&env, e))
}

/// Every semaphore set, as `ipcs -s` lists them (`SEM_STAT_ANY`).
#[napi]
pub fn list_semaphores(env: Env) -> Result<Vec<NativeSemStat>> {
    sysv_shm::list_semaphores()
        .map(|v| v.into_iter().map(NativeSemStat::from).collect())
        .map_err(|e| throw(&env, e))
}
