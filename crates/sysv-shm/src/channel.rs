//! [`Channel`]: a single-producer single-consumer ring of variable-length
//! messages in one segment, with futex wake-ups that cost nothing while the
//! other side is awake.
//!
//! # Layout (version 1)
//!
//! All integers are in the machine's byte order (little-endian on x86-64 and
//! arm64); offsets are from the start of the segment. The header is 512
//! bytes, with the words each side writes on cache lines of their own.
//!
//! | offset | type  | field | written by |
//! |--------|-------|-------|------------|
//! | 0      | `u32` | magic `0x48435653` (the bytes `"SVCH"`) | creator, last |
//! | 4      | `u32` | version, `1` | creator |
//! | 8      | `u64` | capacity `C` of the data ring, bytes, a multiple of 8 | creator |
//! | 16     | `u32` | header size, `512` (where the ring starts) | creator |
//! | 20     | `u32` | closed: `0` open, `1` closed (no more messages will be sent) | either side |
//! | 128    | `u64` | head: bytes ever written (records), only grows | sender |
//! | 256    | `u64` | tail: bytes ever read, only grows, `tail <= head <= tail + C` | receiver |
//! | 384    | `u32` | receiver waiting: futex word, `1` while the receiver sleeps | receiver sets, sender clears |
//! | 448    | `u32` | sender waiting: futex word, `1` while the sender sleeps | sender sets, receiver clears |
//! | 512    | bytes | the ring, `C` bytes | |
//!
//! A message is a record at ring offset `head % C`: a `u32` payload length,
//! a `u32` that is 0, then the payload, then padding to a multiple of 8. The
//! record takes `8 + align8(len)` bytes. The 8-byte record header never
//! straddles the end of the ring (offsets and `C` are multiples of 8); the
//! payload may: it continues at ring offset 0. A message must fit in the ring
//! (`8 + align8(len) <= C`).
//!
//! Sending: wait until `C - (head - tail) >= record size`, write the record,
//! store `head += record size` (release), then a full fence; if the receiver
//! waiting word is nonzero, set it to 0 and `FUTEX_WAKE` it. Receiving: if
//! `tail == head` wait; read the record at `tail % C` (after an acquire load
//! of head), store `tail += record size` (release), full fence, and wake the
//! sender the same way. To sleep, a side stores 1 in its waiting word
//! (sequentially consistent), checks the condition again, and calls
//! `FUTEX_WAIT(word, 1)`. The futexes are shared (not private).
//!
//! # What a reader checks
//!
//! Every word of the segment may have been written by a buggy or hostile
//! process. The capacity is read once, when a handle opens the channel, and
//! kept in the handle. `head` and `tail` are checked each time they are
//! loaded: multiples of 8 and `tail <= head <= tail + C` (`head - tail <= C`
//! in wrapping `u64` arithmetic); a record's length each time it is read:
//! `8 + align8(len) <= head - tail`. A record header never straddles the end
//! (8-aligned offsets), and a checked record's payload lies in the ring. A
//! violation is [`Error::ChannelCorrupt`] naming the word and its values;
//! nothing is read or written with a word that fails. A peer can still forge
//! a well-formed record: a receiver gets exactly the bytes the record covers.
//!
//! # References
//! - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
//! - [shmget(2)](https://man7.org/linux/man-pages/man2/shmget.2.html)

use std::hint::spin_loop;
use std::ptr;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::attachment::Attachment;
use crate::error::{Error, Result};
use crate::futex::{futex_wait, futex_wake, WaitOutcome};
use crate::segment::{CreateOptions, Segment};
use crate::Key;

/// `"SVCH"` read as a little-endian `u32`.
pub const MAGIC: u32 = 0x4843_5653;
/// The layout version this module reads and writes.
pub const VERSION: u32 = 1;
/// Bytes before the ring.
pub const HEADER_SIZE: usize = 512;
/// Bytes of a record header (length and a zero word).
pub const RECORD_HEADER: usize = 8;

/// No reservation to commit: never a valid head (not a multiple of 8).
const NO_RESERVATION: u64 = u64::MAX;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 4;
const OFF_CAPACITY: usize = 8;
const OFF_HEADER_SIZE: usize = 16;
const OFF_CLOSED: usize = 20;
const OFF_HEAD: usize = 128;
const OFF_TAIL: usize = 256;
const OFF_RX_WAITING: usize = 384;
const OFF_TX_WAITING: usize = 448;

/// How a blocked side of a channel waits for the other: spinning on the
/// shared indices, sleeping in `FUTEX_WAIT`, or first one then the other.
/// (Not to be confused with [`crate::wait::WakeStrategy`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpinPolicy {
    /// Busy-wait on the shared indices: lowest latency, burns a core.
    Spin,
    /// Sleep in `FUTEX_WAIT` at once.
    Park,
    /// Busy-wait for this long, then sleep.
    SpinThenPark(Duration),
}

impl Default for SpinPolicy {
    fn default() -> Self {
        SpinPolicy::SpinThenPark(Duration::from_micros(10))
    }
}

/// What a receive found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recv {
    /// A message of this many bytes was copied out and consumed.
    Message(usize),
    /// Nothing to read (or the timeout elapsed).
    Empty,
    /// Nothing to read, and the channel is closed.
    Closed,
    /// The next message has this many bytes, more than the target holds; it
    /// is left in the ring.
    TooSmall(usize),
}

/// Where [`Channel::try_reserve`] puts a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserve {
    /// There is room, and the payload is contiguous at this offset of the
    /// ring: write it there, then [`Channel::commit`].
    At(usize),
    /// There is room, but the payload would wrap around the end of the ring:
    /// send a copy instead ([`Channel::try_send_raw`] will not wait).
    Split,
    /// Not enough room now.
    Full,
}

/// What [`Channel::try_peek`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// The next message is contiguous in the ring at this offset, with this
    /// length: read it there, then [`Channel::release`].
    At(usize, usize),
    /// The next message (of this length) wraps around the end of the ring:
    /// receive a copy instead.
    Split(usize),
    /// Nothing to read.
    Empty,
    /// Nothing to read, and the channel is closed.
    Closed,
}

/// The bytes of a record holding `len` payload bytes.
pub const fn record_size(len: usize) -> usize {
    RECORD_HEADER + ((len + 7) & !7)
}

/// [`record_size`] of a length read from the segment (at most `u32::MAX`),
/// in `u64`: it cannot overflow.
const fn record_size64(len: usize) -> u64 {
    RECORD_HEADER as u64 + ((len as u64 + 7) & !7)
}

/// A record the receiver checked (see `Channel::record`).
struct Record {
    /// `tail` once it is consumed.
    next_tail: u64,
    /// Payload bytes, `<= C - 8`.
    len: usize,
    /// Ring offset of the payload, `< C`.
    start: usize,
}

