//! `sluice audit verify | export`: fetch the broker's hash-chained audit trail page by page and
//! check it here with the shared verifier, or write it out as JSON Lines for a SIEM.
//!
//! Verification happens on the auditor's machine, against the public key the broker reports
//! (or one pinned with `--key-id`), holding one page at a time. The broker only serves rows; it
//! never says whether they are intact.

use crate::args::{AuditCommand, AuditExportArgs, GlobalArgs, Output};
use crate::client::Broker;
use crate::exit::{CliError, CliResult, Exit};
use crate::format;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sluice_shared::audit::{AUDIT_PATH, AuditPage, MAX_PAGE, Report, Verifier, key_id};
use sluice_shared::{ErrorCode, Secret};
use std::io::Write;

pub async fn run(global: &GlobalArgs, command: AuditCommand) -> CliResult<u8> {
    match command {
        AuditCommand::Verify { key_id, output } => verify(global, key_id, output).await,
        AuditCommand::Export(args) => export(global, args).await,
    }
}

/// What `verify --output json` prints.
#[derive(Debug, Serialize)]
struct Verdict<'a> {
    /// `true` when no link is broken.
    intact: bool,
    /// What was examined and what broke; `report.broken.kind` says how.
    #[serde(flatten)]
    report: &'a Report,
    /// `report.broken` in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    /// The key the checkpoints were checked against.
    key_id: &'a str,
}

/// `sluice audit verify`.
async fn verify(global: &GlobalArgs, pinned: Option<String>, output: Output) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let token = crate::auth::session::token(&broker).await?;
    let mut pages = Pages::new(&broker, &token, None);
    let mut verifier: Option<(Verifier, String)> = None;
    while let Some(page) = pages.next().await? {
        let (verifier, _) = match &mut verifier {
            Some(v) => v,
            None => verifier.insert((Verifier::new(&public_key(&page)?), page.key_id.clone())),
        };
        verifier.checkpoints(&page.checkpoints);
        verifier.records(&page.records);
    }
    let Some((verifier, key)) = verifier else {
        return Err(
            CliError::new(Exit::Failure, "the broker sent no page of the audit trail")
                .hint("the CLI and broker versions may not match"),
        );
    };
    if let Some(pinned) = pinned
        && pinned != key
    {
        return Err(CliError::new(
            Exit::AuditBroken,
            format!(
                "the broker signs its audit checkpoints with key {key}, not with {pinned}, the key \
                 you expected"
            ),
        )
        .hint(
            "if the broker's signing key was rotated, check the new id with its operator; \
             otherwise this is not the broker (or the key) you trust",
        ));
    }
    let report = verifier.finish();
    let message = report.broken.as_ref().map(ToString::to_string);
    match output {
        Output::Json => super::print_json(&Verdict {
            intact: report.intact(),
            report: &report,
            message: message.clone(),
            key_id: &key,
        }),
        Output::Text if report.intact() => {
            for line in intact_lines(&report, &key, format::now()) {
                println!("{line}");
            }
        }
        Output::Text => {}
    }
    match message {
        None => Ok(Exit::Ok as u8),
        Some(message) => Err(CliError::new(
            Exit::AuditBroken,
            format!("the audit trail is broken: {message}"),
        )
        .hint(
            "the records before it are intact; compare with an earlier `sluice audit export` or \
             a backup of the broker's store, and treat the broker's store as compromised",
        )),
    }
}

/// The lines printed for an intact trail.
fn intact_lines(report: &Report, key: &str, now: u64) -> Vec<String> {
    let plural = |n: u64, one: &str, many: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    };
    let signed = match report.last_checkpoint {
        Some(c) => {
            let at = c.at / 1000;
            format!(
                "last signed at seq {} ({}, {}), key {key}",
                c.seq,
                format::clock(at, now),
                format::ago(at, now)
            )
        }
        None => "nothing signed yet".to_string(),
    };
    let mut lines = vec![format!(
        "audit trail intact: {}, {}, {signed}",
        plural(report.records, "record", "records"),
        plural(report.checkpoints, "checkpoint", "checkpoints"),
    )];
    let unsigned = report.unsigned();
    if unsigned > 0 {
        let first = report.last_seq - unsigned + 1;
        let range = if unsigned == 1 {
            format!("record {first} is")
        } else {
            format!("records {first}..{} are", report.last_seq)
        };
        lines.push(format!(
            "note: {range} newer than the last checkpoint and not signed yet; the broker signs \
             every 100 records or minute"
        ));
    }
    lines
}

/// `sluice audit export`.
async fn export(global: &GlobalArgs, args: AuditExportArgs) -> CliResult<u8> {
    let now_ms = format::now().saturating_mul(1000);
    let since = args.since.to_ms(now_ms);
    let until = args.until.map_or(u64::MAX, |u| u.to_ms(now_ms));
    if until <= since {
        return Err(CliError::new(
            Exit::Usage,
            "--until must be later than --since: nothing to export",
        ));
    }
    let broker = super::broker(global)?;
    let token = crate::auth::session::token(&broker).await?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| {
                CliError::new(
                    Exit::Usage,
                    format!("cannot create {}: {e}", path.display()),
                )
                .hint("check the directory exists and is writable")
            })?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut pages = Pages::new(&broker, &token, Some(since));
    let mut written = 0u64;
    while let Some(page) = pages.next().await? {
        for record in page.records.iter().filter(|r| r.at < until) {
            let line = serde_json::to_string(record).map_err(|e| {
                CliError::new(
                    Exit::Failure,
                    format!("cannot encode record {}: {e}", record.seq),
                )
            })?;
            if let Err(e) = writeln!(out, "{line}") {
                return write_failed(&e, args.output.as_deref());
            }
            written += 1;
        }
        // Times follow seqs (to the millisecond, across threads), so a page entirely past
        // `until` means the rest is too.
        if page.records.first().is_some_and(|r| r.at >= until) {
            break;
        }
    }
    if let Err(e) = out.flush() {
        return write_failed(&e, args.output.as_deref());
    }
    if let Some(path) = &args.output {
        eprintln!("wrote {written} audit records to {}", path.display());
    }
    Ok(Exit::Ok as u8)
}

