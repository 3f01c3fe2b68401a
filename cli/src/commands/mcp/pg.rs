//! A small PostgreSQL client for the `query` and `describe` tools: protocol 3, over one broker
//! tunnel, as psql's own connection would be.
//!
//! The broker's engine terminates the connection (asks for the tunnel's one-time secret in
//! cleartext, over the TLS tunnel), decides every statement and masks every row; this client only
//! speaks the protocol. It uses the extended protocol so that a statement is one statement
//! (`Parse` refuses several) and a result stops at the row cap (`Execute` with a row limit)
//! instead of pulling a whole table through the tunnel:
//!
//! ```text
//!  Parse(sql) Bind Describe(portal) Execute(limit + 1) Sync ──▶ broker ──▶ PostgreSQL
//!  ◀── ParseComplete BindComplete RowDescription DataRow… (CommandComplete | PortalSuspended)
//!      NoticeResponse*   (a held statement: "waiting for …", then "approved by …")
//!      ErrorResponse     (a refusal names the rule; the connection stays usable)
//!      ReadyForQuery
//! ```

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A server message larger than this ends the connection: nothing a tool returns is this big.
const MAX_MESSAGE: usize = 64 << 20;

/// What went wrong talking to the broker's PostgreSQL endpoint.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The connection broke or sent something that is not the protocol.
    #[error("{0}")]
    Protocol(String),
    /// The server (the broker's engine or PostgreSQL) refused during the login.
    #[error("{0}")]
    Login(ServerError),
}

