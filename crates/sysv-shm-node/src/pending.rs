//! The one way an asynchronous call reaches JavaScript: a promise, a
//! [`WaitToken`] that cancels it, a teardown hook that cancels it when its JS
//! environment goes away (a worker is terminated), and a settle on the JS
//! thread that resolves with the value or rejects with the very error object
//! the synchronous call would throw ([`errors::rejection`]). Used by message
//! queues, semaphores, `waitAsync` and the channel's `recvAsync`; the calls
//! themselves run on the core's pool (`sysv_shm::blocking`) or its futex
//! waiter threads.

use napi::bindgen_prelude::*;
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
/// [`errors::throw`] would throw.
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
            release_teardown(&env, hook);
            r.map(to_js).map_err(|e| errors::rejection(&env, e))
        }));
    });
    Ok((promise, settle))
}
