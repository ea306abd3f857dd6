//! `ChannelHandle`: the JS class behind `Channel`, one end of a
//! `sysv_shm::channel::Channel`.

use std::cell::RefCell;
use std::ptr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use sysv_shm::channel::{Channel, Peek, Recv, Reserve, SpinPolicy, HEADER_SIZE};
use sysv_shm::{CreateOptions, Segment};

use crate::buffer::{detach_if_ours, external, view_bytes, BufferKind, ExternalOrReason};
use crate::errors::{invalid, throw};
use crate::futex::{futex_promise, timeout};
use crate::mapping::{detached, CopyHandle, Slot};
use crate::pending::WaitToken;
use crate::to_usize;

/// One end of a channel. Detached by `detach()` or garbage collection.
/// The calls of the hot paths are plain functions over its
/// [`ChannelCopy`] (`copyHandle()`), not methods.
#[napi]
pub struct ChannelHandle {
    inner: Arc<Slot<Arc<Channel>>>,
    id: i32,
    created: bool,
    /// The length `peek` read with the offset it returned.
    peeked: std::cell::Cell<f64>,
    /// The pin of the buffer `segmentBuffer()` made, if any.
    pin: RefCell<Option<Arc<SegmentPin>>>,
}

/// The handle of a channel end's plain functions (`channelTrySend`, …):
/// the [`CopyHandle`] scheme of the mappings, over the channel.
pub type ChannelCopy = CopyHandle<Arc<Channel>>;

/// What the buffer over the segment keeps alive: the channel, until
/// `detach` has cut that buffer off (then no view can reach the memory, and
/// the mapping may go at once instead of at the buffer's garbage collection).
struct SegmentPin(Mutex<Option<Arc<Channel>>>);

const EMPTY: f64 = -1.0;
const CLOSED: f64 = -2.0;

impl ChannelHandle {
    fn wrap(channel: Channel, created: bool) -> ChannelHandle {
        ChannelHandle {
            id: channel.attachment().id(),
            inner: Slot::new(Arc::new(channel)),
            created,
            peeked: std::cell::Cell::new(0.0),
            pin: RefCell::new(None),
        }
    }

    fn get(&self, env: &Env) -> Result<Arc<Channel>> {
        self.inner
            .lock()
            .clone()
            .ok_or_else(|| detached(env, self.id))
    }
}

fn closed_error(env: &Env, ch: &Channel) -> Error {
    throw(
        env,
        sysv_shm::Error::Closed {
            id: ch.attachment().id(),
        },
    )
}

/// A failed send on a channel closed meanwhile is `ERR_CHANNEL_CLOSED`:
/// the core's [`sysv_shm::Error::Closed`], or any error once the closed
/// word is set (it may have been cleared again since: a peer can write it).
fn send_error(env: &Env, ch: &Channel, e: sysv_shm::Error) -> Error {
    if ch.is_closed() {
        closed_error(env, ch)
    } else {
        throw(env, e)
    }
}

fn recv_result(env: &Env, r: Recv) -> Result<f64> {
    match r {
        Recv::Message(n) => Ok(n as f64),
        Recv::Empty => Ok(EMPTY),
        Recv::Closed => Ok(CLOSED),
        Recv::TooSmall(n) => Err(invalid(
            env,
            "ERR_BUFFER_TOO_SMALL",
            &format!("the next message has {n} bytes, more than the target holds; it is left in the channel"),
        )),
    }
}

/// Receives into a new Node Buffer; `Ok(None)` when there is nothing.
fn recv_buffer<'e>(
    env: &'e Env,
    ch: &Channel,
    timeout: Option<Duration>,
    block: bool,
) -> Result<Option<Unknown<'e>>> {
    let mut value = None;
    let mut failed = None;
    let mut once = || {
        // SAFETY: the closure returns the new buffer's memory, writable
        // for `len` bytes (or None, and nothing is written).
        unsafe {
            ch.try_recv_with(|len| {
                let mut data = ptr::null_mut();
                let mut v = ptr::null_mut();
                // SAFETY: plain allocation of a Node Buffer in this call's scope.
                let status = sys::napi_create_buffer(env.raw(), len, &mut data, &mut v);
                if status != sys::Status::napi_ok {
                    failed = Some(status);
                    return None;
                }
                value = Some(v);
                // Node may return null for 0 bytes; nothing is copied then.
                Some(if data.is_null() {
                    ptr::NonNull::dangling().as_ptr()
                } else {
                    data.cast()
                })
            })
        }
        .map_err(|e| throw(env, e))
    };
    let mut r = once()?;
    if block && r == Recv::Empty && ch.wait_readable(timeout).map_err(|e| throw(env, e))? {
        r = once()?;
    }
    if let Some(status) = failed {
        return Err(Error::new(
            Status::from(status),
            "napi_create_buffer failed".to_string(),
        ));
    }
    match (r, value) {
        (Recv::Message(_), Some(v)) => {
            // SAFETY: `v` is a live Buffer made in this env during this call.
            Ok(Some(unsafe { Unknown::from_raw_unchecked(env.raw(), v) }))
        }
        _ => Ok(None),
    }
}

