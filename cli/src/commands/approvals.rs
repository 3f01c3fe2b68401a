//! `sluice approvals [--watch]`: the pending requests and held statements the caller may
//! decide.
//!
//! Two kinds of things wait for an approver: grant requests (`g_…`, a role on a resource for a
//! time) and statements held inside live sessions (`s_…`, one SQL statement a guardrail rule
//! stopped until a person decides; the psql user sits waiting, and the broker denies it when its
//! timeout passes). Both come in the one [`ApprovalQueue`] and are shown, prompted for and
//! remembered the same way; only the decision's endpoint differs ([`super::decide`]).
//!
//! `--watch` long-polls `GET /v1/approvals?wait=25&version=V`: the broker answers when the
//! queue's version moves on (a new request or held statement, a vote, a decision, an expiry, or a
//! broker restart, which picks a new random version) or after 25 s. Each item not shown before is
//! printed and, on a terminal, decided through a prompt; ids that left the queue are forgotten,
//! so memory stays bounded by the queue however long the watch runs. The session token is read
//! (and renewed) per poll, and a broker that goes away is waited for ([`crate::retry`]).
//!
//! The prompt is the same every time, for people and for tests that drive a terminal: a select
//! titled `Decide ID` with `approve` (the default: Enter approves), `deny` and `skip`, in that
//! order; `deny` then asks `Reason for denying` and will not take an empty answer.

use super::decide::{HOLD_PREFIX, decide, decide_hold};
use super::grant::{WAIT_SECS, well_formed_id};
use crate::args::{ApprovalsArgs, GlobalArgs, Output};
use crate::auth::session::TokenSource;
use crate::client::Broker;
use crate::exit::{CliError, CliResult, Exit};
use crate::format::{self, clean};
use crate::present;
use crate::retry::Retry;
use dialoguer::console::Term;
use dialoguer::{Input, Select};
use sluice_shared::ErrorCode;
use sluice_shared::grants::{APPROVALS_PATH, ApprovalQueue, Grant, StatementHold};
use std::collections::HashSet;
use std::io::IsTerminal;

/// The prompt's choices, in this order: index 0 is the default.
const CHOICES: [&str; 3] = ["approve", "deny", "skip"];

pub async fn run(global: &GlobalArgs, args: ApprovalsArgs) -> CliResult<u8> {
    let broker = super::broker(global)?;
    if args.watch {
        return watch(&broker, args.output).await;
    }
    let token = TokenSource::Stored.get(&broker).await?;
    let queue: ApprovalQueue = broker.get(APPROVALS_PATH, Some(&token)).await?;
    match args.output {
        Output::Json => super::print_json(&queue),
        Output::Text if queue.pending.is_empty() && queue.statements.is_empty() => {
            eprintln!("Nothing is waiting for your decision.")
        }
        Output::Text => {
            print!("{}", listing(&queue, format::now()));
            eprintln!(
                "Decide with `sluice approve ID` or `sluice deny ID --reason TEXT`, or prompt by prompt with `sluice approvals --watch`."
            );
        }
    }
    Ok(Exit::Ok as u8)
}

/// The text listing: grant requests, then held statements, a blank line between blocks.
fn listing(queue: &ApprovalQueue, now: u64) -> String {
    let blocks = queue
        .pending
        .iter()
        .map(|g| present::request_block(g, now))
        .chain(
            queue
                .statements
                .iter()
                .map(|h| present::statement_block(h, now)),
        );
    blocks.collect::<Vec<_>>().join("\n")
}

/// One thing waiting for the caller's decision.
#[derive(Debug, Clone, Copy)]
enum Waiting<'a> {
    /// A statement held inside a live session (`s_…`).
    Statement(&'a StatementHold),
    /// A pending grant request (`g_…`).
    Request(&'a Grant),
}

impl Waiting<'_> {
    fn id(&self) -> &str {
        match self {
            Self::Statement(h) => &h.id,
            Self::Request(g) => &g.id,
        }
    }

    /// The id is safe to show, prompt with and put in a path, and names the right kind: a
    /// statement id without `s_` would be routed to grants by `sluice approve`.
    fn check(&self) -> CliResult<()> {
        let (ok, kind) = match self {
            Self::Statement(h) => (
                well_formed_id(&h.id) && h.id.starts_with(HOLD_PREFIX),
                "statement",
            ),
            Self::Request(g) => (well_formed_id(&g.id), "grant"),
        };
        if ok {
            Ok(())
        } else {
            Err(CliError::new(
                Exit::Failure,
                format!(
                    "the broker sent a malformed {kind} id '{}'",
                    clean(self.id())
                ),
            )
            .hint("the CLI and broker versions may not match"))
        }
    }
}