/// A channel end: one attachment of a channel segment. Either end may send
/// or receive, but at most one process may send and one receive at a time.
#[derive(Debug)]
pub struct Channel {
    map: Attachment,
    capacity: u64,
    /// The sender's last view of `tail` (never ahead of the real one).
    cached_tail: AtomicU64,
    /// The receiver's last view of `head`.
    cached_head: AtomicU64,
    /// `head` at the last [`Reserve::At`], for [`Channel::commit`]
    /// ([`NO_RESERVATION`] when there is none).
    reserved: AtomicU64,
    /// Reservations cancelled (by a send or a reserve on this handle before
    /// their commit) since the last reserve made with none pending: the
    /// commits still owed to them fail. Nested `sendWith`s cancel one each.
    cancelled: AtomicU64,
    /// The payload length of that reservation.
    reserved_len: AtomicU64,
    /// `tail` of the record the last [`Channel::try_peek`] showed, for
    /// [`Channel::release`] ([`NO_RESERVATION`] when none).
    peeked: AtomicU64,
    /// `tail` once that record is consumed, as checked when it was shown.
    peeked_next: AtomicU64,
    strategy: std::sync::Mutex<SpinPolicy>,
}

impl Channel {
    /// Creates a channel segment: `shmget(key, 512 + C, IPC_CREAT | IPC_EXCL
    /// | mode)` with `C` = `capacity` rounded up to a multiple of 8, attaches
    /// it and writes the header (the magic last). With `exclusive: false` an
    /// existing channel of that key is opened instead. Returns whether this
    /// call created it.
    ///
    /// # Errors
    /// As [`Segment::create`]; `InvalidArgument` for a capacity below 16
    /// bytes or an existing segment that is not a channel.
    ///
    /// # References
    /// - [shmget(2)](https://man7.org/linux/man-pages/man2/shmget.2.html)
    pub fn create(key: Key, capacity: usize, options: &CreateOptions) -> Result<(Channel, bool)> {
        if capacity < 16 {
            return Err(Error::InvalidArgument(format!(
                "capacity must be at least 16 bytes, got {capacity}"
            )));
        }
        let capacity = capacity
            .checked_add(7)
            .map(|c| c & !7)
            .and_then(|c| c.checked_add(HEADER_SIZE).map(|_| c))
            .ok_or_else(|| Error::InvalidArgument(format!("capacity {capacity} is too large")))?;
        let (segment, created) = Segment::create(key, HEADER_SIZE + capacity, options)?;
        if !created {
            return Channel::from_segment(segment).map(|c| (c, false));
        }
        let map = match segment.attach(false) {
            Ok(m) => m,
            Err(e) => {
                let _ = segment.remove();
                return Err(e);
            }
        };
        let channel = Channel::new(map, capacity as u64);
        // A new segment is zero-filled: head, tail, closed and the waiting
        // words are already 0.
        channel
            .u32_at(OFF_VERSION)
            .store(VERSION, Ordering::Relaxed);
        channel
            .u64_at(OFF_CAPACITY)
            .store(capacity as u64, Ordering::Relaxed);
        channel
            .u32_at(OFF_HEADER_SIZE)
            .store(HEADER_SIZE as u32, Ordering::Relaxed);
        channel.u32_at(OFF_MAGIC).store(MAGIC, Ordering::Release);
        Ok((channel, true))
    }

    /// Opens the channel of `key`: `shmget(key, 0, 0)`, `shmat`, and checks
    /// the header.
    ///
    /// # References
    /// - [shmget(2)](https://man7.org/linux/man-pages/man2/shmget.2.html)
    pub fn open(key: Key) -> Result<Channel> {
        Channel::from_segment(Segment::open(key)?)
    }

    /// Attaches the channel segment with this shmid and checks the header.
    pub fn from_segment(segment: Segment) -> Result<Channel> {
        let map = segment.attach(false)?;
        let not_channel = |detail: String| Error::NotAChannel {
            id: segment.id(),
            detail,
        };
        if map.len() < HEADER_SIZE + 16 {
            return Err(not_channel(format!("{} bytes is too small", map.len())));
        }
        let mut probe = Channel::new(map, 0);
        let magic = probe.u32_at(OFF_MAGIC).load(Ordering::Acquire);
        if magic != MAGIC {
            return Err(not_channel(format!("magic 0x{magic:08x}")));
        }
        let version = probe.u32_at(OFF_VERSION).load(Ordering::Relaxed);
        if version != VERSION {
            return Err(not_channel(format!(
                "layout version {version}, expected {VERSION}"
            )));
        }
        let capacity = probe.u64_at(OFF_CAPACITY).load(Ordering::Relaxed);
        let header = probe.u32_at(OFF_HEADER_SIZE).load(Ordering::Relaxed) as usize;
        let fits = (capacity as usize)
            .checked_add(HEADER_SIZE)
            .is_some_and(|n| n <= probe.map.len());
        if header != HEADER_SIZE || capacity % 8 != 0 || capacity < 16 || !fits {
            return Err(not_channel(format!(
                "header size {header}, capacity {capacity} in a segment of {} bytes",
                probe.map.len()
            )));
        }
        // The capacity is read once, here, and kept in the handle: a peer
        // that rewrites the word later changes nothing.
        probe.capacity = capacity;
        // Cached values that send both sides to their slow path (a fresh,
        // checked load) on first use: a cached head equal to tail (empty), a
        // cached tail a whole ring behind head (full).
        let head = probe.u64_at(OFF_HEAD).load(Ordering::Acquire);
        let tail = probe.u64_at(OFF_TAIL).load(Ordering::Acquire);
        probe.cached_head.store(tail, Ordering::Relaxed);
        probe
            .cached_tail
            .store(head.wrapping_sub(capacity), Ordering::Relaxed);
        Ok(probe)
    }

    fn new(map: Attachment, capacity: u64) -> Channel {
        Channel {
            map,
            capacity,
            cached_tail: AtomicU64::new(0),
            cached_head: AtomicU64::new(0),
            reserved: AtomicU64::new(NO_RESERVATION),
            reserved_len: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            peeked: AtomicU64::new(NO_RESERVATION),
            peeked_next: AtomicU64::new(0),
            strategy: std::sync::Mutex::new(SpinPolicy::default()),
        }
    }