const SPLIT: f64 = -3.0;

#[napi]
impl ChannelHandle {
    /// Creates a channel segment of `512 + capacity` bytes (rounded up to 8).
    #[napi(factory)]
    pub fn create(
        env: Env,
        key: i32,
        capacity: f64,
        mode: u32,
        exclusive: bool,
    ) -> Result<ChannelHandle> {
        let capacity = to_usize(&env, "capacityBytes", capacity)?;
        let options = CreateOptions {
            mode,
            exclusive,
            ..CreateOptions::default()
        };
        let (channel, created) =
            Channel::create(key, capacity, &options).map_err(|e| throw(&env, e))?;
        Ok(ChannelHandle::wrap(channel, created))
    }

    /// Opens the channel of `key`.
    #[napi(factory)]
    pub fn open(env: Env, key: i32) -> Result<ChannelHandle> {
        let channel = Channel::open(key).map_err(|e| throw(&env, e))?;
        Ok(ChannelHandle::wrap(channel, false))
    }

    /// Opens the channel segment with this shmid.
    #[napi(factory)]
    pub fn open_by_id(env: Env, id: i32) -> Result<ChannelHandle> {
        let channel = Channel::from_segment(Segment::from_id(id)).map_err(|e| throw(&env, e))?;
        Ok(ChannelHandle::wrap(channel, false))
    }

    /// The shmid.
    #[napi(getter)]
    pub fn id(&self) -> i32 {
        self.id
    }

    /// Whether this handle's `create` made the segment.
    #[napi(getter)]
    pub fn created(&self) -> bool {
        self.created
    }

    /// Whether the handle is attached.
    #[napi(getter)]
    pub fn attached(&self) -> bool {
        self.inner.lock().is_some()
    }

    /// The handle of this end's plain functions (`channelTrySend`, …).
    #[napi(ts_return_type = "ExternalObject<'ChannelCopy'>")]
    pub fn copy_handle(&self) -> External<ChannelCopy> {
        CopyHandle::new(&self.inner, self.id)
    }

    /// The ring's capacity in bytes.
    #[napi(getter)]
    pub fn capacity(&self, env: Env) -> Result<f64> {
        Ok(self.get(&env)?.capacity() as f64)
    }

    /// The largest message, in bytes (`capacity - 8`).
    #[napi(getter)]
    pub fn max_message(&self, env: Env) -> Result<f64> {
        Ok(self.get(&env)?.max_message() as f64)
    }

    /// Bytes of records not yet received.
    #[napi(getter)]
    pub fn pending_bytes(&self, env: Env) -> Result<f64> {
        let ch = self.get(&env)?;
        Ok(ch.pending_bytes().map_err(|e| throw(&env, e))? as f64)
    }

    /// How this handle waits: `"spin"`, `"park"` or `"spin-then-park"` (with
    /// `spinMicros`).
    #[napi]
    pub fn set_wait(&self, env: Env, kind: String, spin_micros: f64) -> Result<()> {
        let ch = self.get(&env)?;
        let strategy = match kind.as_str() {
            "spin" => SpinPolicy::Spin,
            "park" => SpinPolicy::Park,
            "spin-then-park" if spin_micros.is_finite() && spin_micros >= 0.0 => {
                SpinPolicy::SpinThenPark(Duration::from_secs_f64(spin_micros / 1e6))
            }
            _ => {
                return Err(invalid(
                    &env,
                    "ERR_INVALID_ARG_VALUE",
                    &format!("unknown wait strategy {kind:?} (spinMicros {spin_micros})"),
                ))
            }
        };
        ch.set_strategy(strategy);
        Ok(())
    }

