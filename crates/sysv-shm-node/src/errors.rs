//! Errors thrown to JavaScript: `ShmError` (with `code`, `errno`, `syscall`)
//! for failed system calls and states of a handle, `RangeError`/`TypeError`
//! for arguments.

use std::ptr;

use napi::bindgen_prelude::*;
use napi::{sys, JsValue};

/// The constructor of `ShmError`, registered by `index.ts` in each JS
/// environment (instance data is per environment, so workers have their own).
pub(crate) struct ErrorClass {
    ctor: sys::napi_ref,
}

impl ErrorClass {
    pub(crate) fn register(env: &Env, ctor: Unknown) -> Result<()> {
        let mut reference = ptr::null_mut();
        // SAFETY: `env` and `ctor` are live for this call; the reference is
        // deleted by the instance-data finalizer below.
        check(unsafe {
            sys::napi_create_reference(env.raw(), ctor.value().value, 1, &mut reference)
        })?;
        env.set_instance_data(ErrorClass { ctor: reference }, (), |ctx| {
            // SAFETY: the reference was made in this environment, and instance
            // data is finalized once, while the environment still exists.
            unsafe { sys::napi_delete_reference(ctx.env.raw(), ctx.value.ctor) };
        })
    }
}

fn check(status: sys::napi_status) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(
            Status::from(status),
            "Node-API call failed".to_string(),
        ))
    }
}

/// Which JS class an error is made of.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Shm,
    Range,
    Type,
}

fn string(env: &Env, s: &str) -> Result<sys::napi_value> {
    let mut v = ptr::null_mut();
    // SAFETY: `s` is valid UTF-8 of `s.len()` bytes for the call.
    check(unsafe {
        sys::napi_create_string_utf8(env.raw(), s.as_ptr().cast(), s.len() as isize, &mut v)
    })?;
    Ok(v)
}

fn set(env: &Env, obj: sys::napi_value, name: &str, value: sys::napi_value) -> Result<()> {
    let key = string(env, name)?;
    // SAFETY: `obj`, `key` and `value` are live handles of this scope.
    check(unsafe { sys::napi_set_property(env.raw(), obj, key, value) })
}

fn build(env: &Env, e: &Mapped) -> Result<sys::napi_value> {
    let Mapped {
        kind,
        ref code,
        ref message,
        errno,
        syscall,
    } = *e;
    let raw = env.raw();
    let code_v = string(env, code)?;
    let msg_v = string(env, message)?;
    let mut err = ptr::null_mut();
    let class = if kind == Kind::Shm {
        env.get_instance_data::<ErrorClass>()?.map(|c| c.ctor)
    } else {
        None
    };
    match (kind, class) {
        (Kind::Shm, Some(reference)) => {
            let mut ctor = ptr::null_mut();
            // SAFETY: the reference is live as long as the instance data is.
            check(unsafe { sys::napi_get_reference_value(raw, reference, &mut ctor) })?;
            let args = [msg_v, code_v];
            // SAFETY: `ctor` is the registered constructor; `args` outlives the call.
            check(unsafe {
                sys::napi_new_instance(raw, ctor, args.len(), args.as_ptr(), &mut err)
            })?;
        }
        (kind, _) => {
            let create = match kind {
                Kind::Range => sys::napi_create_range_error,
                Kind::Type => sys::napi_create_type_error,
                Kind::Shm => sys::napi_create_error,
            };
            // SAFETY: `code_v` and `msg_v` are live strings of this scope and
            // `err` is a valid out-pointer.
            check(unsafe { create(raw, code_v, msg_v, &mut err) })?;
        }
    }
    set(env, err, "code", code_v)?;
    if let Some(errno) = errno {
        let mut n = ptr::null_mut();
        // SAFETY: plain value creation in this scope.
        check(unsafe { sys::napi_create_int32(raw, errno, &mut n) })?;
        set(env, err, "errno", n)?;
    }
    if let Some(syscall) = syscall {
        set(env, err, "syscall", string(env, syscall)?)?;
    }
    Ok(err)
}