/// The ids already shown, limited to what is still waiting. Grant and statement ids share the
/// set: their prefixes (`g_`, `s_`) keep them apart.
#[derive(Debug, Default)]
struct Seen {
    /// Ids of requests and held statements already printed (and prompted for).
    ids: HashSet<String>,
}

impl Seen {
    /// What in `queue` was not shown before; forgets ids no longer waiting. Held statements come
    /// first: someone sits waiting in psql, and the hold is denied after minutes, not an hour.
    fn fresh<'a>(&mut self, queue: &'a ApprovalQueue) -> Vec<Waiting<'a>> {
        let waiting: Vec<Waiting<'a>> = queue
            .statements
            .iter()
            .map(Waiting::Statement)
            .chain(queue.pending.iter().map(Waiting::Request))
            .collect();
        let current: HashSet<&str> = waiting.iter().map(|w| w.id()).collect();
        self.ids.retain(|id| current.contains(id.as_str()));
        waiting
            .into_iter()
            .filter(|w| self.ids.insert(w.id().to_string()))
            .collect()
    }

    /// Shows `id` again at the next poll (its decision did not reach the broker).
    fn forget(&mut self, id: &str) {
        self.ids.remove(id);
    }
}

/// What the approver chose at the prompt.
#[derive(Debug)]
enum Choice {
    Approve,
    Deny(String),
    Skip,
    /// Ctrl-C at the prompt.
    Quit,
}

/// `--watch`: runs until Ctrl-C (exit 0) or an error that waiting will not fix.
async fn watch(broker: &Broker, output: Output) -> CliResult<u8> {
    let interactive =
        output == Output::Text && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    // Registered before the first prompt: dialoguer turns Ctrl-C at a prompt into SIGINT, which
    // must end the watch here (cursor restored) rather than kill the process mid-prompt.
    let mut interrupt =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(|e| CliError::new(Exit::Failure, format!("cannot handle Ctrl-C: {e}")))?;
    if output == Output::Text {
        eprintln!(
            "Watching for requests and held statements you may decide{}; Ctrl-C stops.",
            if interactive {
                ""
            } else {
                " (printing them only: not a terminal)"
            }
        );
    }
    let outcome = tokio::select! {
        outcome = watch_loop(broker, output, interactive) => outcome,
        _ = interrupt.recv() => Ok(()),
    };
    if interactive {
        let _ = Term::stderr().show_cursor();
    }
    outcome.map(|()| Exit::Ok as u8)
}