    /// An `ArrayBuffer` over the whole segment (the 512-byte header, then
    /// the ring: `512 + capacity` bytes), with no copy: the JavaScript send
    /// and receive paths and `sendWith`/`recvWith` work on it. It keeps the
    /// mapping alive until `detach(it)` cuts it off, or until it is
    /// collected. Where there can be none (Electron, a segment above
    /// `buffer.constants.MAX_LENGTH`), a string that says why.
    #[napi(ts_return_type = "ArrayBuffer | string")]
    pub fn segment_buffer(&self, env: Env) -> Result<ExternalOrReason<'_>> {
        let ch = self.get(&env)?;
        let pin = Arc::new(SegmentPin(Mutex::new(Some(ch.clone()))));
        // SAFETY: the segment is the channel's mapping, which the
        // `Arc<Channel>` in the pin keeps attached until `detach` has cut the
        // buffer off (then no view reaches the memory).
        let buffer = unsafe {
            external(
                &env,
                BufferKind::ArrayBuffer,
                pin.clone(),
                ch.attachment().as_ptr(),
                HEADER_SIZE + ch.capacity(),
            )
        }?;
        // No buffer (a string saying why): nothing to cut off at detach.
        if matches!(buffer, Either::A(_)) {
            *self.pin.borrow_mut() = Some(pin);
        }
        Ok(buffer)
    }

    /// Reserves room for `length` bytes to write in place, waiting while the
    /// ring is too full: the payload's offset in the ring, `-1` on timeout,
    /// `-3` if it would wrap (send a copy instead).
    #[napi]
    pub fn reserve(&self, env: Env, length: f64, timeout_ms: Option<f64>) -> Result<f64> {
        let ch = self.get(&env)?;
        let len = to_usize(&env, "length", length)?;
        let timeout = timeout(&env, timeout_ms)?;
        match ch
            .reserve(len, timeout)
            .map_err(|e| send_error(&env, &ch, e))?
        {
            Reserve::At(off) => Ok(off as f64),
            Reserve::Split => Ok(SPLIT),
            Reserve::Full if ch.is_closed() => Err(closed_error(&env, &ch)),
            Reserve::Full => Ok(EMPTY),
        }
    }

    /// Publishes the `length` bytes written in place after `reserve`.
    #[napi]
    pub fn commit(&self, env: Env, length: f64) -> Result<()> {
        let ch = self.get(&env)?;
        let len = to_usize(&env, "length", length)?;
        ch.commit(len).map_err(|e| send_error(&env, &ch, e))
    }

    /// Waits for the next message and shows it in place: its offset in the
    /// ring (length: `nextLength()`), `-1` on timeout, `-2` if closed and
    /// empty, `-3` if it wraps (receive a copy instead).
    #[napi]
    pub fn peek(&self, env: Env, timeout_ms: Option<f64>) -> Result<f64> {
        let ch = self.get(&env)?;
        let timeout = timeout(&env, timeout_ms)?;
        let mut p = ch.try_peek().map_err(|e| throw(&env, e))?;
        if p == Peek::Empty && ch.wait_readable(timeout).map_err(|e| throw(&env, e))? {
            p = ch.try_peek().map_err(|e| throw(&env, e))?;
        }
        Ok(match p {
            Peek::At(off, len) => {
                self.peeked.set(len as f64);
                off as f64
            }
            Peek::Split(_) => SPLIT,
            Peek::Empty => EMPTY,
            Peek::Closed => CLOSED,
        })
    }

    /// The length of the message the last `peek` showed in place (read with
    /// its offset, from one read of the record header).
    #[napi(getter)]
    pub fn peeked_length(&self) -> f64 {
        self.peeked.get()
    }

    /// Consumes the message `peek` showed.
    #[napi]
    pub fn release(&self, env: Env) -> Result<bool> {
        self.get(&env)?.release().map_err(|e| throw(&env, e))
    }

    /// Marks the channel closed and wakes both sides.
    #[napi]
    pub fn close(&self, env: Env) -> Result<()> {
        self.get(&env)?.close().map_err(|e| throw(&env, e))
    }

    /// `shmctl(id, IPC_RMID)` of the channel's segment.
    #[napi]
    pub fn remove(&self, env: Env) -> Result<()> {
        Segment::from_id(self.id)
            .remove()
            .map_err(|e| throw(&env, e))
    }

    /// Detaches this end (pending asynchronous receives end as detached).
    /// If `segment` is this end's `segmentBuffer()`, it is detached first, so
    /// its views read as length 0, and the mapping goes now (else when that
    /// buffer is collected). Idempotent.
    #[napi(ts_args_type = "segment?: ArrayBuffer | null")]
    pub fn detach(&mut self, env: Env, segment: Option<Unknown>) {
        let taken = self.inner.lock().take();
        if let Some(ch) = taken {
            let cut = segment
                .as_ref()
                .is_some_and(|b| detach_if_ours(&env, b, ch.attachment().as_ptr()));
            if cut {
                if let Some(pin) = self.pin.borrow_mut().take() {
                    pin.0.lock().unwrap_or_else(|p| p.into_inner()).take();
                }
            }
            let map = ch.attachment();
            sysv_shm::futex::cancel_range(map.as_ptr() as usize, map.len());
        }
    }
}

