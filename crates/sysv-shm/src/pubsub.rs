//! Publish/subscribe over one segment: its layout, and the key of a topic
//! name.
//!
//! One publisher writes messages into a ring of slots; any number of
//! subscribers read them, each with its own cursor. The protocol (what
//! `publish` and `receive` do with the words) is described in the README,
//! section "Publish/subscribe", and run by `src/pubsub.ts` with `Atomics` on
//! the mapping, or through [`crate::mutex::word_op`] where the runtime has no
//! zero-copy view. A C program follows the same tables.
//!
//! All words are `u32` in native byte order (little-endian on every supported
//! target), changed only with sequentially consistent atomic operations.
//!
//! # Header (256 bytes at offset 0)
//!
//! | offset | type  | field |
//! |-------:|-------|-------|
//! | 0      | u32   | [`MAGIC`] (`"PSB1"`), written last by the creator |
//! | 4      | u32   | [`VERSION`] |
//! | 8      | u32   | `slots` N: a power of two, 1..=[`MAX_SLOTS`] |
//! | 12     | u32   | `slot_size` S: bytes per slot, `SLOT_HEADER + max_message` rounded up to 8 |
//! | 16     | u32   | `max_message`: 1..=S-8 |
//! | 20     | u32   | `subscribers` M: entries in the table, 1..=[`MAX_SUBSCRIBERS`] |
//! | 24     | u32   | `policy`: [`POLICY_OVERWRITE`] or [`POLICY_BLOCK`] |
//! | 28     | u32   | `flags`: [`FLAG_CLOSED`] once the publisher closed; no other bit |
//! | 32     | i32   | `head`, a wait cell value: the sequence of the next message (messages published mod 2³²) |
//! | 36     | u32   | waiters of the head cell (the cell protocol of [`crate::futex`]) |
//! | 40     | i32   | `space`, a wait cell value: bumped by a subscriber that advanced (block policy) |
//! | 44     | u32   | waiters of the space cell |
//! | 48     | u32   | publisher TID (`0`: no live publisher) |
//! | 52     | u32   | publisher start time (low 32 bits of field 22 of `/proc/TID/stat`; `0`: not yet written) |
//! | 56     | u32   | name length in bytes, 0..=[`MAX_NAME`] (`0`: made by numeric key or `IPC_PRIVATE`) |
//! | 60     | u32   | reserved, `0` |
//! | 64     | 128 B | name, UTF-8, zero padded |
//! | 192    | 64 B  | reserved, `0` |
//!
//! # Subscriber table (at [`HEADER_SIZE`]: M entries of [`ENTRY_SIZE`] bytes)
//!
//! | offset | type | field |
//! |-------:|------|-------|
//! | +0     | u32  | owner TID, `0` = free (claimed with compare-exchange `0` -> TID) |
//! | +4     | u32  | owner start time, written after the cursor; `0`: not yet written (a liveness check then asks only whether the TID exists) |
//! | +8     | u32  | cursor: the sequence of the next message this subscriber reads |
//! | +12    | u32  | reserved, `0` |
//!
//! # Slots (at `HEADER_SIZE + ENTRY_SIZE * M`: N slots of S bytes)
//!
//! The message with sequence `s` is in slot `s & (N - 1)`.
//!
//! | offset | type | field |
//! |-------:|------|-------|
//! | +0     | u32  | stamp: the sequence of the message in the slot |
//! | +4     | u32  | length, or [`WRITING`] while the slot is written (and before its first message) |
//! | +8     | S-8 B | data |
//!
//! The segment is at least [`segment_size`] bytes; a reader checks that, and
//! every geometry field, before it uses any of them.
//!
//! # Liveness
//!
//! A publisher and a subscriber are threads, named by TID and start time as
//! the robust mutex names its holder ([`crate::mutex::holder_alive`]): a dead
//! subscriber's entry is reclaimed, a dead publisher's topic can be taken over.
//!
//! The order of the owner words, so that no reader ever trusts a stale start
//! time (read the start time first, then the TID):
//! - Register: compare-exchange the entry's TID `0` -> TID, store the cursor
//!   (the head), then the start time. A block publisher counts an entry only
//!   once its start time is not `0`. If the head then is `N` or more past the
//!   cursor (messages not waited for, maybe overwritten), store the head as
//!   the cursor (block policy: bump `space`).
//! - Leave: store the start time `0`, then the TID `0`. Reclaim a dead owner
//!   (anyone): compare-exchange the start time from the value read to `0`,
//!   then the TID from the value read to `0`.
//! - Take over a topic whose publisher is dead (or `0`): compare-exchange the
//!   publisher start time from the value read to `0`, then the publisher TID
//!   from the value read to yours, then store your start time.
//!
//! # The slot seqlock
//!
//! A publisher writes message `s`: length [`WRITING`], a full fence, the
//! data, stamp `s`, length. A reader reads stamp and length, copies the data,
//! a full fence, reads the length and then the stamp again (that order: the
//! writer stores the stamp before the length): both unchanged means the copy
//! is whole. The fences ([`crate::mutex::fence`]) order the plain data
//! accesses against the words in the direction a release store or acquire
//! load does not (arm64).
//!
//! # Wake-ups
//!
//! A publish stores the head, then wakes the head cell's sleepers if its
//! waiter count is not `0`. Under the block policy a subscriber that moved its
//! cursor always adds 1 to `space`, then wakes the space cell if its waiter
//! count is not `0`: the publisher reads `space` before the cursors and sleeps
//! on that value, so a cursor moved after its scan ends its sleep. The closed
//! flag is no wait cell: a subscriber sleeps on the head at most 100 ms
//! before it looks at the flag again.

