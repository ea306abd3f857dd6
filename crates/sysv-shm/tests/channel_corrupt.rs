//! A channel whose words were written by a buggy or hostile peer: every
//! operation answers `Error::ChannelCorrupt` (or a valid result), never a
//! signal, an out-of-range access, stale bytes or a zero-length message in
//! place of the error. The peer is simulated by writes through the
//! attachment at the documented offsets, as a C peer would make them.
//!
//! Cases of the property: `PROPTEST_CASES` (256 unless set; `npm run
//! test:stress` sets 10000).

use proptest::prelude::*;
use sysv_shm::channel::{Channel, Peek, Recv, Reserve, HEADER_SIZE};
use sysv_shm::{CreateOptions, Error, IPC_PRIVATE};

const OFF_CAPACITY: usize = 8;
const OFF_HEAD: usize = 128;
const OFF_TAIL: usize = 256;

/// A channel whose ring (`512 + cap` bytes: 3584 ends the segment on a page
/// boundary) is filled with the byte pattern `ring[i] = i * 7`, removed at once
/// (it lives while attached).
fn channel(cap: usize) -> Channel {
    let (c, created) = Channel::create(IPC_PRIVATE, cap, &CreateOptions::default()).unwrap();
    assert!(created);
    c.attachment().segment().remove().unwrap();
    let pattern: Vec<u8> = (0..cap).map(|i| (i * 7) as u8).collect();
    c.attachment().write(HEADER_SIZE, &pattern).unwrap();
    c
}

/// An anonymous `PROT_NONE` page of this test, unmapped on drop.
struct Guard(*mut libc::c_void);

fn page() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: a mapping of one page that this test made and nothing else uses.
        unsafe { libc::munmap(self.0, page()) };
    }
}

/// [`channel`], attached right below a `PROT_NONE` page: an access past the
/// (page-rounded) end of the segment faults. shmat places an attachment right
/// below the lowest mapping or at the top of a gap, so the page after it is
/// usually mapped and such an access would go unnoticed. Here the kernel
/// places a guard page first and the channel right below it; tries where
/// something else (another test's thread) took the room are kept until the
/// end, so that the next lands elsewhere.
fn guarded_channel(cap: usize) -> (Channel, Guard) {
    let mut tried = Vec::new();
    for _ in 0..64 {
        // SAFETY: a fresh anonymous mapping at an address the kernel picks.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page(),
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap of a guard page");
        let guard = Guard(p);
        let c = channel(cap);
        let end =
            (c.attachment().as_ptr() as usize + c.attachment().len()).next_multiple_of(page());
        if end == p as usize {
            return (c, guard);
        }
        tried.push((c, guard));
    }
    panic!("no attachment of a channel right below a guard page in 64 tries");
}

fn poke64(c: &Channel, off: usize, v: u64) {
    c.attachment().write(off, &v.to_ne_bytes()).unwrap();
}

/// Writes a record length word at ring offset `at`.
fn poke_len(c: &Channel, at: usize, len: u32) {
    c.attachment()
        .write(HEADER_SIZE + at, &len.to_ne_bytes())
        .unwrap();
}

/// A second handle on the same segment: opened after the peer's writes, it
/// has no cached view of them.
fn reopen(c: &Channel) -> Channel {
    Channel::from_segment(c.attachment().segment()).unwrap()
}

#[track_caller]
fn corrupt<T: std::fmt::Debug>(r: Result<T, Error>, field: &str) -> String {
    match r {
        Err(e @ Error::ChannelCorrupt { .. }) => {
            let Error::ChannelCorrupt { field: f, .. } = &e else {
                unreachable!()
            };
            assert_eq!(*f, field, "{e}");
            e.to_string()
        }
        other => panic!("expected ChannelCorrupt ({field}), got {other:?}"),
    }
}