/// Sends if there is room now; `false` if the ring is too full.
pub(crate) fn channel_try_send(
    env: &Env,
    handle: &External<ChannelCopy>,
    data: Unknown,
) -> Result<bool> {
    handle.with(env, |ch| {
        let (src, len) = view_bytes(env, &data)?;
        if ch.is_closed() {
            return Err(closed_error(env, ch));
        }
        // SAFETY: `src` is the live view's memory, readable for `len` bytes;
        // no JS runs during this call.
        unsafe { ch.try_send_raw(src, len) }.map_err(|e| send_error(env, ch, e))
    })
}

/// Sends, waiting while the ring is too full; `false` on timeout.
pub(crate) fn channel_send(
    env: &Env,
    handle: &External<ChannelCopy>,
    data: Unknown,
    timeout_ms: Option<f64>,
) -> Result<bool> {
    let timeout = timeout(env, timeout_ms)?;
    handle.with(env, |ch| {
        let (src, len) = view_bytes(env, &data)?;
        if ch.is_closed() {
            return Err(closed_error(env, ch));
        }
        // SAFETY: as in `channel_try_send`; the thread is blocked, so the
        // view cannot be detached or resized meanwhile.
        let sent = unsafe { ch.send_raw(src, len, timeout) }.map_err(|e| send_error(env, ch, e))?;
        if !sent && ch.is_closed() {
            return Err(closed_error(env, ch));
        }
        Ok(sent)
    })
}

/// Sends each view in order while there is room; returns how many were
/// sent. One call for many small messages.
pub(crate) fn channel_try_send_many(
    env: &Env,
    handle: &External<ChannelCopy>,
    items: Vec<Unknown>,
) -> Result<u32> {
    handle.with(env, |ch| {
        if ch.is_closed() {
            return Err(closed_error(env, ch));
        }
        let mut n = 0;
        for item in &items {
            let (src, len) = view_bytes(env, item)?;
            // SAFETY: as in `channel_try_send`.
            if !unsafe { ch.try_send_raw(src, len) }.map_err(|e| send_error(env, ch, e))? {
                break;
            }
            n += 1;
        }
        Ok(n)
    })
}

/// Receives into `target` if a message is there: its length, `-1` if
/// empty, `-2` if empty and closed. `RangeError` if it does not fit.
pub(crate) fn channel_try_recv_into(
    env: &Env,
    handle: &External<ChannelCopy>,
    target: Unknown,
) -> Result<f64> {
    handle.with(env, |ch| {
        let (dst, cap) = view_bytes(env, &target)?;
        // SAFETY: `dst` is the live view's memory, writable for `cap` bytes.
        let r = unsafe { ch.try_recv_raw(dst, cap) }.map_err(|e| throw(env, e))?;
        recv_result(env, r)
    })
}

/// Receives into `target`, waiting: as `channelTryRecvInto`, `-1` on timeout.
pub(crate) fn channel_recv_into(
    env: &Env,
    handle: &External<ChannelCopy>,
    target: Unknown,
    timeout_ms: Option<f64>,
) -> Result<f64> {
    let timeout = timeout(env, timeout_ms)?;
    handle.with(env, |ch| {
        let (dst, cap) = view_bytes(env, &target)?;
        // SAFETY: as in `channel_try_recv_into`; the thread is blocked meanwhile.
        let r = unsafe { ch.recv_raw(dst, cap, timeout) }.map_err(|e| throw(env, e))?;
        recv_result(env, r)
    })
}

