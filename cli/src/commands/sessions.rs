//! `sluice sessions list | show | replay`: recorded sessions, read back through the broker.

use crate::args::{ExportFormat, GlobalArgs, Output, SessionsCommand};
use crate::auth::session::TokenSource;
use crate::exit::{CliResult, Exit};
use crate::format::{self, clean};
use sluice_shared::recording::{
    Body, Event, HostEvent, HttpEvent, SessionEvent, SqlEvent, TerminalEvent,
};
use sluice_shared::sessions::{SESSIONS_PATH, SessionDetail, SessionInfo, SessionList};
use std::io::Write;
use std::time::Duration;

pub async fn run(global: &GlobalArgs, command: SessionsCommand) -> CliResult<u8> {
    match command {
        SessionsCommand::List {
            resource,
            user,
            since,
            output,
        } => list(global, resource, user, since, output).await,
        SessionsCommand::Show { id, output } => {
            let detail = fetch(global, &id).await?;
            match output {
                Output::Json => super::print_json(&detail),
                Output::Text => print!("{}", timeline(&detail)),
            }
            Ok(Exit::Ok as u8)
        }
        SessionsCommand::Replay { id, speed } => {
            let detail = fetch(global, &id).await?;
            replay(&detail, speed).await;
            Ok(Exit::Ok as u8)
        }
        SessionsCommand::Export { id, format } => {
            let detail = fetch(global, &id).await?;
            print!("{}", export(&detail, format)?);
            Ok(Exit::Ok as u8)
        }
    }
}

/// The session in `format`: asciicast v2 for a terminal session, or JSON lines.
fn export(detail: &SessionDetail, format: ExportFormat) -> CliResult<String> {
    match format {
        ExportFormat::Jsonl => {
            let encode = |e: serde_json::Error| {
                crate::exit::CliError::new(Exit::Failure, format!("cannot encode the session: {e}"))
            };
            let mut out = serde_json::to_string(&detail.session).map_err(encode)?;
            out.push('\n');
            for event in &detail.events {
                out.push_str(&serde_json::to_string(event).map_err(encode)?);
                out.push('\n');
            }
            Ok(out)
        }
        ExportFormat::Asciicast => {
            let terminal = detail
                .events
                .iter()
                .any(|e| matches!(e.body, Body::Terminal(_)));
            if !terminal {
                return Err(crate::exit::CliError::new(
                    Exit::Usage,
                    format!(
                        "session {} ({}) has no terminal to export as asciicast",
                        clean(&detail.session.id),
                        clean(&detail.session.kind)
                    ),
                )
                .hint("use --format jsonl"));
            }
            let (width, height) = detail
                .events
                .iter()
                .find_map(|e| match &e.body {
                    // A client without a terminal asks for a 0x0 pty.
                    Body::Terminal(TerminalEvent::Resize { cols, rows })
                        if *cols > 0 && *rows > 0 =>
                    {
                        Some((*cols, *rows))
                    }
                    _ => None,
                })
                .unwrap_or((80, 24));
            let header = serde_json::json!({
                "version": 2,
                "width": width,
                "height": height,
                "timestamp": detail.session.started_at,
                "title": format!(
                    "{} {}@{}",
                    detail.session.id, detail.session.subject, detail.session.resource
                ),
            });
            let mut out = format!("{header}\n");
            for line in detail
                .events
                .iter()
                .filter_map(sluice_shared::recording::asciicast_event)
            {
                out.push_str(&line);
                out.push('\n');
            }
            Ok(out)
        }
    }
}

