//! The native pieces of `Mutex` (`src/mutex.ts`), which publish/subscribe
//! uses too (`src/words.ts`): the calling thread's identity, the liveness
//! check of a holder, and the atomic word operations used where the runtime
//! has no zero-copy view. Only conversions: the core's [`sysv_shm::mutex`]
//! does the work.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use sysv_shm::mutex::{self, WordOp};

use crate::errors::throw;
use crate::mapping::CopyHandle;

/// `[tid, start]`: `gettid()` of the calling thread and the low 32 bits of its
/// start time (field 22 of `/proc/thread-self/stat`).
#[napi]
pub fn mutex_thread_identity(env: Env) -> Result<Vec<u32>> {
    let me = mutex::current_thread().map_err(|e| throw(&env, e))?;
    Ok(vec![me.tid, me.start])
}

/// A full memory barrier (`sysv_shm::mutex::fence`): what `Atomics` cannot
/// give the publish/subscribe seqlock on arm64 (see there).
#[napi]
pub fn memory_fence() {
    mutex::fence();
}

/// Whether the holder `tid` is alive; `start` is its published start time,
/// or `-1` when it has not published it yet.
#[napi]
pub fn mutex_holder_alive(tid: u32, start: f64) -> bool {
    let start = (start >= 0.0 && start <= u32::MAX as f64).then_some(start as u32);
    mutex::holder_alive(tid, start)
}

/// One sequentially consistent operation on the u32 at `offset` of the
/// mapping (through the copy path's handle, the cheapest native call): `op` 0
/// loads, 1 stores `a`, 2 compare-exchanges `a` for `b`; returns the word found
/// (or stored). The word operations of every layout built in a segment where
/// the runtime has no zero-copy view (`src/words.ts`: `Mutex`, publish/subscribe).
pub(crate) fn mapping_word(
    env: &Env,
    handle: &External<CopyHandle>,
    offset: f64,
    op: u32,
    a: u32,
    b: u32,
) -> Result<u32> {
    let offset = crate::to_usize(env, "offset", offset)?;
    let op = match op {
        0 => WordOp::Load,
        1 => WordOp::Store(a),
        _ => WordOp::CompareExchange(a, b),
    };
    handle.with_attachment(env, |attachment| mutex::word_op(attachment, offset, op))
}