/// `"PSB1"` read as a little-endian u32: the first word of a topic.
pub const MAGIC: u32 = u32::from_le_bytes(*b"PSB1");
/// The layout version this crate describes.
pub const VERSION: u32 = 1;
/// Bytes of the header.
pub const HEADER_SIZE: u32 = 256;
/// Bytes of one subscriber entry.
pub const ENTRY_SIZE: u32 = 16;
/// Bytes of a slot before its data: stamp and length.
pub const SLOT_HEADER: u32 = 8;
/// The most slots a topic has.
pub const MAX_SLOTS: u32 = 65536;
/// The most subscriber entries a topic has.
pub const MAX_SUBSCRIBERS: u32 = 4096;
/// The longest name, in UTF-8 bytes.
pub const MAX_NAME: u32 = 128;

/// Offset of the `slots` word.
pub const SLOTS: u32 = 8;
/// Offset of the `slot_size` word.
pub const SLOT_SIZE: u32 = 12;
/// Offset of the `max_message` word.
pub const MAX_MESSAGE: u32 = 16;
/// Offset of the `subscribers` word.
pub const SUBSCRIBERS: u32 = 20;
/// Offset of the `policy` word.
pub const POLICY: u32 = 24;
/// Offset of the `flags` word.
pub const FLAGS: u32 = 28;
/// Offset of the head wait cell.
pub const HEAD: u32 = 32;
/// Offset of the space wait cell.
pub const SPACE: u32 = 40;
/// Offset of the publisher's TID.
pub const PUBLISHER_TID: u32 = 48;
/// Offset of the publisher's start time.
pub const PUBLISHER_START: u32 = 52;
/// Offset of the name length.
pub const NAME_LEN: u32 = 56;
/// Offset of the name bytes.
pub const NAME: u32 = 64;

/// Offset of an entry's owner TID, from the entry.
pub const ENTRY_TID: u32 = 0;
/// Offset of an entry's owner start time, from the entry.
pub const ENTRY_START: u32 = 4;
/// Offset of an entry's cursor, from the entry.
pub const ENTRY_CURSOR: u32 = 8;

/// Policy: the publisher never waits; a subscriber that fell behind skips.
pub const POLICY_OVERWRITE: u32 = 0;
/// Policy: the publisher waits for the slowest live registered subscriber.
pub const POLICY_BLOCK: u32 = 1;
/// The `flags` bit of a closed topic.
pub const FLAG_CLOSED: u32 = 1;
/// A slot's length while it is written, or before it was ever written.
pub const WRITING: u32 = u32::MAX;

/// The bytes of a slot for messages of up to `max_message` bytes:
/// [`SLOT_HEADER`] plus `max_message` rounded up to 8.
pub const fn slot_size(max_message: u64) -> u64 {
    SLOT_HEADER as u64 + max_message.div_ceil(8) * 8
}

/// The least segment size for `slots` slots of `slot_size` bytes and
/// `subscribers` entries.
pub const fn segment_size(slots: u64, slot_size: u64, subscribers: u64) -> u64 {
    HEADER_SIZE as u64 + ENTRY_SIZE as u64 * subscribers + slots * slot_size
}

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;
const KEY_PREFIX: &[u8] = b"sysv-shm/topic:";

/// The System V key of the topic `name` (its UTF-8 bytes): FNV-1a 32-bit over
/// `"sysv-shm/topic:"` followed by the name, read as `i32`; a result of `0`
/// (`IPC_PRIVATE`) or `-1` is `1`. Every language computes the same key from
/// the same name; the header stores the name, so two names with one key are
/// a collision that openers detect, never a shared topic.
pub fn topic_key(name: &[u8]) -> i32 {
    let h = fnv1a(fnv1a(FNV_OFFSET, KEY_PREFIX), name) as i32;
    if h == 0 || h == -1 {
        1
    } else {
        h
    }
}

fn fnv1a(mut h: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        h = (h ^ u32::from(b)).wrapping_mul(FNV_PRIME);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0x811c_9dc5);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn topic_keys_are_fnv1a_of_the_prefixed_name() {
        // Computed by an independent implementation (Python) of the rule.
        assert_eq!(topic_key(b"camera/frames"), 0xfbd5_b753_u32 as i32);
        assert_eq!(topic_key(b"a"), 0xb284_9f56_u32 as i32);
        assert_ne!(topic_key(b"a"), topic_key(b"b"));
    }

    #[test]
    fn zero_and_minus_one_become_one() {
        // Names found by a meet-in-the-middle search: their FNV-1a is 0 and 0xffffffff.
        let mut zero = KEY_PREFIX.to_vec();
        zero.extend_from_slice(b"![^s%w");
        assert_eq!(fnv1a(FNV_OFFSET, &zero), 0);
        assert_eq!(topic_key(b"![^s%w"), 1);
        let mut ones = KEY_PREFIX.to_vec();
        ones.extend_from_slice(b"!Stk:Y");
        assert_eq!(fnv1a(FNV_OFFSET, &ones), u32::MAX);
        assert_eq!(topic_key(b"!Stk:Y"), 1);
    }

    #[test]
    fn the_geometry_adds_up() {
        assert_eq!(MAGIC, 0x3142_5350);
        assert_eq!(slot_size(1), 16);
        assert_eq!(slot_size(8), 16);
        assert_eq!(slot_size(9), 24);
        assert_eq!(segment_size(4, 16, 2), 256 + 32 + 64);
        assert_eq!(NAME + MAX_NAME, 192);
        assert_eq!(PUBLISHER_START + 4, NAME_LEN);
    }
}
