//! Raw Node-API access to JS byte views and the zero-copy `ArrayBuffer`.
//!
//! Done with raw calls rather than napi-rs's typed wrappers so that no Rust
//! slice is ever made over memory that may be the shared mapping itself
//! (`shm.readInto(shm.buffer)`), and so that a refused external buffer is
//! seen as such instead of being silently copied.

use std::any::Any;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use napi::bindgen_prelude::*;
use napi::{sys, JsValue};

use crate::errors::type_error;

/// The environment variable that makes this addon act as under Electron's
/// V8 memory cage, where external `ArrayBuffer`s are refused.
pub(crate) const SIMULATE_NO_EXTERNAL: &str = "SYSV_SHM_SIMULATE_NO_EXTERNAL_BUFFERS";

fn element_size(kind: sys::napi_typedarray_type) -> Option<usize> {
    use sys::TypedarrayType as T;
    Some(match kind {
        T::int8_array | T::uint8_array | T::uint8_clamped_array => 1,
        T::int16_array | T::uint16_array => 2,
        T::int32_array | T::uint32_array | T::float32_array => 4,
        T::float64_array | T::bigint64_array | T::biguint64_array => 8,
        _ => return None,
    })
}

/// The address and byte length of a TypedArray, Buffer or DataView.
pub(crate) fn view_bytes(env: &Env, value: &Unknown) -> Result<(*mut u8, usize)> {
    let (raw, v) = (env.raw(), value.value().value);
    let mut is = false;
    let mut data: *mut c_void = ptr::null_mut();
    let mut ab = ptr::null_mut();
    let mut offset = 0usize;
    // SAFETY: `v` is a live value of this call; `is` is a valid out-pointer.
    if unsafe { sys::napi_is_typedarray(raw, v, &mut is) } == sys::Status::napi_ok && is {
        let (mut kind, mut length) = (0, 0usize);
        // SAFETY: `v` is a TypedArray (checked); all out-pointers are valid.
        let status = unsafe {
            sys::napi_get_typedarray_info(
                raw,
                v,
                &mut kind,
                &mut length,
                &mut data,
                &mut ab,
                &mut offset,
            )
        };
        let size = element_size(kind).filter(|_| status == sys::Status::napi_ok);
        return match size {
            Some(size) => Ok((data.cast(), length * size)),
            None => Err(type_error(env, "unsupported TypedArray")),
        };
    }
    // SAFETY: as above.
    if unsafe { sys::napi_is_dataview(raw, v, &mut is) } == sys::Status::napi_ok && is {
        let mut length = 0usize;
        // SAFETY: `v` is a DataView (checked); all out-pointers are valid.
        let status = unsafe {
            sys::napi_get_dataview_info(raw, v, &mut length, &mut data, &mut ab, &mut offset)
        };
        if status == sys::Status::napi_ok {
            return Ok((data.cast(), length));
        }
    }
    Err(type_error(env, "expected a Buffer, TypedArray or DataView"))
}

/// Whether the external-buffer refusal of Electron is being simulated.
fn simulate_no_external() -> bool {
    std::env::var_os(SIMULATE_NO_EXTERNAL).is_some_and(|v| v == "1")
}

/// What keeps the memory under a zero-copy `ArrayBuffer` mapped: a clone of
/// the handle's `Arc` (a mapping, a channel), dropped by the finalizer.
pub(crate) type Keepalive = Arc<dyn Any + Send + Sync>;

unsafe extern "C" fn release(_env: sys::napi_env, data: *mut c_void, hint: *mut c_void) {
    // SAFETY: as for `release_noenv`, whose contract is the same.
    unsafe { release_noenv(data, hint) }
}

/// The finalizer of a `SharedArrayBuffer` (`node_api_noenv_finalize`): it
/// gets no env and may run on any thread, at any time (the buffer can be
/// posted to other threads and outlive this one), so it only drops an `Arc`
/// of `Send + Sync` data.
unsafe extern "C" fn release_noenv(_data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the `Box<Keepalive>` leaked in `external` below; the
    // runtime calls this finalizer once.
    drop(unsafe { Box::from_raw(hint.cast::<Keepalive>()) });
}

/// `buffer.constants.MAX_LENGTH` of this Node.js, set by the loader
/// (`setMaxBufferLength`); until then 2^32, the smallest of the supported
/// versions (Node 18 and 20 on 64 bits; Node 22 takes 2^53 - 1).
static MAX_LENGTH: AtomicU64 = AtomicU64::new(1 << 32);

