//! `sluice grant request | wait | list | revoke`, and the ask-then-wait that `connect` and `run`
//! share.
//!
//! Waiting is a long-poll: `GET /v1/grants/{id}?wait=25&state=pending&votes=N` answers as soon
//! as the grant leaves `pending` or gets a vote beyond the N already seen (or after 25 s, and the
//! CLI asks again). Each new vote is reported as it arrives; a broker that predates `votes`
//! ignores it, and its votes are then reported with the next answer. A broker restart meanwhile
//! is ridden out ([`crate::retry`]).

use crate::args::{GlobalArgs, GrantCommand, GrantRequestArgs, Output};
use crate::auth::session::TokenSource;
use crate::client::Broker;
use crate::exit::{CliError, CliResult, Exit};
use crate::format::{self, clean};
use crate::present;
use crate::progress::Progress;
use crate::retry::Retry;
use sluice_shared::grants::{
    Decision, GRANTS_PATH, Grant, GrantList, GrantRequest, GrantResponse, GrantState,
};

/// How long each long-poll asks the broker to hold the request.
pub const WAIT_SECS: u64 = 25;

pub async fn run(global: &GlobalArgs, command: GrantCommand) -> CliResult<u8> {
    match command {
        GrantCommand::Request(args) => request(global, args).await,
        GrantCommand::Wait { id, output } => wait(global, &id, output).await,
        GrantCommand::List { all, output } => list(global, all, output).await,
        GrantCommand::Revoke { id, reason, output } => {
            let broker = super::broker(global)?;
            let grant = revoke(&broker, &TokenSource::Stored, &id, reason).await?;
            match output {
                Output::Json => super::print_json(&grant),
                Output::Text => println!("{}", present::outcome(&grant, format::now())),
            }
            Ok(Exit::Ok as u8)
        }
    }
}

/// `sluice grant request`: ask, report, and with `--wait` wait for the decision.
async fn request(global: &GlobalArgs, args: GrantRequestArgs) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let tokens = TokenSource::Stored;
    let body = GrantRequest {
        resource: args.resource,
        role: Some(args.role),
        ttl_secs: args.ttl,
        reason: args.reason,
        reuse: false,
    };
    let response = ask(&broker, &tokens, &body).await?;
    let grant = response.grant;
    if args.output == Output::Text {
        for line in report(&grant, false, args.wait, format::now()) {
            println!("{line}");
        }
    }
    let grant = if args.wait && grant.state == GrantState::Pending {
        let id = grant.id.clone();
        wait_interruptibly(&broker, &tokens, grant)
            .await?
            .ok_or_else(|| interrupted(&id))?
    } else {
        grant
    };
    finish(
        GrantResponse {
            grant,
            reused: response.reused,
        },
        args.wait,
        args.output,
    )
}

/// `sluice grant wait ID`.
async fn wait(global: &GlobalArgs, id: &str, output: Output) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let tokens = TokenSource::Stored;
    let token = tokens.get(&broker).await?;
    let path = format!("{GRANTS_PATH}/{}", super::encode_segment(id));
    let grant = checked(broker.get::<Grant>(&path, Some(&token)).await?)?;
    let grant = if grant.state == GrantState::Pending {
        if output == Output::Text {
            println!("{}", present::outcome(&grant, format::now()));
        }
        wait_interruptibly(&broker, &tokens, grant)
            .await?
            .ok_or_else(|| interrupted(id))?
    } else {
        grant
    };
    finish(
        GrantResponse {
            grant,
            reused: false,
        },
        true,
        output,
    )
}

/// Prints where a request ended up; the exit code is 0 unless it had to become active (or had
/// already ended).
fn finish(response: GrantResponse, waited: bool, output: Output) -> CliResult<u8> {
    let grant = &response.grant;
    if output == Output::Json {
        super::print_json(&response);
    }
    let ok = match grant.state {
        GrantState::Active => true,
        GrantState::Pending | GrantState::Unknown => !waited,
        GrantState::Denied | GrantState::Expired | GrantState::Revoked => false,
    };
    if !ok {
        return Err(ended(grant));
    }
    if waited && output == Output::Text {
        println!("{}", present::outcome(grant, format::now()));
    }
    Ok(Exit::Ok as u8)
}

/// `sluice grant list [--all]`.
async fn list(global: &GlobalArgs, all: bool, output: Output) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let token = TokenSource::Stored.get(&broker).await?;
    let path = format!("{GRANTS_PATH}?all={all}");
    let list: GrantList = broker.get(&path, Some(&token)).await?;
    match output {
        Output::Json => super::print_json(&list),
        Output::Text if list.grants.is_empty() => {
            if all {
                eprintln!("You have no grants.");
            } else {
                eprintln!("You have no active or pending grants (--all shows ended ones too).");
            }
        }
        Output::Text => print!("{}", present::grant_table(&list.grants, format::now())),
    }
    Ok(Exit::Ok as u8)
}

