//! The SFTP (version 3, as OpenSSH speaks it) messages the broker reads: client requests with
//! the paths and handles they name, and the host's replies that bind handles and carry data.
//!
//! ```text
//!  uint32 length | byte type | uint32 request-id | fields…      (strings: uint32 length + bytes)
//! ```
//!
//! The relay never re-encodes what it forwards: it reads a packet to decide, then passes the
//! same bytes on, or answers the client itself with a `STATUS` it builds here.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The largest packet either side may send (OpenSSH's own limit is 256 KiB; a little more
/// for headers). Anything longer ends the subsystem: it is not SFTP.
pub const MAX_PACKET: usize = 256 * 1024 + 1024;

/// `SSH_FXP_*` message types.
pub mod kind {
    pub const INIT: u8 = 1;
    pub const VERSION: u8 = 2;
    pub const OPEN: u8 = 3;
    pub const CLOSE: u8 = 4;
    pub const READ: u8 = 5;
    pub const WRITE: u8 = 6;
    pub const LSTAT: u8 = 7;
    pub const FSTAT: u8 = 8;
    pub const SETSTAT: u8 = 9;
    pub const FSETSTAT: u8 = 10;
    pub const OPENDIR: u8 = 11;
    pub const READDIR: u8 = 12;
    pub const REMOVE: u8 = 13;
    pub const MKDIR: u8 = 14;
    pub const RMDIR: u8 = 15;
    pub const REALPATH: u8 = 16;
    pub const STAT: u8 = 17;
    pub const RENAME: u8 = 18;
    pub const READLINK: u8 = 19;
    pub const SYMLINK: u8 = 20;
    pub const STATUS: u8 = 101;
    pub const HANDLE: u8 = 102;
    pub const DATA: u8 = 103;
    pub const NAME: u8 = 104;
    pub const ATTRS: u8 = 105;
    pub const EXTENDED: u8 = 200;
    pub const EXTENDED_REPLY: u8 = 201;
}

/// `SSH_FX_*` status codes the broker sends or reads.
pub mod status {
    pub const OK: u32 = 0;
    pub const NO_SUCH_FILE: u32 = 2;
    pub const PERMISSION_DENIED: u32 = 3;
    pub const FAILURE: u32 = 4;
    pub const OP_UNSUPPORTED: u32 = 8;
}

/// `SSH_FXF_*` open flags that change a file.
const WRITES: u32 = 0x02 | 0x04 | 0x08 | 0x10 | 0x20;

/// Extensions the broker understands and therefore lets the host offer. Any other is taken
/// out of the host's `VERSION` and refused if asked for anyway.
pub const EXTENSIONS: &[&str] = &[
    "posix-rename@openssh.com",
    "statvfs@openssh.com",
    "fstatvfs@openssh.com",
    "hardlink@openssh.com",
    "fsync@openssh.com",
    "lsetstat@openssh.com",
    "limits@openssh.com",
    "expand-path@openssh.com",
];

/// How the host must resolve a path before it is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// The operation follows a symlink in the last component (open, stat): judge its target.
    Yes,
    /// It acts on the last component itself (remove, rename, lstat): judge the parent's
    /// resolution plus the name.
    No,
}

/// One path an operation names, and what the operation does to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathUse {
    /// As the client sent it.
    pub path: String,
    /// Read or write.
    pub write: bool,
    /// How to resolve it.
    pub follow: Follow,
}

/// A client request, as the broker judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `INIT` (no request id).
    Init,
    /// An operation on paths: judged, then forwarded. `op` names it in the audit trail.
    Paths {
        id: u32,
        op: &'static str,
        paths: Vec<PathUse>,
        /// `OPEN`/`OPENDIR`: the reply's handle is bound to the first path.
        opens: bool,
    },
    /// An operation on an open handle (read, write, close, fstat…): forwarded.
    Handle {
        id: u32,
        handle: Bytes,
        /// `WRITE`: bytes written.
        written: u64,
        /// `CLOSE`.
        closes: bool,
    },
    /// `REALPATH`, `limits@openssh.com`: forwarded, nothing changes.
    Harmless { id: u32 },
    /// An extension or type the broker does not know: answered `OP_UNSUPPORTED`.
    Unsupported { id: u32, what: String },
}

