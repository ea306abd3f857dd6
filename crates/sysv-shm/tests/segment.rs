//! Integration tests of the core crate against the real kernel.

use std::process::Command;

use sysv_shm::{
    ftok, limits, list_segments, CreateOptions, Errno, Error, Segment, SetOptions, IPC_PRIVATE,
};

/// A key unique to this test process and call.
fn unique_key(n: u8) -> i32 {
    (0x52 << 24) | ((std::process::id() as i32 & 0xffff) << 8) | i32::from(n)
}

/// Removes the segment when dropped, so a failed assertion leaves nothing.
struct Cleanup(Segment);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self.0.remove();
    }
}

fn private(size: usize) -> (Segment, Cleanup) {
    let (seg, created) = Segment::create(IPC_PRIVATE, size, &CreateOptions::default()).unwrap();
    assert!(created);
    (seg, Cleanup(seg))
}

#[test]
fn create_attach_write_read_and_stat() {
    let (seg, _c) = private(100);
    let map = seg.attach(false).unwrap();
    assert_eq!(map.len(), 100);
    assert_eq!(map.id(), seg.id());
    map.write(10, b"hello").unwrap();
    let mut out = [0u8; 5];
    map.read(10, &mut out).unwrap();
    assert_eq!(&out, b"hello");
    let st = seg.stat().unwrap();
    assert_eq!(st.size, 100);
    assert_eq!(st.perm.mode, 0o600);
    assert_eq!(st.attach_count, 1);
    assert_eq!(st.creator_pid, std::process::id() as i32);
    assert!(!st.removed);
    drop(map);
    assert_eq!(seg.stat().unwrap().attach_count, 0);
}

#[test]
fn attach_count_follows_attachments_and_explicit_detach() {
    let (seg, _c) = private(10);
    let a = seg.attach(false).unwrap();
    let b = seg.attach(true).unwrap();
    assert_eq!(seg.stat().unwrap().attach_count, 2);
    b.detach().unwrap();
    assert_eq!(seg.stat().unwrap().attach_count, 1);
    drop(a);
    assert_eq!(seg.stat().unwrap().attach_count, 0);
}

#[test]
fn out_of_bounds_and_read_only_are_refused_without_touching_memory() {
    let (seg, _c) = private(16);
    let map = seg.attach(false).unwrap();
    assert!(matches!(
        map.write(15, b"ab"),
        Err(Error::OutOfBounds {
            offset: 15,
            len: 2,
            size: 16
        })
    ));
    assert!(matches!(
        map.read(usize::MAX, &mut [0u8; 2]),
        Err(Error::OutOfBounds { .. })
    ));
    map.write(16, b"").unwrap();
    let ro = seg.attach(true).unwrap();
    assert!(ro.read_only());
    assert_eq!(ro.write(0, b"x"), Err(Error::ReadOnly { id: seg.id() }));
    map.write(0, b"x").unwrap();
    let mut one = [0u8; 1];
    ro.read(0, &mut one).unwrap();
    assert_eq!(&one, b"x");
}

#[test]
fn exclusive_create_fails_with_eexist_and_open_or_create_opens() {
    let key = unique_key(1);
    let (seg, created) = Segment::create(key, 4096, &CreateOptions::default()).unwrap();
    let _c = Cleanup(seg);
    assert!(created);
    let err = Segment::create(key, 4096, &CreateOptions::default()).unwrap_err();
    assert_eq!(err.errno(), Some(Errno::EEXIST));
    assert_eq!(err.syscall(), Some("shmget"));
    assert!(err.to_string().contains("size 4096"), "{err}");
    let opts = CreateOptions {
        exclusive: false,
        ..CreateOptions::default()
    };
    let (again, created) = Segment::create(key, 10, &opts).unwrap();
    assert!(!created);
    assert_eq!(again, seg);
    assert_eq!(Segment::open(key).unwrap(), seg);
}

#[test]
fn open_missing_key_is_enoent_and_ipc_private_is_refused() {
    let err = Segment::open(unique_key(2)).unwrap_err();
    assert_eq!(err.errno(), Some(Errno::ENOENT));
    assert!(matches!(
        Segment::open(IPC_PRIVATE),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn remove_while_attached_marks_and_key_becomes_private() {
    let key = unique_key(3);
    let (seg, _) = Segment::create(key, 64, &CreateOptions::default()).unwrap();
    let map = seg.attach(false).unwrap();
    seg.remove().unwrap();
    let st = seg.stat().unwrap();
    assert!(st.removed);
    assert_eq!(st.perm.key, IPC_PRIVATE);
    assert_eq!(Segment::open(key).unwrap_err().errno(), Some(Errno::ENOENT));
    map.write(0, b"still").unwrap();
    drop(map);
    // Freed at the last detach.
    let err = seg.stat().unwrap_err();
    assert!(matches!(err.errno(), Some(Errno::EINVAL | Errno::EIDRM)));
}

#[test]
fn set_changes_mode_and_bad_mode_is_refused() {
    let (seg, _c) = private(10);
    seg.set(&SetOptions {
        mode: Some(0o640),
        ..SetOptions::default()
    })
    .unwrap();
    assert_eq!(seg.stat().unwrap().perm.mode, 0o640);
    assert!(matches!(
        seg.set(&SetOptions {
            mode: Some(0o1777),
            ..SetOptions::default()
        }),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn list_segments_includes_ours_and_limits_are_sane() {
    let (seg, _c) = private(4097);
    let found = list_segments()
        .unwrap()
        .into_iter()
        .find(|s| s.id == seg.id())
        .expect("listed");
    assert_eq!(found, seg.stat().unwrap());
    let l = limits().unwrap();
    assert_eq!(l.min_segment_size, 1);
    assert!(l.page_size >= 4096);
    assert!(l.used_segments >= 1);
    assert!(l.used_pages >= 2);
}

#[test]
fn ftok_matches_the_c_formula_and_reports_missing_paths() {
    let key = ftok(std::path::Path::new("/"), 7).unwrap();
    assert_eq!((key as u32) >> 24, 7);
    assert_eq!(key, ftok(std::path::Path::new("/"), 7).unwrap());
    let err = ftok(std::path::Path::new("/no/such/path"), 1).unwrap_err();
    assert_eq!(err.errno(), Some(Errno::ENOENT));
    assert_eq!(err.syscall(), Some("ftok"));
    assert!(matches!(
        ftok(std::path::Path::new("/"), 0),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn another_process_sees_the_same_segment() {
    let (seg, _c) = private(64);
    let map = seg.attach(false).unwrap();
    map.write(0, b"from rust").unwrap();
    // ipcs reads the kernel's table: it lists our id with size 64 and one attach.
    let out = Command::new("ipcs")
        .args(["-m", "-i"])
        .arg(seg.id().to_string())
        .output();
    if let Ok(out) = out {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("bytes=64"), "{text}");
        assert!(text.contains("nattch=1"), "{text}");
    } else {
        panic!("ipcs is needed for this test (util-linux)");
    }
}