/// `POST /v1/grants`: the answer, with its grant id checked.
pub async fn ask(
    broker: &Broker,
    tokens: &TokenSource,
    request: &GrantRequest,
) -> CliResult<GrantResponse> {
    let token = tokens.get(broker).await?;
    let mut response: GrantResponse = broker.post(GRANTS_PATH, &token, request).await?;
    response.grant = checked(response.grant)?;
    Ok(response)
}

/// What to tell the requester about a grant they just asked for (or reused): its id and state,
/// the TTL cap if there was one, and for a pending one who must approve and (unless this
/// command waits anyway) how to wait.
pub fn report(grant: &Grant, reused: bool, will_wait: bool, now: u64) -> Vec<String> {
    let what = format!("{} on {}", clean(&grant.role), clean(&grant.resource));
    let id = clean(&grant.id);
    let mut lines = Vec::new();
    match grant.state {
        GrantState::Active if reused => lines.push(format!(
            "Using your active grant {id}: {what}{}.",
            grant
                .expires_at
                .map(|at| format!(" until {}", present::until(at, now)))
                .unwrap_or_default()
        )),
        GrantState::Pending if reused => lines.push(format!(
            "Your request {id} for {what} is already waiting for approval."
        )),
        GrantState::Active => lines.push(format!(
            "Granted {what} for {}: {id} is active{}.",
            format::duration(grant.ttl_secs),
            grant
                .expires_at
                .map(|at| format!(" until {}", present::until(at, now)))
                .unwrap_or_default()
        )),
        GrantState::Pending => lines.push(format!(
            "Requested {what} for {}: {id} is pending.",
            format::duration(grant.ttl_secs)
        )),
        _ => lines.push(format!("{}.", present::outcome(grant, now))),
    }
    // A reused grant was capped when it was asked for, maybe with another --ttl.
    if let Some(note) = present::cap_note(grant).filter(|_| !reused) {
        lines.push(format!("TTL capped: {note}."));
    }
    if grant.state == GrantState::Pending {
        if let Some(rule) = &grant.approval {
            lines.push(format!(
                "It needs {}; it lapses at {} if nobody decides.",
                present::approvers(rule),
                present::until(rule.expires_at, now)
            ));
        }
        if !will_wait {
            lines.push(format!(
                "Wait for the decision with `sluice grant wait {id}` (approvers see it in `sluice approvals`)."
            ));
        }
    }
    lines
}

/// For `connect` and `run`: the grant once it is active, waiting for approvers if it is pending
/// (progress on stderr); an ended grant is an error (exit 15), and so is Ctrl-C or SIGTERM while
/// waiting (exit 130).
pub async fn until_active(broker: &Broker, tokens: &TokenSource, grant: Grant) -> CliResult<Grant> {
    let grant = if grant.state == GrantState::Pending {
        let id = grant.id.clone();
        let decided = wait_interruptibly(broker, tokens, grant)
            .await?
            .ok_or_else(|| interrupted(&id))?;
        if decided.state == GrantState::Active {
            eprintln!("{}", present::outcome(&decided, format::now()));
        }
        decided
    } else {
        grant
    };
    match grant.state {
        GrantState::Active => Ok(grant),
        _ => Err(ended(&grant)),
    }
}

/// Waits for the decision on a pending grant, with progress on stderr; `None` if interrupted
/// with Ctrl-C or SIGTERM (the request stays pending).
pub async fn wait_interruptibly(
    broker: &Broker,
    tokens: &TokenSource,
    grant: Grant,
) -> CliResult<Option<Grant>> {
    let message = match &grant.approval {
        Some(rule) => format!(
            "Waiting for approval of {} ({})",
            clean(&grant.id),
            present::approvers(rule)
        ),
        None => format!("Waiting for approval of {}", clean(&grant.id)),
    };
    use tokio::signal::unix::{SignalKind, signal};
    let (mut int, mut term) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(int), Ok(term)) => (int, term),
        (Err(e), _) | (_, Err(e)) => {
            return Err(CliError::new(
                Exit::Failure,
                format!("cannot handle signals: {e}"),
            ));
        }
    };
    let progress = Progress::start(message);
    tokio::select! {
        decided = wait_decision(broker, tokens, grant, &progress) => decided.map(Some),
        _ = int.recv() => Ok(None),
        _ = term.recv() => Ok(None),
    }
}

