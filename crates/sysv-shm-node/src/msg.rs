//! Message queues: `msgget`, `msgsnd`, `msgrcv`, `msgctl` for `src/message-queue.ts`.
//!
//! A queue is named by its msqid alone (it holds no resource in this
//! process), so these are plain functions over the id. The blocking calls
//! run on the calling thread (`msgSend`, `msgReceive`) or on a thread of
//! the core's pool (`msgSendAsync`, `msgReceiveAsync`; `sysv_shm::blocking`),
//! settled as every asynchronous call is (`crate::pending`).

use std::ffi::c_void;
use std::sync::OnceLock;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use sysv_shm::wait::{set_wake_strategy, wake_strategy, WakeStrategy};
use sysv_shm::{blocking, Message, MessageQueue, Receive, Wait};

use crate::buffer::view_bytes;
use crate::errors::{invalid, throw};
use crate::futex::timeout;
use crate::pending::{self, WaitToken};

/// Applies `SYSV_SHM_MSG_WAIT=poll` once per process.
fn configure() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var_os("SYSV_SHM_MSG_WAIT").is_some_and(|v| v == "poll") {
            set_wake_strategy(WakeStrategy::Poll);
        }
    });
}

/// How timed and cancellable waits sleep in this process: `"signal"` or `"poll"`.
#[napi]
pub fn msg_wait_strategy() -> String {
    configure();
    match wake_strategy() {
        WakeStrategy::Signal => "signal".into(),
        WakeStrategy::Poll => "poll".into(),
    }
}

/// How long a call may block: `timeoutMs` as every call takes it (absent or
/// `Infinity`: forever; see [`timeout`]).
fn wait_of(env: &Env, block: bool, timeout_ms: Option<f64>) -> Result<Wait> {
    let t = timeout(env, timeout_ms)?;
    Ok(match (block, t) {
        (false, _) => Wait::NoWait,
        (true, None) => Wait::Forever,
        (true, Some(d)) => Wait::Timeout(d),
    })
}

fn to_i64(env: &Env, what: &str, v: f64) -> Result<i64> {
    if v.is_finite() && v.fract() == 0.0 && v.abs() <= 9_007_199_254_740_991.0 {
        Ok(v as i64)
    } else {
        Err(invalid(
            env,
            "ERR_OUT_OF_RANGE",
            &format!("{what} must be a safe integer, got {v}"),
        ))
    }
}

fn would_block(e: &sysv_shm::Error, errno: sysv_shm::Errno) -> bool {
    e.errno() == Some(errno)
}

/// `msgsnd` on this thread. Returns `false` instead of throwing `EAGAIN`
/// when `quiet` (the queue stayed full).
#[napi(
    ts_args_type = "id: number, mtype: number, data: ArrayBufferView, block: boolean, \
                       timeoutMs: number | undefined | null, quiet: boolean"
)]
pub fn msg_send(
    env: Env,
    id: i32,
    mtype: f64,
    data: Unknown,
    block: bool,
    timeout_ms: Option<f64>,
    quiet: bool,
) -> Result<bool> {
    configure();
    let mtype = to_i64(&env, "type", mtype)?;
    let wait = wait_of(&env, block, timeout_ms)?;
    let (ptr, len) = view_bytes(&env, &data)?;
    let queue = MessageQueue::from_id(id);
    // SAFETY: `ptr` is the live view's memory, readable for `len` bytes, and
    // no JS runs during this call; send_raw copies it with raw reads first.
    let r = unsafe { queue.send_raw(mtype, ptr, len, wait, None) };
    match r {
        Ok(()) => Ok(true),
        Err(e) if quiet && would_block(&e, sysv_shm::Errno::EAGAIN) => Ok(false),
        Err(e) => Err(throw(&env, e)),
    }
}

fn receive_options(
    env: &Env,
    mtype: f64,
    max_size: Option<f64>,
    truncate: bool,
    except: bool,
) -> Result<Receive> {
    Ok(Receive {
        mtype: to_i64(env, "type", mtype)?,
        max_size: match max_size {
            Some(v) => Some(crate::to_usize(env, "maxSize", v)?),
            None => None,
        },
        truncate,
        except,
    })
}

/// A received message as one buffer: `mtype` as 8 bytes little-endian, then
/// the text. One allocation and no object to build: `message-queue.ts`
/// reads the type and hands out the rest as `data`.
fn message_bytes(m: &Message) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + m.data.len());
    v.extend_from_slice(&m.mtype.to_le_bytes());
    v.extend_from_slice(&m.data);
    v
}

/// [`message_bytes`] in a new JS `Buffer` (`napi_create_buffer`: V8-owned
/// memory, so no finalizer per message).
fn message_buffer<'env>(env: &'env Env, m: &Message) -> Result<Unknown<'env>> {
    let len = 8 + m.data.len();
    let mut data: *mut c_void = std::ptr::null_mut();
    let mut value = std::ptr::null_mut();
    // SAFETY: `env` is live; the out-pointers are valid.
    let status = unsafe { sys::napi_create_buffer(env.raw(), len, &mut data, &mut value) };
    if status != sys::Status::napi_ok || (data.is_null() && len > 0) {
        return Err(Error::new(
            Status::from(status),
            "napi_create_buffer failed".to_string(),
        ));
    }
    let dst = data.cast::<u8>();
    // SAFETY: the new buffer has `len` = 8 + data.len() writable bytes, and
    // does not overlap `m`.
    unsafe {
        std::ptr::copy_nonoverlapping(m.mtype.to_le_bytes().as_ptr(), dst, 8);
        std::ptr::copy_nonoverlapping(m.data.as_ptr(), dst.add(8), m.data.len());
    }
    // SAFETY: `value` is a live Buffer made in this env during this call.
    Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), value) })
}