/// A host reply, as the relay tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `VERSION` (no request id).
    Version,
    /// `HANDLE`.
    Handle { id: u32, handle: Bytes },
    /// `DATA`: bytes read.
    Data { id: u32, len: u64 },
    /// `STATUS`.
    Status { id: u32, code: u32 },
    /// `NAME`: its first entry's file name (what `REALPATH` answers).
    Name { id: u32, first: Option<String> },
    /// `ATTRS`, `EXTENDED_REPLY`.
    Other { id: u32 },
}

/// A packet that is not what its type says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

/// Splits a byte stream into packets, whatever the chunking.
#[derive(Debug, Default)]
pub struct Framer {
    buffer: BytesMut,
}

impl Framer {
    /// Adds bytes from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    /// The next whole packet (length prefix included), if one has arrived.
    pub fn next_packet(&mut self) -> Result<Option<Bytes>, Malformed> {
        if self.buffer.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([
            self.buffer[0],
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
        ]) as usize;
        if len == 0 || len > MAX_PACKET {
            return Err(Malformed(format!(
                "an SFTP packet of {len} bytes (at most {MAX_PACKET})"
            )));
        }
        if self.buffer.len() < 4 + len {
            return Ok(None);
        }
        Ok(Some(self.buffer.split_to(4 + len).freeze()))
    }
}

/// Reads the fields of one packet body.
struct Reader {
    body: Bytes,
}

impl Reader {
    fn u8(&mut self) -> Result<u8, Malformed> {
        if self.body.remaining() < 1 {
            return Err(short());
        }
        Ok(self.body.get_u8())
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        if self.body.remaining() < 4 {
            return Err(short());
        }
        Ok(self.body.get_u32())
    }

    fn u64(&mut self) -> Result<u64, Malformed> {
        if self.body.remaining() < 8 {
            return Err(short());
        }
        Ok(self.body.get_u64())
    }

    fn bytes(&mut self) -> Result<Bytes, Malformed> {
        let len = self.u32()? as usize;
        if self.body.remaining() < len {
            return Err(short());
        }
        Ok(self.body.split_to(len))
    }

    /// A path: bytes the host takes as they are; not UTF-8 is refused (rules could not be
    /// matched against it faithfully).
    fn path(&mut self) -> Result<String, Malformed> {
        let raw = self.bytes()?;
        let text = String::from_utf8(raw.to_vec())
            .map_err(|_| Malformed("a path that is not UTF-8".into()))?;
        if text.contains('\0') {
            return Err(Malformed("a path with a NUL byte".into()));
        }
        Ok(text)
    }
}

fn short() -> Malformed {
    Malformed("an SFTP packet shorter than its fields".into())
}

fn reader(packet: &Bytes) -> Reader {
    Reader {
        body: packet.slice(4..),
    }
}

fn use_of(path: String, write: bool, follow: Follow) -> PathUse {
    PathUse {
        path,
        write,
        follow,
    }
}

/// Reads a client request.
pub fn request(packet: &Bytes) -> Result<Request, Malformed> {
    let mut r = reader(packet);
    let kind = r.u8()?;
    if kind == kind::INIT {
        return Ok(Request::Init);
    }
    let id = r.u32()?;
    let paths = |op, paths, opens| Request::Paths {
        id,
        op,
        paths,
        opens,
    };
    let on_handle = |r: &mut Reader, written, closes| -> Result<Request, Malformed> {
        Ok(Request::Handle {
            id,
            handle: r.bytes()?,
            written,
            closes,
        })
    };
    Ok(match kind {
        kind::OPEN => {
            let path = r.path()?;
            let flags = r.u32()?;
            let write = flags & WRITES != 0;
            let op = if write { "open-write" } else { "open-read" };
            paths(op, vec![use_of(path, write, Follow::Yes)], true)
        }
        kind::OPENDIR => paths("list", vec![use_of(r.path()?, false, Follow::Yes)], true),
        kind::CLOSE => on_handle(&mut r, 0, true)?,
        kind::READ | kind::FSTAT | kind::READDIR => on_handle(&mut r, 0, false)?,
        kind::FSETSTAT => on_handle(&mut r, 0, false)?,
        kind::WRITE => {
            let handle = r.bytes()?;
            let _offset = r.u64()?;
            let data = r.bytes()?;
            Request::Handle {
                id,
                handle,
                written: data.len() as u64,
                closes: false,
            }
        }
        kind::STAT => paths("stat", vec![use_of(r.path()?, false, Follow::Yes)], false),
        kind::LSTAT => paths("stat", vec![use_of(r.path()?, false, Follow::No)], false),
        kind::READLINK => paths(
            "readlink",
            vec![use_of(r.path()?, false, Follow::No)],
            false,
        ),
        kind::SETSTAT => paths("setstat", vec![use_of(r.path()?, true, Follow::Yes)], false),
        kind::REMOVE => paths("remove", vec![use_of(r.path()?, true, Follow::No)], false),
        kind::MKDIR => paths("mkdir", vec![use_of(r.path()?, true, Follow::No)], false),
        kind::RMDIR => paths("rmdir", vec![use_of(r.path()?, true, Follow::No)], false),
        kind::RENAME => {
            let from = r.path()?;
            let to = r.path()?;
            paths(
                "rename",
                vec![use_of(from, true, Follow::No), use_of(to, true, Follow::No)],
                false,
            )
        }
        kind::SYMLINK => {
            // OpenSSH sends the target first and the link second (reversed from the draft);
            // both must be writable, so the order does not matter here.
            let a = r.path()?;
            let b = r.path()?;
            paths(
                "symlink",
                vec![use_of(a, true, Follow::No), use_of(b, true, Follow::No)],
                false,
            )
        }
        kind::REALPATH => Request::Harmless { id },
        kind::EXTENDED => extended(id, &mut r)?,
        other => Request::Unsupported {
            id,
            what: format!("SFTP message type {other}"),
        },
    })
}

