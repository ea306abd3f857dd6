//! The calls of the hot paths as bare Node-API callbacks: every plain
//! function over a [`CopyHandle`] (a mapping's or a channel's `External`)
//! that does not start an asynchronous wait.
//!
//! napi-rs 3 wraps each `#[napi]` function that takes arguments in a
//! per-call borrow scope (an `Arc<Mutex<..>>` allocated, pushed on and
//! popped off thread-local stacks, then deferred and closed around the return
//! value's conversion): about 200 ns of a 300 ns call on the bench machine,
//! measured with `perf` (`native_borrow::close_scope`, `NativeBorrowScope::new`,
//! `malloc`/`free`). These functions need none of it: their arguments are
//! numbers, views and an `External` (no class instance to borrow). None
//! calls into JavaScript itself; converting an array argument
//! (`channelTrySendMany`'s list) may run the array's getters, which could in
//! turn call a hot function on the same handle: both calls then hold shared
//! references to the `External` (napi-rs hands out `&'static`), which only
//! read it, and no lock is held during a conversion. So each is registered here with `napi_create_function`
//! and a callback that reads its arguments with `napi_get_cb_info`, converts
//! them with napi-rs's own conversions, calls the function and converts the
//! result, as napi-rs's glue does, without the scope: a call then costs about
//! what a napi-rs function without arguments does. Their TypeScript
//! declarations are `HotFunctions` in `src/binding.ts` (napi-rs declares only
//! what it registers).
//!
//! # References
//! Node-API `napi_create_function`, `napi_get_cb_info`, `napi_throw`.

use std::ffi::CStr;
use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

use crate::channel::{self, ChannelCopy};
use crate::futex;
use crate::mapping::{self, CopyHandle};
use crate::mutex;

/// The most arguments a hot function takes.
const MAX_ARGS: usize = 5;

/// A hot function's arguments, converted in order.
struct Args {
    env: sys::napi_env,
    argv: [sys::napi_value; MAX_ARGS],
    next: usize,
}

impl Args {
    /// The next argument, converted to `T` (`undefined` if the caller
    /// passed fewer, as Node fills in).
    fn next<T: Arg>(&mut self) -> Result<T> {
        let v = self.argv[self.next];
        self.next += 1;
        // SAFETY: `v` is a live argument of this call, in `env`.
        unsafe { T::from_arg(self.env, v) }
    }
}

/// A type a hot function takes: napi-rs's conversion of it.
trait Arg: Sized {
    /// # Safety
    /// `v` is a live value of the current call in `env`.
    unsafe fn from_arg(env: sys::napi_env, v: sys::napi_value) -> Result<Self>;
}

macro_rules! arg_by_value {
    ($($t:ty),*) => {$(
        impl Arg for $t {
            unsafe fn from_arg(env: sys::napi_env, v: sys::napi_value) -> Result<Self> {
                // SAFETY: the caller's contract.
                unsafe { <$t as FromNapiValue>::from_napi_value(env, v) }
            }
        }
    )*};
}
arg_by_value!(
    f64,
    u32,
    i32,
    bool,
    Option<f64>,
    Unknown<'static>,
    Vec<Unknown<'static>>
);

impl<T: 'static> Arg for &'static External<T> {
    unsafe fn from_arg(env: sys::napi_env, v: sys::napi_value) -> Result<Self> {
        // SAFETY: the caller's contract; napi-rs checks that `v` is an
        // External of a `T` (its `TypeId`) and errs otherwise. The External
        // lives while the call runs (it is an argument), and the reference is
        // dropped before the call returns.
        unsafe { <External<T> as FromNapiRef>::from_napi_ref(env, v) }
    }
}

/// A hot function's result, converted to JavaScript in its call's `env`.
fn to_js<R: ToNapiValue>(env: &Env, r: R) -> Result<sys::napi_value> {
    // SAFETY: `env` is the live env of the current call.
    unsafe { R::to_napi_value(env.raw(), r) }
}