/// Records `buffer.constants.MAX_LENGTH`, the largest `ArrayBuffer` this
/// Node.js makes: [`external`] makes none larger.
pub(crate) fn set_max_length(n: u64) {
    MAX_LENGTH.store(n, Ordering::Relaxed);
}

/// A zero-copy `ArrayBuffer` or `SharedArrayBuffer`, or why there is none:
/// a string for the `ERR_SHM_NO_ZERO_COPY` and
/// `ERR_SHM_NO_SHARED_ARRAY_BUFFER` messages (JS: `ArrayBuffer | string`).
pub(crate) type ExternalOrReason<'e> = Either<Unknown<'e>, String>;

/// Which zero-copy buffer [`external`] makes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum BufferKind {
    /// An `ArrayBuffer` (`napi_create_external_arraybuffer`): detachable.
    ArrayBuffer,
    /// A `SharedArrayBuffer` (`node_api_create_external_sharedarraybuffer`,
    /// looked up at run time): it can be posted to workers with no copy, and
    /// never detached.
    SharedArrayBuffer,
}

/// `node_api_create_external_sharedarraybuffer`, as `js_native_api.h`
/// declares it (`NAPI_EXPERIMENTAL`).
type CreateExternalSab = unsafe extern "C" fn(
    env: sys::napi_env,
    external_data: *mut c_void,
    byte_length: usize,
    finalize_cb: Option<unsafe extern "C" fn(*mut c_void, *mut c_void)>,
    finalize_hint: *mut c_void,
    result: *mut sys::napi_value,
) -> sys::napi_status;

/// `node_api_create_external_sharedarraybuffer` of the running process, or
/// `None` where it has none (Node.js 18 and 20, Deno). Looked up once with
/// `dlsym(RTLD_DEFAULT)`, as napi-sys (`dyn-symbols`) finds every Node-API
/// function in the process, never linked: an addon that named it would not
/// load on runtimes without it.
///
/// # References
/// dlsym(3); Node-API `node_api_create_external_sharedarraybuffer`.
fn create_external_sab() -> Option<CreateExternalSab> {
    static SYMBOL: OnceLock<Option<CreateExternalSab>> = OnceLock::new();
    *SYMBOL.get_or_init(|| {
        // SAFETY: a lookup by a NUL-terminated name in the global scope.
        let sym = unsafe {
            libc::dlsym(
                libc::RTLD_DEFAULT,
                c"node_api_create_external_sharedarraybuffer".as_ptr(),
            )
        };
        // SAFETY: a non-null result is that Node-API function, whose C
        // signature `CreateExternalSab` repeats.
        (!sym.is_null())
            .then(|| unsafe { std::mem::transmute::<*mut c_void, CreateExternalSab>(sym) })
    })
}

/// Why there is no `SharedArrayBuffer` on this runtime.
pub(crate) const NO_SAB: &str = "this runtime has no node_api_create_external_sharedarraybuffer \
(Node.js 22.23.5, 24.19, 26.12 or newer and Bun 1.4.4 have it; Node.js 18 and 20 and Deno do not)";

