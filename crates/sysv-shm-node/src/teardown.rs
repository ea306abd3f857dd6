//! Cancelling a pending asynchronous call when its JS environment goes
//! away (a worker is terminated): the one teardown hook of this addon, used
//! by every asynchronous call (`crate::pending`: message queues, semaphores,
//! `waitAsync`, the channel's `recvAsync`), so that no thread is left
//! blocked, or goes on acting, for an environment that no longer exists.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::sys;
use sysv_shm::CancelToken;

/// Cancels a pending call's token when its JS environment is torn down
/// (`napi_add_env_cleanup_hook`).
///
/// The hook owns one reference (leaked into its argument); the settling
/// call holds another, so the state outlives both. Exactly one of the hook
/// and the settling claims the hook's reference: the hook by running, the
/// settling by unregistering the hook first.
pub(crate) struct Teardown {
    token: CancelToken,
    claimed: AtomicBool,
}

unsafe extern "C" fn on_teardown(arg: *mut c_void) {
    // SAFETY: `arg` is the reference leaked by `watch_teardown`. The hook runs
    // at most once, and never after `release_teardown` unregistered it.
    let state = unsafe { Arc::from_raw(arg.cast::<Teardown>()) };
    if !state.claimed.swap(true, Ordering::AcqRel) {
        state.token.cancel();
    }
    // Dropping `state` releases the hook's reference.
}

/// Registers the teardown hook; returns the settling's reference to the state.
pub(crate) fn watch_teardown(env: &Env, token: &CancelToken) -> Option<Arc<Teardown>> {
    let state = Arc::new(Teardown {
        token: token.clone(),
        claimed: AtomicBool::new(false),
    });
    let arg = Arc::into_raw(Arc::clone(&state)).cast_mut();
    // SAFETY: `env` is live; `arg` is a leaked reference, released by the
    // hook or by `release_teardown`.
    let status =
        unsafe { sys::napi_add_env_cleanup_hook(env.raw(), Some(on_teardown), arg.cast()) };
    if status == sys::Status::napi_ok {
        Some(state)
    } else {
        // SAFETY: not registered: release the reference leaked above.
        drop(unsafe { Arc::from_raw(arg) });
        None
    }
}

/// On the JS thread, when the call settles: unregisters the hook, unless it
/// has run. Returns whether it had run: the environment is going away, and
/// no JS will see what the call settles with.
pub(crate) fn release_teardown(env: &Env, state: Option<Arc<Teardown>>) -> bool {
    let Some(state) = state else { return false };
    if state.claimed.swap(true, Ordering::AcqRel) {
        return true;
    }
    let arg = Arc::as_ptr(&state);
    // SAFETY: `env` is live (we are settling in it) and the hook is still
    // registered with exactly this function and argument.
    let status = unsafe {
        sys::napi_remove_env_cleanup_hook(env.raw(), Some(on_teardown), arg.cast_mut().cast())
    };
    if status == sys::Status::napi_ok {
        // SAFETY: the hook is gone without having run: release its reference.
        drop(unsafe { Arc::from_raw(arg) });
    }
    false
}
