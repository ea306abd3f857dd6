//! Message queues: `msgget`, `msgsnd`, `msgrcv`, `msgctl` for `src/message-queue.ts`.
//!
//! A queue is named by its msqid alone (it holds no resource in this
//! process), so these are plain functions over the id. The blocking calls
//! run on the calling thread (`msgSend`, `msgReceive`) or on a thread of
//! their own (`msgSendAsync`, `msgReceiveAsync`): never on the libuv pool,
//! which a wait of unbounded length would starve. A [`WaitToken`] cancels
//! the wait; the thread then ends within microseconds (see
//! `sysv_shm::wait`). If the JS environment goes away (a worker is
//! terminated), its pending waits are cancelled so that no thread is left
//! blocked.

use std::ffi::c_void;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use sysv_shm::wait::{set_wait_strategy, wait_strategy, WaitStrategy};
use sysv_shm::{CancelToken, Message, MessageQueue, Receive, Wait};

use crate::buffer::view_bytes;
use crate::errors::{invalid, throw};
use crate::teardown::{release_teardown, watch_teardown};

/// A failed call, as values, for `src/message-queue.ts` to make a `ShmError` of.
#[napi(object)]
pub struct NativeErrorInfo {
    pub code: String,
    pub message: String,
    pub errno: Option<i32>,
    pub syscall: Option<String>,
}

/// What an asynchronous call settles with: a message (receive, laid out as
/// [`message_bytes`] says), nothing (send), or the error. It always
/// resolves; `message-queue.ts` throws.
#[napi(object)]
pub struct NativeOutcome {
    pub message: Option<Buffer>,
    pub error: Option<NativeErrorInfo>,
}

/// Cancels the wait of an asynchronous call, from JavaScript.
#[napi]
pub struct WaitToken {
    token: CancelToken,
}

#[napi]
impl WaitToken {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> WaitToken {
        WaitToken {
            token: CancelToken::new(),
        }
    }

    /// Wakes the call waiting with this token: it settles with `ECANCELED`
    /// unless it completed first. Idempotent.
    #[napi]
    pub fn cancel(&self) {
        self.token.cancel();
    }
}

/// Applies `SYSV_SHM_MSG_WAIT=poll` once per process.
fn configure() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var_os("SYSV_SHM_MSG_WAIT").is_some_and(|v| v == "poll") {
            set_wait_strategy(WaitStrategy::Poll);
        }
    });
}

/// How timed and cancellable waits sleep in this process: `"signal"` or `"poll"`.
#[napi]
pub fn msg_wait_strategy() -> String {
    configure();
    match wait_strategy() {
        WaitStrategy::Signal => "signal".into(),
        WaitStrategy::Poll => "poll".into(),
    }
}