/// An `ErrorResponse`: what the broker or the database said, field by field.
#[derive(Debug, Clone, Default, serde::Serialize, schemars::JsonSchema)]
pub struct ServerError {
    /// SQLSTATE (`42501` insufficient privilege is what Sluice refusals use).
    pub code: String,
    /// The message, e.g. `sluice: blocked by rule "no-deletes": ...`.
    pub message: String,
    /// More detail, e.g. which rule refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.code)?;
        if let Some(detail) = &self.detail {
            write!(f, "; {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}

/// The result of one statement.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Column names, when the statement returns rows.
    pub columns: Vec<String>,
    /// Rows as text (`None` for SQL NULL), at most the limit asked for.
    pub rows: Vec<Vec<Option<String>>>,
    /// More rows were there than the limit (the portal was suspended).
    pub truncated: bool,
    /// The command tag (`SELECT 3`, `DELETE 0`); empty when the statement failed.
    pub tag: String,
    /// The refusal or database error, if the statement did not run to completion.
    pub error: Option<ServerError>,
    /// Notices, in order (Sluice's hold messages among them).
    pub notices: Vec<String>,
}

/// One logged-in connection.
#[derive(Debug)]
pub struct PgConnection<S> {
    stream: S,
    buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> PgConnection<S> {
    /// Sends the startup message and answers the broker's cleartext password request with the
    /// tunnel's one-time `secret`. `leftover` is what the tunnel already read.
    pub async fn login(
        stream: S,
        leftover: Vec<u8>,
        user: &str,
        database: &str,
        secret: &str,
    ) -> Result<Self, PgError> {
        let mut conn = Self {
            stream,
            buf: BytesMut::from(&leftover[..]),
        };
        let mut body = BytesMut::new();
        body.put_i32(196_608); // protocol 3.0
        for (key, value) in [
            ("user", user),
            ("database", database),
            ("application_name", "sluice-mcp"),
            ("client_encoding", "UTF8"),
        ] {
            put_cstr(&mut body, key);
            put_cstr(&mut body, value);
        }
        body.put_u8(0);
        let mut out = BytesMut::new();
        out.put_i32(i32::try_from(body.len() + 4).unwrap_or(i32::MAX));
        out.extend_from_slice(&body);
        conn.send(&out).await?;
        loop {
            let (tag, mut body) = conn.next().await?;
            match tag {
                b'R' => match body.get_i32() {
                    0 => {}
                    3 => {
                        let mut out = BytesMut::new();
                        message(&mut out, b'p', |b| put_cstr(b, secret));
                        conn.send(&out).await?;
                    }
                    other => {
                        return Err(PgError::Protocol(format!(
                            "the broker asked for authentication method {other}, not the \
                             tunnel secret"
                        )));
                    }
                },
                b'E' => return Err(PgError::Login(server_error(&body))),
                b'Z' => return Ok(conn),
                // ParameterStatus, BackendKeyData, NoticeResponse: nothing to keep.
                _ => {}
            }
        }
    }

    /// Runs one statement, keeping at most `limit` rows. `on_notice` sees each notice as it
    /// arrives (a held statement's "waiting for approval" among them), while the statement is
    /// still running.
    pub async fn query(
        &mut self,
        sql: &str,
        limit: usize,
        mut on_notice: impl FnMut(&str),
    ) -> Result<Outcome, PgError> {
        let mut out = BytesMut::new();
        message(&mut out, b'P', |b| {
            put_cstr(b, "");
            put_cstr(b, sql);
            b.put_i16(0);
        });
        message(&mut out, b'B', |b| {
            put_cstr(b, "");
            put_cstr(b, "");
            b.put_i16(0); // parameter formats
            b.put_i16(0); // parameters
            b.put_i16(0); // result formats: all text
        });
        message(&mut out, b'D', |b| {
            b.put_u8(b'P');
            put_cstr(b, "");
        });
        let max_rows = i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX);
        message(&mut out, b'E', |b| {
            put_cstr(b, "");
            b.put_i32(max_rows);
        });
        message(&mut out, b'S', |_| {});
        self.send(&out).await?;
        let mut outcome = Outcome::default();
        loop {
            let (tag, mut body) = self.next().await?;
            match tag {
                b'T' => outcome.columns = row_description(&mut body)?,
                b'D' => {
                    let row = data_row(&mut body)?;
                    if outcome.rows.len() < limit {
                        outcome.rows.push(row);
                    } else {
                        outcome.truncated = true;
                    }
                }
                b'C' => outcome.tag = cstr(&mut body)?,
                b's' => {
                    // PortalSuspended: the statement stopped at the row limit, no command tag.
                    outcome.truncated = true;
                    outcome.tag =
                        format!("SELECT {} (stopped at the row limit)", outcome.rows.len());
                }
                b'I' => outcome.tag = "EMPTY".into(),
                b'E' => outcome.error = Some(server_error(&body)),
                b'N' => {
                    let notice = server_error(&body).message;
                    on_notice(&notice);
                    outcome.notices.push(notice);
                }
                b'Z' => return Ok(outcome),
                // ParseComplete, BindComplete, NoData, ParameterStatus.
                _ => {}
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), PgError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| PgError::Protocol(format!("the tunnel closed: {e}")))
    }

    /// The next whole message: its tag and body.
    async fn next(&mut self) -> Result<(u8, BytesMut), PgError> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if !(4..=MAX_MESSAGE).contains(&len) {
                    return Err(PgError::Protocol(format!(
                        "the broker sent a message of {len} bytes"
                    )));
                }
                if self.buf.len() > len {
                    let mut frame = self.buf.split_to(len + 1);
                    let tag = frame[0];
                    frame.advance(5);
                    return Ok((tag, frame));
                }
            }
            self.buf.reserve(64 * 1024);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) => {
                    return Err(PgError::Protocol("the broker closed the connection".into()));
                }
                Ok(_) => {}
                Err(e) => return Err(PgError::Protocol(format!("the tunnel broke: {e}"))),
            }
        }
    }
}

fn message(out: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    out.put_u8(tag);
    let at = out.len();
    out.put_i32(0);
    body(out);
    let len = i32::try_from(out.len() - at).unwrap_or(i32::MAX);
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_cstr(out: &mut BytesMut, s: &str) {
    // A NUL inside would end the string early; PostgreSQL refuses it anyway.
    out.extend_from_slice(s.replace('\0', "").as_bytes());
    out.put_u8(0);
}

fn cstr(body: &mut BytesMut) -> Result<String, PgError> {
    let end = body
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| PgError::Protocol("a string without its terminator".into()))?;
    let s = String::from_utf8_lossy(&body[..end]).into_owned();
    body.advance(end + 1);
    Ok(s)
}

fn row_description(body: &mut BytesMut) -> Result<Vec<String>, PgError> {
    let count = read_i16(body)?;
    let mut names = Vec::new();
    for _ in 0..count {
        names.push(cstr(body)?);
        if body.len() < 18 {
            return Err(PgError::Protocol("a short RowDescription".into()));
        }
        body.advance(18);
    }
    Ok(names)
}

