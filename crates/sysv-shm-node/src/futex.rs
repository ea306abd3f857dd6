//! `wait`, `notify` and `waitAsync` on a wait cell of a `Mapping`: the
//! cross-process futex protocol of `sysv_shm::futex`.

use std::time::Duration;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use sysv_shm::futex::AsyncOutcome;

use crate::errors::{invalid, throw};
use crate::mapping::CopyHandle;
use crate::pending::{self, WaitToken};
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

/// The promise of an asynchronous futex wait (of a mapping or a channel)
/// and the core callback that settles it: `"ok"`, `"not-equal"` or
/// `"timed-out"`; a cancelled wait rejects with `ABORT_ERR`, one ended by a
/// detach with `ERR_SHM_DETACHED`, one the kernel refused with its errno.
pub(crate) fn futex_promise<'env>(
    env: &'env Env,
    token: &WaitToken,
    id: i32,
) -> Result<(Object<'env>, sysv_shm::futex::OnDone)> {
    let (promise, settle) = pending::promise(env, &token.token, |s: &'static str| s)?;
    let on_done: sysv_shm::futex::OnDone = Box::new(move |o: AsyncOutcome| {
        settle(match o {
            AsyncOutcome::Ok => Ok("ok"),
            AsyncOutcome::TimedOut => Ok("timed-out"),
            AsyncOutcome::NotEqual => Ok("not-equal"),
            AsyncOutcome::Cancelled => Err(sysv_shm::Error::Cancelled),
            AsyncOutcome::Detached => Err(sysv_shm::Error::Detached { id }),
            AsyncOutcome::NoThread(errno) => Err(sysv_shm::Error::ThreadStart { errno }),
            AsyncOutcome::Failed(errno) => Err(sysv_shm::Error::Os {
                syscall: sysv_shm::futex::async_backend().as_str(),
                errno,
                context: "an asynchronous wait".into(),
            }),
        })
    });
    Ok((promise, on_done))
}

/// Blocks until the wait cell at `offset` of the mapping is notified
/// (`FUTEX_WAIT`), unless its value is not `expected`; `"ok"`,
/// `"not-equal"` or `"timed-out"`. A plain function over the mapping's
/// [`CopyHandle`], as every call of a hot path is.
pub(crate) fn mapping_wait(
    env: &Env,
    handle: &External<CopyHandle>,
    offset: f64,
    expected: i32,
    timeout_ms: Option<f64>,
) -> Result<&'static str> {
    let offset = to_usize(env, "byteOffset", offset)?;
    let timeout = timeout(env, timeout_ms)?;
    // The lock is held while asleep: only this JS thread uses the handle,
    // and it is the one asleep, so nothing waits on the lock meanwhile.
    handle.with_attachment(env, |map| {
        map.wait(offset, expected, timeout).map(|o| o.as_str())
    })
}

/// Wakes up to `count` waiters of the cell at `offset` of the mapping;
/// returns how many. No system call when the cell's waiter count is 0.
pub(crate) fn mapping_notify(
    env: &Env,
    handle: &External<CopyHandle>,
    offset: f64,
    count: u32,
) -> Result<u32> {
    let offset = to_usize(env, "byteOffset", offset)?;
    handle.with_attachment(env, |map| map.notify(offset, count))
}

/// Starts an asynchronous wait on the cell at `offset` of the mapping that
/// `token` cancels; the promise is as [`futex_promise`] says.
#[napi(
    ts_args_type = "handle: ExternalObject<'CopyHandle'>, offset: number, expected: number, timeoutMs: number | undefined | null, token: WaitToken",
    ts_return_type = "Promise<'ok' | 'not-equal' | 'timed-out'>"
)]
pub fn mapping_wait_async<'a>(
    env: &'a Env,
    handle: &External<CopyHandle>,
    offset: f64,
    expected: i32,
    timeout_ms: Option<f64>,
    token: &WaitToken,
) -> Result<Object<'a>> {
    let offset = to_usize(env, "byteOffset", offset)?;
    let timeout = timeout(env, timeout_ms)?;
    let id = handle.id();
    let map_err = |e| throw(env, e);
    handle.with(env, |map| {
        sysv_shm::futex::check_cell(map.len(), offset).map_err(map_err)?;
        if map.read_only() {
            return Err(throw(env, sysv_shm::Error::ReadOnly { id }));
        }
        let (promise, on_done) = futex_promise(env, token, id)?;
        // `on_done` settles the promise in every case (no thread too), so
        // the error is in the rejection.
        let _ = map.wait_async(
            offset,
            expected,
            timeout,
            handle.keepalive(),
            on_done,
            Some(&token.token),
        );
        Ok(promise)
    })
}

/// How this process serves `waitAsync`/`recvAsync`: `"futex_waitv"` (one
/// thread per 127 waits) or `"futex"` (a pooled thread per wait, where
/// `futex_waitv` is missing or `SYSV_SHM_FUTEX_WAITV=0`). Probed once.
#[napi]
pub fn futex_async_backend() -> &'static str {
    sysv_shm::futex::async_backend().as_str()
}