/// Long-polls until the grant is no longer pending, reporting each new vote.
async fn wait_decision(
    broker: &Broker,
    tokens: &TokenSource,
    mut grant: Grant,
    progress: &Progress,
) -> CliResult<Grant> {
    let base = format!(
        "{GRANTS_PATH}/{}?wait={WAIT_SECS}&state=pending",
        super::encode_segment(&grant.id)
    );
    let mut retry = Retry::new();
    let mut votes_seen = grant.votes.len();
    while grant.state == GrantState::Pending {
        let path = format!("{base}&votes={votes_seen}");
        let polled = match tokens.get(broker).await {
            Ok(token) => broker.long_poll::<Grant>(&path, &token, WAIT_SECS).await,
            Err(e) => Err(e),
        };
        match polled {
            Ok(next) => {
                retry.succeeded(|l| progress.line(l));
                let next = checked(next)?;
                for line in new_votes(&next, votes_seen) {
                    progress.line(&line);
                }
                votes_seen = next.votes.len();
                grant = next;
            }
            Err(e) if e.is_transient() => retry.failed(&e, |l| progress.line(l)).await,
            Err(e) => return Err(e),
        }
    }
    Ok(grant)
}

/// One line per vote after the first `seen`: `bob approved (1 of 2): looks fine`,
/// `dave denied: not during the freeze`.
fn new_votes(grant: &Grant, seen: usize) -> Vec<String> {
    let (_, need) = present::votes(grant);
    let mut have = grant.votes.iter().take(seen).filter(|v| v.approve).count();
    let mut lines = Vec::new();
    for vote in grant.votes.iter().skip(seen) {
        let mut line = if vote.approve {
            have += 1;
            format!("{} approved ({have} of {need})", clean(&vote.approver))
        } else {
            format!("{} denied", clean(&vote.approver))
        };
        if let Some(reason) = vote.reason.as_deref().filter(|r| !r.is_empty()) {
            line.push_str(&format!(": {}", clean(reason)));
        }
        lines.push(line);
    }
    lines
}

/// `POST /v1/grants/{id}/revoke`.
pub async fn revoke(
    broker: &Broker,
    tokens: &TokenSource,
    id: &str,
    reason: Option<String>,
) -> CliResult<Grant> {
    let token = tokens.get(broker).await?;
    let path = format!("{GRANTS_PATH}/{}/revoke", super::encode_segment(id));
    broker.post(&path, &token, &Decision { reason }).await
}

/// The error for a grant that ended (or was never approved): exit 15, with what to do next.
pub fn ended(grant: &Grant) -> CliError {
    let hint = match grant.state {
        GrantState::Denied => {
            "ask the approver, or request again with a reason that answers theirs".to_string()
        }
        GrantState::Expired if grant.activated_at.is_none() => match &grant.approval {
            Some(rule) => format!(
                "request again and ask someone in {} to decide it (they see it in `sluice approvals`)",
                present::approver_groups(rule)
            ),
            None => "request again".to_string(),
        },
        _ => format!(
            "request a new grant: sluice grant request {} --role {} --reason TEXT",
            clean(&grant.resource),
            clean(&grant.role)
        ),
    };
    CliError::new(Exit::GrantEnded, present::outcome(grant, format::now())).hint(hint)
}

/// The error for Ctrl-C while waiting: the request stays pending.
pub fn interrupted(id: &str) -> CliError {
    CliError::new(
        Exit::Interrupted,
        format!("stopped waiting; {} is still pending", clean(id)),
    )
    .hint(format!(
        "`sluice grant wait {}` waits again, `sluice grant revoke {}` withdraws it",
        clean(id),
        clean(id)
    ))
}

/// An id safe to put in a URL path, a header and a prompt: the broker makes them from a prefix
/// (`g_`, `s_`) and random letters, so anything else means a confused or hostile broker.
pub fn well_formed_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// A grant whose id is [well formed](well_formed_id).
pub fn checked(grant: Grant) -> CliResult<Grant> {
    if well_formed_id(&grant.id) {
        Ok(grant)
    } else {
        Err(CliError::new(
            Exit::Failure,
            format!(
                "the broker sent a malformed grant id '{}'",
                clean(&grant.id)
            ),
        )
        .hint("the CLI and broker versions may not match"))
    }
}