#[test]
fn head_and_tail_at_c_minus_4_is_an_error_not_a_write_past_the_ring() {
    // The reproduction of issue 11: a ring of 3584 bytes ends its segment
    // on a page boundary; head = tail = 3580 made the sender write the record
    // header at ring offset 3580, 4 bytes past the end: a SIGSEGV with the
    // guard page after it (and a write into another mapping without).
    let (c, _guard) = guarded_channel(3584);
    poke64(&c, OFF_HEAD, 3580);
    poke64(&c, OFF_TAIL, 3580);
    let msg = corrupt(c.try_send(b"hello"), "tail");
    assert!(msg.contains("tail 3580 is not a multiple of 8"), "{msg}");
    corrupt(c.try_reserve(5), "tail");
    corrupt(c.try_recv(&mut [0; 64]), "tail");
    corrupt(c.try_peek(), "tail");
    poke64(&c, OFF_TAIL, 3576);
    let msg = corrupt(c.try_send(b"hello"), "head");
    assert!(msg.contains("head 3580 is not a multiple of 8"), "{msg}");
    // Nothing was written: head and the ring are as the peer left them.
    let mut head = [0u8; 8];
    c.attachment().read(OFF_HEAD, &mut head).unwrap();
    assert_eq!(u64::from_ne_bytes(head), 3580);
}

#[test]
fn a_record_longer_than_what_was_published_is_an_error_not_stale_bytes() {
    let c = channel(7680);
    assert!(c.try_send(b"12345678").unwrap());
    poke_len(&c, 0, 4000);
    let mut out = vec![0u8; 8192];
    let msg = corrupt(c.try_recv(&mut out), "record length");
    assert!(
        msg.contains("says 4000 bytes (4008 with its header and padding), but head 16 publishes only 16 bytes"),
        "{msg}"
    );
    corrupt(reopen(&c).try_recv(&mut out), "record length");
    corrupt(c.try_peek(), "record length");
    corrupt(c.next_len(), "record length");
    corrupt(c.release(), "record length");
    let mut lens = [0u32; 4];
    corrupt(
        // SAFETY: `out` and `lens` are writable for their lengths.
        unsafe { c.try_recv_many_raw(out.as_mut_ptr(), out.len(), lens.as_mut_ptr(), 4) },
        "record length",
    );
    // Repaired, the message comes through as sent.
    poke_len(&c, 0, 8);
    assert_eq!(c.try_recv(&mut out).unwrap(), Recv::Message(8));
    assert_eq!(&out[..8], b"12345678");
}

#[test]
fn tail_ahead_of_head_is_an_error_not_an_empty_message() {
    let c = channel(64);
    assert!(c.try_send(b"ab").unwrap());
    poke64(&c, OFF_HEAD, 16);
    poke64(&c, OFF_TAIL, 24);
    for ch in [&c, &reopen(&c)] {
        let msg = corrupt(ch.try_recv(&mut [0; 64]), "tail");
        assert!(msg.contains("tail 24 is ahead of head 16"), "{msg}");
        corrupt(ch.pending_bytes(), "tail");
    }
    // A sender loads tail when its cached view shows no room: a new handle.
    corrupt(reopen(&c).try_send(b"x"), "tail");
}

#[test]
fn a_misaligned_tail_is_an_error_not_an_empty_message() {
    let c = channel(64);
    assert!(c.try_send(b"ab").unwrap());
    poke64(&c, OFF_TAIL, 4);
    for ch in [&c, &reopen(&c)] {
        corrupt(ch.try_recv(&mut [0; 64]), "tail");
        corrupt(ch.try_peek(), "tail");
        corrupt(ch.release(), "tail");
    }
}

#[test]
fn head_more_than_a_ring_ahead_of_tail_is_an_error_on_both_sides() {
    let c = channel(64);
    poke64(&c, OFF_HEAD, 64 + 16);
    for ch in [&c, &reopen(&c)] {
        let msg = corrupt(ch.try_recv(&mut [0; 64]), "head");
        assert!(
            msg.contains("head 80 is more than the capacity 64 ahead of tail 0"),
            "{msg}"
        );
        corrupt(ch.try_send(b"x"), "head");
        corrupt(ch.pending_bytes(), "head");
    }
    // 2^63 ahead, and head = u64::MAX - 7 behind a tail of 0 (wrapping: 8
    // bytes published) is valid.
    poke64(&c, OFF_HEAD, 1 << 63);
    corrupt(reopen(&c).try_recv(&mut [0; 64]), "head");
    poke64(&c, OFF_TAIL, u64::MAX - 7);
    poke64(&c, OFF_HEAD, 0);
    poke_len(&c, 56, 0);
    assert_eq!(reopen(&c).try_recv(&mut [0; 64]).unwrap(), Recv::Message(0));
}