async fn list(
    global: &GlobalArgs,
    resource: Option<String>,
    user: Option<String>,
    since: Option<u64>,
    output: Output,
) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let token = TokenSource::Stored.get(&broker).await?;
    let mut query = Vec::new();
    if let Some(resource) = &resource {
        query.push(format!("resource={}", encode(resource)));
    }
    if let Some(user) = &user {
        query.push(format!("user={}", encode(user)));
    }
    if let Some(since) = since {
        query.push(format!("since={}", format::now().saturating_sub(since)));
    }
    let path = if query.is_empty() {
        SESSIONS_PATH.to_owned()
    } else {
        format!("{SESSIONS_PATH}?{}", query.join("&"))
    };
    let list: SessionList = broker.get(&path, Some(&token)).await?;
    match output {
        Output::Json => super::print_json(&list),
        Output::Text if list.sessions.is_empty() => eprintln!("No sessions match."),
        Output::Text => print!("{}", table(&list.sessions, format::now())),
    }
    Ok(Exit::Ok as u8)
}

async fn fetch(global: &GlobalArgs, id: &str) -> CliResult<SessionDetail> {
    let broker = super::broker(global)?;
    let token = TokenSource::Stored.get(&broker).await?;
    broker
        .get(&format!("{SESSIONS_PATH}/{}", encode(id)), Some(&token))
        .await
}

/// Percent-encodes a query or path value (anything but unreserved characters).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn table(sessions: &[SessionInfo], now: u64) -> String {
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                clean(&s.subject).into_owned(),
                clean(&s.resource).into_owned(),
                clean(&s.role).into_owned(),
                format::ago(s.started_at, now),
                match s.ended_at {
                    Some(end) => format::duration(end.saturating_sub(s.started_at)),
                    None if s.end.is_some() => "?".into(),
                    None => "running".into(),
                },
                s.statements.to_string(),
                format::truncate(&clean(s.end.as_deref().unwrap_or("-")), 40),
            ]
        })
        .collect();
    format::table(
        &[
            "ID",
            "USER",
            "RESOURCE",
            "ROLE",
            "STARTED",
            "LASTED",
            "STATEMENTS",
            "END",
        ],
        &rows,
    )
}

/// The header block of `show`.
fn summary(s: &SessionInfo) -> String {
    let mut out = format!(
        "Session {}\n  who:       {} ({})\n  resource:  {} ({}) as {} on grant {}\n  client:    {}\n  started:   {}\n",
        s.id,
        clean(&s.subject),
        clean(&s.auth_method),
        clean(&s.resource),
        clean(&s.kind),
        clean(&s.role),
        s.grant,
        clean(&s.client),
        format::clock(s.started_at, format::now()),
    );
    if !s.ci.is_empty() {
        let claims: Vec<String> =
            s.ci.iter()
                .map(|(k, v)| format!("{}={}", clean(k), clean(v)))
                .collect();
        out.push_str(&format!("  ci:        {}\n", claims.join(" ")));
    }
    let end = match (&s.end, s.ended_at) {
        (Some(end), Some(at)) => format!(
            "{} after {} ({} bytes up, {} down)",
            clean(end),
            format::duration(at.saturating_sub(s.started_at)),
            s.bytes_up,
            s.bytes_down
        ),
        (Some(end), None) => clean(end).into_owned(),
        (None, _) => "still running".into(),
    };
    out.push_str(&format!(
        "  ended:     {end}\n  recording: {}\n",
        clean(&s.recording)
    ));
    out
}

/// One line per event (a statement with its decision takes two), with its time since the
/// start; `None` for events this build does not know. Everything from the recording is
/// [`clean`]ed: terminal bytes in particular are shown as text with control characters escaped,
/// never sent to the terminal as they are.
fn event_line(event: &Event) -> Option<String> {
    let at = format!("{:>9}", format!("+{:.3}s", event.t as f64 / 1000.0));
    let line = match &event.body {
        Body::Session(session) => session_line(&at, session),
        Body::Sql(sql) => sql_line(&at, sql),
        Body::Terminal(terminal) => terminal_line(&at, terminal),
        Body::Http(http) => http_line(&at, http),
        Body::Host(host) => host_line(&at, host),
        Body::Unknown => return None,
    };
    Some(line)
}

