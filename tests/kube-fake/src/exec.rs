//! `pods/exec` over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`): every binary message
//! starts with a channel byte (0 stdin, 1 stdout, 2 stderr, 3 error/status, 4 resize; v5 adds
//! 255 = "close channel N"). The "container" runs a tiny interpreter: `echo ARGS [>&2]`,
//! `exit N`, `cat` (stdin to stdout until stdin closes), `sleep N`, `true`, `false`, joined by
//! `;` or newlines, directly or under `sh -c`.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use sluice_fake_http::ws;

/// Channel numbers.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const CLOSE_CHANNEL: u8 = 255;

/// The subprotocols spoken, most preferred first.
pub const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// One step of a fake command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Bytes to stdout.
    Out(Vec<u8>),
    /// Bytes to stderr.
    Err(Vec<u8>),
    /// Copy stdin to stdout until stdin closes.
    Cat,
    /// Wait.
    Sleep(Duration),
    /// Stop with this exit code.
    Exit(i32),
}

/// Interprets `command` (the exec request's `command` parameters).
pub fn program(command: &[String]) -> Vec<Step> {
    match command {
        [sh, c, script, ..] if (sh == "sh" || sh == "bash" || sh.ends_with("/sh")) && c == "-c" => {
            script_steps(script)
        }
        [] => vec![Step::Err(b"no command given\n".to_vec()), Step::Exit(126)],
        words => statement(words),
    }
}

fn script_steps(script: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for stmt in split_statements(script) {
        let words = words(&stmt);
        if words.is_empty() {
            continue;
        }
        let s = statement(&words);
        let exits = s.iter().any(|st| matches!(st, Step::Exit(_)));
        steps.extend(s);
        if exits {
            break;
        }
    }
    steps
}

fn statement(words: &[String]) -> Vec<Step> {
    let (cmd, args) = match words.split_first() {
        Some(x) => x,
        None => return Vec::new(),
    };
    match cmd.as_str() {
        "echo" => {
            let to_err = args.last().is_some_and(|a| a == ">&2" || a == "1>&2");
            let args = if to_err {
                &args[..args.len() - 1]
            } else {
                args
            };
            let (newline, args) = match args.split_first() {
                Some((n, rest)) if n == "-n" => (false, rest),
                _ => (true, args),
            };
            let mut text = args.join(" ").into_bytes();
            if newline {
                text.push(b'\n');
            }
            vec![if to_err {
                Step::Err(text)
            } else {
                Step::Out(text)
            }]
        }
        "exit" => vec![Step::Exit(
            args.first().and_then(|a| a.parse().ok()).unwrap_or(0),
        )],
        "cat" => vec![Step::Cat],
        "true" => Vec::new(),
        "false" => vec![Step::Exit(1)],
        "sleep" => {
            let secs: f64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(0.0);
            vec![Step::Sleep(Duration::from_secs_f64(
                secs.clamp(0.0, 3600.0),
            ))]
        }
        other => vec![
            Step::Err(format!("sh: 1: {other}: not found\n").into_bytes()),
            Step::Exit(127),
        ],
    }
}

/// Splits a script at `;` and newlines outside quotes.
fn split_statements(script: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quote = None;
    for ch in script.chars() {
        match (quote, ch) {
            (None, ';' | '\n') => out.push(String::new()),
            (None, '\'' | '"') => {
                quote = Some(ch);
                push(&mut out, ch);
            }
            (Some(q), c) if c == q => {
                quote = None;
                push(&mut out, ch);
            }
            _ => push(&mut out, ch),
        }
    }
    out
}

fn push(out: &mut [String], ch: char) {
    if let Some(last) = out.last_mut() {
        last.push(ch);
    }
}