fn extended(id: u32, r: &mut Reader) -> Result<Request, Malformed> {
    let name = r.bytes()?;
    let name = String::from_utf8_lossy(&name).into_owned();
    let two = |r: &mut Reader, op| -> Result<Request, Malformed> {
        let from = r.path()?;
        let to = r.path()?;
        Ok(Request::Paths {
            id,
            op,
            paths: vec![use_of(from, true, Follow::No), use_of(to, true, Follow::No)],
            opens: false,
        })
    };
    let one = |r: &mut Reader, op, write, follow| -> Result<Request, Malformed> {
        Ok(Request::Paths {
            id,
            op,
            paths: vec![use_of(r.path()?, write, follow)],
            opens: false,
        })
    };
    Ok(match name.as_str() {
        "posix-rename@openssh.com" => two(r, "rename")?,
        "hardlink@openssh.com" => two(r, "hardlink")?,
        "statvfs@openssh.com" => one(r, "statvfs", false, Follow::Yes)?,
        "lsetstat@openssh.com" => one(r, "setstat", true, Follow::No)?,
        "expand-path@openssh.com" | "limits@openssh.com" => Request::Harmless { id },
        "fstatvfs@openssh.com" | "fsync@openssh.com" => Request::Handle {
            id,
            handle: r.bytes()?,
            written: 0,
            closes: false,
        },
        _ => Request::Unsupported {
            id,
            what: format!("the SFTP extension {name}"),
        },
    })
}

/// Reads a host reply.
pub fn reply(packet: &Bytes) -> Result<Reply, Malformed> {
    let mut r = reader(packet);
    let kind = r.u8()?;
    if kind == kind::VERSION {
        return Ok(Reply::Version);
    }
    let id = r.u32()?;
    Ok(match kind {
        kind::HANDLE => Reply::Handle {
            id,
            handle: r.bytes()?,
        },
        kind::DATA => Reply::Data {
            id,
            len: r.bytes()?.len() as u64,
        },
        kind::STATUS => Reply::Status { id, code: r.u32()? },
        kind::NAME => {
            let count = r.u32()?;
            let first = if count > 0 {
                Some(String::from_utf8_lossy(&r.bytes()?).into_owned())
            } else {
                None
            };
            Reply::Name { id, first }
        }
        _ => Reply::Other { id },
    })
}

/// The host's `VERSION` with only the extensions in [`EXTENSIONS`] left in.
pub fn filter_version(packet: &Bytes) -> Result<Bytes, Malformed> {
    let mut r = reader(packet);
    let _kind = r.u8()?;
    let version = r.u32()?;
    let mut body = BytesMut::new();
    body.put_u8(kind::VERSION);
    body.put_u32(version.min(3));
    while r.body.has_remaining() {
        let name = r.bytes()?;
        let data = r.bytes()?;
        if EXTENSIONS.iter().any(|known| known.as_bytes() == &name[..]) {
            put_bytes(&mut body, &name);
            put_bytes(&mut body, &data);
        }
    }
    Ok(frame(body))
}

