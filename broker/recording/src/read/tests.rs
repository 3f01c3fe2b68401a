//! Decoding recordings, whole and damaged: cut at every byte, garbage between chunks, lines
//! this version cannot read.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::{first_header, parse};
use crate::event::{Event, FORMAT_VERSION, Header, SessionEvent, write_line};

fn header() -> Header {
    Header {
        v: FORMAT_VERSION,
        session: "s-1".into(),
        started_at_ms: 1_700_000_000_000,
        subject: "alice".into(),
        auth: "oidc".into(),
        ci: BTreeMap::new(),
        resource: "db".into(),
        kind: "postgres".into(),
        role: "read".into(),
        grant: "g".into(),
        client: "127.0.0.1:5".into(),
    }
}

fn note(t: u64) -> Event {
    Event {
        t,
        n: Some(t + 1),
        body: SessionEvent::Note {
            message: format!("event number {t} with some text to make the line longer"),
        }
        .into(),
    }
}

/// One gzip member holding `lines` (already newline-terminated).
fn member(lines: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(lines).expect("compresses");
    encoder.finish().expect("compresses")
}

fn lines(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        write_line(&mut out, event).expect("serializes");
    }
    out
}

/// A recording of three chunks: header alone, events 0..5, events 5..10. Returns the bytes,
/// the events, and where each chunk ends.
fn three_chunks() -> (Vec<u8>, Vec<Event>, Vec<usize>) {
    let events: Vec<Event> = (0..10).map(note).collect();
    let mut header_line = Vec::new();
    write_line(&mut header_line, &header()).expect("serializes");
    let chunks = [
        member(&header_line),
        member(&lines(&events[..5])),
        member(&lines(&events[5..])),
    ];
    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    for chunk in chunks {
        bytes.extend_from_slice(&chunk);
        ends.push(bytes.len());
    }
    (bytes, events, ends)
}

#[test]
fn whole_recording() {
    let (bytes, events, _) = three_chunks();
    let recording = parse(&bytes);
    assert_eq!(recording.header, Some(header()));
    assert_eq!(recording.events, events);
    assert_eq!(recording.truncated, None);
    assert!(recording.damage.is_empty(), "{:?}", recording.damage);
}

#[test]
fn concatenated_members_are_one_gzip_file() {
    let (bytes, _, _) = three_chunks();
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .expect("zcat-compatible");
    assert_eq!(text.lines().count(), 11);
}

#[test]
fn half_of_the_third_chunk() {
    let (bytes, events, ends) = three_chunks();
    let cut = ends[1] + (ends[2] - ends[1]) / 2;
    let recording = parse(&bytes[..cut]);
    assert_eq!(recording.header, Some(header()));
    // Everything of the complete chunks, and possibly complete lines decoded before the cut.
    assert!(recording.events.len() >= 5, "{}", recording.events.len());
    assert_eq!(recording.events[..], events[..recording.events.len()]);
    let why = recording.truncated.expect("reported");
    assert!(why.contains("incomplete chunk"), "{why}");
    assert!(why.contains("2 complete chunks"), "{why}");
}

#[test]
fn cut_in_the_first_chunk() {
    let (bytes, _, ends) = three_chunks();
    let recording = parse(&bytes[..ends[0] / 2]);
    assert_eq!(recording.header, None);
    assert!(recording.events.is_empty());
    let why = recording.truncated.expect("reported");
    assert!(why.contains("0 complete chunks"), "{why}");
}

#[test]
fn cut_at_every_byte_gives_a_prefix() {
    let (bytes, events, ends) = three_chunks();
    for len in 0..=bytes.len() {
        let recording = parse(&bytes[..len]);
        let n = recording.events.len();
        assert_eq!(recording.events[..], events[..n], "cut at {len}");
        let at_boundary = len == 0 || ends.contains(&len);
        assert_eq!(recording.truncated.is_none(), at_boundary, "cut at {len}");
        assert!(
            recording.damage.is_empty(),
            "cut at {len}: {:?}",
            recording.damage
        );
        if len >= ends[0] {
            assert_eq!(recording.header, Some(header()), "cut at {len}");
        }
        if len >= ends[1] {
            assert!(n >= 5, "cut at {len}");
        }
    }
}