#[test]
fn head_moved_between_reserve_and_commit_is_corrupt_at_commit() {
    let c = channel(64);
    assert!(
        matches!(c.commit(8), Err(Error::InvalidArgument(m)) if m.contains("without a reservation"))
    );
    // head moved between reserve and commit.
    assert_eq!(c.try_reserve(8).unwrap(), Reserve::At(8));
    poke64(&c, OFF_HEAD, 16);
    poke64(&c, OFF_TAIL, 16);
    let msg = corrupt(c.commit(8), "head");
    assert!(
        msg.contains("head moved from 0 to 16 between reserve and commit"),
        "{msg}"
    );
    // A reservation on a new handle, then head moved by a whole ring.
    let tx = reopen(&c);
    assert_eq!(tx.try_reserve(40).unwrap(), Reserve::At(24));
    poke64(&c, OFF_HEAD, 16 + 64);
    poke64(&c, OFF_TAIL, 16 + 64);
    let msg = corrupt(tx.commit(40), "head");
    assert!(msg.contains("head moved from 16 to 80"), "{msg}");
    // One commit per reservation.
    assert_eq!(tx.try_reserve(8).unwrap(), Reserve::At(24));
    tx.commit(8).unwrap();
    assert!(matches!(tx.commit(8), Err(Error::InvalidArgument(_))));
}

#[test]
fn release_consumes_the_record_peek_showed_whatever_its_header_says_since() {
    // recvWith shows the payload that peek found, then releases it: a peer
    // rewriting the length word in between must not make release consume
    // another length (or fail) after the receiver was shown the message.
    let c = channel(3584);
    assert!(c.try_send(&[5; 20]).unwrap());
    assert!(c.try_send(&[6; 100]).unwrap());
    for len in [4000, 0, 200] {
        assert_eq!(c.try_peek().unwrap(), Peek::At(8, 20));
        poke_len(&c, 0, len);
        assert!(c.release().unwrap(), "length word {len}");
        assert_eq!(c.pending_bytes().unwrap(), 112, "length word {len}");
        // Back as it was, for the next round.
        poke64(&c, OFF_TAIL, 0);
        poke_len(&c, 0, 20);
        assert_eq!(c.pending_bytes().unwrap(), 144);
    }
    // Without a peek (or with tail moved since), release reads the record.
    let mut out = [0u8; 128];
    assert_eq!(c.try_peek().unwrap(), Peek::At(8, 20));
    assert_eq!(c.try_recv(&mut out).unwrap(), Recv::Message(20));
    assert!(c.release().unwrap());
    assert_eq!(c.pending_bytes().unwrap(), 0);
    assert!(!c.release().unwrap());
}

#[test]
fn the_capacity_word_is_read_once_at_open() {
    let c = channel(64);
    poke64(&c, OFF_CAPACITY, 8);
    assert_eq!(c.capacity(), 64);
    for i in 0..20u8 {
        assert!(c.try_send(&[i; 40]).unwrap());
        let mut out = [0u8; 56];
        assert_eq!(c.try_recv(&mut out).unwrap(), Recv::Message(40));
        assert_eq!(out[..40], [i; 40]);
    }
    // A handle opened after the rewrite refuses the segment.
    poke64(&c, OFF_CAPACITY, 1 << 40);
    assert!(matches!(
        Channel::from_segment(c.attachment().segment()),
        Err(Error::NotAChannel { .. })
    ));
}

/// Values a peer would try for a 64-bit index, around a capacity `c`.
fn index(c: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(c - 8),
        Just(c),
        Just(c + 8),
        Just(c - 4),
        Just(1 << 63),
        Just(u64::MAX - 7),
        Just(u64::MAX),
        0..4 * c,
        (0..4 * c).prop_map(|v| v & !7),
        any::<u64>(),
    ]
}

fn length(c: u64) -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0),
        Just(u32::MAX),
        Just(c as u32 - 8),
        Just(c as u32 - 7),
        Just(c as u32),
        0..c as u32,
        any::<u32>(),
    ]
}