/// Throws a JS error and returns the `PendingException` marker that tells
/// napi-rs not to throw again. If building the error fails, returns a plain
/// napi error that napi-rs throws instead.
fn throw_js(env: &Env, e: &Mapped) -> Error {
    match build(env, e) {
        Ok(err) => {
            // SAFETY: `err` is a live error object of this scope.
            unsafe { sys::napi_throw(env.raw(), err) };
            Error::from_status(Status::PendingException)
        }
        Err(_) => Error::new(Status::GenericFailure, format!("{}: {}", e.code, e.message)),
    }
}

/// A JS error without `errno` and `syscall` (an argument, a state of the handle).
fn plain(env: &Env, kind: Kind, code: &str, message: &str) -> Error {
    throw_js(
        env,
        &Mapped {
            kind,
            code: code.into(),
            message: message.into(),
            errno: None,
            syscall: None,
        },
    )
}

/// The JS error a core error becomes, for the sync and async paths alike:
/// its class, `code` (stable: listed in `src/errors.ts`), message, `errno`
/// and `syscall`.
struct Mapped {
    kind: Kind,
    code: String,
    message: String,
    errno: Option<i32>,
    syscall: Option<&'static str>,
}

fn map(e: &sysv_shm::Error) -> Mapped {
    use sysv_shm::Error as E;
    let message = e.to_string();
    let state = |code: &str| (Kind::Shm, code.to_string());
    let (kind, code) = match e {
        E::Os { errno, .. } | E::ThreadStart { errno } => (Kind::Shm, format!("{errno:?}")),
        E::OutOfBounds { .. } => (Kind::Range, "ERR_OUT_OF_RANGE".into()),
        E::ReadOnly { .. } => state("ERR_SHM_READ_ONLY"),
        E::Detached { .. } => state("ERR_SHM_DETACHED"),
        E::Closed { .. } => state("ERR_CHANNEL_CLOSED"),
        E::NotAChannel { .. } => state("ERR_SHM_NOT_A_CHANNEL"),
        E::ChannelCorrupt { .. } => state("ERR_CHANNEL_CORRUPT"),
        E::Cancelled => state("ABORT_ERR"),
        E::TooManyAttachments { .. } => {
            return Mapped {
                kind: Kind::Shm,
                code: "ERR_SHM_TOO_MANY_ATTACHMENTS".into(),
                message: format!(
                    "{message} (handles dropped without detach() are detached by garbage \
                     collection, whose finalizers only run when the event loop turns)"
                ),
                errno: None,
                syscall: None,
            }
        }
        _ => (Kind::Range, "ERR_INVALID_ARG_VALUE".into()),
    };
    let syscall = match e {
        E::ThreadStart { .. } => Some("pthread_create"),
        e => e.syscall(),
    };
    Mapped {
        kind,
        code,
        message,
        errno: e.errno().map(|n| n as i32),
        syscall,
    }
}

/// Throws a core error as the JS error its kind calls for.
pub(crate) fn throw(env: &Env, e: sysv_shm::Error) -> Error {
    throw_js(env, &map(&e))
}

/// The same error as [`throw`] makes, as a promise's rejection: napi-rs
/// rejects with the object itself.
pub(crate) fn rejection(env: &Env, e: sysv_shm::Error) -> Error {
    let m = map(&e);
    match build(env, &m) {
        // SAFETY: `err` is a live error object of this scope.
        Ok(err) => Error::from(unsafe { Unknown::from_raw_unchecked(env.raw(), err) }),
        Err(_) => Error::new(Status::GenericFailure, format!("{}: {}", m.code, m.message)),
    }
}

/// Throws a `RangeError` with this code.
pub(crate) fn invalid(env: &Env, code: &str, message: &str) -> Error {
    plain(env, Kind::Range, code, message)
}

/// Throws a `ShmError` without errno (a state of the handle).
pub(crate) fn shm_error(env: &Env, code: &str, message: &str) -> Error {
    plain(env, Kind::Shm, code, message)
}

/// Throws a `TypeError` with this code.
pub(crate) fn type_error(env: &Env, message: &str) -> Error {
    plain(env, Kind::Type, "ERR_INVALID_ARG_TYPE", message)
}