#[test]
fn line_cut_in_the_middle_is_dropped_and_reported() {
    // A member whose data ends mid-line cannot come from the writer, but a torn member decodes
    // to exactly that; build the torn member by cutting a stored (uncompressed) one.
    let events: Vec<Event> = (0..3).map(note).collect();
    let text = lines(&events);
    let mut encoder = GzEncoder::new(Vec::new(), Compression::none());
    encoder.write_all(&text).expect("compresses");
    let stored = encoder.finish().expect("compresses");
    // Header (10) + stored block header (5) + two lines and a half.
    let two_lines = text
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .map(|(i, _)| i + 1);
    let cut = 10 + 5 + two_lines.expect("two lines") + 7;
    let recording = parse(&stored[..cut]);
    assert_eq!(recording.events, events[..2]);
    let why = recording.truncated.expect("reported");
    assert!(why.contains("incomplete last line was dropped"), "{why}");
}

#[test]
fn garbage_between_chunks_is_skipped_and_reported() {
    let (bytes, events, ends) = three_chunks();
    let mut damaged = bytes[..ends[1]].to_vec();
    damaged.extend_from_slice(b"\x1f\x8b\x08 this is not a chunk \x00\x00");
    damaged.extend_from_slice(&bytes[ends[1]..]);
    let recording = parse(&damaged);
    assert_eq!(recording.events, events);
    assert_eq!(recording.truncated, None);
    assert_eq!(recording.damage.len(), 1, "{:?}", recording.damage);
    assert!(
        recording.damage[0].contains("reading resumed"),
        "{:?}",
        recording.damage
    );
}

#[test]
fn torn_chunk_followed_by_good_ones() {
    let (bytes, events, ends) = three_chunks();
    let half = ends[0] + (ends[1] - ends[0]) / 2;
    let mut damaged = bytes[..half].to_vec();
    damaged.extend_from_slice(&bytes[ends[1]..]);
    let recording = parse(&damaged);
    assert_eq!(recording.header, Some(header()));
    // Whatever came out of the torn chunk is a prefix of its events; the last chunk is whole.
    let tail = &recording.events[recording.events.len() - 5..];
    assert_eq!(tail, &events[5..]);
    assert!(recording.events.len() <= 10);
    assert_eq!(recording.truncated, None);
    assert!(!recording.damage.is_empty());
}

#[test]
fn trailing_zeros_after_a_crash() {
    let (bytes, events, _) = three_chunks();
    let mut padded = bytes.clone();
    padded.extend_from_slice(&[0; 4096]);
    let recording = parse(&padded);
    assert_eq!(recording.events, events);
    assert!(recording.truncated.is_some());
}

#[test]
fn unreadable_lines_are_skipped_not_fatal() {
    let mut text = Vec::new();
    write_line(&mut text, &header()).expect("serializes");
    write_line(&mut text, &note(1)).expect("serializes");
    text.extend_from_slice(b"{\"t\":2,\"type\":\"from_the_future\",\"x\":1}\n");
    text.extend_from_slice(b"not json at all\n");
    write_line(&mut text, &note(3)).expect("serializes");
    let recording = parse(&member(&text));
    assert_eq!(recording.header, Some(header()));
    assert_eq!(recording.events, vec![note(1), note(3)]);
    assert_eq!(recording.truncated, None);
    assert_eq!(recording.damage.len(), 2, "{:?}", recording.damage);
    assert!(
        recording.damage[0].starts_with("line 3 skipped"),
        "{:?}",
        recording.damage
    );
}

#[test]
fn damage_list_is_capped() {
    let text = "x\n".repeat(100);
    let recording = parse(&member(text.as_bytes()));
    assert_eq!(recording.damage.len(), super::MAX_DAMAGE_ENTRIES + 1);
    assert!(
        recording
            .damage
            .last()
            .is_some_and(|last| last.contains("68 more"))
    );
}

#[test]
fn recording_without_header() {
    let recording = parse(&member(&lines(&[note(1)])));
    assert_eq!(recording.header, None);
    assert_eq!(recording.events, vec![note(1)]);
}

#[test]
fn empty_and_garbage_input() {
    assert_eq!(parse(b""), super::Recording::default());
    let recording = parse(b"hello");
    assert!(recording.events.is_empty());
    assert!(recording.truncated.is_some());
}

#[test]
fn first_header_reads_only_the_start() {
    let (bytes, _, ends) = three_chunks();
    assert_eq!(first_header(&bytes[..]), Some(header()));
    assert_eq!(first_header(&bytes[..ends[0]]), Some(header()));
    assert_eq!(first_header(&bytes[ends[0]..]), None);
    assert_eq!(first_header(&b"junk"[..]), None);
}