/// Makes an `ArrayBuffer` or `SharedArrayBuffer` (`kind`) over `len` bytes
/// at `data` that holds `keep` (and so the mapping) until it is collected:
/// the one place where this addon makes external buffers. Where there can be
/// none, `Either::B` says why: the runtime refuses external buffers
/// (Electron's V8 memory cage, `napi_no_external_buffers_allowed`), has no
/// `SharedArrayBuffer` call ([`NO_SAB`]), or `len` is above
/// `buffer.constants.MAX_LENGTH` (checked here, before Node is asked: its
/// refusal of a too-large buffer runs the finalizer and throws).
///
/// # Errors
/// Any other failure of `napi_create_external_arraybuffer` or
/// `node_api_create_external_sharedarraybuffer`.
///
/// # Safety
/// `data..data+len` must stay mapped while `keep` lives, and the value must
/// not outlive this call's handle scope (return it to JS). For a
/// `SharedArrayBuffer`, `keep`'s drop may run on any thread.
pub(crate) unsafe fn external<'v>(
    env: &Env,
    kind: BufferKind,
    keep: Keepalive,
    data: *mut u8,
    len: usize,
) -> Result<ExternalOrReason<'v>> {
    if simulate_no_external() {
        return Ok(Either::B(REFUSED.to_string()));
    }
    let create_sab = match kind {
        BufferKind::ArrayBuffer => None,
        BufferKind::SharedArrayBuffer => match create_external_sab() {
            Some(f) => Some(f),
            None => return Ok(Either::B(NO_SAB.to_string())),
        },
    };
    let max = MAX_LENGTH.load(Ordering::Relaxed);
    if len as u64 > max {
        return Ok(Either::B(format!(
            "it is {len} bytes, larger than buffer.constants.MAX_LENGTH ({max} bytes), the largest Buffer this Node.js makes"
        )));
    }
    let hint = Box::into_raw(Box::new(keep));
    let mut out = ptr::null_mut();
    // SAFETY: the memory stays mapped while the Arc in `hint` lives (caller's
    // contract), and `release`/`release_noenv` frees `hint` when the buffer
    // is collected.
    let status = unsafe {
        match create_sab {
            None => sys::napi_create_external_arraybuffer(
                env.raw(),
                data.cast(),
                len,
                Some(release),
                hint.cast(),
                &mut out,
            ),
            Some(create) => create(
                env.raw(),
                data.cast(),
                len,
                Some(release_noenv),
                hint.cast(),
                &mut out,
            ),
        }
    };
    if status == sys::Status::napi_ok {
        // SAFETY: `out` is a live value made in this env during this call.
        return Ok(Either::A(unsafe {
            Unknown::from_raw_unchecked(env.raw(), out)
        }));
    }
    // Whether the runtime took the hint (and so calls the finalizer itself)
    // depends on where the call failed. napi_create_external_buffer checks
    // first (NAPI_PREAMBLE: napi_pending_exception, e.g. while a worker is
    // being terminated; the V8 sandbox: napi_no_external_buffers_allowed) and
    // only then hands the hint to node::Buffer::New, which calls the
    // finalizer when it fails (ERR_BUFFER_TOO_LARGE → napi_generic_failure).
    // node_api_create_external_sharedarraybuffer makes the same checks
    // before it makes the backing store that owns the finalizer (Bun arms its
    // finalizer only once the buffer exists).
    let taken = !matches!(
        status,
        sys::Status::napi_pending_exception | sys::Status::napi_no_external_buffers_allowed
    );
    if !taken {
        // SAFETY: `hint` came from Box::into_raw above and the runtime did not
        // take it: the finalizer will never run.
        drop(unsafe { Box::from_raw(hint) });
    }
    // Otherwise freeing the hint here would free it twice. (Were a failure
    // ever to skip the finalizer after all, the cost is one leaked `Arc`,
    // the mapping staying until `detach()` or exit, never a double free.)
    if status == sys::Status::napi_no_external_buffers_allowed {
        Ok(Either::B(REFUSED.to_string()))
    } else {
        let call = match kind {
            BufferKind::ArrayBuffer => "napi_create_external_arraybuffer",
            BufferKind::SharedArrayBuffer => "node_api_create_external_sharedarraybuffer",
        };
        Err(Error::new(Status::from(status), format!("{call} failed")))
    }
}

const REFUSED: &str = "the runtime refuses external ArrayBuffers (Electron's V8 memory cage)";

/// If `value` is an `ArrayBuffer` whose memory starts at `data`, detaches it
/// so that every view of it reads as length 0. Returns whether it did.
pub(crate) fn detach_if_ours(env: &Env, value: &Unknown, data: *mut u8) -> bool {
    let (raw, v) = (env.raw(), value.value().value);
    let mut is = false;
    // SAFETY: `v` is a live value; `is` is a valid out-pointer.
    if unsafe { sys::napi_is_arraybuffer(raw, v, &mut is) } != sys::Status::napi_ok || !is {
        return false;
    }
    let (mut ptr_out, mut len) = (ptr::null_mut(), 0usize);
    // SAFETY: `v` is an ArrayBuffer (checked); out-pointers are valid.
    if unsafe { sys::napi_get_arraybuffer_info(raw, v, &mut ptr_out, &mut len) }
        != sys::Status::napi_ok
    {
        return false;
    }
    if ptr_out.cast::<u8>() != data {
        return false;
    }
    // SAFETY: `v` is an external ArrayBuffer this addon made; detaching it
    // only cuts JS views off the memory.
    unsafe { sys::napi_detach_arraybuffer(raw, v) == sys::Status::napi_ok }
}