fn session_line(at: &str, event: &SessionEvent) -> String {
    match event {
        SessionEvent::Note { message } => format!("{at}     note: {}", clean(message)),
        SessionEvent::Login { user, superuser } => format!(
            "{at}  logged in: as {}{}",
            clean(user),
            if *superuser {
                " (a SUPERUSER: the guardrails alone limit this session)"
            } else {
                ""
            }
        ),
        SessionEvent::End {
            reason,
            bytes_up,
            bytes_down,
            statements,
        } => format!(
            "{at}  session ended: {} ({statements} statements, {bytes_up} bytes up, {bytes_down} down)",
            clean(reason)
        ),
    }
}

fn sql_line(at: &str, event: &SqlEvent) -> String {
    match event {
        SqlEvent::Statement {
            seq,
            sql,
            protocol,
            decision,
        } => {
            let via = if protocol == "extended" {
                " (extended)"
            } else {
                ""
            };
            format!(
                "{at}  #{seq} {}{via}\n{:>11}-> {}",
                clean(sql),
                "",
                clean(&decision.describe())
            )
        }
        SqlEvent::Result {
            tag, duration_ms, ..
        } => format!("{at}     {} in {duration_ms} ms", clean(tag)),
        SqlEvent::Error { code, message, .. } => {
            format!("{at}     ERROR {} {}", clean(code), clean(message))
        }
        SqlEvent::Rows {
            columns,
            rows,
            truncated,
            ..
        } => {
            let mut text = format!("{at}     rows: {}", clean(&columns.join(" | ")));
            for row in rows {
                let values: Vec<String> = row
                    .iter()
                    .map(|v| {
                        v.as_deref()
                            .map_or("NULL".into(), |v| clean(v).into_owned())
                    })
                    .collect();
                text.push_str(&format!("\n{:>16}{}", "", values.join(" | ")));
            }
            if *truncated {
                text.push_str(&format!("\n{:>16}(more rows not recorded)", ""));
            }
            text
        }
    }
}

fn terminal_line(at: &str, event: &TerminalEvent) -> String {
    match event {
        TerminalEvent::Output { data } => {
            format!("{at}     output: {}", clean(&String::from_utf8_lossy(data)))
        }
        TerminalEvent::Input { data } => {
            format!("{at}     input: {}", clean(&String::from_utf8_lossy(data)))
        }
        TerminalEvent::Resize { cols, rows } => format!("{at}     terminal {cols}x{rows}"),
    }
}

fn host_line(at: &str, event: &HostEvent) -> String {
    match event {
        HostEvent::Exec { command, decision } => format!(
            "{at}  $ {}\n{:>11}-> {}",
            clean(command),
            "",
            clean(&decision.describe())
        ),
        HostEvent::Exit { status } => format!("{at}     exit status {status}"),
        HostEvent::File {
            op,
            path,
            to,
            bytes,
            outcome,
        } => {
            let to = to
                .as_deref()
                .map(|to| format!(" -> {}", clean(to)))
                .unwrap_or_default();
            let bytes = bytes.map(|b| format!(", {b} bytes")).unwrap_or_default();
            format!(
                "{at}     file {} {}{to}{bytes}: {}",
                clean(op),
                clean(path),
                clean(outcome)
            )
        }
        HostEvent::Forward { to, allowed } => format!(
            "{at}     forward to {}: {}",
            clean(to),
            if *allowed { "opened" } else { "refused" }
        ),
    }
}

