//! `sluice approvals [--watch]`: the pending requests the caller may decide.
//!
//! `--watch` long-polls `GET /v1/approvals?wait=25&version=V`: the broker answers when the
//! queue's version moves on (a new request, a vote, a decision, an expiry, or a broker restart,
//! which picks a new random version) or after 25 s. Each request not shown before is printed and,
//! on a terminal, decided through a prompt; ids that left the queue are forgotten, so memory stays
//! bounded by the queue however long the watch runs. The session token is read (and renewed) per
//! poll, and a broker that goes away is waited for ([`crate::retry`]).
//!
//! The prompt is the same every time, for people and for tests that drive a terminal: a select
//! titled `Decide ID` with `approve` (the default: Enter approves), `deny` and `skip`, in that
//! order; `deny` then asks `Reason for denying` and will not take an empty answer.

use super::decide::decide;
use super::grant::{WAIT_SECS, checked};
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
use sluice_shared::grants::{APPROVALS_PATH, ApprovalQueue, Grant};
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
        Output::Text if queue.pending.is_empty() => {
            eprintln!("Nothing is waiting for your decision.")
        }
        Output::Text => {
            let now = format::now();
            for (i, grant) in queue.pending.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print!("{}", present::request_block(grant, now));
            }
            eprintln!(
                "Decide with `sluice approve ID` or `sluice deny ID --reason TEXT`, or prompt by prompt with `sluice approvals --watch`."
            );
        }
    }
    Ok(Exit::Ok as u8)
}

/// The ids already shown, limited to what is still pending.
#[derive(Debug, Default)]
struct Seen {
    /// Ids of pending requests already printed (and prompted for).
    ids: HashSet<String>,
}

impl Seen {
    /// The requests in `pending` not shown before; forgets ids that are no longer pending.
    fn fresh<'a>(&mut self, pending: &'a [Grant]) -> Vec<&'a Grant> {
        self.ids.retain(|id| pending.iter().any(|g| &g.id == id));
        pending
            .iter()
            .filter(|g| self.ids.insert(g.id.clone()))
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
            "Watching for requests you may decide{}; Ctrl-C stops.",
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
        for grant in seen.fresh(&queue.pending) {
            let grant = match checked(grant.clone()) {
                Ok(g) => g,
                Err(e) => {
                    eprintln!("{}", e.line());
                    continue;
                }
            };
            match output {
                Output::Json => super::print_json(&grant),
                Output::Text => {
                    println!();
                    print!("{}", present::request_block(&grant, format::now()));
                }
            }
            if !interactive {
                continue;
            }
            let (approve, reason) = match prompt(&grant.id).await? {
                Choice::Approve => (true, None),
                Choice::Deny(reason) => (false, Some(reason)),
                Choice::Skip => {
                    eprintln!("Skipped {}; it stays pending.", clean(&grant.id));
                    continue;
                }
                Choice::Quit => return Ok(()),
            };
            match decide(broker, &tokens, &grant.id, approve, reason).await {
                Ok(decided) => println!("{}", present::decision(&decided, approve, format::now())),
                Err(e) if e.is(ErrorCode::Conflict) || e.is(ErrorCode::GrantNotFound) => eprintln!(
                    "sluice: {} was decided by someone else or has expired meanwhile ({}); carrying on",
                    clean(&grant.id),
                    e.message
                ),
                Err(e) if e.is_transient() => {
                    eprintln!(
                        "sluice: your decision on {} did not reach the broker ({}); it will be shown again",
                        clean(&grant.id),
                        e.message
                    );
                    seen.forget(&grant.id);
                }
                // Refused for this request only (e.g. approving your own); the watch goes on.
                Err(e) => eprintln!("{}", e.line()),
            }
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

    fn pending(id: &str) -> Grant {
        Grant {
            id: id.into(),
            state: GrantState::Pending,
            requester: Requester {
                subject: "alice".into(),
                groups: vec![],
                auth_method: "oidc".into(),
                provider: None,
                ci: Default::default(),
            },
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

    fn ids(grants: Vec<&Grant>) -> Vec<&str> {
        grants.iter().map(|g| g.id.as_str()).collect()
    }

    #[test]
    fn each_request_is_shown_once_and_forgotten_when_it_leaves() {
        let mut seen = Seen::default();
        let (a, b, c) = (pending("g_a"), pending("g_b"), pending("g_c"));
        assert_eq!(ids(seen.fresh(&[a.clone(), b.clone()])), ["g_a", "g_b"]);
        assert_eq!(ids(seen.fresh(&[a.clone(), b.clone(), c.clone()])), ["g_c"]);
        // g_a and g_b were decided: nothing new, and they are no longer remembered.
        assert!(seen.fresh(std::slice::from_ref(&c)).is_empty());
        assert_eq!(seen.ids.len(), 1);
        // A decision that did not reach the broker is shown again.
        seen.forget("g_c");
        assert_eq!(ids(seen.fresh(&[c])), ["g_c"]);
    }

    #[test]
    fn the_prompt_offers_approve_first() {
        assert_eq!(CHOICES, ["approve", "deny", "skip"]);
    }
}