/// Splits a statement into words, honouring single and double quotes.
fn words(stmt: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote = None;
    for ch in stmt.chars() {
        match (quote, ch) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '\'' | '"') => {
                quote = Some(ch);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            _ => {
                cur.push(ch);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// What the client sent, decoded from frames.
#[derive(Debug)]
enum Inbound {
    Stdin(Vec<u8>),
    StdinClosed,
    Ping(Vec<u8>),
    Closed,
}

/// Runs one exec session on an upgraded connection.
pub async fn session<S>(io: S, protocol: &'static str, command: Vec<String>, tty: bool)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let v5 = protocol.starts_with("v5");
    let (tx, mut rx) = mpsc::channel::<Inbound>(64);
    let reader = tokio::spawn(async move {
        let mut buf = Vec::new();
        let mut message: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            loop {
                let (frame, used) = match ws::parse(&buf) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(_) => {
                        let _ = tx.send(Inbound::Closed).await;
                        return;
                    }
                };
                buf.drain(..used);
                let msg = match frame.opcode {
                    ws::PING => Some(Inbound::Ping(frame.payload)),
                    ws::PONG => None,
                    ws::CLOSE => Some(Inbound::Closed),
                    ws::BINARY | ws::TEXT | ws::CONTINUATION => {
                        message.extend_from_slice(&frame.payload);
                        if frame.fin {
                            let m = std::mem::take(&mut message);
                            match m.split_first() {
                                Some((&STDIN, data)) if !data.is_empty() => {
                                    Some(Inbound::Stdin(data.to_vec()))
                                }
                                Some((&CLOSE_CHANNEL, [STDIN])) if v5 => Some(Inbound::StdinClosed),
                                _ => None,
                            }
                        } else {
                            None
                        }
                    }
                    _ => None,
                };
                if let Some(m) = msg {
                    let closed = matches!(m, Inbound::Closed);
                    if tx.send(m).await.is_err() || closed {
                        return;
                    }
                }
            }
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Inbound::Closed).await;
                    return;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    });

    let mut code = 0;
    let mut client_closed = false;
    'steps: for step in program(&command) {
        let sent = match step {
            Step::Out(b) => send(&mut wr, STDOUT, &b).await,
            Step::Err(b) => send(&mut wr, if tty { STDOUT } else { STDERR }, &b).await,
            Step::Exit(c) => {
                code = c;
                break 'steps;
            }
            Step::Sleep(d) => {
                let deadline = tokio::time::sleep(d);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        () = &mut deadline => break,
                        m = rx.recv() => match m {
                            Some(Inbound::Ping(p)) => { let _ = wr.write_all(&ws::encode(ws::PONG, &p)).await; }
                            Some(Inbound::Closed) | None => { client_closed = true; break 'steps; }
                            _ => {}
                        },
                    }
                }
                Ok(())
            }
            Step::Cat => loop {
                match rx.recv().await {
                    Some(Inbound::Stdin(data)) => {
                        if send(&mut wr, STDOUT, &data).await.is_err() {
                            break Err(());
                        }
                    }
                    Some(Inbound::Ping(p)) => {
                        let _ = wr.write_all(&ws::encode(ws::PONG, &p)).await;
                    }
                    Some(Inbound::StdinClosed) => break Ok(()),
                    Some(Inbound::Closed) | None => {
                        client_closed = true;
                        break Ok(());
                    }
                }
            },
        };
        if sent.is_err() || client_closed {
            break;
        }
    }
    if !client_closed {
        let status = if code == 0 {
            json!({"metadata": {}, "status": "Success"})
        } else {
            json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}
            })
        };
        let _ = send(&mut wr, ERROR, status.to_string().as_bytes()).await;
        let _ = wr
            .write_all(&ws::encode(ws::CLOSE, &1000u16.to_be_bytes()))
            .await;
        let _ = wr.flush().await;
        // Give the client a moment to answer the close before the connection drops.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(m) = rx.recv().await {
                if matches!(m, Inbound::Closed) {
                    break;
                }
            }
        })
        .await;
    }
    let _ = wr.shutdown().await;
    reader.abort();
}

async fn send<W: AsyncWrite + Unpin>(wr: &mut W, channel: u8, data: &[u8]) -> Result<(), ()> {
    let mut payload = Vec::with_capacity(data.len() + 1);
    payload.push(channel);
    payload.extend_from_slice(data);
    wr.write_all(&ws::encode(ws::BINARY, &payload))
        .await
        .map_err(|_| ())?;
    wr.flush().await.map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_string()).collect()
    }

    #[test]
    fn interpreter() {
        assert_eq!(
            program(&s(&["echo", "a", "b"])),
            vec![Step::Out(b"a b\n".to_vec())]
        );
        assert_eq!(
            program(&s(&[
                "sh",
                "-c",
                "echo out; echo 'to err' >&2; exit 3; echo never"
            ])),
            vec![
                Step::Out(b"out\n".to_vec()),
                Step::Err(b"to err\n".to_vec()),
                Step::Exit(3)
            ]
        );
        assert_eq!(program(&s(&["sh", "-c", "exit 7"])), vec![Step::Exit(7)]);
        assert_eq!(program(&s(&["cat"])), vec![Step::Cat]);
        assert_eq!(program(&s(&["nope"]))[1], Step::Exit(127));
    }
}