fn http_line(at: &str, event: &HttpEvent) -> String {
    match event {
        HttpEvent::HttpRequest {
            seq,
            method,
            path,
            query,
            decision,
        } => {
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{query}")
            };
            format!(
                "{at}  #{seq} {} {}{}\n{:>11}-> {}",
                clean(method),
                clean(path),
                clean(&query),
                "",
                clean(&decision.describe())
            )
        }
        HttpEvent::HttpResponse {
            status,
            bytes,
            duration_ms,
            body,
            body_truncated,
            ..
        } => {
            let mut line = format!("{at}     {status} ({bytes} bytes) in {duration_ms} ms");
            if let Some(body) = body {
                let shown: String = body.chars().take(BODY_SHOWN).collect();
                let more = *body_truncated || body.chars().count() > BODY_SHOWN;
                line.push_str(&format!(
                    "\n{:>11}{}{}",
                    "",
                    clean(&shown),
                    if more { " …" } else { "" }
                ));
            }
            line
        }
    }
}

/// How much of a recorded response body the timeline shows (`--output json` has all of it).
const BODY_SHOWN: usize = 200;

fn timeline(detail: &SessionDetail) -> String {
    let mut out = summary(&detail.session);
    out.push('\n');
    for event in &detail.events {
        if let Some(line) = event_line(event) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    if let Some(why) = &detail.truncated {
        out.push_str(&format!("(the recording stops here: {})\n", clean(why)));
    }
    out
}

/// Prints each event when it happened, `speed` times faster (0: at once).
async fn replay(detail: &SessionDetail, speed: f64) {
    let terminal = detail
        .events
        .iter()
        .any(|e| matches!(e.body, Body::Terminal(TerminalEvent::Output { .. })));
    if terminal {
        return replay_terminal(detail, speed).await;
    }
    print!("{}", summary(&detail.session));
    println!();
    let mut last = 0u64;
    for event in &detail.events {
        if speed > 0.0 && event.t > last {
            let wait = (event.t - last) as f64 / 1000.0 / speed;
            tokio::time::sleep(Duration::from_secs_f64(wait.min(3600.0))).await;
        }
        last = last.max(event.t);
        if let Some(line) = event_line(event) {
            println!("{line}");
            let _ = std::io::stdout().flush();
        }
    }
    if let Some(why) = &detail.truncated {
        println!("(the recording stops here: {})", clean(why));
    }
}

/// A terminal session played back as the person saw it: the recorded output bytes written to
/// the terminal at their recorded pace (the summary and the end go to stderr).
/// `sluice sessions show` lists the same events with control characters escaped.
async fn replay_terminal(detail: &SessionDetail, speed: f64) {
    eprint!("{}", summary(&detail.session));
    eprintln!("(replaying the terminal at {speed}x; `sluice sessions show` lists the events)\n");
    let mut last = 0u64;
    for event in &detail.events {
        let Body::Terminal(TerminalEvent::Output { data }) = &event.body else {
            continue;
        };
        if speed > 0.0 && event.t > last {
            let wait = (event.t - last) as f64 / 1000.0 / speed;
            // Idle stretches are shortened to 2 s, as terminal players do.
            tokio::time::sleep(Duration::from_secs_f64(wait.min(2.0))).await;
        }
        last = last.max(event.t);
        let mut out = std::io::stdout().lock();
        if out.write_all(data).and_then(|()| out.flush()).is_err() {
            return;
        }
    }
    eprintln!("\n(end of the recording)");
    if let Some(why) = &detail.truncated {
        eprintln!("(the recording stops here: {})", clean(why));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_without_a_terminal_is_not_exported_as_asciicast() {
        let detail: SessionDetail = serde_json::from_str(OLD_DETAIL).expect("old detail parses");
        let err = export(&detail, ExportFormat::Asciicast).expect_err("no terminal");
        assert!(err.message.contains("has no terminal"), "{}", err.message);
        let lines = export(&detail, ExportFormat::Jsonl).expect("jsonl");
        assert_eq!(lines.lines().count(), 1 + detail.events.len());
    }

    /// `GET /v1/sessions/{id}` as a broker answered before events were typed per family: the
    /// recording's lines as version 1 wrote them, inside the session detail.
    const OLD_DETAIL: &str = r#"{
      "session": {"id":"ses_1","subject":"alice","auth_method":"oidc","resource":"orders-db",
        "kind":"postgres","role":"read","grant":"g-7","client":"10.0.0.5:51324",
        "started_at":1767225600,"ended_at":1767225609,"bytes_up":310,"bytes_down":2048,
        "statements":2,"end":"client closed","recording":"recorded"},
      "events": [
        {"t":12,"type":"statement","seq":1,"sql":"select * from orders limit 3","protocol":"simple","decision":{"outcome":"allowed"}},
        {"t":15,"type":"rows","seq":1,"columns":["id","email"],"rows":[["1","a***@example.com"],["2",null]],"truncated":true},
        {"t":15,"type":"result","seq":1,"tag":"SELECT 3","rows":3,"duration_ms":3},
        {"t":20,"type":"hologram","x":1},
        {"t":40,"type":"statement","seq":2,"sql":"drop table orders","protocol":"extended","decision":{"outcome":"blocked","rule":"no-ddl","message":"DDL is not allowed"}},
        {"t":41,"type":"error","seq":2,"code":"42501","message":"blocked"},
        {"t":50,"type":"note","message":"3 events dropped"},
        {"t":9001,"type":"end","reason":"client closed","bytes_up":310,"bytes_down":2048,"statements":2}
      ]
    }"#;

    fn events_of(text: &str) -> String {
        let (_, events) = text.split_once("\n\n").unwrap_or_default();
        events.to_owned()
    }

    #[test]
    fn an_old_recording_renders_as_before() {
        let detail: SessionDetail = serde_json::from_str(OLD_DETAIL).expect("old detail parses");
        assert_eq!(detail.events[3].body, Body::Unknown);
        assert_eq!(
            events_of(&timeline(&detail)),
            concat!(
                "  +0.012s  #1 select * from orders limit 3\n",
                "           -> allowed\n",
                "  +0.015s     rows: id | email\n",
                "                1 | a***@example.com\n",
                "                2 | NULL\n",
                "                (more rows not recorded)\n",
                "  +0.015s     SELECT 3 in 3 ms\n",
                "  +0.040s  #2 drop table orders (extended)\n",
                "           -> blocked by no-ddl\n",
                "  +0.041s     ERROR 42501 blocked\n",
                "  +0.050s     note: 3 events dropped\n",
                "  +9.001s  session ended: client closed (2 statements, 310 bytes up, 2048 down)\n",
            )
        );
    }

    #[test]
    fn terminal_and_http_events_render_cleaned() {
        let at = |t, body: Body| Event { t, n: None, body };
        let lines: Vec<String> = [
            at(0, TerminalEvent::Resize { cols: 80, rows: 24 }.into()),
            at(
                5,
                TerminalEvent::Output {
                    data: b"\x1b[31mred\xff\r\n".to_vec(),
                }
                .into(),
            ),
            at(
                7,
                HttpEvent::HttpRequest {
                    seq: 1,
                    method: "GET".into(),
                    path: "/api/v1/pods".into(),
                    query: "limit=5".into(),
                    decision: sluice_shared::recording::Decision::Allowed,
                }
                .into(),
            ),
            at(
                9,
                HttpEvent::HttpResponse {
                    seq: 1,
                    status: 200,
                    bytes: 512,
                    duration_ms: 2,
                    body: None,
                    body_truncated: false,
                }
                .into(),
            ),
        ]
        .iter()
        .filter_map(event_line)
        .collect();
        assert_eq!(
            lines,
            [
                "  +0.000s     terminal 80x24",
                "  +0.005s     output: \\u{1b}[31mred\u{fffd}\\u{d}\\u{a}",
                "  +0.007s  #1 GET /api/v1/pods?limit=5\n           -> allowed",
                "  +0.009s     200 (512 bytes) in 2 ms",
            ]
        );
    }
}
