//! Node-API binding of the `sysv-shm` crate.
//!
//! Thin by design: the core crate wraps the system calls and makes every
//! semantic check; `src/*.ts` only coerces JavaScript types. The IPC-object
//! calls of the three kinds are in [`ipc`]. This crate converts values, owns the lifetime of mappings
//! shared between a JS handle and its zero-copy `ArrayBuffer`, and turns core
//! errors into `ShmError` objects.

#![cfg(target_os = "linux")]

mod buffer;
pub mod channel;
mod errors;
pub mod futex;
pub mod hot;
pub mod ipc;
mod mapping;
pub mod msg;
pub mod mutex;
mod pending;
pub mod pubsub;
pub mod semaphore;
mod teardown;

use std::path::Path;

use napi::bindgen_prelude::*;
use napi_derive::napi;

pub use channel::{ChannelCopy, ChannelHandle};
pub use mapping::{mapping_attach, CopyHandle, Mapping};

use errors::{invalid, throw, ErrorClass};

/// Registers the `ShmError` class that errors of this addon are made of.
/// Called once per JS environment (main thread or worker) by `index.ts`.
#[napi]
pub fn set_error_class(env: Env, ctor: Unknown) -> Result<()> {
    ErrorClass::register(&env, ctor)
}

/// Records `buffer.constants.MAX_LENGTH`, the largest `ArrayBuffer` this
/// Node.js makes; no zero-copy buffer above it is attempted (the reason is
/// returned instead). Called by `index.ts` when it loads the addon.
#[napi]
pub fn set_max_buffer_length(env: Env, max: f64) -> Result<()> {
    buffer::set_max_length(to_usize(&env, "max", max)? as u64);
    Ok(())
}

/// Checks that a JS number is a whole, non-negative, safe integer; index.ts
/// checks first, so this only guards against direct use of the binding.
pub(crate) fn to_usize(env: &Env, what: &str, v: f64) -> Result<usize> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= 9_007_199_254_740_991.0 {
        Ok(v as usize)
    } else {
        Err(invalid(
            env,
            "ERR_OUT_OF_RANGE",
            &format!("{what} must be a non-negative safe integer, got {v}"),
        ))
    }
}

/// `ftok(3)`: a key from an existing path and a project id (1..=255).
#[napi]
pub fn ftok(env: Env, path: String, proj_id: u32) -> Result<u32> {
    if proj_id == 0 || proj_id > 255 {
        return Err(invalid(
            &env,
            "ERR_OUT_OF_RANGE",
            "projId must be an integer from 1 to 255",
        ));
    }
    sysv_shm::ftok(Path::new(&path), proj_id as u8)
        .map(|k| k as u32)
        .map_err(|e| throw(&env, e))
}