fn state() -> impl Strategy<Value = (u64, u64, u64, u32, usize)> {
    prop_oneof![Just(16u64), Just(64), Just(3584), Just(7680)]
        .prop_flat_map(|c| (Just(c), index(c), index(c), length(c), 0..(c as usize - 8)))
}

fn ok_or_corrupt<T: std::fmt::Debug>(r: Result<T, Error>) -> Result<Option<T>, TestCaseError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::ChannelCorrupt { .. }) => Ok(None),
        Err(e) => Err(TestCaseError::fail(format!("{e:?}"))),
    }
}

#[test]
fn any_head_tail_and_length_gives_a_valid_result_or_channel_corrupt() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |((c, head, tail, len, send) in state())| {
        let (ch, _guard) = guarded_channel(c as usize);
        poke64(&ch, OFF_HEAD, head);
        poke64(&ch, OFF_TAIL, tail);
        poke_len(&ch, (tail % c) as usize & !7, len);
        let ring = {
            let mut r = vec![0u8; c as usize];
            ch.attachment().read(HEADER_SIZE, &mut r).unwrap();
            r
        };
        let d = head.wrapping_sub(tail);
        let indices_ok = head % 8 == 0 && tail % 8 == 0 && d <= c;
        let size = 8 + ((len as u64 + 7) & !7);

        // The receiver's first look, on a handle with no cached view.
        let rx = reopen(&ch);
        let mut out = vec![0u8; c as usize];
        let r = rx.try_recv(&mut out);
        match (indices_ok, d, r) {
            (false, _, Err(Error::ChannelCorrupt { .. })) => {}
            (true, 0, Ok(Recv::Empty)) => {}
            (true, _, Err(Error::ChannelCorrupt { field: "record length", .. })) if size > d => {}
            (true, _, Ok(Recv::Message(n))) if size <= d => {
                prop_assert_eq!(n, len as usize);
                let start = ((tail % c) as usize + 8) % c as usize;
                let expect: Vec<u8> = (0..n).map(|i| ring[(start + i) % c as usize]).collect();
                prop_assert_eq!(&out[..n], &expect[..]);
            }
            (_, _, r) => prop_assert!(false, "indices_ok {} d {} size {}: {:?}", indices_ok, d, size, r),
        }

        // The sender's first look (after the receive, which may have moved tail).
        let d = {
            let mut t = [0u8; 8];
            ch.attachment().read(OFF_TAIL, &mut t).unwrap();
            head.wrapping_sub(u64::from_ne_bytes(t))
        };
        let tx = reopen(&ch);
        let need = 8 + ((send as u64 + 7) & !7);
        let r = tx.try_reserve(send);
        match (indices_ok, r) {
            (false, Err(Error::ChannelCorrupt { .. })) => {}
            (true, Ok(Reserve::Full)) => prop_assert!(d > c - need),
            (true, Ok(Reserve::At(_) | Reserve::Split)) => prop_assert!(d <= c - need),
            (_, r) => prop_assert!(false, "indices_ok {}: {:?}", indices_ok, r),
        }

        // Anything else, in any order, on the handles that have seen it.
        for h in [&ch, &rx, &tx] {
            ok_or_corrupt(h.try_peek())?;
            ok_or_corrupt(h.next_len())?;
            ok_or_corrupt(h.pending_bytes())?;
            ok_or_corrupt(h.try_send(&vec![1u8; send]))?;
            if let Some(Peek::At(start, n)) = ok_or_corrupt(h.try_peek())? {
                prop_assert!(start + n <= c as usize);
            }
            ok_or_corrupt(h.release())?;
            let mut lens = [0u32; 8];
            // SAFETY: `out` and `lens` are writable for their lengths.
            if let Some(Recv::Message(k)) = ok_or_corrupt(unsafe {
                h.try_recv_many_raw(out.as_mut_ptr(), out.len(), lens.as_mut_ptr(), 8)
            })? {
                let total: usize = lens[..k].iter().map(|&l| l as usize).sum();
                prop_assert!(total <= out.len());
            }
            ok_or_corrupt(h.try_recv(&mut out))?;
        }
    });
}