/// `msgrcv` on this thread: the message as [`message_bytes`] lays it out, or
/// `null` instead of throwing `ENOMSG` when `quiet` (no message came).
#[napi(ts_return_type = "Buffer | null")]
#[allow(clippy::too_many_arguments)]
pub fn msg_receive<'env>(
    env: &'env Env,
    id: i32,
    mtype: f64,
    max_size: Option<f64>,
    truncate: bool,
    except: bool,
    block: bool,
    timeout_ms: Option<f64>,
    quiet: bool,
) -> Result<Option<Unknown<'env>>> {
    configure();
    let what = receive_options(env, mtype, max_size, truncate, except)?;
    let wait = wait_of(env, block, timeout_ms)?;
    match MessageQueue::from_id(id).receive(&what, wait) {
        Ok(m) => message_buffer(env, &m).map(Some),
        Err(e) if quiet && would_block(&e, sysv_shm::Errno::ENOMSG) => Ok(None),
        Err(e) => Err(throw(env, e)),
    }
}

/// `msgrcv` on a pooled thread (`sysv_shm::blocking`) that `token` cancels
/// at once; the promise resolves with the message as [`message_bytes`] lays
/// it out, or rejects as `msgReceive` throws (`ENOMSG` on timeout,
/// `ABORT_ERR` when cancelled: then no message was taken).
#[napi(ts_return_type = "Promise<Buffer>")]
#[allow(clippy::too_many_arguments)]
pub fn msg_receive_async<'env>(
    env: &'env Env,
    id: i32,
    mtype: f64,
    max_size: Option<f64>,
    truncate: bool,
    except: bool,
    timeout_ms: Option<f64>,
    token: &WaitToken,
) -> Result<Object<'env>> {
    configure();
    let what = receive_options(env, mtype, max_size, truncate, except)?;
    let wait = wait_of(env, true, timeout_ms)?;
    let (promise, settle) = pending::promise(env, &token.token, |mut m: Taken| {
        Buffer::from(
            m.0.take()
                .map(|(_, m)| message_bytes(&m))
                .unwrap_or_default(),
        )
    })?;
    let t = token.token.clone();
    blocking::run(
        move || {
            let queue = MessageQueue::from_id(id);
            let m = queue.receive_cancellable(&what, wait, &t)?;
            Ok(Taken(Some((queue, m))))
        },
        settle,
    );
    Ok(promise)
}

/// A message taken for a `msgReceiveAsync` whose promise may never be
/// settled: if its JS environment is torn down (a worker is terminated)
/// after `msgrcv` took it, the settle is dropped unrun, and this puts the
/// message back in its queue (`msgsnd` with `IPC_NOWAIT`, at the end of the
/// queue) instead of losing it.
struct Taken(Option<(MessageQueue, Message)>);

impl Drop for Taken {
    fn drop(&mut self) {
        if let Some((queue, m)) = self.0.take() {
            // Never blocks, never panics: a queue that is full or gone now
            // loses the message, as it would have lost a send.
            let _ = queue.send(m.mtype, &m.data, Wait::NoWait);
        }
    }
}

/// `msgsnd` on a pooled thread that `token` cancels at once; `data` is
/// copied before this returns. The promise resolves with nothing, or
/// rejects as `msgSend` throws (`EAGAIN` on timeout, `ABORT_ERR` when
/// cancelled: then nothing was sent).
#[napi(
    ts_args_type = "id: number, mtype: number, data: ArrayBufferView, \
                    timeoutMs: number | undefined | null, token: WaitToken",
    ts_return_type = "Promise<void>"
)]
pub fn msg_send_async<'env>(
    env: &'env Env,
    id: i32,
    mtype: f64,
    data: Unknown,
    timeout_ms: Option<f64>,
    token: &WaitToken,
) -> Result<Object<'env>> {
    configure();
    let mtype = to_i64(env, "type", mtype)?;
    let wait = wait_of(env, true, timeout_ms)?;
    let (ptr, len) = view_bytes(env, &data)?;
    let mut bytes = Vec::<u8>::with_capacity(len);
    // SAFETY: `ptr` is readable for `len` bytes (the live view, no JS runs
    // now) and `bytes` has room for them; raw copy, no reference is made.
    unsafe {
        std::ptr::copy_nonoverlapping(ptr, bytes.as_mut_ptr(), len);
        bytes.set_len(len);
    }
    let (promise, settle) = pending::promise(env, &token.token, |()| ())?;
    let t = token.token.clone();
    blocking::run(
        move || MessageQueue::from_id(id).send_cancellable(mtype, &bytes, wait, &t),
        settle,
    );
    Ok(promise)
}