/// Runs one hot call: reads up to [`MAX_ARGS`] arguments, runs `f` (the
/// function, its result converted by [`to_js`]), and returns that value, or
/// throws its error (a `ShmError` that the function threw already is left
/// pending, as napi-rs does).
///
/// # Safety
/// `env` and `info` are those Node-API passed to the callback.
unsafe fn call(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    f: impl FnOnce(&Env, &mut Args) -> Result<sys::napi_value>,
) -> sys::napi_value {
    let mut args = Args {
        env,
        argv: [ptr::null_mut(); MAX_ARGS],
        next: 0,
    };
    let mut argc = MAX_ARGS;
    // SAFETY: `argv` holds `argc` values; Node fills the ones not passed with
    // `undefined`. The receiver and data pointers are not asked for.
    let status = unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            args.argv.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    let wrapped = Env::from_raw(env);
    let result =
        check_status!(status, "napi_get_cb_info failed").and_then(|()| f(&wrapped, &mut args));
    match result {
        Ok(v) => v,
        Err(e) => {
            let mut pending = false;
            // SAFETY: `env` is the live env of this call; `pending` is a
            // valid out-pointer.
            let asked = unsafe { sys::napi_is_exception_pending(env, &mut pending) };
            if e.status != Status::PendingException && !(asked == sys::Status::napi_ok && pending) {
                // SAFETY: as above; no exception is pending (asked), so this
                // one is thrown.
                unsafe { JsError::from(e).throw_into(env) };
            }
            ptr::null_mut()
        }
    }
}

/// The hot functions: `"jsName" => function(argument types)`; each gets a
/// bare callback, registered by [`register_hot_functions`].
macro_rules! hot_functions {
    ($($js:literal => $f:path [$($t:ty),*];)*) => {
        const HOT: &[(&CStr, sys::napi_callback)] = &[$(
            ($js, {
                unsafe extern "C" fn callback(
                    env: sys::napi_env,
                    info: sys::napi_callback_info,
                ) -> sys::napi_value {
                    // SAFETY: Node-API calls this with its env and info.
                    unsafe { call(env, info, |env, _a| to_js(env, $f(env $(, _a.next::<$t>()?)*)?)) }
                }
                Some(callback)
            }),
        )*];
    };
}

hot_functions! {
    c"mappingReadInto" => mapping::mapping_read_into[&'static External<CopyHandle>, Unknown<'static>, f64];
    c"mappingWrite" => mapping::mapping_write[&'static External<CopyHandle>, Unknown<'static>, f64];
    c"mappingWait" => futex::mapping_wait[&'static External<CopyHandle>, f64, i32, Option<f64>];
    c"mappingNotify" => futex::mapping_notify[&'static External<CopyHandle>, f64, u32];
    c"mappingWord" => mutex::mapping_word[&'static External<CopyHandle>, f64, u32, u32, u32];
    c"channelTrySend" => channel::channel_try_send[&'static External<ChannelCopy>, Unknown<'static>];
    c"channelSend" => channel::channel_send[&'static External<ChannelCopy>, Unknown<'static>, Option<f64>];
    c"channelTrySendMany" => channel::channel_try_send_many[&'static External<ChannelCopy>, Vec<Unknown<'static>>];
    c"channelTryRecvInto" => channel::channel_try_recv_into[&'static External<ChannelCopy>, Unknown<'static>];
    c"channelRecvInto" => channel::channel_recv_into[&'static External<ChannelCopy>, Unknown<'static>, Option<f64>];
    c"channelRecvMany" => channel::channel_recv_many[&'static External<ChannelCopy>, Unknown<'static>, Unknown<'static>, Option<f64>];
    c"channelNextLength" => channel::channel_next_length[&'static External<ChannelCopy>];
    c"channelClosed" => channel::channel_closed[&'static External<ChannelCopy>];
    c"channelTryRecv" => channel::channel_try_recv[&'static External<ChannelCopy>];
    c"channelRecv" => channel::channel_recv[&'static External<ChannelCopy>, Option<f64>];
    c"channelWake" => channel::channel_wake[&'static External<ChannelCopy>, bool];
}

/// Adds the hot functions to the module's exports.
#[napi(module_exports)]
pub fn register_hot_functions(mut exports: Object, env: Env) -> Result<()> {
    for (name, callback) in HOT {
        let mut f = ptr::null_mut();
        // SAFETY: `name` is NUL-terminated (its length is passed), the callback
        // has Node-API's signature, and `f` is a valid out-pointer.
        let status = unsafe {
            sys::napi_create_function(
                env.raw(),
                name.as_ptr(),
                name.to_bytes().len() as isize,
                *callback,
                ptr::null_mut(),
                &mut f,
            )
        };
        check_status!(status, "napi_create_function failed")?;
        // SAFETY: `f` is the function just made in this env.
        let value = unsafe { Unknown::from_raw_unchecked(env.raw(), f) };
        exports.set_named_property(name.to_str().unwrap_or_default(), value)?;
    }
    Ok(())
}