fn wait_of(block: bool, timeout_ms: Option<f64>) -> Wait {
    match (block, timeout_ms) {
        (false, _) => Wait::NoWait,
        (true, None) => Wait::Forever,
        (true, Some(ms)) => Wait::Timeout(
            Duration::try_from_secs_f64(ms.max(0.0) / 1000.0).unwrap_or(Duration::MAX),
        ),
    }
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

fn check_timeout(env: &Env, timeout_ms: Option<f64>) -> Result<()> {
    match timeout_ms {
        Some(ms) if !(ms.is_finite() && ms >= 0.0) => Err(invalid(
            env,
            "ERR_OUT_OF_RANGE",
            &format!("timeoutMs must be a non-negative number, got {ms}"),
        )),
        _ => Ok(()),
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
    check_timeout(&env, timeout_ms)?;
    let (ptr, len) = view_bytes(&env, &data)?;
    let queue = MessageQueue::from_id(id);
    // SAFETY: `ptr` is the live view's memory, readable for `len` bytes, and
    // no JS runs during this call; send_raw copies it with raw reads first.
    let r = unsafe { queue.send_raw(mtype, ptr, len, wait_of(block, timeout_ms), None) };
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
    check_timeout(env, timeout_ms)?;
    match MessageQueue::from_id(id).receive(&what, wait_of(block, timeout_ms)) {
        Ok(m) => message_buffer(env, &m).map(Some),
        Err(e) if quiet && would_block(&e, sysv_shm::Errno::ENOMSG) => Ok(None),
        Err(e) => Err(throw(env, e)),
    }
}

fn error_info(e: sysv_shm::Error) -> NativeErrorInfo {
    NativeErrorInfo {
        code: e
            .errno()
            .map(|n| format!("{n:?}"))
            .unwrap_or_else(|| "ERR_INVALID_ARG_VALUE".into()),
        errno: e.errno().map(|n| n as i32),
        syscall: e.syscall().map(String::from),
        message: e.to_string(),
    }
}

/// Threads for waits that may block for any time: one per pending wait
/// (never libuv's pool, which they would starve). A thread whose wait has
/// ended is kept for the next wait for [`pool::IDLE`], then ends: starting a
/// thread costs tens of microseconds, about as much as a round trip.
mod pool {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc::{self, RecvTimeoutError};
    use std::sync::{Mutex, MutexGuard};
    use std::time::Duration;

    type Job = Box<dyn FnOnce() + Send>;

    /// How long a thread waits for its next job before it ends.
    pub(super) const IDLE: Duration = Duration::from_secs(2);

    /// The threads waiting for a job, by id.
    static IDLE_THREADS: Mutex<Vec<(u64, mpsc::Sender<Job>)>> = Mutex::new(Vec::new());

    fn idle() -> MutexGuard<'static, Vec<(u64, mpsc::Sender<Job>)>> {
        IDLE_THREADS.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `job` on an idle thread, or on a new one.
    pub(super) fn run(mut job: Job) -> std::io::Result<()> {
        loop {
            let taken = idle().pop();
            match taken {
                Some((_, tx)) => match tx.send(job) {
                    Ok(()) => return Ok(()),
                    // That thread is gone (it cannot be, but then try another).
                    Err(mpsc::SendError(j)) => job = j,
                },
                None => break,
            }
        }
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sysv-msg-wait".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                // Stray signals (SIGCHLD of the application's children) go to
                // its own threads, not into this thread's msgrcv as EINTR.
                sysv_shm::wait::block_stray_signals();
                job();
                loop {
                    idle().push((id, tx.clone()));
                    match rx.recv_timeout(IDLE) {
                        Ok(job) => job(),
                        Err(RecvTimeoutError::Timeout) => {
                            let mut list = idle();
                            if let Some(i) = list.iter().position(|(x, _)| *x == id) {
                                list.swap_remove(i);
                                return;
                            }
                            drop(list);
                            // Taken from the list just now: its job is on the way.
                            match rx.recv() {
                                Ok(job) => job(),
                                Err(_) => return,
                            }
                        }
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .map(drop)
    }
}

/// Runs `work` on a thread of its own (see [`pool`]) and settles the returned promise
/// with its outcome on the JS thread; with `EAGAIN` from `pthread_create` if no thread
/// could be started (the promise is settled either way: one never settled would keep
/// the event loop alive).
fn spawn_wait<'env>(
    env: &'env Env,
    token: &CancelToken,
    work: impl FnOnce() -> std::result::Result<Option<Message>, sysv_shm::Error> + Send + 'static,
) -> Result<Object<'env>> {
    type Outcome = std::result::Result<Option<Message>, sysv_shm::Error>;
    type Resolver = Box<dyn FnOnce(Env) -> Result<NativeOutcome> + Send>;
    let (deferred, promise) = env.create_deferred::<NativeOutcome, Resolver>()?;
    let hook = watch_teardown(env, token);
    let settle = move |outcome: Outcome| {
        deferred.resolve(Box::new(move |env| {
            release_teardown(&env, hook);
            Ok(match outcome {
                Ok(m) => NativeOutcome {
                    message: m.map(|m| message_bytes(&m).into()),
                    error: None,
                },
                Err(e) => NativeOutcome {
                    message: None,
                    error: Some(error_info(e)),
                },
            })
        }));
    };
    // Shared with the job: a thread that fails to start drops the job unrun.
    let slot = Arc::new(Mutex::new(Some(settle)));
    let for_job = Arc::clone(&slot);
    let take = |slot: &Mutex<Option<_>>| slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    let started = pool::run(Box::new(move || {
        let outcome = work();
        if let Some(settle) = take(&for_job) {
            settle(outcome);
        }
    }));
    if let Err(e) = started {
        if let Some(settle) = take(&slot) {
            settle(Err(sysv_shm::Error::Os {
                syscall: "pthread_create",
                errno: sysv_shm::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EAGAIN)),
                context: "start a thread to wait on the queue".into(),
            }));
        }
    }
    Ok(promise)
}

/// `msgrcv` on a thread of its own; the promise resolves with `{ message }`
/// or `{ error }` (`ENOMSG` on timeout, `ECANCELED` when `token` cancels it).
#[napi(ts_return_type = "Promise<NativeOutcome>")]
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
    check_timeout(env, timeout_ms)?;
    let wait = wait_of(true, timeout_ms);
    let t = token.token.clone();
    spawn_wait(env, &token.token, move || {
        MessageQueue::from_id(id)
            .receive_cancellable(&what, wait, &t)
            .map(Some)
    })
}

/// `msgsnd` on a thread of its own; `data` is copied before this returns.
/// The promise resolves with `{}` or `{ error }` (`EAGAIN` on timeout,
/// `ECANCELED` when `token` cancels it).
#[napi(
    ts_args_type = "id: number, mtype: number, data: ArrayBufferView, \
                    timeoutMs: number | undefined | null, token: WaitToken",
    ts_return_type = "Promise<NativeOutcome>"
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
    check_timeout(env, timeout_ms)?;
    let (ptr, len) = view_bytes(env, &data)?;
    let mut bytes = Vec::<u8>::with_capacity(len);
    // SAFETY: `ptr` is readable for `len` bytes (the live view, no JS runs
    // now) and `bytes` has room for them; raw copy, no reference is made.
    unsafe {
        std::ptr::copy_nonoverlapping(ptr, bytes.as_mut_ptr(), len);
        bytes.set_len(len);
    }
    let wait = wait_of(true, timeout_ms);
    let t = token.token.clone();
    spawn_wait(env, &token.token, move || {
        MessageQueue::from_id(id)
            .send_cancellable(mtype, &bytes, wait, &t)
            .map(|()| None)
    })
}
