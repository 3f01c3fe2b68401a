//! Where a path really points on the host, asked of the host itself: the broker's own SFTP
//! session (a second login, so that waiting for an answer never stalls the client's traffic)
//! sends `REALPATH`, which OpenSSH answers with symlinks followed and `..` applied, the last
//! component allowed not to exist yet.
//!
//! File rules are matched against these answers, never against the text a client sent:
//! `/srv/app/../../etc/shadow` and a symlink `/srv/app/l -> /etc` are judged where they lead.
//! A symlink swapped between this answer and the operation itself (a race by someone who can
//! already write there) is not caught; docs/ssh.md says so.

use crate::session::{Link, Target, Upstream, login};
use crate::sftp::{self, Follow, Framer, Reply};
use russh::ChannelMsg;
use tokio::sync::Mutex;

/// What the host said about a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Its absolute, resolved form.
    Path(String),
    /// The host could not resolve it (`SSH_FX_*` code): the operation would fail the same way.
    Status(u32),
}

/// The broker's SFTP session for resolving paths, opened on first use.
pub struct Resolver {
    target: Target,
    conn: Mutex<Option<Conn>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("target", &self.target.address)
            .finish_non_exhaustive()
    }
}

struct Conn {
    _login: russh::client::Handle<Upstream>,
    channel: russh::Channel<russh::client::Msg>,
    framer: Framer,
    next: u32,
}

impl Resolver {
    /// A resolver that logs in to `target` when first asked.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            conn: Mutex::new(None),
        }
    }

    /// Resolves `path` as an operation that does (or does not) follow a final symlink will
    /// meet it. `Err` when the host cannot be asked at all.
    pub async fn resolve(&self, path: &str, follow: Follow) -> Result<Resolved, String> {
        let split = path.rfind('/').map(|i| (&path[..i], &path[i + 1..]));
        let (parent, name) = match split {
            Some((parent, name)) => (if parent.is_empty() { "/" } else { parent }, name),
            None => (".", path),
        };
        if follow == Follow::Yes || matches!(name, "" | "." | "..") {
            return self.realpath(path).await;
        }
        Ok(match self.realpath(parent).await? {
            Resolved::Path(dir) if dir == "/" => Resolved::Path(format!("/{name}")),
            Resolved::Path(dir) => Resolved::Path(format!("{dir}/{name}")),
            status => status,
        })
    }

    async fn realpath(&self, path: &str) -> Result<Resolved, String> {
        let mut conn = self.conn.lock().await;
        if conn.is_none() {
            *conn = Some(self.open().await?);
        }
        let Some(c) = conn.as_mut() else {
            return Err("no SFTP session".into());
        };
        let asked = ask(c, path).await;
        if asked.is_err() {
            // A broken session is opened again next time.
            *conn = None;
        }
        asked
    }

    async fn open(&self) -> Result<Conn, String> {
        let why = |e: &dyn std::fmt::Display| {
            format!(
                "cannot open an SFTP session on {} to resolve paths: {e}",
                self.target.address
            )
        };
        let handle = login(&self.target, Link::default()).await?;
        let channel = handle.channel_open_session().await.map_err(|e| why(&e))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| why(&e))?;
        channel
            .data_bytes(sftp::init_packet())
            .await
            .map_err(|e| why(&e))?;
        let mut conn = Conn {
            _login: handle,
            channel,
            framer: Framer::default(),
            next: 1,
        };
        match next_reply(&mut conn).await? {
            Reply::Version => Ok(conn),
            other => Err(why(&format!("the host answered {other:?} to INIT"))),
        }
    }
}

async fn ask(conn: &mut Conn, path: &str) -> Result<Resolved, String> {
    let id = conn.next;
    conn.next = conn.next.wrapping_add(1);
    conn.channel
        .data_bytes(sftp::realpath_packet(id, path))
        .await
        .map_err(|e| format!("the SFTP session for resolving paths failed: {e}"))?;
    loop {
        match next_reply(conn).await? {
            Reply::Name { id: got, first } if got == id => {
                return first
                    .map(Resolved::Path)
                    .ok_or_else(|| "the host resolved a path to nothing".into());
            }
            Reply::Status { id: got, code } if got == id => return Ok(Resolved::Status(code)),
            _ => {}
        }
    }
}

async fn next_reply(conn: &mut Conn) -> Result<Reply, String> {
    loop {
        if let Some(packet) = conn
            .framer
            .next_packet()
            .map_err(|e| format!("the host's SFTP answer is malformed: {}", e.0))?
        {
            return sftp::reply(&packet)
                .map_err(|e| format!("the host's SFTP answer is malformed: {}", e.0));
        }
        match conn.channel.wait().await {
            Some(ChannelMsg::Data { data }) => conn.framer.push(&data),
            Some(ChannelMsg::Eof | ChannelMsg::Close) | None => {
                return Err("the host ended the SFTP session used to resolve paths".into());
            }
            Some(_) => {}
        }
    }
}