fn data_row(body: &mut BytesMut) -> Result<Vec<Option<String>>, PgError> {
    let count = read_i16(body)?;
    let mut row = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        if body.len() < 4 {
            return Err(PgError::Protocol("a short DataRow".into()));
        }
        let len = body.get_i32();
        if len < 0 {
            row.push(None);
            continue;
        }
        let len = len as usize;
        if body.len() < len {
            return Err(PgError::Protocol("a short DataRow".into()));
        }
        row.push(Some(String::from_utf8_lossy(&body[..len]).into_owned()));
        body.advance(len);
    }
    Ok(row)
}

fn read_i16(body: &mut BytesMut) -> Result<i16, PgError> {
    if body.len() < 2 {
        return Err(PgError::Protocol("a short message".into()));
    }
    Ok(body.get_i16())
}

/// The fields of an `ErrorResponse` or `NoticeResponse`.
fn server_error(body: &[u8]) -> ServerError {
    let mut error = ServerError::default();
    for field in body.split(|&b| b == 0) {
        let Some((&code, value)) = field.split_first() else {
            continue;
        };
        let value = String::from_utf8_lossy(value).into_owned();
        match code {
            b'C' => error.code = value,
            b'M' => error.message = value,
            b'D' => error.detail = Some(value),
            b'H' => error.hint = Some(value),
            _ => {}
        }
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted server: what it answers, in order, to a client on the other end of a pipe.
    async fn server(
        script: Vec<u8>,
    ) -> (
        PgConnection<tokio::io::DuplexStream>,
        Vec<u8>,
        tokio::io::DuplexStream,
    ) {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        server.write_all(&script).await.expect("script");
        let mut auth = BytesMut::new();
        message(&mut auth, b'R', |b| b.put_i32(3));
        message(&mut auth, b'R', |b| b.put_i32(0));
        message(&mut auth, b'Z', |b| b.put_u8(b'I'));
        let conn = PgConnection::login(client, auth.to_vec(), "alice", "app", "s3cret")
            .await
            .expect("login");
        let mut sent = vec![0; 4096];
        let n = server.read(&mut sent).await.expect("read");
        sent.truncate(n);
        (conn, sent, server)
    }

    #[tokio::test]
    async fn rows_stop_at_the_limit_and_notices_arrive_in_order() {
        let mut script = BytesMut::new();
        message(&mut script, b'1', |_| {});
        message(&mut script, b'2', |_| {});
        message(&mut script, b'N', |b| {
            b.put_u8(b'M');
            put_cstr(b, "sluice: waiting for dba");
            b.put_u8(0);
        });
        message(&mut script, b'T', |b| {
            b.put_i16(1);
            put_cstr(b, "email");
            b.put_slice(&[0; 18]);
        });
        for value in ["a@x", "b@x"] {
            message(&mut script, b'D', |b| {
                b.put_i16(1);
                b.put_i32(value.len() as i32);
                b.put_slice(value.as_bytes());
            });
        }
        message(&mut script, b's', |_| {});
        message(&mut script, b'Z', |b| b.put_u8(b'I'));
        let (mut conn, sent, _server) = server(script.to_vec()).await;
        assert!(
            sent.windows(6).any(|w| w == b"s3cret"),
            "the secret answers the password request"
        );
        let mut seen = Vec::new();
        let outcome = conn
            .query("select email from people", 1, |n| seen.push(n.to_owned()))
            .await
            .expect("query");
        assert_eq!(outcome.columns, ["email"]);
        assert_eq!(outcome.rows, [[Some("a@x".to_owned())]]);
        assert!(outcome.truncated);
        assert_eq!(seen, ["sluice: waiting for dba"]);
    }

    #[tokio::test]
    async fn an_error_is_an_outcome_and_a_broken_frame_is_an_error() {
        let mut script = BytesMut::new();
        message(&mut script, b'E', |b| {
            for (code, value) in [(b'C', "42501"), (b'M', "blocked"), (b'D', "rule x")] {
                b.put_u8(code);
                put_cstr(b, value);
            }
            b.put_u8(0);
        });
        message(&mut script, b'Z', |b| b.put_u8(b'I'));
        // Then a frame that claims 2 GB.
        script.put_u8(b'D');
        script.put_i32(i32::MAX);
        let (mut conn, _, _server) = server(script.to_vec()).await;
        let outcome = conn
            .query("delete from t", 10, |_| {})
            .await
            .expect("query");
        let error = outcome.error.expect("refused");
        assert_eq!(
            (error.code.as_str(), error.detail.as_deref()),
            ("42501", Some("rule x"))
        );
        let broken = conn.query("select 1", 10, |_| {}).await;
        assert!(matches!(broken, Err(PgError::Protocol(_))), "{broken:?}");
    }
}
