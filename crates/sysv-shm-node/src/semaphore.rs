//! System V semaphore sets for JS: thin functions over `sysv_shm::SemaphoreSet`.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use sysv_shm::{AppliedOps, OpOutcome, SemOp, SemaphoreSet, SEM_VALUE_MAX};

use crate::errors::{invalid, throw};
use crate::futex::timeout;
use crate::pending::{self, WaitToken};
use crate::to_usize;

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
/// worker's thread waits no longer); the promise resolves to `"ok"` or
/// `"timed-out"`, or rejects as `semOp` throws (`ABORT_ERR` if cancelled).
/// A unit that `semop` takes as the worker is terminated, whose settle then
/// cannot run or is dropped unrun, is given back (`sysv_shm::AppliedOps`).
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
    let (promise, settle) = pending::promise(env, &token.token, |a: AppliedOps| outcome(a.keep()))?;
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
    let value = sem_value(value).map_err(|e| throw(&env, e))?;
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
    let values = values
        .into_iter()
        .map(sem_value)
        .collect::<sysv_shm::Result<Vec<u16>>>()
        .map_err(|e| throw(&env, e))?;
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

/// A semaphore value from JS as the core's `u16`, unclamped: a value beyond
/// it is refused with the value given, as the core refuses one above
/// `SEMVMX`.
pub(crate) fn sem_value(v: u32) -> sysv_shm::Result<u16> {
    u16::try_from(v).map_err(|_| {
        sysv_shm::Error::InvalidArgument(format!("value must be at most {SEM_VALUE_MAX}, got {v}"))
    })
}
