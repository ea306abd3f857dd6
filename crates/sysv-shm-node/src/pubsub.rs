//! The native pieces of publish/subscribe (`src/pubsub.ts`): the key of a
//! topic name and the layout's constants. Only conversions: the core's
//! [`sysv_shm::pubsub`] owns both.

use napi_derive::napi;
use sysv_shm::pubsub;

/// The System V key of a topic name (FNV-1a of `"sysv-shm/topic:" + name`,
/// never `0` or `-1`); `src/pubsub.ts` checks the name first.
#[napi]
pub fn topic_key(name: String) -> i32 {
    pubsub::topic_key(name.as_bytes())
}

/// The layout of a topic segment (README, "Publish/subscribe"): offsets and limits.
#[napi(object)]
pub struct PubsubLayout {
    pub magic: u32,
    pub version: u32,
    pub header_size: u32,
    pub entry_size: u32,
    pub slot_header: u32,
    pub max_slots: u32,
    pub max_subscribers: u32,
    pub max_name: u32,
    pub slots: u32,
    pub slot_size: u32,
    pub max_message: u32,
    pub subscribers: u32,
    pub policy: u32,
    pub flags: u32,
    pub head: u32,
    pub space: u32,
    pub publisher_tid: u32,
    pub publisher_start: u32,
    pub name_len: u32,
    pub name: u32,
    pub entry_tid: u32,
    pub entry_start: u32,
    pub entry_cursor: u32,
    pub policy_overwrite: u32,
    pub policy_block: u32,
    pub flag_closed: u32,
    pub writing: u32,
}

/// The constants of [`sysv_shm::pubsub`], read once by `src/pubsub.ts`.
#[napi]
pub fn pubsub_layout() -> PubsubLayout {
    use pubsub::*;
    PubsubLayout {
        magic: MAGIC,
        version: VERSION,
        header_size: HEADER_SIZE,
        entry_size: ENTRY_SIZE,
        slot_header: SLOT_HEADER,
        max_slots: MAX_SLOTS,
        max_subscribers: MAX_SUBSCRIBERS,
        max_name: MAX_NAME,
        slots: SLOTS,
        slot_size: SLOT_SIZE,
        max_message: MAX_MESSAGE,
        subscribers: SUBSCRIBERS,
        policy: POLICY,
        flags: FLAGS,
        head: HEAD,
        space: SPACE,
        publisher_tid: PUBLISHER_TID,
        publisher_start: PUBLISHER_START,
        name_len: NAME_LEN,
        name: NAME,
        entry_tid: ENTRY_TID,
        entry_start: ENTRY_START,
        entry_cursor: ENTRY_CURSOR,
        policy_overwrite: POLICY_OVERWRITE,
        policy_block: POLICY_BLOCK,
        flag_closed: FLAG_CLOSED,
        writing: WRITING,
    }
}
