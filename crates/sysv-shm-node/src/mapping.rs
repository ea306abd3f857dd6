//! [`Mapping`]: the JS class behind `SharedMemory`, one `shmat` of a segment.
//!
//! The attachment is shared (`Arc`) by the JS object and by the zero-copy
//! `ArrayBuffer`, so that it is detached when both are garbage-collected and
//! never while a view could still read it. `detach()` detaches the
//! `ArrayBuffer` first (its views become length 0), then the mapping.
//!
//! A `SharedArrayBuffer` cannot be detached: while one made by
//! `createSharedBuffer` may be reachable, `detach()` only ends the handle
//! and parks the attachment in the buffer's [`SabPin`], whose drop (the
//! buffer's finalizer, on any thread) is the `shmdt`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use sysv_shm::{Attachment, Segment};

use crate::buffer::{detach_if_ours, external, view_bytes, BufferKind, ExternalOrReason};
use crate::errors::{shm_error, throw};
use crate::to_usize;

/// What a native handle shares with its [`CopyHandle`]s: the attachment
/// (or the channel), `None` once detached.
pub(crate) struct Slot<T>(Mutex<Option<T>>);

impl<T> Slot<T> {
    pub(crate) fn new(value: T) -> Arc<Slot<T>> {
        Arc::new(Slot(Mutex::new(Some(value))))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Option<T>> {
        // A panic cannot happen while the lock is held (only copies, waits
        // and wakes run under it), but a poisoned lock still holds a valid
        // Option: use it.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The attachment of a [`Mapping`], or `None` once detached.
pub(crate) type Shared = Slot<Attachment>;

/// What the zero-copy `ArrayBuffer`'s finalizer holds: the attachment
/// stays while it lives (see `Mapping::detach`).
struct BufferPin {
    _shared: Arc<Shared>,
}

/// What the `SharedArrayBuffer`s of a mapping hold: the mapping's
/// [`Shared`] (the attachment, until `detach()`), then, after `detach()`,
/// the attachment itself. Dropped by the last buffer's finalizer, which may
/// run on any thread: that drop is the `shmdt`.
pub(crate) struct SabPin {
    _shared: Arc<Shared>,
    detached: Mutex<Option<Attachment>>,
}

/// One attachment of a segment (`shmat`), detached by `detach()` or when it
/// and its buffer are garbage-collected.
#[napi]
pub struct Mapping {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: i32,
    key: i32,
    size: usize,
    read_only: bool,
    address: usize,
    /// Whether `create_buffer` has handed out the one zero-copy buffer.
    buffer_made: AtomicBool,
    /// What the zero-copy `ArrayBuffer` holds while it is not collected: a
    /// live `Weak` means its views may still read and write the mapping
    /// unless `detach()` detached the buffer.
    buffer_pin: Mutex<Weak<BufferPin>>,
    /// The pin of the `SharedArrayBuffer`s made, while any may be reachable.
    sab_pin: Mutex<Weak<SabPin>>,
}

/// `shmat(id, NULL, readOnly ? SHM_RDONLY : 0)`: `[mapping, key, size]`,
/// the key and size as read by the attach's `IPC_STAT`, in the one call
/// (each getter of a napi-rs class costs about as much as this array).
#[napi(ts_return_type = "[Mapping, number, number]")]
pub fn mapping_attach(env: Env, id: i32, read_only: bool) -> Result<(Mapping, i32, f64)> {
    let attachment = Segment::from_id(id)
        .attach(read_only)
        .map_err(|e| throw(&env, e))?;
    // Node forks only to exec: keep spawned children from counting as
    // attachments (`attachCount`) between their fork and their exec.
    attachment.keep_out_of_forks().map_err(|e| throw(&env, e))?;
    let (key, size) = (attachment.key(), attachment.len());
    let mapping = Mapping {
        id,
        key,
        size,
        read_only,
        address: attachment.as_ptr() as usize,
        buffer_made: AtomicBool::new(false),
        buffer_pin: Mutex::new(Weak::new()),
        sab_pin: Mutex::new(Weak::new()),
        shared: Slot::new(attachment),
    };
    Ok((mapping, key, size as f64))
}

#[napi]
impl Mapping {
    /// The shmid.
    #[napi(getter)]
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The segment's key as read at attach (`0` once marked removed).
    #[napi(getter)]
    pub fn key(&self) -> i32 {
        self.key
    }

    /// The segment's size in bytes (`shm_segsz`).
    #[napi(getter)]
    pub fn size(&self) -> f64 {
        self.size as f64
    }

    /// Whether this is a `SHM_RDONLY` attachment.
    #[napi(getter)]
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Whether the mapping is still attached.
    #[napi(getter)]
    pub fn attached(&self) -> bool {
        self.shared.lock().is_some()
    }

    /// An `ArrayBuffer` over the whole segment, with no copy; where there can
    /// be none (Electron, a segment above `buffer.constants.MAX_LENGTH`), a
    /// string that says why.
    #[napi(ts_return_type = "ArrayBuffer | string")]
    pub fn create_buffer(&self, env: Env) -> Result<ExternalOrReason<'_>> {
        let guard = self.shared.lock();
        let Some(attachment) = guard.as_ref() else {
            return Err(detached(&env, self.id));
        };
        // One buffer per mapping: `detach()` can only cut off the one that
        // `index.ts` holds and passes back.
        if self.buffer_made.swap(true, Ordering::Relaxed) {
            return Err(shm_error(
                &env,
                "ERR_SHM_BUFFER_TAKEN",
                "the zero-copy buffer of this mapping was already created",
            ));
        }
        if self.read_only {
            return Err(shm_error(
                &env,
                "ERR_SHM_READ_ONLY",
                &format!(
                    "segment {} is attached read-only: no writable zero-copy view is handed out",
                    self.id
                ),
            ));
        }
        let pin = Arc::new(BufferPin {
            _shared: self.shared.clone(),
        });
        *self.buffer_pin.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(&pin);
        // SAFETY: the memory stays mapped while `shared` holds the
        // attachment, and `detach()` unmaps only once the buffer is detached
        // (its views cut off) or collected (`pin` dropped).
        unsafe {
            external(
                &env,
                BufferKind::ArrayBuffer,
                pin,
                attachment.as_ptr(),
                attachment.len(),
            )
        }
    }

    /// A `SharedArrayBuffer` over the whole segment, with no copy
    /// (`node_api_create_external_sharedarraybuffer`, where the runtime has
    /// it); where there can be none, a string that says why. It keeps the
    /// attachment until it is collected, `detach()` or not.
    #[napi(ts_return_type = "SharedArrayBuffer | string")]
    pub fn create_shared_buffer(&self, env: Env) -> Result<ExternalOrReason<'_>> {
        let guard = self.shared.lock();
        let Some(attachment) = guard.as_ref() else {
            return Err(detached(&env, self.id));
        };
        if self.read_only {
            // JS can write to any SharedArrayBuffer: over SHM_RDONLY that
            // write would be a SIGSEGV.
            return Err(shm_error(
                &env,
                "ERR_SHM_READ_ONLY",
                &format!(
                    "segment {} is attached read-only: no writable SharedArrayBuffer is handed out",
                    self.id
                ),
            ));
        }
        let mut slot = self.sab_pin.lock().unwrap_or_else(|p| p.into_inner());
        let pin = slot.upgrade().unwrap_or_else(|| {
            Arc::new(SabPin {
                _shared: self.shared.clone(),
                detached: Mutex::new(None),
            })
        });
        *slot = Arc::downgrade(&pin);
        // SAFETY: the memory stays mapped while `pin` lives: it holds
        // `shared`, which holds the attachment until `detach()`, and
        // `detach()` moves the attachment into the pin while the pin lives.
        // Dropping the pin (on any thread) only detaches.
        unsafe {
            external(
                &env,
                BufferKind::SharedArrayBuffer,
                pin,
                attachment.as_ptr(),
                attachment.len(),
            )
        }
    }

    /// The handle of the plain functions that take the place of methods on
    /// the hot paths (`mappingReadInto`, `mappingWrite`, `mappingWait`,
    /// `mappingNotify`, `mappingWaitAsync`) for this mapping.
    #[napi(ts_return_type = "ExternalObject<'CopyHandle'>")]
    pub fn copy_handle(&self) -> External<CopyHandle> {
        CopyHandle::new(&self.shared, self.id)
    }

    /// `IPC_RMID` if at least `parties` attachments exist now (see
    /// `Attachment::remove_if_attached`); returns whether it is marked removed.
    #[napi]
    pub fn remove_if_attached(&self, env: Env, parties: u32) -> Result<bool> {
        let guard = self.shared.lock();
        let attachment = guard.as_ref().ok_or_else(|| detached(&env, self.id))?;
        attachment
            .remove_if_attached(u64::from(parties))
            .map_err(|e| throw(&env, e))
    }

    /// Detaches now (`shmdt`). If `buffer` is the zero-copy `ArrayBuffer` of
    /// this mapping it is detached first, so its views read as length 0.
    /// While a `SharedArrayBuffer` of this mapping may be reachable, the
    /// handle reads as detached at once and the `shmdt` waits for that
    /// buffer's finalizer. Idempotent. Throws `ERR_SHM_BUFFER_LIVE`, and
    /// stays attached, if the zero-copy `ArrayBuffer` of this mapping was
    /// made, is not `buffer` and is not yet collected: its views could still
    /// reach the memory.
    #[napi(ts_args_type = "buffer?: ArrayBuffer | null")]
    pub fn detach(&self, env: Env, buffer: Option<Unknown>) -> Result<()> {
        let buffer_live = {
            let mut pin = self.buffer_pin.lock().unwrap_or_else(|p| p.into_inner());
            if buffer
                .as_ref()
                .is_some_and(|b| detach_if_ours(&env, b, self.address as *mut u8))
            {
                *pin = Weak::new();
            }
            pin.strong_count() > 0
        };
        // The zero-copy buffer, neither detached above nor collected, could
        // still read and write the mapping: never unmap under it (`index.ts`
        // always passes it back; this guards direct use of the binding).
        if buffer_live && self.shared.lock().is_some() {
            return Err(shm_error(
                &env,
                "ERR_SHM_BUFFER_LIVE",
                &format!(
                    "segment {} stays attached: detach() needs the zero-copy ArrayBuffer this mapping \
                     handed out, which may still be reachable",
                    self.id
                ),
            ));
        }
        // Pending `waitAsync`s end (as detached) before the memory goes away.
        sysv_shm::futex::cancel_range(self.address, self.size);
        let Some(attachment) = self.shared.lock().take() else {
            return Ok(());
        };
        let pin = self
            .sab_pin
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .upgrade();
        match pin {
            // A SharedArrayBuffer may still be reachable: the last drop of
            // its pin (its finalizer, or this `pin` if that ran meanwhile)
            // detaches.
            Some(pin) => {
                *pin.detached.lock().unwrap_or_else(|p| p.into_inner()) = Some(attachment);
                Ok(())
            }
            None => attachment.detach().map_err(|e| throw(&env, e)),
        }
    }
}

/// What the plain functions of the hot paths take instead of a native
/// class's object: the object's [`Slot`] (its attachment or channel, `None`
/// once detached) and id, in an `External`. A class method of napi-rs 3
/// (with `napi8`) unwraps its object, checks its type tag and registers a
/// borrow on every call; a plain function with an `External` only reads the
/// external's pointer and compares a `TypeId`: about half the cost of a
/// method, per call. The one scheme of the mappings (`CopyHandle`) and the
/// channels (`CopyHandle<Arc<Channel>>`, `ChannelCopyHandle` in TypeScript).
pub struct CopyHandle<T: 'static = Attachment> {
    slot: Arc<Slot<T>>,
    id: i32,
}