/// Receives as many waiting messages as fit into `target` (packed back to
/// back) and `lengths` (one entry each), waiting up to `timeoutMs` for the
/// first (`0`: do not wait): the count, `-1` if none came, `-2` if closed
/// and empty. `RangeError` if the first does not fit.
pub(crate) fn channel_recv_many(
    env: &Env,
    handle: &External<ChannelCopy>,
    target: Unknown,
    lengths: Unknown,
    timeout_ms: Option<f64>,
) -> Result<f64> {
    let timeout = timeout(env, timeout_ms)?;
    handle.with(env, |ch| {
        let (dst, cap) = view_bytes(env, &target)?;
        let (lp, lbytes) = view_bytes(env, &lengths)?;
        let disjoint = (lp as usize).saturating_add(lbytes) <= dst as usize
            || (dst as usize).saturating_add(cap) <= lp as usize;
        if (lp as usize) % 4 != 0 || !disjoint {
            return Err(invalid(
                env,
                "ERR_INVALID_ARG_VALUE",
                "lengths must be a Uint32Array that does not overlap target",
            ));
        }
        // The lengths view may be shared memory (even the ring): it is only
        // written through a raw pointer, never made a `&mut [u32]`.
        let (lens, max) = (lp.cast::<u32>(), lbytes / 4);
        // SAFETY: `dst` is the live view's memory, writable for `cap` bytes;
        // `lens` is the live view's, 4-aligned (checked), writable for `max`
        // u32s, not overlapping `dst` (checked).
        let mut r =
            unsafe { ch.try_recv_many_raw(dst, cap, lens, max) }.map_err(|e| throw(env, e))?;
        if r == Recv::Empty
            && timeout != Some(Duration::ZERO)
            && ch.wait_readable(timeout).map_err(|e| throw(env, e))?
        {
            // SAFETY: as above.
            r = unsafe { ch.try_recv_many_raw(dst, cap, lens, max) }.map_err(|e| throw(env, e))?;
        }
        recv_result(env, r)
    })
}

/// The next message's length, or `-1` if there is none.
pub(crate) fn channel_next_length(env: &Env, handle: &External<ChannelCopy>) -> Result<f64> {
    handle.with(env, |ch| {
        let len = ch.next_len().map_err(|e| throw(env, e))?;
        Ok(len.map_or(EMPTY, |n| n as f64))
    })
}

/// Whether the channel was closed.
pub(crate) fn channel_closed(env: &Env, handle: &External<ChannelCopy>) -> Result<bool> {
    handle.with(env, |ch| Ok(ch.is_closed()))
}

/// Receives into a new Buffer if a message is there, else `null`.
pub(crate) fn channel_try_recv<'e>(
    env: &'e Env,
    handle: &External<ChannelCopy>,
) -> Result<Option<Unknown<'e>>> {
    handle.with(env, |ch| recv_buffer(env, ch, None, false))
}

/// Receives into a new Buffer, waiting; `null` on timeout or when closed
/// and empty.
pub(crate) fn channel_recv<'e>(
    env: &'e Env,
    handle: &External<ChannelCopy>,
    timeout_ms: Option<f64>,
) -> Result<Option<Unknown<'e>>> {
    let timeout = timeout(env, timeout_ms)?;
    handle.with(env, |ch| recv_buffer(env, ch, timeout, true))
}

/// Arms an asynchronous wait for a message that `token` cancels: `null`
/// if one (or the close) is already there, else a promise as for
/// `mappingWaitAsync`.
#[napi(
    ts_args_type = "handle: ExternalObject<'ChannelCopy'>, token: WaitToken",
    ts_return_type = "Promise<'ok' | 'not-equal' | 'timed-out'> | null"
)]
pub fn channel_recv_wait_async<'a>(
    env: &'a Env,
    handle: &External<ChannelCopy>,
    token: &WaitToken,
) -> Result<Option<Object<'a>>> {
    handle.with(env, |ch| {
        if !ch.arm_rx_wait() {
            return Ok(None);
        }
        let (promise, on_done) = futex_promise(env, token, ch.attachment().id())?;
        let keepalive: Arc<dyn std::any::Any + Send + Sync> = ch.clone();
        let req = sysv_shm::futex::AsyncRequest {
            addr: ch.rx_waiting_word(),
            expected: 1,
            waiters: None,
            timeout: None,
            keepalive,
            on_done,
            cancel: Some(token.token.clone()),
        };
        // SAFETY: the word is in the channel's header, kept mapped by the
        // `Arc<Channel>` in `keepalive`; `detach` cancels the range first.
        // `on_done` settles the promise in every case (no thread too).
        let _ = unsafe { sysv_shm::futex::wait_async(req) };
        Ok(Some(promise))
    })
}

/// Wakes the receiver (`true`) or the sender (`false`) if its waiting word
/// says it sleeps: for the JavaScript paths, which move `head` and `tail`
/// themselves (`futex(2)` `FUTEX_WAKE`, no system call when the word is 0).
pub(crate) fn channel_wake(
    env: &Env,
    handle: &External<ChannelCopy>,
    receiver: bool,
) -> Result<()> {
    handle.with(env, |ch| {
        if receiver {
            ch.wake_receiver()
        } else {
            ch.wake_sender()
        }
        .map_err(|e| throw(env, e))
    })
}
