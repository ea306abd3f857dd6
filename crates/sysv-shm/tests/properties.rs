//! Property tests of the core's argument checks (proptest): ranges that
//! overflow, modes, sizes, ids and parties that are out of range are refused
//! with the right error, before any system call and without leaving a
//! segment behind; in-range copies behave like a plain byte array.
//!
//! Cases per property: `PROPTEST_CASES` (256 unless set; `npm run
//! test:stress` sets 10000).

use std::sync::{Mutex, MutexGuard};

use proptest::prelude::*;
use sysv_shm::{
    ftok, list_segments, Attachment, CreateOptions, Errno, Error, Segment, SetOptions, IPC_PRIVATE,
    MODE_MASK,
};

/// Tests of this binary run on parallel threads; they take turns so that
/// "no new segment of this process" means the same thing to each.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Ids of the segments this process created that exist now.
fn ours() -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut ids: Vec<i32> = list_segments()
        .unwrap()
        .into_iter()
        .filter(|s| s.creator_pid == me)
        .map(|s| s.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// A private segment, removed (and so freed at its last detach) on drop.
struct Fixture {
    segment: Segment,
}

impl Fixture {
    fn new(size: usize) -> Fixture {
        let (segment, _) = Segment::create(IPC_PRIVATE, size, &CreateOptions::default()).unwrap();
        Fixture { segment }
    }
    fn attach(&self, read_only: bool) -> Attachment {
        self.segment.attach(read_only).unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.segment.remove();
    }
}

const SIZE: usize = 4096 + 123;

/// Offsets and lengths that hit the edges: small, around the segment size,
/// and near `usize::MAX`, where `offset + len` overflows.
fn edgy() -> impl Strategy<Value = usize> {
    prop_oneof![
        0..=SIZE + 16,
        (SIZE - 16)..=(SIZE + 16),
        (usize::MAX - 4096)..=usize::MAX,
        any::<usize>(),
        Just(usize::MAX / 2 + 1),
    ]
}

#[test]
fn check_range_accepts_exactly_the_ranges_inside_the_segment() {
    let _g = serial();
    let fx = Fixture::new(SIZE);
    let map = fx.attach(false);
    proptest!(config(), |(offset in edgy(), len in edgy())| {
        let inside = offset as u128 + len as u128 <= SIZE as u128;
        match map.check_range(offset, len) {
            Ok(()) => prop_assert!(inside),
            Err(e) => {
                prop_assert!(!inside);
                prop_assert_eq!(&e, &Error::OutOfBounds { offset, len, size: SIZE });
                // Display does not overflow either: it prints the true end.
                let end = (offset as u128 + len as u128).to_string();
                prop_assert!(e.to_string().contains(&end), "{}", e);
            }
        }
    });
}

#[test]
fn copies_behave_like_a_byte_array_and_refused_ones_change_nothing() {
    let _g = serial();
    let fx = Fixture::new(SIZE);
    let map = fx.attach(false);
    let model = std::cell::RefCell::new(vec![0u8; SIZE]);
    proptest!(config(), |(
        offset in prop_oneof![0..=SIZE + 8, Just(usize::MAX), Just(SIZE)],
        data in prop::collection::vec(any::<u8>(), 0..96),
        read_len in 0usize..96,
    )| {
        let fits = offset.checked_add(data.len()).is_some_and(|end| end <= SIZE);
        let mut model = model.borrow_mut();
        match map.write(offset, &data) {
            Ok(()) => {
                prop_assert!(fits);
                model[offset..offset + data.len()].copy_from_slice(&data);
            }
            Err(e) => {
                prop_assert!(!fits);
                let is_oob = matches!(e, Error::OutOfBounds { .. });
                prop_assert!(is_oob, "{:?}", e);
            }
        }
        let mut out = vec![0xAAu8; read_len];
        let readable = offset.checked_add(read_len).is_some_and(|end| end <= SIZE);
        match map.read(offset, &mut out) {
            Ok(()) => {
                prop_assert!(readable);
                prop_assert_eq!(&out[..], &model[offset..offset + read_len]);
            }
            Err(_) => {
                prop_assert!(!readable);
                // A refused read leaves the destination untouched.
                prop_assert!(out.iter().all(|&b| b == 0xAA));
            }
        }
        let mut whole = vec![0u8; SIZE];
        map.read(0, &mut whole).unwrap();
        prop_assert!(whole == *model, "the segment differs from the model");
    });
}

#[test]
fn zero_length_copies_accept_null_pointers_at_any_valid_offset() {
    let _g = serial();
    let fx = Fixture::new(SIZE);
    let map = fx.attach(false);
    proptest!(config(), |(offset in edgy())| {
        // SAFETY: zero bytes are copied; a null pointer (what a detached
        // ArrayBuffer's view reports) must be accepted for that.
        let r = unsafe { map.read_raw(offset, std::ptr::null_mut(), 0) };
        prop_assert_eq!(r.is_ok(), offset <= SIZE);
        // SAFETY: as above.
        let w = unsafe { map.write_raw(offset, std::ptr::null(), 0) };
        prop_assert_eq!(w.is_ok(), offset <= SIZE);
    });
}

#[test]
fn a_read_only_attachment_refuses_every_write() {
    let _g = serial();
    let fx = Fixture::new(SIZE);
    let ro = fx.attach(true);
    proptest!(config(), |(offset in edgy(), data in prop::collection::vec(any::<u8>(), 0..32))| {
        prop_assert_eq!(ro.write(offset, &data), Err(Error::ReadOnly { id: fx.segment.id() }));
    });
    let mut b = [0u8; 1];
    ro.read(0, &mut b).unwrap();
    assert_eq!(b, [0]);
}

#[test]
fn bad_modes_and_sizes_are_refused_before_shmget() {
    let _g = serial();
    let before = ours();
    proptest!(config(), |(
        mode in prop_oneof![(MODE_MASK + 1)..=u32::MAX, Just(0o1000), Just(u32::MAX)],
        good_mode in 0..=MODE_MASK,
        exclusive: bool,
    )| {
        let bad = CreateOptions { mode, exclusive, ..CreateOptions::default() };
        let e = Segment::create(IPC_PRIVATE, 64, &bad).unwrap_err();
        prop_assert!(matches!(e, Error::InvalidArgument(_)), "{:?}", e);
        prop_assert!(e.to_string().contains("mode"), "{}", e);
        let zero = CreateOptions { mode: good_mode, exclusive, ..CreateOptions::default() };
        let e = Segment::create(IPC_PRIVATE, 0, &zero).unwrap_err();
        prop_assert!(matches!(e, Error::InvalidArgument(_)), "{:?}", e);
        prop_assert!(e.to_string().contains("size"), "{}", e);
    });
    assert_eq!(ours(), before, "a refused create left a segment behind");
}

#[test]
fn sizes_beyond_the_kernel_limits_fail_in_shmget_and_leave_nothing() {
    let _g = serial();
    let before = ours();
    // Above 2^63 - 1 no segment can exist (MAX_LFS_FILESIZE), whatever
    // kernel.shmmax and the overcommit policy say.
    proptest!(config(), |(size in (1usize << 63)..=usize::MAX)| {
        let e = Segment::create(IPC_PRIVATE, size, &CreateOptions::default()).unwrap_err();
        prop_assert_eq!(e.syscall(), Some("shmget"));
        let errno = e.errno().unwrap();
        prop_assert!(matches!(errno, Errno::EINVAL | Errno::ENOMEM | Errno::ENOSPC), "{:?}", e);
        prop_assert!(e.to_string().contains(&format!("size {size}")), "{}", e);
    });
    assert_eq!(ours(), before, "a failed create left a segment behind");
}

#[test]
fn set_refuses_bad_modes_and_changes_nothing() {
    let _g = serial();
    let fx = Fixture::new(64);
    proptest!(config(), |(mode in (MODE_MASK + 1)..=u32::MAX, uid: Option<u32>)| {
        let e = fx.segment.set(&SetOptions { mode: Some(mode), uid, gid: None }).unwrap_err();
        prop_assert!(matches!(e, Error::InvalidArgument(_)), "{:?}", e);
        let st = fx.segment.stat().unwrap();
        prop_assert_eq!(st.perm.mode, 0o600);
        prop_assert_eq!(st.perm.uid, st.perm.cuid);
    });
}

#[test]
fn ids_that_name_no_segment_are_errors_with_errno_never_panics() {
    let _g = serial();
    proptest!(config(), |(id in i32::MIN..0)| {
        let seg = Segment::from_id(id);
        for e in [seg.stat().unwrap_err(), seg.attach(false).unwrap_err(), seg.remove().unwrap_err()] {
            prop_assert_eq!(e.errno(), Some(Errno::EINVAL), "{:?}", e);
            prop_assert!(e.to_string().contains(&id.to_string()), "{}", e);
            prop_assert!(e.to_string().contains("no segment has this id"), "{}", e);
        }
    });
    assert_eq!(sysv_shm::live_attachments(), 0);
}

#[test]
fn open_refuses_ipc_private_and_ftok_refuses_nul_and_project_zero() {
    let _g = serial();
    assert!(matches!(
        Segment::open(IPC_PRIVATE),
        Err(Error::InvalidArgument(_))
    ));
    proptest!(config(), |(
        before in "[a-z/]{0,20}",
        after in "[a-z/]{0,20}",
        proj in 1u8..=255,
    )| {
        let path = format!("{before}\0{after}");
        let e = ftok(std::path::Path::new(&path), proj).unwrap_err();
        prop_assert!(matches!(e, Error::InvalidArgument(_)), "{:?}", e);
        let e = ftok(std::path::Path::new("/"), 0).unwrap_err();
        prop_assert!(matches!(e, Error::InvalidArgument(_)), "{:?}", e);
    });
}

#[test]
fn remove_if_attached_marks_exactly_when_enough_parties_are_attached() {
    let _g = serial();
    let before = ours();
    proptest!(config(), |(attached in 1usize..=4, parties in 1u64..=6)| {
        let fx = Fixture::new(64);
        let maps: Vec<Attachment> = (0..attached).map(|_| fx.attach(false)).collect();
        let marked = maps[0].remove_if_attached(parties).unwrap();
        prop_assert_eq!(marked, attached as u64 >= parties);
        prop_assert_eq!(fx.segment.stat().unwrap().removed, marked);
        // Every other party asking again agrees, and it stays marked.
        for m in &maps {
            prop_assert_eq!(m.remove_if_attached(parties).unwrap(), marked);
        }
        prop_assert!(matches!(maps[0].remove_if_attached(0), Err(Error::InvalidArgument(_))));
    });
    assert_eq!(ours(), before);
}

#[test]
fn error_display_never_panics_on_extreme_values() {
    proptest!(config(), |(offset: usize, len: usize, size: usize, id: i32, live: usize, limit: usize)| {
        for e in [
            Error::OutOfBounds { offset, len, size },
            Error::ReadOnly { id },
            Error::TooManyAttachments { live, limit },
        ] {
            prop_assert!(!e.to_string().is_empty());
        }
    });
}