impl<T: 'static> CopyHandle<T> {
    /// The handle of `slot`, whose object has the shmid `id`.
    pub(crate) fn new(slot: &Arc<Slot<T>>, id: i32) -> External<CopyHandle<T>> {
        External::new(CopyHandle {
            slot: slot.clone(),
            id,
        })
    }

    /// Runs `f` with the object locked; `ERR_SHM_DETACHED` once detached.
    pub(crate) fn with<R>(&self, env: &Env, f: impl FnOnce(&T) -> Result<R>) -> Result<R> {
        let guard = self.slot.lock();
        let object = guard.as_ref().ok_or_else(|| detached(env, self.id))?;
        f(object)
    }
}

/// Runs one copy of the copy path: `copy(attachment, offset, view's
/// memory, view's length)` with the attachment locked, after the checks both
/// copy functions make (`offset`, the view, detached).
fn with_copy(
    env: &Env,
    handle: &CopyHandle,
    view: &Unknown,
    offset: f64,
    copy: impl FnOnce(&Attachment, usize, *mut u8, usize) -> sysv_shm::Result<f64>,
) -> Result<f64> {
    let offset = to_usize(env, "offset", offset)?;
    let (ptr, len) = view_bytes(env, view)?;
    handle.with_attachment(env, |attachment| copy(attachment, offset, ptr, len))
}