/// A `STATUS` reply.
pub fn status_packet(id: u32, code: u32, message: &str) -> Bytes {
    let mut body = BytesMut::new();
    body.put_u8(kind::STATUS);
    body.put_u32(id);
    body.put_u32(code);
    put_bytes(&mut body, message.as_bytes());
    put_bytes(&mut body, b"en");
    frame(body)
}

/// The `INIT` the broker sends when it speaks SFTP itself.
pub fn init_packet() -> Bytes {
    let mut body = BytesMut::new();
    body.put_u8(kind::INIT);
    body.put_u32(3);
    frame(body)
}

/// A `REALPATH` request.
pub fn realpath_packet(id: u32, path: &str) -> Bytes {
    let mut body = BytesMut::new();
    body.put_u8(kind::REALPATH);
    body.put_u32(id);
    put_bytes(&mut body, path.as_bytes());
    frame(body)
}

fn put_bytes(body: &mut BytesMut, data: &[u8]) {
    body.put_u32(u32::try_from(data.len()).unwrap_or(u32::MAX));
    body.put_slice(data);
}

fn frame(body: BytesMut) -> Bytes {
    let mut packet = BytesMut::with_capacity(4 + body.len());
    packet.put_u32(u32::try_from(body.len()).unwrap_or(u32::MAX));
    packet.put_slice(&body);
    packet.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(kind: u8, id: u32, fields: &[&[u8]], tail: &[u8]) -> Bytes {
        let mut body = BytesMut::new();
        body.put_u8(kind);
        body.put_u32(id);
        for f in fields {
            put_bytes(&mut body, f);
        }
        body.put_slice(tail);
        frame(body)
    }

    #[test]
    fn open_for_writing_names_its_path_as_written() {
        let p = packet(kind::OPEN, 7, &[b"/tmp/x"], &[0, 0, 0, 0x1a, 0, 0, 0, 0]);
        assert_eq!(
            request(&p),
            Ok(Request::Paths {
                id: 7,
                op: "open-write",
                paths: vec![use_of("/tmp/x".into(), true, Follow::Yes)],
                opens: true,
            })
        );
        let read = packet(kind::OPEN, 8, &[b"a"], &[0, 0, 0, 1, 0, 0, 0, 0]);
        assert!(matches!(
            request(&read),
            Ok(Request::Paths {
                op: "open-read",
                ..
            })
        ));
    }

    #[test]
    fn truncated_and_oversized_packets_are_malformed() {
        let p = packet(kind::RENAME, 1, &[b"/a"], &[]);
        assert!(request(&p).is_err(), "rename without its second path");
        let mut framer = Framer::default();
        framer.push(&(MAX_PACKET as u32 + 1).to_be_bytes());
        assert!(framer.next_packet().is_err());
        let bad = packet(kind::REMOVE, 1, &[b"/a\xff"], &[]);
        assert!(request(&bad).is_err(), "not UTF-8");
    }

    #[test]
    fn packets_arrive_whole_whatever_the_chunking() {
        let a = packet(kind::STAT, 1, &[b"/etc"], &[]);
        let b = packet(kind::REMOVE, 2, &[b"/tmp/x"], &[]);
        let stream: Vec<u8> = [a.clone(), b.clone()].concat();
        let mut framer = Framer::default();
        let mut got = Vec::new();
        for chunk in stream.chunks(3) {
            framer.push(chunk);
            while let Some(p) = framer.next_packet().expect("well formed") {
                got.push(p);
            }
        }
        assert_eq!(got, vec![a, b]);
    }

    #[test]
    fn unknown_extensions_are_unsupported_and_left_out_of_the_version() {
        let p = packet(kind::EXTENDED, 3, &[b"copy-data"], &[]);
        assert!(matches!(
            request(&p),
            Ok(Request::Unsupported { id: 3, .. })
        ));
        let mut body = BytesMut::new();
        body.put_u8(kind::VERSION);
        body.put_u32(3);
        for (name, data) in [
            (&b"posix-rename@openssh.com"[..], &b"1"[..]),
            (b"copy-data", b"1"),
        ] {
            put_bytes(&mut body, name);
            put_bytes(&mut body, data);
        }
        let filtered = filter_version(&frame(body)).expect("version");
        let text = String::from_utf8_lossy(&filtered);
        assert!(text.contains("posix-rename@openssh.com"));
        assert!(!text.contains("copy-data"));
    }
}