async fn watch_loop(broker: &Broker, output: Output, interactive: bool) -> CliResult<()> {
    let tokens = TokenSource::Stored;
    let mut seen = Seen::default();
    let mut version: Option<u64> = None;
    let mut retry = Retry::new();
    let say = |line: &str| eprintln!("{line}");
    loop {
        let path = match version {
            Some(v) => format!("{APPROVALS_PATH}?wait={WAIT_SECS}&version={v}"),
            None => APPROVALS_PATH.to_string(),
        };
        let polled = match tokens.get(broker).await {
            Ok(token) => {
                broker
                    .long_poll::<ApprovalQueue>(&path, &token, WAIT_SECS)
                    .await
            }
            Err(e) => Err(e),
        };
        let queue = match polled {
            Ok(queue) => {
                retry.succeeded(say);
                queue
            }
            // Before the first answer, a broker that cannot be reached is more likely a wrong
            // --broker than a restart: say so and stop, like every other command.
            Err(e) if e.is_transient() && version.is_some() => {
                retry.failed(&e, say).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        version = Some(queue.version);
        for item in seen.fresh(&queue) {
            if let Err(e) = item.check() {
                eprintln!("{}", e.line());
                continue;
            }
            match (output, item) {
                (Output::Json, Waiting::Request(grant)) => super::print_json(grant),
                (Output::Json, Waiting::Statement(hold)) => super::print_json(hold),
                (Output::Text, Waiting::Request(grant)) => {
                    println!();
                    print!("{}", present::request_block(grant, format::now()));
                }
                (Output::Text, Waiting::Statement(hold)) => {
                    println!();
                    print!("{}", present::statement_block(hold, format::now()));
                }
            }
            if !interactive {
                continue;
            }
            let id = item.id();
            let (approve, reason) = match prompt(id).await? {
                Choice::Approve => (true, None),
                Choice::Deny(reason) => (false, Some(reason)),
                Choice::Skip => {
                    let stays = match item {
                        Waiting::Request(_) => "it stays pending",
                        Waiting::Statement(_) => {
                            "it stays held until someone else decides or it times out"
                        }
                    };
                    eprintln!("Skipped {}; {stays}.", clean(id));
                    continue;
                }
                Choice::Quit => return Ok(()),
            };
            match settle(broker, &tokens, item, approve, reason).await {
                Ok(line) => println!("{line}"),
                Err(e) if e.is(ErrorCode::Conflict) || e.is(ErrorCode::GrantNotFound) => {
                    let gone = match item {
                        Waiting::Request(_) => {
                            "was decided by someone else or has expired meanwhile"
                        }
                        Waiting::Statement(_) => {
                            "was decided elsewhere, timed out or its session ended"
                        }
                    };
                    eprintln!("sluice: {} {gone} ({}); carrying on", clean(id), e.message)
                }
                Err(e) if e.is_transient() => {
                    eprintln!(
                        "sluice: your decision on {} did not reach the broker ({}); it will be shown again",
                        clean(id),
                        e.message
                    );
                    seen.forget(id);
                }
                // Refused for this item only (e.g. approving your own); the watch goes on.
                Err(e) => eprintln!("{}", e.line()),
            }
        }
    }
}

/// Sends the decision on `item` and says what it did: `approved g_1 (1 of 2); still pending`,
/// `approved s_1; it runs now in alice's session`.
async fn settle(
    broker: &Broker,
    tokens: &TokenSource,
    item: Waiting<'_>,
    approve: bool,
    reason: Option<String>,
) -> CliResult<String> {
    match item {
        Waiting::Request(grant) => {
            let decided = decide(broker, tokens, &grant.id, approve, reason).await?;
            Ok(present::decision(&decided, approve, format::now()))
        }
        Waiting::Statement(hold) => {
            let decided = decide_hold(broker, tokens, &hold.id, approve, reason).await?;
            Ok(present::hold_decision(
                &decided,
                Some(&hold.requester.subject),
            ))
        }
    }
}

/// Asks the approver on the terminal. dialoguer blocks, so it runs on the blocking pool while
/// the (single-threaded) runtime keeps handling signals.
async fn prompt(id: &str) -> CliResult<Choice> {
    let title = format!("Decide {}", clean(id));
    let asked = tokio::task::spawn_blocking(move || ask(&title))
        .await
        .map_err(|e| CliError::new(Exit::Failure, format!("the prompt failed: {e}")))?;
    match asked {
        Ok(choice) => Ok(choice),
        Err(dialoguer::Error::IO(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
            Ok(Choice::Quit)
        }
        Err(e) => Err(CliError::new(
            Exit::Failure,
            format!("the prompt failed: {e}"),
        )),
    }
}

fn ask(title: &str) -> dialoguer::Result<Choice> {
    let term = Term::stderr();
    let picked = Select::new()
        .with_prompt(title)
        .items(CHOICES)
        .default(0)
        .interact_on(&term)?;
    Ok(match CHOICES.get(picked).copied() {
        Some("approve") => Choice::Approve,
        Some("deny") => {
            let reason: String = Input::new()
                .with_prompt("Reason for denying")
                .validate_with(|s: &String| {
                    if s.trim().is_empty() {
                        Err("a reason is required to deny")
                    } else {
                        Ok(())
                    }
                })
                .interact_text_on(&term)?;
            Choice::Deny(reason.trim().to_string())
        }
        _ => Choice::Skip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_shared::grants::{GrantState, Requester};

    fn alice() -> Requester {
        Requester {
            subject: "alice".into(),
            groups: vec![],
            auth_method: "oidc".into(),
            provider: None,
            ci: Default::default(),
        }
    }

    fn pending(id: &str) -> Grant {
        Grant {
            id: id.into(),
            state: GrantState::Pending,
            requester: alice(),
            resource: "pg-main".into(),
            role: "write".into(),
            rule: "r".into(),
            reason: "fix".into(),
            ttl_secs: 3600,
            requested_ttl_secs: None,
            approval: None,
            votes: vec![],
            created_at: 0,
            activated_at: None,
            expires_at: None,
            ended_at: None,
            ended_by: None,
            end_reason: None,
        }
    }

    fn held(id: &str) -> StatementHold {
        StatementHold {
            id: id.into(),
            requester: alice(),
            resource: "pg-main".into(),
            role: "write".into(),
            grant: "g_a".into(),
            kind: "sql".into(),
            sql: "delete from orders".into(),
            rule: "approve-deletes".into(),
            reason: "deletes need a second pair of eyes".into(),
            approvers: vec!["dba".into()],
            created_at: 0,
            expires_at: 300,
        }
    }

    /// A queue holding the grant requests and held statements with these ids.
    fn queue(grants: &[&str], statements: &[&str]) -> ApprovalQueue {
        ApprovalQueue {
            version: 1,
            pending: grants.iter().map(|id| pending(id)).collect(),
            statements: statements.iter().map(|id| held(id)).collect(),
        }
    }

    fn ids(waiting: Vec<Waiting<'_>>) -> Vec<String> {
        waiting.iter().map(|w| w.id().to_string()).collect()
    }

    #[test]
    fn each_request_is_shown_once_and_forgotten_when_it_leaves() {
        let mut seen = Seen::default();
        assert_eq!(
            ids(seen.fresh(&queue(&["g_a", "g_b"], &[]))),
            ["g_a", "g_b"]
        );
        assert_eq!(
            ids(seen.fresh(&queue(&["g_a", "g_b", "g_c"], &[]))),
            ["g_c"]
        );
        // g_a and g_b were decided: nothing new, and they are no longer remembered.
        assert!(seen.fresh(&queue(&["g_c"], &[])).is_empty());
        assert_eq!(seen.ids.len(), 1);
        // A decision that did not reach the broker is shown again.
        seen.forget("g_c");
        assert_eq!(ids(seen.fresh(&queue(&["g_c"], &[]))), ["g_c"]);
    }

    #[test]
    fn held_statements_share_the_seen_set_and_come_first() {
        let mut seen = Seen::default();
        assert_eq!(ids(seen.fresh(&queue(&["g_a"], &["s_1"]))), ["s_1", "g_a"]);
        let q = queue(&["g_a"], &["s_1", "s_2"]);
        assert!(matches!(
            seen.fresh(&q)[..],
            [Waiting::Statement(StatementHold { id, .. })] if id == "s_2"
        ));
        // s_1 ran (or timed out): forgotten; the grant is still remembered.
        assert!(seen.fresh(&queue(&["g_a"], &["s_2"])).is_empty());
        let mut remembered: Vec<&str> = seen.ids.iter().map(String::as_str).collect();
        remembered.sort_unstable();
        assert_eq!(remembered, ["g_a", "s_2"]);
        // A statement decision that did not reach the broker is shown again, alone.
        seen.forget("s_2");
        assert_eq!(ids(seen.fresh(&queue(&["g_a"], &["s_2"]))), ["s_2"]);
    }

    #[test]
    fn malformed_ids_are_refused_and_statements_need_their_prefix() {
        let ok = held("s_1");
        assert!(Waiting::Statement(&ok).check().is_ok());
        // Without `s_`, `sluice approve` would send it to grants.
        let unprefixed = held("g_1");
        let err = Waiting::Statement(&unprefixed)
            .check()
            .expect_err("refused");
        assert!(
            err.message.contains("malformed statement id"),
            "{}",
            err.message
        );
        let hostile = held("s_1/../x");
        assert!(Waiting::Statement(&hostile).check().is_err());
        let grant = pending("g_1\x1b[2J");
        let err = Waiting::Request(&grant).check().expect_err("refused");
        assert!(!err.message.contains('\x1b'));
        assert!(Waiting::Request(&pending("g_1")).check().is_ok());
    }

    #[test]
    fn the_listing_shows_requests_then_held_statements() {
        let text = listing(&queue(&["g_a"], &["s_1"]), 12);
        let blocks: Vec<&str> = text.split("\n\n").collect();
        assert_eq!(blocks.len(), 2, "{text}");
        assert!(
            blocks[0].starts_with("g_a: write on pg-main for 1h\n"),
            "{text}"
        );
        assert!(
            blocks[1].starts_with(
                "s_1: a statement in alice's session on pg-main (role write, grant g_a)\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("  sql        delete from orders\n"),
            "{text}"
        );
        assert_eq!(listing(&queue(&[], &[]), 12), "");
    }

    #[test]
    fn the_prompt_offers_approve_first() {
        assert_eq!(CHOICES, ["approve", "deny", "skip"]);
    }
}