/// The grant `connect`, `ssh`, `kube` and the ssh proxy use: an active (or pending) one of the
/// caller's on the resource and role, or a new request (with `default_reason` when `args` give
/// none); reported on stderr, then waited for until active.
pub async fn reuse_or_ask(
    broker: &Broker,
    tokens: &TokenSource,
    check: &sluice_shared::api::ResourceCheck,
    args: &crate::args::GrantArgs,
    default_reason: &str,
) -> CliResult<Grant> {
    let request = GrantRequest {
        resource: check.name.clone(),
        role: args.role.clone(),
        ttl_secs: args.ttl,
        reason: args
            .reason
            .clone()
            .unwrap_or_else(|| default_reason.to_owned()),
        reuse: true,
    };
    let response = ask(broker, tokens, &request).await?;
    for line in report(&response.grant, response.reused, true, crate::format::now()) {
        eprintln!("{line}");
    }
    until_active(broker, tokens, response.grant).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_shared::grants::{ApprovalRule, Requester};

    const NOW: u64 = 1_800_000_000;

    fn grant(state: GrantState) -> Grant {
        Grant {
            id: "g_abc".into(),
            state,
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
            ttl_secs: 8 * 3600,
            requested_ttl_secs: Some(10 * 3600),
            approval: Some(ApprovalRule {
                groups: vec!["dba-leads".into()],
                count: 1,
                self_approve: false,
                expires_at: NOW + 3600,
            }),
            votes: vec![],
            created_at: NOW,
            activated_at: None,
            expires_at: None,
            ended_at: None,
            ended_by: None,
            end_reason: None,
        }
    }

    #[test]
    fn a_pending_request_says_who_approves_and_how_to_wait() {
        let lines = report(&grant(GrantState::Pending), false, false, NOW);
        assert_eq!(
            lines[0],
            "Requested write on pg-main for 8h: g_abc is pending."
        );
        assert_eq!(
            lines[1],
            "TTL capped: asked for 10h; role write allows at most 8h, granted 8h."
        );
        assert!(lines[2].starts_with("It needs 1 approval from dba-leads; it lapses at "));
        assert!(lines[2].ends_with("(in 1h00m) if nobody decides."));
        assert!(lines[3].contains("sluice grant wait g_abc"));
        assert_eq!(
            report(&grant(GrantState::Pending), false, true, NOW).len(),
            3
        );
    }

    #[test]
    fn an_active_grant_says_until_when() {
        let mut g = grant(GrantState::Active);
        g.requested_ttl_secs = None;
        g.expires_at = Some(NOW + 8 * 3600);
        let lines = report(&g, false, true, NOW);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("Granted write on pg-main for 8h: g_abc is active until "));
        let lines = report(&g, true, true, NOW);
        assert!(lines[0].starts_with("Using your active grant g_abc: write on pg-main until "));
    }

    #[test]
    fn ended_grants_exit_15_with_a_next_step() {
        let mut g = grant(GrantState::Denied);
        g.ended_by = Some("bob".into());
        g.end_reason = Some("not now".into());
        let e = ended(&g);
        assert_eq!(e.exit, Exit::GrantEnded);
        assert_eq!(e.message, "g_abc was denied by bob: not now");
        let e = ended(&grant(GrantState::Expired));
        assert_eq!(
            e.hint.as_deref(),
            Some(
                "request again and ask someone in dba-leads to decide it (they see it in `sluice approvals`)"
            )
        );
    }

    #[test]
    fn each_vote_is_reported_once_with_the_count_so_far() {
        use sluice_shared::grants::Vote;
        let vote = |approver: &str, approve, reason: Option<&str>| Vote {
            approver: approver.into(),
            approve,
            reason: reason.map(Into::into),
            at: NOW,
        };
        let mut g = grant(GrantState::Pending);
        g.approval.as_mut().expect("approval").count = 2;
        g.votes = vec![vote("bob", true, None)];
        assert_eq!(new_votes(&g, 0), ["bob approved (1 of 2)"]);
        assert!(new_votes(&g, 1).is_empty());
        g.votes.push(vote("dave", true, Some("ok\x1b[2J")));
        assert_eq!(new_votes(&g, 1), ["dave approved (2 of 2): ok\\u{1b}[2J"]);
        g.votes[1] = vote("dave", false, Some("not now"));
        assert_eq!(
            new_votes(&g, 0),
            ["bob approved (1 of 2)", "dave denied: not now"]
        );
    }

    #[test]
    fn malformed_grant_ids_are_refused() {
        assert!(checked(grant(GrantState::Active)).is_ok());
        let mut g = grant(GrantState::Active);
        g.id = "g_1\r\nsluice-resource: other".into();
        assert!(checked(g).is_err());
        let mut g = grant(GrantState::Active);
        g.id = "../../v1/whoami".into();
        assert!(checked(g).is_err());
    }
}
