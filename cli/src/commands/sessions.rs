//! `sluice sessions list | show | replay`: recorded sessions, read back through the broker.

use crate::args::{GlobalArgs, Output, SessionsCommand};
use crate::auth::session::TokenSource;
use crate::exit::{CliResult, Exit};
use crate::format::{self, clean};
use sluice_shared::recording::{Body, Event};
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

/// One line per event, with its time since the start.
fn event_line(event: &Event) -> Option<String> {
    let at = format!("{:>9}", format!("+{:.3}s", event.t as f64 / 1000.0));
    let line = match &event.body {
        Body::Statement {
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
        Body::Result {
            tag, duration_ms, ..
        } => format!("{at}     {} in {duration_ms} ms", clean(tag)),
        Body::Error { code, message, .. } => {
            format!("{at}     ERROR {} {}", clean(code), clean(message))
        }
        Body::Rows {
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
        Body::Output { data } => format!("{at}     output: {}", clean(data)),
        Body::Input { data } => format!("{at}     input: {}", clean(data)),
        Body::Resize { cols, rows } => format!("{at}     terminal {cols}x{rows}"),
        Body::Note { message } => format!("{at}     note: {}", clean(message)),
        Body::End {
            reason,
            bytes_up,
            bytes_down,
            statements,
        } => format!(
            "{at}  session ended: {} ({statements} statements, {bytes_up} bytes up, {bytes_down} down)",
            clean(reason)
        ),
        Body::Unknown => return None,
    };
    Some(line)
}

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