impl CopyHandle<Attachment> {
    /// Runs `f` with the attachment locked; `ERR_SHM_DETACHED` once detached,
    /// and `f`'s error as a `ShmError`.
    pub(crate) fn with_attachment<R>(
        &self,
        env: &Env,
        f: impl FnOnce(&Attachment) -> sysv_shm::Result<R>,
    ) -> Result<R> {
        self.with(env, |attachment| f(attachment).map_err(|e| throw(env, e)))
    }

    /// The shmid of the mapping.
    pub(crate) fn id(&self) -> i32 {
        self.id
    }

    /// What keeps the attachment mapped while an asynchronous wait on it
    /// is pending (`detach()` cancels the wait first).
    pub(crate) fn keepalive(&self) -> Arc<dyn std::any::Any + Send + Sync> {
        self.slot.clone()
    }
}

/// Copies from the segment at `offset` into `target`, as many bytes as fit
/// in both; returns the count.
pub(crate) fn mapping_read_into(
    env: &Env,
    handle: &External<CopyHandle>,
    target: Unknown,
    offset: f64,
) -> Result<f64> {
    with_copy(
        env,
        handle,
        &target,
        offset,
        |attachment, offset, dst, len| {
            let n = len.min(attachment.len().saturating_sub(offset));
            // SAFETY: `dst` is valid for `len >= n` bytes: it is the live view's
            // memory, and no JS runs during this call. It may be the mapping
            // itself, which `read_raw` allows (memmove).
            unsafe { attachment.read_raw(offset, dst, n) }?;
            Ok(n as f64)
        },
    )
}

/// Copies all of `source` into the segment at `offset`; throws a
/// `RangeError` if it does not fit. Returns the count.
pub(crate) fn mapping_write(
    env: &Env,
    handle: &External<CopyHandle>,
    source: Unknown,
    offset: f64,
) -> Result<f64> {
    with_copy(
        env,
        handle,
        &source,
        offset,
        |attachment, offset, src, len| {
            // SAFETY: `src` is valid for `len` bytes: it is the live view's
            // memory, and no JS runs during this call. It may overlap the mapping
            // (memmove).
            unsafe { attachment.write_raw(offset, src, len) }?;
            Ok(len as f64)
        },
    )
}

pub(crate) fn detached(env: &Env, id: i32) -> Error {
    throw(env, sysv_shm::Error::Detached { id })
}