/// A failed write: a closed pipe (`| head`) is a normal end, anything else an error.
fn write_failed(e: &std::io::Error, path: Option<&std::path::Path>) -> CliResult<u8> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return Ok(Exit::Ok as u8);
    }
    let target = path.map_or("standard output".to_string(), |p| p.display().to_string());
    Err(CliError::new(
        Exit::Failure,
        format!("cannot write to {target}: {e}"),
    ))
}

/// The broker's public key from a page, checked against the key id it comes with.
fn public_key(page: &AuditPage) -> CliResult<Vec<u8>> {
    let unusable = || {
        CliError::new(
            Exit::AuditBroken,
            "the broker reports a checkpoint key that is not a valid Ed25519 public key (or \
             does not match its own key id)",
        )
        .hint("the broker or its answer was tampered with; ask its operator")
    };
    let key = URL_SAFE_NO_PAD
        .decode(&page.public_key)
        .map_err(|_| unusable())?;
    if key.len() != 32 || key_id(&key) != page.key_id {
        return Err(unusable());
    }
    Ok(key)
}

/// The pages of `GET /v1/audit`, oldest first, until the end of the trail.
struct Pages<'a> {
    broker: &'a Broker,
    token: &'a Secret<String>,
    since: Option<u64>,
    /// The last seq received.
    after: u64,
    /// The key of the first page; every page must carry the same.
    key: Option<String>,
    /// No page after the last (not full) one.
    done: bool,
}

impl<'a> Pages<'a> {
    fn new(broker: &'a Broker, token: &'a Secret<String>, since: Option<u64>) -> Self {
        Self {
            broker,
            token,
            since,
            after: 0,
            key: None,
            done: false,
        }
    }

    async fn next(&mut self) -> CliResult<Option<AuditPage>> {
        if self.done {
            return Ok(None);
        }
        let mut path = format!("{AUDIT_PATH}?after={}&limit={MAX_PAGE}", self.after);
        if let Some(since) = self.since {
            path.push_str(&format!("&since={since}"));
        }
        let page: AuditPage = self
            .broker
            .get(&path, Some(self.token))
            .await
            .map_err(|e| {
                if e.is(ErrorCode::Forbidden) {
                    e.hint(
                        "ask the broker's administrator to add you or your group to \
                         policy.auditors",
                    )
                } else {
                    e
                }
            })?;
        match &self.key {
            None => self.key = Some(page.key_id.clone()),
            Some(key) if *key != page.key_id => {
                return Err(CliError::new(
                    Exit::Failure,
                    "the broker's checkpoint key changed while the trail was being read",
                )
                .hint("the broker restarted with another key; run the command again"));
            }
            Some(_) => {}
        }
        self.done = page.records.len() < MAX_PAGE as usize;
        if let Some(last) = page.records.last() {
            self.after = last.seq;
        }
        Ok(Some(page))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_shared::audit::SignedAt;

    fn report(records: u64, last_checkpoint: Option<(u64, u64)>) -> Report {
        Report {
            records,
            checkpoints: u64::from(last_checkpoint.is_some()),
            last_seq: records,
            last_checkpoint: last_checkpoint.map(|(seq, at)| SignedAt { seq, at }),
            broken: None,
        }
    }

    #[test]
    fn an_intact_trail_says_what_was_checked_and_what_is_not_signed_yet() {
        let now = 1_772_323_200;
        let lines = intact_lines(&report(52, Some((39, (now - 180) * 1000))), "k1", now);
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with(
                "audit trail intact: 52 records, 1 checkpoint, last signed at seq 39 ("
            ),
            "{}",
            lines[0]
        );
        assert!(lines[0].ends_with(", 3m ago), key k1"), "{}", lines[0]);
        assert_eq!(
            lines[1],
            "note: records 40..52 are newer than the last checkpoint and not signed yet; the \
             broker signs every 100 records or minute"
        );
        let lines = intact_lines(&report(39, Some((39, now * 1000))), "k1", now);
        assert_eq!(lines.len(), 1);
        assert_eq!(
            intact_lines(&report(0, None), "k1", now),
            ["audit trail intact: 0 records, 0 checkpoints, nothing signed yet"]
        );
    }

    #[test]
    fn a_public_key_must_match_its_id() {
        let raw = [7u8; 32];
        let mut page = AuditPage {
            records: Vec::new(),
            checkpoints: Vec::new(),
            public_key: URL_SAFE_NO_PAD.encode(raw),
            key_id: key_id(&raw),
            head_seq: 0,
        };
        assert_eq!(public_key(&page).expect("valid"), raw);
        page.key_id = "0123456789abcdef".into();
        assert_eq!(public_key(&page).unwrap_err().exit, Exit::AuditBroken);
        page.public_key = "!!".into();
        assert!(public_key(&page).is_err());
    }
}
