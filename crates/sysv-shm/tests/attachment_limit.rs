//! The per-process attachment budget: at `attachment_limit()` live
//! attachments `shmat` is refused with `TooManyAttachments` instead of the
//! process running out of memory mappings; a detach frees a place.
//! (Its own test binary: it fills the budget of the whole process.)

use sysv_shm::{
    attachment_limit, live_attachments, Attachment, CreateOptions, Error, Segment, IPC_PRIVATE,
};

#[test]
fn attaching_stops_at_the_limit_with_a_clear_error_and_resumes_after_a_detach() {
    let max_map_count: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let limit = attachment_limit();
    assert_eq!(limit, max_map_count / 2);
    let (seg, _) = Segment::create(IPC_PRIVATE, 4096, &CreateOptions::default()).unwrap();
    assert_eq!(live_attachments(), 0);
    let mut maps: Vec<Attachment> = Vec::with_capacity(limit);
    maps.push(seg.attach(false).unwrap());
    seg.remove().unwrap(); // freed once the last attachment below is dropped
    for _ in 1..limit {
        maps.push(seg.attach(false).unwrap());
    }
    assert_eq!(live_attachments(), limit);
    assert_eq!(seg.stat().unwrap().attach_count, limit as u64);
    let e = seg.attach(true).unwrap_err();
    assert_eq!(e, Error::TooManyAttachments { live: limit, limit });
    assert!(e.to_string().contains("max_map_count"), "{e}");
    // The refusal did not attach, and the process can still map memory.
    assert_eq!(seg.stat().unwrap().attach_count, limit as u64);
    let big = vec![1u8; 64 << 20];
    assert_eq!(big[big.len() - 1], 1);
    // One detach (explicit) and one drop free two places.
    maps.pop().unwrap().detach().unwrap();
    drop(maps.pop());
    assert_eq!(live_attachments(), limit - 2);
    maps.push(seg.attach(false).unwrap());
    maps.push(seg.attach(false).unwrap());
    assert!(seg.attach(false).is_err());
    drop(maps);
    assert_eq!(live_attachments(), 0);
    // The last detach freed the removed segment.
    assert!(seg.stat().is_err());
}