    fn u32_at(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off + 4 <= HEADER_SIZE && off % 4 == 0);
        // SAFETY: every offset used is a 4-aligned constant inside the header,
        // which is mapped (the segment is at least HEADER_SIZE bytes, checked
        // at open) while `self` lives. Shared memory is only accessed through
        // atomics here, so a reference to an atomic is sound.
        unsafe { &*self.map.as_ptr().add(off).cast::<AtomicU32>() }
    }

    fn u64_at(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off + 8 <= HEADER_SIZE && off % 8 == 0);
        // SAFETY: as in `u32_at`, with 8-aligned offsets (the mapping is page
        // aligned).
        unsafe { &*self.map.as_ptr().add(off).cast::<AtomicU64>() }
    }

    fn ring(&self) -> *mut u8 {
        // SAFETY: HEADER_SIZE is within the mapping (checked at open).
        unsafe { self.map.as_ptr().add(HEADER_SIZE) }
    }

    /// The attachment (for its id and address).
    pub fn attachment(&self) -> &Attachment {
        &self.map
    }

    /// The capacity of the ring, in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// The largest payload a message can have: `capacity - 8`.
    pub fn max_message(&self) -> usize {
        self.capacity as usize - RECORD_HEADER
    }

    /// Bytes of records waiting to be read.
    ///
    /// # Errors
    /// [`Error::ChannelCorrupt`] if `head` and `tail` break the layout's rules.
    pub fn pending_bytes(&self) -> Result<usize> {
        let head = self.u64_at(OFF_HEAD).load(Ordering::Acquire);
        let tail = self.u64_at(OFF_TAIL).load(Ordering::Acquire);
        self.check_indices(head, tail)?;
        Ok(head.wrapping_sub(tail) as usize)
    }

    /// Whether a side has called [`Channel::close`].
    pub fn is_closed(&self) -> bool {
        self.u32_at(OFF_CLOSED).load(Ordering::Acquire) != 0
    }

    /// The address of the receiver's waiting word (for asynchronous waits).
    pub fn rx_waiting_word(&self) -> *const AtomicU32 {
        self.u32_at(OFF_RX_WAITING)
    }

    /// How this handle waits when it blocks.
    pub fn strategy(&self) -> SpinPolicy {
        *self.strategy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets how this handle waits when it blocks.
    pub fn set_strategy(&self, s: SpinPolicy) {
        *self.strategy.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// Marks the channel closed and wakes both sides. Messages already in
    /// the ring can still be read; sends fail.
    pub fn close(&self) -> Result<()> {
        self.u32_at(OFF_CLOSED).store(1, Ordering::SeqCst);
        for off in [OFF_RX_WAITING, OFF_TX_WAITING] {
            let w = self.u32_at(off);
            if w.swap(0, Ordering::SeqCst) != 0 {
                // SAFETY: a live, aligned header word.
                unsafe { futex_wake(w, u32::MAX) }?;
            }
        }
        Ok(())
    }

    fn check_len(&self, len: usize) -> Result<usize> {
        if len > u32::MAX as usize || record_size(len) > self.capacity as usize {
            return Err(Error::InvalidArgument(format!(
                "a message of {len} bytes does not fit in a channel of {} bytes (at most {})",
                self.capacity,
                self.max_message()
            )));
        }
        Ok(record_size(len))
    }

    fn closed_error(&self) -> Error {
        Error::Closed { id: self.map.id() }
    }

    fn corrupt(&self, field: &'static str, detail: String) -> Error {
        Error::ChannelCorrupt {
            id: self.map.id(),
            field,
            detail,
        }
    }

    /// Checks `head` and `tail` as read from the segment: multiples of 8, and
    /// `tail <= head <= tail + C` (in wrapping `u64` arithmetic: `head - tail`
    /// is at most `C`).
    fn check_indices(&self, head: u64, tail: u64) -> Result<()> {
        let c = self.capacity;
        if tail % 8 != 0 {
            return Err(self.corrupt("tail", format!("tail {tail} is not a multiple of 8")));
        }
        if head % 8 != 0 {
            return Err(self.corrupt("head", format!("head {head} is not a multiple of 8")));
        }
        if head.wrapping_sub(tail) > c {
            return Err(if tail.wrapping_sub(head) <= c {
                self.corrupt(
                    "tail",
                    format!("tail {tail} is ahead of head {head} (tail <= head <= tail + {c})"),
                )
            } else {
                self.corrupt(
                    "head",
                    format!(
                        "head {head} is more than the capacity {c} ahead of tail {tail} \
                         (tail <= head <= tail + {c})"
                    ),
                )
            });
        }
        Ok(())
    }

    /// Wakes the other side if its waiting word says it sleeps (after a full
    /// fence); makes no system call otherwise.
    fn wake(&self, off: usize) -> Result<()> {
        fence(Ordering::SeqCst);
        let w = self.u32_at(off);
        if w.load(Ordering::Relaxed) != 0 && w.swap(0, Ordering::SeqCst) != 0 {
            // SAFETY: a live, aligned header word.
            unsafe { futex_wake(w, 1) }?;
        }
        Ok(())
    }

    /// Wakes the receiver if its waiting word says it sleeps (after a full
    /// fence); no system call otherwise. For a sender that moved `head`
    /// itself, through its own view of the segment (the JavaScript path of
    /// the Node binding): what [`Channel::try_send_raw`] does after its store.
    ///
    /// # Errors
    /// `Os` from `futex(2)` `FUTEX_WAKE`.
    ///
    /// # References
    /// - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
    pub fn wake_receiver(&self) -> Result<()> {
        self.wake(OFF_RX_WAITING)
    }

    /// Wakes the sender if its waiting word says it sleeps: as
    /// [`Channel::wake_receiver`], for a receiver that moved `tail` itself.
    ///
    /// # Errors
    /// `Os` from `futex(2)` `FUTEX_WAKE`.
    ///
    /// # References
    /// - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
    pub fn wake_sender(&self) -> Result<()> {
        self.wake(OFF_TX_WAITING)
    }

    /// Where the sender may write a record of `need` bytes (`need <= C`,
    /// from `check_len`): `Some(head)` if there is room now, `None` if the
    /// ring is too full. Checks `head` on every call and `tail` whenever it is
    /// loaded; the fast path is two compares against the cached tail.
    fn room(&self, need: usize) -> Result<Option<u64>> {
        let head = self.u64_at(OFF_HEAD).load(Ordering::Relaxed);
        let limit = self.capacity - need as u64;
        let cached = self.cached_tail.load(Ordering::Relaxed);
        if head % 8 == 0 && head.wrapping_sub(cached) <= limit {
            return Ok(Some(head));
        }
        self.room_slow(head, limit)
    }

    #[cold]
    fn room_slow(&self, head: u64, limit: u64) -> Result<Option<u64>> {
        let tail = self.u64_at(OFF_TAIL).load(Ordering::Acquire);
        self.check_indices(head, tail)?;
        self.cached_tail.store(tail, Ordering::Relaxed);
        Ok((head.wrapping_sub(tail) <= limit).then_some(head))
    }

    /// Whether the sender has room for `need` bytes, for a wait's readiness:
    /// a corrupt channel counts as ready, so that the retry reports it.
    fn has_room(&self, need: usize) -> bool {
        self.room(need).map_or(true, |h| h.is_some())
    }

    /// Sends a message if there is room now: `Ok(false)` if the ring is too
    /// full. Never blocks; makes a system call only to wake a sleeping
    /// receiver. A message sent cancels this handle's reservation (see
    /// [`Channel::commit`]): it is written where the reserved bytes are.
    ///
    /// # Errors
    /// `InvalidArgument` for a message larger than [`Channel::max_message`],
    /// [`Error::Closed`] once closed, [`Error::ChannelCorrupt`] if `head` or
    /// `tail` break the layout's rules.
    ///
    /// # Safety
    /// `src` must be readable for `len` bytes.
    pub unsafe fn try_send_raw(&self, src: *const u8, len: usize) -> Result<bool> {
        let need = self.check_len(len)?;
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let Some(head) = self.room(need)? else {
            return Ok(false);
        };
        // The record goes where a reservation's bytes are: it ends it.
        self.cancel_reservation();
        // SAFETY: `head` is a multiple of 8 and there is room for the record
        // (checked); `src` is readable (caller's contract).
        unsafe { self.write_record(head, src, len) };
        self.u64_at(OFF_HEAD)
            .store(head.wrapping_add(need as u64), Ordering::Release);
        self.wake(OFF_RX_WAITING)?;
        Ok(true)
    }

    /// Sends a message from a slice; see [`Channel::try_send_raw`].
    pub fn try_send(&self, data: &[u8]) -> Result<bool> {
        // SAFETY: a slice is readable for its length.
        unsafe { self.try_send_raw(data.as_ptr(), data.len()) }
    }

    /// Sends a message, waiting (by the handle's [`SpinPolicy`]) while the
    /// ring is too full: `Ok(false)` if `timeout` elapsed first.
    ///
    /// # Safety
    /// `src` must be readable for `len` bytes.
    pub unsafe fn send_raw(
        &self,
        src: *const u8,
        len: usize,
        timeout: Option<Duration>,
    ) -> Result<bool> {
        let need = self.check_len(len)?;
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            // SAFETY: caller's contract.
            if unsafe { self.try_send_raw(src, len) }? {
                return Ok(true);
            }
            let ready = || self.is_closed() || self.has_room(need);
            if !self.block(OFF_TX_WAITING, deadline, ready)? {
                return Ok(false);
            }
        }
    }

    /// Sends a message from a slice; see [`Channel::send_raw`].
    pub fn send(&self, data: &[u8], timeout: Option<Duration>) -> Result<bool> {
        // SAFETY: a slice is readable for its length.
        unsafe { self.send_raw(data.as_ptr(), data.len(), timeout) }
    }

    /// Writes a record header (`len`, then 0) at ring offset `head % C`.
    ///
    /// # Safety
    /// `head` must be a multiple of 8 (so the header lies in the ring: `C` is
    /// one too) and the record must be in free space.
    unsafe fn write_header(&self, head: u64, len: usize) -> usize {
        let at = (head % self.capacity) as usize;
        // SAFETY: `at` is 8-aligned and `at + 8 <= C` (caller's contract);
        // the words are written as atomics: the peer may be looking.
        unsafe {
            let h = self.ring().add(at);
            (*h.cast::<AtomicU32>()).store(len as u32, Ordering::Relaxed);
            (*h.add(4).cast::<AtomicU32>()).store(0, Ordering::Relaxed);
        }
        at
    }

    /// Copies a record into the ring at `head`.
    ///
    /// # Safety
    /// As [`Channel::write_header`]; `len <= C - 8`; `src` readable for `len`.
    unsafe fn write_record(&self, head: u64, src: *const u8, len: usize) {
        let cap = self.capacity as usize;
        // SAFETY: caller's contract.
        let at = unsafe { self.write_header(head, len) };
        let ring = self.ring();
        let start = (at + RECORD_HEADER) % cap;
        let first = len.min(cap - start);
        // SAFETY: both pieces lie in the ring (`len <= C - 8`) and in free
        // space; `src` is readable for `len` (caller's contract). `ptr::copy`
        // tolerates `src` being shared memory too.
        unsafe {
            ptr::copy(src, ring.add(start), first);
            ptr::copy(src.add(first), ring, len - first);
        }
    }

    /// The ring's address in this process (for zero-copy views of it).
    pub fn ring_ptr(&self) -> *mut u8 {
        self.ring()
    }

    /// Reserves room for a message of `len` bytes to be written in place
    /// (zero-copy): see [`Reserve`]. Nothing is visible to the receiver until
    /// [`Channel::commit`]. Each call cancels the handle's previous
    /// reservation, and so does a message sent on this handle before the
    /// commit (it is written where the reserved bytes are).
    ///
    /// # Errors
    /// As [`Channel::try_send_raw`].
    pub fn try_reserve(&self, len: usize) -> Result<Reserve> {
        if self.reserved.load(Ordering::Relaxed) == NO_RESERVATION {
            self.cancelled.store(0, Ordering::Relaxed);
        } else {
            self.cancel_reservation();
        }
        let need = self.check_len(len)?;
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let Some(head) = self.room(need)? else {
            return Ok(Reserve::Full);
        };
        let start = ((head % self.capacity) as usize + RECORD_HEADER) % self.capacity as usize;
        if start + len > self.capacity as usize {
            return Ok(Reserve::Split);
        }
        self.reserved_len.store(len as u64, Ordering::Relaxed);
        self.reserved.store(head, Ordering::Relaxed);
        Ok(Reserve::At(start))
    }

    /// Cancels the reservation of this handle, if there is one: its commit
    /// then fails instead of publishing bytes that a send overwrote.
    fn cancel_reservation(&self) {
        if self.reserved.load(Ordering::Relaxed) != NO_RESERVATION {
            self.reserved.store(NO_RESERVATION, Ordering::Relaxed);
            self.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// [`Channel::try_reserve`], waiting (by the strategy) while the ring is
    /// too full: [`Reserve::Full`] if `timeout` elapsed first.
    pub fn reserve(&self, len: usize, timeout: Option<Duration>) -> Result<Reserve> {
        let need = self.check_len(len)?;
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let r = self.try_reserve(len)?;
            if r != Reserve::Full {
                return Ok(r);
            }
            let ready = || self.is_closed() || self.has_room(need);
            if !self.block(OFF_TX_WAITING, deadline, ready)? {
                return Ok(Reserve::Full);
            }
        }
    }

    /// Publishes the message of `len` bytes written in place after
    /// [`Reserve::At`]: writes its record header, moves `head`, wakes the
    /// receiver if it sleeps. `len` may be smaller than the length reserved
    /// (the payload starts at the same offset), not larger.
    ///
    /// # Errors
    /// `InvalidArgument` without a reservation (each [`Reserve::At`] allows
    /// one commit), for a reservation that a message sent on this handle or a
    /// new reserve cancelled (nothing is sent), and for `len` larger than
    /// reserved (the reservation stays); [`Error::ChannelCorrupt`] as for
    /// [`Channel::try_send_raw`], and if `head` moved (or `tail` moved back)
    /// since the reservation.
    pub fn commit(&self, len: usize) -> Result<()> {
        let need = self.check_len(len)?;
        let id = self.map.id();
        let reserved = self.reserved.load(Ordering::Relaxed);
        if reserved == NO_RESERVATION {
            let cancelled = self.cancelled.load(Ordering::Relaxed);
            if cancelled == 0 {
                return Err(Error::InvalidArgument(format!(
                    "commit of {len} bytes without a reservation on channel {id}"
                )));
            }
            self.cancelled.store(cancelled - 1, Ordering::Relaxed);
            return Err(Error::InvalidArgument(format!(
                "commit of {len} bytes on channel {id}: the reservation was cancelled by a \
                 message sent (or a new reserve) on this handle before the commit, which wrote \
                 where the reserved bytes were; nothing was sent"
            )));
        }
        let reserved_len = self.reserved_len.load(Ordering::Relaxed);
        if len as u64 > reserved_len {
            return Err(Error::InvalidArgument(format!(
                "commit of {len} bytes on channel {id}, more than the {reserved_len} reserved"
            )));
        }
        self.reserved.store(NO_RESERVATION, Ordering::Relaxed);
        // With `head` where it was, the cached tail still shows the room the
        // reservation found (`need` is at most what it reserved): only a peer
        // that moved `head`, or `tail` back, takes it away.
        let Some(head) = self.room(need)?.filter(|&h| h == reserved) else {
            let now = self.u64_at(OFF_HEAD).load(Ordering::Relaxed);
            let tail = self.u64_at(OFF_TAIL).load(Ordering::Relaxed);
            return Err(if now != reserved {
                self.corrupt(
                    "head",
                    format!("head moved from {reserved} to {now} between reserve and commit"),
                )
            } else {
                self.corrupt(
                    "tail",
                    format!(
                        "tail {tail} moved back between reserve and commit: the {need} bytes \
                         reserved at head {reserved} are no longer free"
                    ),
                )
            });
        };
        // SAFETY: `head` is a multiple of 8 with room for the record (checked).
        unsafe { self.write_header(head, len) };
        self.u64_at(OFF_HEAD)
            .store(head.wrapping_add(need as u64), Ordering::Release);
        self.wake(OFF_RX_WAITING)
    }

    /// The next record for the receiver, checked: `None` if the ring is empty.
    /// `tail` is a multiple of 8, `0 < head - tail <= C` and the record
    /// (`8 + align8(len)` bytes) within `head - tail`. The fast path compares
    /// against the cached head; anything that fails there is decided on a
    /// fresh head.
    fn record(&self, tail: u64) -> Result<Option<Record>> {
        let d = self.cached_head.load(Ordering::Relaxed).wrapping_sub(tail);
        if tail % 8 == 0 && d != 0 && d <= self.capacity {
            let len = self.len_at(tail);
            if record_size64(len) <= d {
                return Ok(Some(self.place(tail, len)));
            }
        }
        self.record_slow(tail)
    }

    #[cold]
    fn record_slow(&self, tail: u64) -> Result<Option<Record>> {
        let head = self.u64_at(OFF_HEAD).load(Ordering::Acquire);
        self.check_indices(head, tail)?;
        self.cached_head.store(head, Ordering::Relaxed);
        let d = head.wrapping_sub(tail);
        if d == 0 {
            return Ok(None);
        }
        let len = self.len_at(tail);
        let size = record_size64(len);
        if size > d {
            return Err(self.corrupt(
                "record length",
                format!(
                    "the record at tail {tail} says {len} bytes ({size} with its header and \
                     padding), but head {head} publishes only {d} bytes"
                ),
            ));
        }
        Ok(Some(self.place(tail, len)))
    }

    /// Where the payload of a checked record lies.
    fn place(&self, tail: u64, len: usize) -> Record {
        let start = ((tail % self.capacity) as usize + RECORD_HEADER) % self.capacity as usize;
        Record {
            next_tail: tail.wrapping_add(record_size64(len)),
            len,
            start,
        }
    }

    /// The payload length in the record header at `tail`.
    fn len_at(&self, tail: u64) -> usize {
        debug_assert!(tail % 8 == 0);
        let at = (tail % self.capacity) as usize;
        // SAFETY: `tail` is a multiple of 8 (every caller checks it first), and
        // so is `C`, so the header word is aligned and inside the ring. Read as
        // an atomic: a peer may be writing it.
        unsafe { (*self.ring().add(at).cast::<AtomicU32>()).load(Ordering::Relaxed) as usize }
    }

    /// Copies a checked record's payload to `dst`.
    ///
    /// # Safety
    /// `dst` writable for `rec.len` bytes.
    unsafe fn copy_out(&self, rec: &Record, dst: *mut u8) {
        if rec.len == 0 {
            return;
        }
        let first = rec.len.min(self.capacity as usize - rec.start);
        // SAFETY: `start < C` and `len <= C - 8` (the record is within
        // `head - tail <= C`), so both pieces lie in the ring; `dst` is
        // writable for `len` bytes (caller's contract).
        unsafe {
            ptr::copy(self.ring().add(rec.start), dst, first);
            ptr::copy(self.ring(), dst.add(first), rec.len - first);
        }
    }

    /// Moves `tail` past a consumed record and wakes the sender if it sleeps.
    fn consume(&self, next_tail: u64) -> Result<()> {
        self.u64_at(OFF_TAIL).store(next_tail, Ordering::Release);
        self.wake(OFF_TX_WAITING)
    }

    /// [`Recv::Closed`] or [`Recv::Empty`] for a receiver that found nothing
    /// at `tail` (closed counts once nothing came before the close).
    fn nothing(&self, tail: u64) -> Result<Recv> {
        Ok(if self.is_closed() && self.record(tail)?.is_none() {
            Recv::Closed
        } else {
            Recv::Empty
        })
    }

    /// Looks at the next message without consuming it (zero-copy reads): see
    /// [`Peek`]. The bytes at [`Peek::At`] stay the receiver's until
    /// [`Channel::release`].
    ///
    /// # Errors
    /// [`Error::ChannelCorrupt`] if `head`, `tail` or the record header break
    /// the layout's rules.
    pub fn try_peek(&self) -> Result<Peek> {
        self.peeked.store(NO_RESERVATION, Ordering::Relaxed);
        let tail = self.u64_at(OFF_TAIL).load(Ordering::Relaxed);
        let Some(rec) = self.record(tail)? else {
            return Ok(match self.nothing(tail)? {
                Recv::Closed => Peek::Closed,
                _ => Peek::Empty,
            });
        };
        self.peeked_next.store(rec.next_tail, Ordering::Relaxed);
        self.peeked.store(tail, Ordering::Relaxed);
        if rec.start + rec.len > self.capacity as usize {
            return Ok(Peek::Split(rec.len));
        }
        Ok(Peek::At(rec.start, rec.len))
    }

    /// Consumes the message that [`Channel::try_peek`] showed: moves `tail`
    /// and wakes the sender if it sleeps. `Ok(false)` if there was none.
    /// With `tail` where the peek found it, this is the record it showed, of
    /// the length it showed (a peer that rewrote its header since changes
    /// nothing); otherwise the record at `tail` is read and checked again.
    ///
    /// # Errors
    /// As [`Channel::try_peek`].
    pub fn release(&self) -> Result<bool> {
        let tail = self.u64_at(OFF_TAIL).load(Ordering::Relaxed);
        let next = if self.peeked.swap(NO_RESERVATION, Ordering::Relaxed) == tail {
            self.peeked_next.load(Ordering::Relaxed)
        } else {
            let Some(rec) = self.record(tail)? else {
                return Ok(false);
            };
            rec.next_tail
        };
        self.consume(next)?;
        Ok(true)
    }

    /// The payload length of the next message, if there is one.
    ///
    /// # Errors
    /// As [`Channel::try_peek`].
    pub fn next_len(&self) -> Result<Option<usize>> {
        let tail = self.u64_at(OFF_TAIL).load(Ordering::Relaxed);
        Ok(self.record(tail)?.map(|r| r.len))
    }

    /// Whether a message seems to be there, for a wait's readiness (the
    /// receive that follows checks it).
    fn has_data(&self, tail: u64) -> bool {
        let d = self.cached_head.load(Ordering::Relaxed).wrapping_sub(tail);
        if d != 0 && d <= self.capacity {
            return true;
        }
        self.u64_at(OFF_HEAD).load(Ordering::Acquire) != tail
    }

    /// Receives the next message if there is one now, into the memory that
    /// `dst` returns for its length (`None`: the target is too small, the
    /// message stays, [`Recv::TooSmall`]). The record header is read once.
    /// Never blocks; makes a system call only to wake a sleeping sender.
    ///
    /// # Errors
    /// As [`Channel::try_peek`].
    ///
    /// # Safety
    /// A pointer `dst(len)` returns must be writable for `len` bytes.
    pub unsafe fn try_recv_with(&self, dst: impl FnOnce(usize) -> Option<*mut u8>) -> Result<Recv> {
        let tail = self.u64_at(OFF_TAIL).load(Ordering::Relaxed);
        let Some(rec) = self.record(tail)? else {
            return self.nothing(tail);
        };
        let Some(to) = dst(rec.len) else {
            return Ok(Recv::TooSmall(rec.len));
        };
        // SAFETY: caller's contract.
        unsafe { self.copy_out(&rec, to) };
        self.consume(rec.next_tail)?;
        Ok(Recv::Message(rec.len))
    }

    /// Receives the next message into `dst` if there is one now; see
    /// [`Channel::try_recv_with`].
    ///
    /// # Safety
    /// `dst` must be writable for `cap` bytes.
    pub unsafe fn try_recv_raw(&self, dst: *mut u8, cap: usize) -> Result<Recv> {
        // SAFETY: `dst` is writable for `cap >= len` bytes (caller's contract).
        unsafe { self.try_recv_with(|len| (len <= cap).then_some(dst)) }
    }

    /// Receives as many waiting messages as fit, in one go: packed back to
    /// back into `dst` (`cap` bytes), their lengths into `lens` (at most
    /// `max` messages). Moves `tail` and checks the sender's waiting word once
    /// for the whole batch. Returns how many were received, or
    /// [`Recv::TooSmall`] if even the first does not fit, or
    /// [`Recv::Empty`]/[`Recv::Closed`] when there are none.
    ///
    /// # Errors
    /// As [`Channel::try_peek`]; messages received before a corrupt record
    /// are consumed and lost with it.
    ///
    /// # Safety
    /// `dst` must be writable for `cap` bytes, `lens` aligned and writable
    /// for `max` `u32`s. Either may be shared memory (they are written
    /// through raw pointers only), but must not overlap each other.
    pub unsafe fn try_recv_many_raw(
        &self,
        dst: *mut u8,
        cap: usize,
        lens: *mut u32,
        max: usize,
    ) -> Result<Recv> {
        let start_tail = self.u64_at(OFF_TAIL).load(Ordering::Relaxed);
        let mut tail = start_tail;
        let mut used = 0usize;
        let mut n = 0usize;
        while n < max {
            let rec = match self.record(tail) {
                Ok(Some(rec)) => rec,
                Ok(None) => break,
                Err(e) if n == 0 => return Err(e),
                // Hand over what was received; the next call reports it.
                Err(_) => break,
            };
            if rec.len > cap - used {
                if n == 0 {
                    return Ok(Recv::TooSmall(rec.len));
                }
                break;
            }
            // SAFETY: `dst + used` is writable for `cap - used >= len` bytes
            // and `lens + n` for one `u32` (`n < max`; caller's contract).
            unsafe {
                self.copy_out(&rec, dst.add(used));
                ptr::write(lens.add(n), rec.len as u32);
            }
            used += rec.len;
            n += 1;
            tail = rec.next_tail;
        }
        if n == 0 {
            return self.nothing(start_tail);
        }
        self.consume(tail)?;
        Ok(Recv::Message(n))
    }

    /// Receives a message into a slice; see [`Channel::try_recv_raw`].
    pub fn try_recv(&self, dst: &mut [u8]) -> Result<Recv> {
        // SAFETY: a mutable slice is writable for its length.
        unsafe { self.try_recv_raw(dst.as_mut_ptr(), dst.len()) }
    }

    /// Waits (by the handle's strategy) until a message is there, the channel
    /// is closed, or `timeout` elapses; returns whether one of the first two
    /// happened.
    pub fn wait_readable(&self, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let ready = || {
            let tail = self.u64_at(OFF_TAIL).load(Ordering::Relaxed);
            self.has_data(tail) || self.is_closed()
        };
        if ready() {
            return Ok(true);
        }
        self.block(OFF_RX_WAITING, deadline, ready)
    }

    /// Receives the next message into `dst`, waiting while the ring is empty:
    /// [`Recv::Empty`] if `timeout` elapsed first.
    ///
    /// # Safety
    /// `dst` must be writable for `cap` bytes.
    pub unsafe fn recv_raw(
        &self,
        dst: *mut u8,
        cap: usize,
        timeout: Option<Duration>,
    ) -> Result<Recv> {
        // SAFETY: caller's contract.
        let r = unsafe { self.try_recv_raw(dst, cap) }?;
        if r != Recv::Empty || !self.wait_readable(timeout)? {
            return Ok(r);
        }
        // SAFETY: caller's contract.
        unsafe { self.try_recv_raw(dst, cap) }
    }

    /// Receives into a slice, waiting; see [`Channel::recv_raw`].
    pub fn recv(&self, dst: &mut [u8], timeout: Option<Duration>) -> Result<Recv> {
        // SAFETY: a mutable slice is writable for its length.
        unsafe { self.recv_raw(dst.as_mut_ptr(), dst.len(), timeout) }
    }

    /// Sets the receiver's waiting word and checks again, for an asynchronous
    /// wait: `true` if the caller should wait on [`Channel::rx_waiting_word`]
    /// for a change from 1, `false` if a message or the close is already there
    /// (the word is cleared again).
    pub fn arm_rx_wait(&self) -> bool {
        let w = self.u32_at(OFF_RX_WAITING);
        w.store(1, Ordering::SeqCst);
        let tail = self.u64_at(OFF_TAIL).load(Ordering::Relaxed);
        if self.u64_at(OFF_HEAD).load(Ordering::SeqCst) != tail || self.is_closed() {
            w.store(0, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Waits until `ready()`, by the strategy: spins, then sleeps on the
    /// waiting word at `off`. Returns `false` at the deadline.
    fn block(
        &self,
        off: usize,
        deadline: Option<Instant>,
        ready: impl Fn() -> bool,
    ) -> Result<bool> {
        let spin = match self.strategy() {
            SpinPolicy::Park => None,
            SpinPolicy::Spin => deadline,
            SpinPolicy::SpinThenPark(d) => {
                let end = Instant::now().checked_add(d);
                match (end, deadline) {
                    (Some(e), Some(dl)) => Some(e.min(dl)),
                    (e, _) => e,
                }
            }
        };
        let spin_forever = self.strategy() == SpinPolicy::Spin && deadline.is_none();
        if spin.is_some() || spin_forever {
            let mut i = 0u32;
            loop {
                if ready() {
                    return Ok(true);
                }
                spin_loop();
                i = i.wrapping_add(1);
                if i % 256 == 0 && !spin_forever && spin.is_some_and(|s| Instant::now() >= s) {
                    break;
                }
            }
            if self.strategy() == SpinPolicy::Spin {
                return Ok(ready());
            }
        }
        let word = self.u32_at(off);
        loop {
            word.store(1, Ordering::SeqCst);
            // Orders the store before the loads of `ready` (Dekker with the
            // other side's index store, fence and load of this word).
            fence(Ordering::SeqCst);
            if ready() {
                word.store(0, Ordering::Relaxed);
                return Ok(true);
            }
            let left = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        word.store(0, Ordering::Relaxed);
                        return Ok(ready());
                    }
                    Some(left)
                }
            };
            // SAFETY: a live, aligned header word.
            if unsafe { futex_wait(word, 1, left) }? == WaitOutcome::TimedOut {
                word.store(0, Ordering::Relaxed);
                return Ok(ready());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IPC_PRIVATE;
    use std::sync::Arc;

    fn channel(cap: usize) -> Channel {
        let (c, created) = Channel::create(IPC_PRIVATE, cap, &CreateOptions::default()).unwrap();
        assert!(created);
        c.attachment().segment().remove().unwrap();
        c
    }

    #[test]
    fn layout_and_limits() {
        let c = channel(61);
        assert_eq!(c.capacity(), 64);
        assert_eq!(c.max_message(), 56);
        assert!(c.try_send(&[0; 57]).is_err());
        assert!(c.try_send(&[7; 56]).unwrap());
        assert!(!c.try_send(&[]).unwrap(), "full");
        let mut small = [0u8; 10];
        assert_eq!(c.try_recv(&mut small).unwrap(), Recv::TooSmall(56));
        let mut big = [0u8; 56];
        assert_eq!(c.try_recv(&mut big).unwrap(), Recv::Message(56));
        assert_eq!(big, [7; 56]);
        assert_eq!(c.try_recv(&mut big).unwrap(), Recv::Empty);
        let again = Channel::from_segment(c.attachment().segment()).unwrap();
        assert_eq!(again.capacity(), 64);
    }

    #[test]
    fn wraps_empty_messages_and_close() {
        let c = channel(64);
        let mut out = [0u8; 64];
        for round in 0..50u8 {
            let len = (round as usize * 7) % 40;
            let msg: Vec<u8> = (0..len as u8).map(|b| b ^ round).collect();
            assert!(c.try_send(&msg).unwrap());
            assert!(c.try_send(&[]).unwrap());
            assert_eq!(c.try_recv(&mut out).unwrap(), Recv::Message(len));
            assert_eq!(&out[..len], &msg[..]);
            assert_eq!(c.try_recv(&mut out).unwrap(), Recv::Message(0));
        }
        c.try_send(b"last").unwrap();
        c.close().unwrap();
        assert!(c.try_send(b"x").is_err());
        assert_eq!(c.try_recv(&mut out).unwrap(), Recv::Message(4));
        assert_eq!(c.try_recv(&mut out).unwrap(), Recv::Closed);
    }

    #[test]
    fn zero_copy_reserve_commit_peek_release() {
        let c = channel(64);
        // 20 bytes: record 32, at 0 (payload at 8).
        assert_eq!(c.try_reserve(20).unwrap(), Reserve::At(8));
        // SAFETY: the reserved payload range is in the ring.
        unsafe { ptr::write_bytes(c.ring_ptr().add(8), 7, 20) };
        c.commit(20).unwrap();
        assert_eq!(c.try_peek().unwrap(), Peek::At(8, 20));
        let mut out = [0u8; 20];
        // SAFETY: the peeked payload range is in the ring.
        unsafe { ptr::copy(c.ring_ptr().add(8), out.as_mut_ptr(), 20) };
        assert_eq!(out, [7; 20]);
        assert!(c.release().unwrap());
        assert_eq!(c.try_peek().unwrap(), Peek::Empty);
        // head = 32: a 30-byte payload at 40 would end at 70 > 64.
        assert_eq!(c.try_reserve(30).unwrap(), Reserve::Split);
        assert!(c.try_send(&[9; 30]).unwrap());
        assert_eq!(c.try_peek().unwrap(), Peek::Split(30));
        assert_eq!(c.try_recv(&mut [0; 30]).unwrap(), Recv::Message(30));
        assert!(!c.release().unwrap());
        assert!(c.try_reserve(57).is_err());
        assert_eq!(c.try_reserve(56).unwrap(), Reserve::Split);
        assert_eq!(c.try_reserve(40).unwrap(), Reserve::At(16));
    }

    #[test]
    fn a_send_or_a_new_reserve_before_commit_cancels_the_reservation() {
        let c = channel(64);
        let mut out = [0u8; 64];
        // A send on the same handle between reserve and commit (a `sendWith`
        // whose write callback sends) writes where the reserved bytes are.
        assert_eq!(c.try_reserve(5).unwrap(), Reserve::At(8));
        // SAFETY: the reserved payload range is in the ring.
        unsafe { ptr::copy(b"outer".as_ptr(), c.ring_ptr().add(8), 5) };
        assert!(c.try_send(b"inner message").unwrap());
        let e = c.commit(5).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidArgument(m) if m.contains("cancelled by a message sent")),
            "{e:?}"
        );
        assert_eq!(c.try_recv(&mut out).unwrap(), Recv::Message(13));
        assert_eq!(&out[..13], b"inner message");
        assert_eq!(c.try_recv(&mut out).unwrap(), Recv::Empty, "nothing else");
        // The error ends it: a commit after it has no reservation.
        assert!(
            matches!(c.commit(5), Err(Error::InvalidArgument(m)) if m.contains("without a reservation"))
        );
        // A send that writes nothing (the ring is too full) leaves it.
        assert!(c.try_send(b"x").unwrap()); // head 40
        assert_eq!(c.try_reserve(8).unwrap(), Reserve::At(48));
        assert!(!c.try_send(&[0; 48]).unwrap());
        c.commit(8).unwrap();
        assert_eq!(c.try_recv(&mut out).unwrap(), Recv::Message(1));
        assert_eq!(c.try_recv(&mut out).unwrap(), Recv::Message(8));
        assert!(c.try_send(&[0; 8]).unwrap()); // head = tail + 16 = 72
        assert_eq!(c.try_recv(&mut out).unwrap(), Recv::Message(8));
        // A new reserve replaces it, also one that finds no contiguous room.
        assert_eq!(c.try_reserve(8).unwrap(), Reserve::At(16));
        assert_eq!(c.try_reserve(50).unwrap(), Reserve::Split);
        assert!(matches!(c.commit(8), Err(Error::InvalidArgument(m)) if m.contains("cancelled")));
        assert_eq!(c.try_reserve(4).unwrap(), Reserve::At(16));
        assert_eq!(c.try_reserve(2).unwrap(), Reserve::At(16));
        c.commit(2).unwrap();
        assert_eq!(c.try_recv(&mut out).unwrap(), Recv::Message(2));
        assert_eq!(c.try_recv(&mut out).unwrap(), Recv::Empty);
        // Nested (a sendWith inside a sendWith's callback): the inner one is
        // sent, the outer commit fails, then there is nothing to commit.
        assert_eq!(c.try_reserve(3).unwrap(), Reserve::At(32));
        assert_eq!(c.try_reserve(3).unwrap(), Reserve::At(32));
        // SAFETY: the reserved payload range is in the ring.
        unsafe { ptr::copy(b"abc".as_ptr(), c.ring_ptr().add(32), 3) };
        c.commit(3).unwrap();
        assert!(matches!(c.commit(3), Err(Error::InvalidArgument(m)) if m.contains("cancelled")));
        assert!(
            matches!(c.commit(3), Err(Error::InvalidArgument(m)) if m.contains("without a reservation"))
        );
        assert_eq!(c.try_recv(&mut out).unwrap(), Recv::Message(3));
        assert_eq!(&out[..3], b"abc");
        assert_eq!(c.try_recv(&mut out).unwrap(), Recv::Empty);
    }

    #[test]
    fn commit_takes_at_most_the_length_reserved() {
        let c = channel(64);
        assert!(c.try_send(&[1; 24]).unwrap());
        let mut out = [0u8; 64];
        assert_eq!(c.try_recv(&mut out).unwrap(), Recv::Message(24));
        assert!(c.try_send(&[2; 24]).unwrap());
        // tail 32, head 64: 32 bytes free, reserve(8) takes 16 of them.
        assert_eq!(c.try_reserve(8).unwrap(), Reserve::At(8));
        let e = c.commit(40).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidArgument(m) if m.contains("commit of 40 bytes") && m.contains("more than the 8 reserved")),
            "{e:?}"
        );
        // The reservation stays for a commit that fits it; a shorter one is
        // fine (the payload starts at the same offset).
        // SAFETY: the reserved payload range is in the ring.
        unsafe { ptr::write_bytes(c.ring_ptr().add(8), 3, 8) };
        c.commit(6).unwrap();
        assert_eq!(c.try_recv(&mut out).unwrap(), Recv::Message(24));
        assert_eq!(c.try_recv(&mut out).unwrap(), Recv::Message(6));
        assert_eq!(out[..6], [3; 6]);
        assert_eq!(c.pending_bytes().unwrap(), 0);
    }

    #[test]
    fn threads_with_every_strategy() {
        for strategy in [
            SpinPolicy::Park,
            SpinPolicy::Spin,
            SpinPolicy::SpinThenPark(Duration::from_micros(5)),
        ] {
            let c = Arc::new(channel(256));
            c.set_strategy(strategy);
            let rx = Arc::clone(&c);
            let reader = std::thread::spawn(move || {
                let mut sum = 0u64;
                let mut buf = [0u8; 248];
                loop {
                    match rx.recv(&mut buf, None).unwrap() {
                        Recv::Message(n) => {
                            sum += buf[..n].iter().map(|&b| b as u64).sum::<u64>() + n as u64
                        }
                        Recv::Closed => return sum,
                        other => panic!("{other:?}"),
                    }
                }
            });
            let mut sum = 0u64;
            for i in 0..20_000usize {
                let msg: Vec<u8> = (0..(i * 31) % 249).map(|b| (b + i) as u8).collect();
                sum += msg.iter().map(|&b| b as u64).sum::<u64>() + msg.len() as u64;
                assert!(c.send(&msg, None).unwrap());
            }
            c.close().unwrap();
            assert_eq!(reader.join().unwrap(), sum, "{strategy:?}");
        }
    }
}
