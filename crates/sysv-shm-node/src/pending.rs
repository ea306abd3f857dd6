//! The one way an asynchronous call reaches JavaScript: a promise, a
//! [`WaitToken`] that cancels it, a teardown hook that cancels it when its JS
//! environment goes away (a worker is terminated), and a settle on the JS
//! thread that resolves with the value or rejects with the very error object
//! the synchronous call would throw ([`errors::rejection`]). Used by message
//! queues, semaphores, `waitAsync` and the channel's `recvAsync`; the calls
//! themselves run on the core's pool (`sysv_shm::blocking`) or its futex
//! waiter threads.

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use sysv_shm::CancelToken;

use crate::errors;
use crate::teardown::{release_teardown, watch_teardown};

/// Cancels the wait of one asynchronous call, from JavaScript: the call
/// rejects with `ABORT_ERR` unless it completed first.
#[napi]
pub struct WaitToken {
    pub(crate) token: CancelToken,
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

    /// Wakes the call waiting with this token at once. Idempotent.
    #[napi]
    pub fn cancel(&self) {
        self.token.cancel();
    }
}

/// Settles a promise made by [`promise`], from any thread, exactly once.
pub(crate) type Settle<T> = Box<dyn FnOnce(sysv_shm::Result<T>) + Send>;

type Resolver<V> = Box<dyn FnOnce(Env) -> Result<V> + Send>;

/// A promise for an asynchronous call that `token` cancels (also when the
/// environment is torn down), and what settles it: `to_js` turns the value
/// into the resolution on the JS thread; an error rejects with the object
/// [`errors::throw`] would throw. A value that arrives once the environment
/// is being torn down is dropped unconverted (its `Drop` may undo the call:
/// see `msg::Taken`, `sysv_shm::AppliedOps`), as it is when napi-rs drops an unrun settle.
pub(crate) fn promise<'env, T, V>(
    env: &'env Env,
    token: &CancelToken,
    to_js: fn(T) -> V,
) -> Result<(Object<'env>, Settle<T>)>
where
    T: Send + 'static,
    V: ToNapiValue + 'static,
{
    let (deferred, promise) = env.create_deferred::<V, Resolver<V>>()?;
    let hook = watch_teardown(env, token);
    let settle: Settle<T> = Box::new(move |r| {
        deferred.resolve(Box::new(move |env| {
            if release_teardown(&env, hook) | !can_run_js(&env) {
                drop(r);
                return Err(Error::new(
                    Status::Cancelled,
                    "the JS environment is being torn down".to_string(),
                ));
            }
            r.map(to_js).map_err(|e| errors::rejection(&env, e))
        }));
    });
    Ok((promise, settle))
}

/// Whether JS can still run in `env`: a call of the global `Object` succeeds
/// (`napi_call_function` fails once a worker's termination has begun).
fn can_run_js(env: &Env) -> bool {
    let raw = env.raw();
    let mut global = std::ptr::null_mut();
    let mut object = std::ptr::null_mut();
    let mut out = std::ptr::null_mut();
    // SAFETY: `env` is live on its JS thread (we are settling in it); every
    // out-pointer is valid and the property name is NUL-terminated.
    unsafe {
        sys::napi_get_global(raw, &mut global) == sys::Status::napi_ok
            && sys::napi_get_named_property(raw, global, c"Object".as_ptr(), &mut object)
                == sys::Status::napi_ok
            && sys::napi_call_function(raw, global, object, 0, std::ptr::null(), &mut out)
                == sys::Status::napi_ok
    }
}
