//! A minimal PostgreSQL client built on the crate's codec, talking to `serve` through a
//! tokio duplex pair. It records every byte it receives so tests can scan them for leaks.

use bytes::BytesMut;
use sluice_engine::Lease;
use sluice_engine_postgres::codec::{
    self, BackendKeyData, BackendMessage, ErrorFields, PasswordMessage, Query, StartupPacket,
    Terminate,
};
use sluice_engine_postgres::hooks::Enforcement;
use sluice_engine_postgres::{
    AsGiven, CancelRegistry, SessionError, SessionParams, SessionSummary, Target, serve,
};
use sluice_shared::Secret;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;

/// The secret the tests' tunnels use.
pub const TUNNEL_SECRET: &str = "tunnel-secret-5d1e";

/// The test side of one tunnel.
pub struct TestClient {
    stream: DuplexStream,
    /// Every byte received from the broker, in order.
    pub received: Vec<u8>,
}

/// A query's outcome: rows of text values, or the server's error.
pub type Rows = Result<Vec<Vec<Option<String>>>, ErrorFields>;

/// Starts `serve` for one tunnel and returns the client end and the serving task.
pub fn open(
    subject: &str,
    target: Target,
    cancels: &CancelRegistry,
) -> (TestClient, JoinHandle<Result<SessionSummary, SessionError>>) {
    open_with(
        subject,
        target,
        cancels,
        Enforcement::default(),
        Lease::unbounded(),
    )
}

/// Like [`open`], with enforcement and a lease.
#[allow(dead_code, reason = "not every test binary uses it")]
pub fn open_with(
    subject: &str,
    target: Target,
    cancels: &CancelRegistry,
    enforcement: Enforcement,
    lease: Lease,
) -> (TestClient, JoinHandle<Result<SessionSummary, SessionError>>) {
    let (app, mut broker) = tokio::io::duplex(64 * 1024);
    let params = SessionParams {
        subject: subject.to_owned(),
        tunnel_secret: Secret::new(TUNNEL_SECRET.to_owned()),
        target,
        enforcement,
    };
    let cancels = cancels.clone();
    let task =
        tokio::spawn(
            async move { serve(&mut broker, params, &cancels, lease, &mut AsGiven).await },
        );
    (
        TestClient {
            stream: app,
            received: Vec::new(),
        },
        task,
    )
}

impl TestClient {
    async fn send(&mut self, encode: impl FnOnce(&mut BytesMut)) {
        let mut buf = BytesMut::new();
        encode(&mut buf);
        self.stream.write_all(&buf).await.unwrap();
    }

    /// The next message, or `None` at EOF.
    pub async fn recv(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut header = [0u8; codec::HEADER_LEN];
        if self.stream.read_exact(&mut header).await.is_err() {
            return None;
        }
        self.received.extend_from_slice(&header);
        let (tag, total) = codec::parse_header(&header, codec::MAX_MESSAGE).unwrap();
        let mut body = vec![0u8; total - codec::HEADER_LEN];
        self.stream.read_exact(&mut body).await.unwrap();
        self.received.extend_from_slice(&body);
        Some((tag, body))
    }

    /// Reads whatever is left until EOF into `received`.
    pub async fn drain(&mut self) {
        let mut rest = Vec::new();
        let _ = self.stream.read_to_end(&mut rest).await;
        self.received.extend_from_slice(&rest);
    }

    /// SSLRequest (expects 'N', as libpq with sslmode=prefer sends it), StartupMessage,
    /// password; returns the broker's BackendKeyData or the error that ended the login.
    pub async fn login(
        &mut self,
        secret: &str,
        database: &str,
    ) -> Result<BackendKeyData, ErrorFields> {
        self.send(|b| StartupPacket::SslRequest.encode(b).unwrap())
            .await;
        let mut answer = [0u8; 1];
        self.stream.read_exact(&mut answer).await.unwrap();
        self.received.push(answer[0]);
        assert_eq!(&answer, b"N");
        let params = vec![
            ("user".to_owned(), "someone".to_owned()),
            ("database".to_owned(), database.to_owned()),
            ("application_name".to_owned(), "sluice-test".to_owned()),
            ("client_encoding".to_owned(), "UTF8".to_owned()),
        ];
        self.send(|b| StartupPacket::StartupMessage { params }.encode(b).unwrap())
            .await;
        let mut key = None;
        loop {
            let (tag, body) = self.recv().await.expect("broker closed during login");
            match BackendMessage::decode(tag, &body).unwrap() {
                BackendMessage::Authentication(codec::Authentication::CleartextPassword) => {
                    let password = PasswordMessage {
                        password: Secret::new(secret.as_bytes().to_vec()),
                    };
                    self.send(|b| password.encode(b).unwrap()).await;
                }
                BackendMessage::Authentication(codec::Authentication::Ok) => {}
                BackendMessage::ParameterStatus(_) | BackendMessage::NoticeResponse(_) => {}
                BackendMessage::BackendKeyData(k) => key = Some(k),
                BackendMessage::ReadyForQuery(_) => return Ok(key.expect("no BackendKeyData")),
                BackendMessage::ErrorResponse(e) => return Err(e),
                other => panic!("unexpected {other:?} during login"),
            }
        }
    }

    /// Sends raw bytes (hand-built messages) without waiting.
    #[allow(dead_code, reason = "not every test binary uses it")]
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Sends a simple query without waiting.
    pub async fn send_query(&mut self, sql: &str) {
        let q = Query {
            sql: sql.to_owned(),
        };
        self.send(|b| q.encode(b).unwrap()).await;
    }

    /// Reads the answer to a simple query up to ReadyForQuery.
    pub async fn read_result(&mut self) -> Rows {
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let (tag, body) = self.recv().await.expect("broker closed during a query");
            match tag {
                b'D' => rows.push(data_row(&body)),
                b'E' => error = Some(ErrorFields::decode(&body).unwrap()),
                b'Z' => return error.map_or(Ok(rows), Err),
                _ => {} // RowDescription, CommandComplete, notices
            }
        }
    }

    /// Runs a simple query.
    pub async fn query(&mut self, sql: &str) -> Rows {
        self.send_query(sql).await;
        self.read_result().await
    }

    /// Sends Terminate, closes the sending side (as a client's socket close would) and
    /// reads to EOF.
    pub async fn terminate(&mut self) {
        self.send(|b| Terminate.encode(b)).await;
        self.stream.shutdown().await.unwrap();
        self.drain().await;
    }

    /// Sends a CancelRequest as the first packet (what libpq's PQcancel does on a new
    /// connection) and reads to EOF.
    pub async fn cancel(&mut self, pid: i32, key: i32) {
        self.send(|b| StartupPacket::CancelRequest { pid, key }.encode(b).unwrap())
            .await;
        self.stream.shutdown().await.unwrap();
        self.drain().await;
    }
}

/// DataRow: int16 column count, then per column an int32 length (-1 = NULL) and the bytes.
fn data_row(body: &[u8]) -> Vec<Option<String>> {
    let n = i16::from_be_bytes([body[0], body[1]]);
    let mut at = 2;
    (0..n)
        .map(|_| {
            let len = i32::from_be_bytes(body[at..at + 4].try_into().unwrap());
            at += 4;
            if len < 0 {
                return None;
            }
            let v = String::from_utf8(body[at..at + len as usize].to_vec()).unwrap();
            at += len as usize;
            Some(v)
        })
        .collect()
}
