//! `wait`, `notify` and `waitAsync` on a wait cell of a `Mapping`: the
//! cross-process futex protocol of `sysv_shm::futex`.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use sysv_shm::futex::AsyncOutcome;

use crate::errors::{invalid, shm_error, throw};
use crate::mapping::Mapping;
use crate::to_usize;

/// A timeout in milliseconds (`Infinity` or absent: none).
pub(crate) fn timeout(env: &Env, ms: Option<f64>) -> Result<Option<Duration>> {
    match ms {
        None => Ok(None),
        Some(ms) if ms.is_infinite() && ms > 0.0 => Ok(None),
        Some(ms) if ms.is_finite() && ms >= 0.0 => Ok(Some(Duration::from_secs_f64(ms / 1000.0))),
        Some(ms) => Err(invalid(
            env,
            "ERR_OUT_OF_RANGE",
            &format!("timeoutMs must be a non-negative number or Infinity, got {ms}"),
        )),
    }
}

/// What a pending asynchronous wait settles with: `"ok"`, `"timed-out"`,
/// `"cancelled"`, `"detached"` or `"error:ERRNO"`.
pub(crate) fn outcome_name(o: AsyncOutcome) -> String {
    match o {
        AsyncOutcome::Ok => "ok".into(),
        AsyncOutcome::TimedOut => "timed-out".into(),
        AsyncOutcome::Cancelled => "cancelled".into(),
        AsyncOutcome::Detached => "detached".into(),
        AsyncOutcome::NotEqual => "not-equal".into(),
        AsyncOutcome::Failed(e) => format!("error:{e:?}"),
    }
}

type Resolver = Box<dyn FnOnce(Env) -> Result<String> + Send>;

/// Makes a promise and the callback that settles it from any thread.
pub(crate) fn deferred(env: &Env) -> Result<(Object<'_>, sysv_shm::futex::OnDone)> {
    let (deferred, promise) = env.create_deferred::<String, Resolver>()?;
    let on_done: sysv_shm::futex::OnDone = Box::new(move |o: AsyncOutcome| {
        let name = outcome_name(o);
        deferred.resolve(Box::new(move |_env| Ok(name)));
    });
    Ok((promise, on_done))
}

/// `{ promise, id }` for a pending wait.
pub(crate) fn pending<'a>(env: &'a Env, promise: Object<'a>, id: u64) -> Result<Object<'a>> {
    let mut obj = Object::new(env)?;
    obj.set("promise", promise)?;
    obj.set("id", id as f64)?;
    Ok(obj)
}

#[napi]
impl Mapping {
    /// Blocks until the wait cell at `offset` is notified (`FUTEX_WAIT`),
    /// unless its value is not `expected`; `"ok"`, `"not-equal"` or
    /// `"timed-out"`.
    #[napi]
    pub fn wait(
        &self,
        env: Env,
        offset: f64,
        expected: i32,
        timeout_ms: Option<f64>,
    ) -> Result<&'static str> {
        let offset = to_usize(&env, "byteOffset", offset)?;
        let timeout = timeout(&env, timeout_ms)?;
        let guard = self.shared.lock();
        let map = guard.as_ref().ok_or_else(|| detached(&env, self.id))?;
        // The lock is held while asleep: only this JS thread uses the handle,
        // and it is the one asleep, so nothing waits on the lock meanwhile.
        map.wait(offset, expected, timeout)
            .map(|o| o.as_str())
            .map_err(|e| throw(&env, e))
    }

    /// Wakes up to `count` waiters of the cell at `offset`; returns how many.
    /// No system call when the cell's waiter count is 0.
    #[napi]
    pub fn notify(&self, env: Env, offset: f64, count: u32) -> Result<u32> {
        let offset = to_usize(&env, "byteOffset", offset)?;
        let guard = self.shared.lock();
        let map = guard.as_ref().ok_or_else(|| detached(&env, self.id))?;
        map.notify(offset, count).map_err(|e| throw(&env, e))
    }

    /// Starts an asynchronous wait: `{ promise, id }`; the promise resolves
    /// to `"ok"`, `"not-equal"` (then `id` is 0), `"timed-out"`,
    /// `"cancelled"` (see `cancelWait`), `"detached"` or `"error:ERRNO"`.
    #[napi(ts_return_type = "{ promise: Promise<string>, id: number }")]
    pub fn wait_async<'a>(
        &self,
        env: &'a Env,
        offset: f64,
        expected: i32,
        timeout_ms: Option<f64>,
    ) -> Result<Object<'a>> {
        let offset = to_usize(env, "byteOffset", offset)?;
        let timeout = timeout(env, timeout_ms)?;
        let guard = self.shared.lock();
        let map = guard.as_ref().ok_or_else(|| detached(env, self.id))?;
        sysv_shm::futex::check_cell(map.len(), offset).map_err(|e| throw(env, e))?;
        if map.read_only() {
            return Err(throw(env, sysv_shm::Error::ReadOnly { id: self.id }));
        }
        let (promise, on_done) = deferred(env)?;
        let keepalive: Arc<dyn std::any::Any + Send + Sync> = self.shared.clone();
        // `on_done` settles the promise in every case, errors included.
        match map.wait_async(offset, expected, timeout, keepalive, on_done) {
            Ok(id) => pending(env, promise, id.unwrap_or(0)),
            Err(e) => Err(throw(env, e)),
        }
    }
}

/// How this process serves `waitAsync`/`recvAsync`: `"futex_waitv"` (one
/// thread per 127 waits) or `"futex"` (a pooled thread per wait, where
/// `futex_waitv` is missing or `SYSV_SHM_FUTEX_WAITV=0`). Probed once.
#[napi]
pub fn futex_async_backend() -> &'static str {
    sysv_shm::futex::async_backend().as_str()
}

/// Cancels a pending asynchronous wait (of a mapping or a channel): its
/// promise resolves to `"cancelled"`. Returns `false` if it had completed.
#[napi]
pub fn cancel_wait(id: f64) -> bool {
    sysv_shm::futex::cancel(id as u64)
}

fn detached(env: &Env, id: i32) -> Error {
    shm_error(
        env,
        "ERR_SHM_DETACHED",
        &format!("segment {id} has been detached from this handle"),
    )
}
