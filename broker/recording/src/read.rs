//! Reading recordings back, including ones cut short by a crash.
//!
//! A recording is a sequence of gzip members (one per chunk the recorder appended, see
//! [`crate::sink`]). [`parse`] decodes them one at a time:
//!
//! - every complete member contributes all its lines;
//! - a member cut short (the broker was killed mid-append) contributes the complete lines
//!   decoded before the cut; a line cut in the middle is dropped. Reading stops there and
//!   [`Recording::truncated`] says why;
//! - bytes that are not a valid member followed by valid members (an append that failed and
//!   could not be cut back, a damaged block) are skipped up to the next member that decodes
//!   completely, and listed in [`Recording::damage`];
//! - lines that are not JSON, or are events this version does not know, are skipped and listed
//!   in [`Recording::damage`] too.
//!
//! A reader therefore always gets everything that can be trusted, and is told what could not.

use std::io::{self, BufRead, Read};

use flate2::bufread::GzDecoder;

use crate::event::{Body, Event, Header};
use crate::sink::Sink;

/// The gzip magic number and the deflate method byte that start every member.
const MEMBER_START: [u8; 3] = [0x1f, 0x8b, 0x08];
/// At most this many entries in [`Recording::damage`]; the last one counts the rest.
const MAX_DAMAGE_ENTRIES: usize = 32;
/// [`first_header`] reads at most this much of a recording.
const MAX_HEADER_BYTES: u64 = 1 << 20;

/// A recording as read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recording {
    /// The first line, if it is a header (a recording whose beginning was lost has none).
    pub header: Option<Header>,
    /// Every event that could be read, in recorded order.
    pub events: Vec<Event>,
    /// Why reading stopped before the end of the bytes, if it did: the last chunk was cut
    /// short (typically by a crash while it was written).
    pub truncated: Option<String>,
    /// What was skipped along the way: damaged stretches between chunks, lines that could not
    /// be understood. Empty for a recording written and closed normally.
    pub damage: Vec<String>,
}

/// Decodes a recording (the bytes a [`Sink::read`] returned). Never fails: see the
/// [module documentation](self) for what is returned from damaged input.
pub fn parse(bytes: &[u8]) -> Recording {
    let mut recording = Recording::default();
    let mut damage = Damage::default();
    let mut line_no = 0usize;
    let mut pos = 0;
    let mut members = 0usize;
    while pos < bytes.len() {
        let (text, outcome) = decode_member(&bytes[pos..]);
        match outcome {
            Ok(consumed) => {
                members += 1;
                pos += consumed.max(1);
                // A complete member holds whole lines; its last line counts even without `\n`.
                for line in text.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
                    line_no += 1;
                    take_line(&mut recording, &mut damage, line, line_no);
                }
            }
            Err(err) => {
                let (complete, cut) = complete_lines(&text);
                for line in complete
                    .split(|&b| b == b'\n')
                    .filter(|line| !line.is_empty())
                {
                    line_no += 1;
                    take_line(&mut recording, &mut damage, line, line_no);
                }
                let cut_note = if cut {
                    "; an incomplete last line was dropped"
                } else {
                    ""
                };
                match next_member(bytes, pos + 1) {
                    Some(next) => {
                        damage.push(format!(
                            "bytes {pos}..{next} are not a complete chunk ({err}){cut_note}; reading resumed after them"
                        ));
                        pos = next;
                    }
                    None => {
                        recording.truncated = Some(format!(
                            "the recording ends in an incomplete chunk at byte {pos} of {len} ({err}); {members} complete chunks were read{cut_note}",
                            len = bytes.len(),
                        ));
                        break;
                    }
                }
            }
        }
    }
    recording.damage = damage.finish();
    recording
}

/// Reads and parses the recording of `session` from `sink`; `None` if it has none.
///
/// Blocking I/O: from async code, call it inside [`tokio::task::spawn_blocking`].
pub fn load(sink: &dyn Sink, session: &str) -> io::Result<Option<Recording>> {
    Ok(sink.read(session)?.map(|bytes| parse(&bytes)))
}

/// The header of a recording, read from the beginning of its bytes (only the first line of
/// the first member is decoded). `None` if it does not start with a readable header.
pub(crate) fn first_header(reader: impl BufRead) -> Option<Header> {
    let mut line = Vec::new();
    io::BufReader::new(GzDecoder::new(reader).take(MAX_HEADER_BYTES))
        .read_until(b'\n', &mut line)
        .ok()?;
    serde_json::from_slice(&line).ok()
}

/// Decodes the gzip member at the start of `input`: its text and how many bytes it took, or
/// the text decoded before the error and the error.
fn decode_member(input: &[u8]) -> (Vec<u8>, io::Result<usize>) {
    let mut decoder = GzDecoder::new(input);
    let mut text = Vec::new();
    match decoder.read_to_end(&mut text) {
        // The bufread decoder consumes exactly one member and leaves the rest unread.
        Ok(_) => {
            let rest = decoder.into_inner().len();
            (text, Ok(input.len() - rest))
        }
        Err(err) => (text, Err(err)),
    }
}

/// The start of the first member at or after `from` that decodes completely.
fn next_member(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at < bytes.len() {
        let found = bytes[at..]
            .windows(MEMBER_START.len())
            .position(|window| window == MEMBER_START)?;
        let candidate = at + found;
        if decode_member(&bytes[candidate..]).1.is_ok() {
            return Some(candidate);
        }
        at = candidate + 1;
    }
    None
}

/// The part of `text` up to and including its last `\n`, and whether anything followed it.
fn complete_lines(text: &[u8]) -> (&[u8], bool) {
    match text.iter().rposition(|&b| b == b'\n') {
        Some(last) => (&text[..=last], last + 1 < text.len()),
        None => (&[], !text.is_empty()),
    }
}

/// Files one line into the recording: the header if it is the first line and a header, an
/// event otherwise, damage if neither.
fn take_line(recording: &mut Recording, damage: &mut Damage, line: &[u8], line_no: usize) {
    if line_no == 1
        && let Ok(header) = serde_json::from_slice::<Header>(line)
    {
        recording.header = Some(header);
        return;
    }
    match serde_json::from_slice::<Event>(line) {
        Ok(Event {
            body: Body::Unknown,
            ..
        }) => damage.push(format!(
            "line {line_no} skipped: an event type this build does not know"
        )),
        Ok(event) => recording.events.push(event),
        Err(err) => damage.push(format!("line {line_no} skipped: {err}")),
    }
}

/// The damage list, capped at [`MAX_DAMAGE_ENTRIES`].
#[derive(Debug, Default)]
struct Damage {
    /// The entries kept.
    entries: Vec<String>,
    /// Entries beyond the cap, counted only.
    more: usize,
}

impl Damage {
    fn push(&mut self, entry: String) {
        if self.entries.len() < MAX_DAMAGE_ENTRIES {
            self.entries.push(entry);
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.more > 0 {
            self.entries
                .push(format!("... and {} more problems", self.more));
        }
        self.entries
    }
}

#[cfg(test)]
mod tests;
