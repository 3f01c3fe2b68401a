//! How grants, approval requests and held statements read to a person: a grant's state in one
//! line, the TTL with its cap, the requester as an approver needs to judge them, the SQL a
//! session is waiting to run, and the `grant list` table. Pure (the clock is passed in) and
//! unit-tested; commands only choose where the text goes. Every string that came from the broker
//! is [`clean`]ed first.

use crate::format::{self, clean};
use sluice_shared::grants::{
    ApprovalRule, Grant, GrantState, HoldDecision, Requester, StatementHold,
};

/// Longest reason shown in a table cell.
const REASON_WIDTH: usize = 40;
/// Most characters of a held statement's SQL shown in text; the JSON output has all of it.
const SQL_MAX_CHARS: usize = 2_000;
/// Most lines of a held statement's SQL shown in text.
const SQL_MAX_LINES: usize = 20;
/// Where a block's values start: `  requester  ` is 13 columns. Continuation lines of the SQL
/// are indented this far, so nothing in the SQL can pass for a field or a new block.
const VALUE_INDENT: &str = "             ";

/// Approvals so far, and how many are needed.
pub fn votes(grant: &Grant) -> (usize, u32) {
    let have = grant.votes.iter().filter(|v| v.approve).count();
    let need = grant.approval.as_ref().map_or(0, |a| a.count);
    (have, need)
}

/// When the role's maximum cut the requested TTL:
/// `asked for 10h; role write allows at most 8h, granted 8h`.
pub fn cap_note(grant: &Grant) -> Option<String> {
    let asked = grant.requested_ttl_secs?;
    let granted = format::duration(grant.ttl_secs);
    Some(format!(
        "asked for {}; role {} allows at most {granted}, granted {granted}",
        format::duration(asked),
        clean(&grant.role),
    ))
}

/// The TTL, with the cap note when there is one.
pub fn ttl(grant: &Grant) -> String {
    match cap_note(grant) {
        Some(note) => format!("{} ({note})", format::duration(grant.ttl_secs)),
        None => format::duration(grant.ttl_secs),
    }
}

/// Who may decide and how many must agree: `1 approval from dba-leads`,
/// `2 approvals from dba-leads or sre`.
pub fn approvers(rule: &ApprovalRule) -> String {
    let plural = if rule.count == 1 { "" } else { "s" };
    format!(
        "{} approval{plural} from {}",
        rule.count,
        approver_groups(rule)
    )
}

/// The groups whose members may decide: `dba-leads or sre`.
pub fn approver_groups(rule: &ApprovalRule) -> String {
    if rule.groups.is_empty() {
        "the approvers".to_string()
    } else {
        rule.groups
            .iter()
            .map(|g| clean(g).into_owned())
            .collect::<Vec<_>>()
            .join(" or ")
    }
}

/// The requester, as an approver needs to judge them: who, how they logged in, their groups.
pub fn requester(r: &Requester) -> String {
    let provider = r.provider.as_deref().map(clean);
    let how = match (r.auth_method.as_str(), provider) {
        ("oidc", Some(p)) => format!("a person, logged in through {p}"),
        ("oidc", None) => "a person, logged in through OIDC".to_string(),
        ("workload", Some(p)) => format!("a workload, vouched for by rule {p}"),
        ("workload", None) => "a workload".to_string(),
        ("operator", _) => "an operator-issued token".to_string(),
        (other, _) => format!("logged in by {}", clean(other)),
    };
    format!(
        "{} ({how}; groups: {})",
        clean(&r.subject),
        crate::commands::groups(
            &r.groups
                .iter()
                .map(|g| clean(g).into_owned())
                .collect::<Vec<_>>()
        )
    )
}

/// A workload's CI claims, `repository=acme/api, workflow=deploy.yml, ref=refs/heads/main`;
/// `None` for people and operators.
pub fn ci_claims(r: &Requester) -> Option<String> {
    if r.ci.is_empty() {
        return None;
    }
    Some(
        r.ci.iter()
            .map(|(k, v)| format!("{}={}", clean(k), clean(v)))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// What `sluice approvals` shows for one pending request.
///
/// ```text
/// g_7Kx2: write on pg-main for 2h
///   requester  alice (a person, logged in through corp; groups: dba, dev)
///   reason     fix invoice 4411
///   asked      3m ago; approvals 1 of 2 (bob); lapses in 57m if undecided
/// ```
pub fn request_block(grant: &Grant, now: u64) -> String {
    let mut out = format!(
        "{}: {} on {} for {}\n",
        clean(&grant.id),
        clean(&grant.role),
        clean(&grant.resource),
        ttl(grant)
    );
    out.push_str(&format!("  requester  {}\n", requester(&grant.requester)));
    if let Some(ci) = ci_claims(&grant.requester) {
        out.push_str(&format!("  ci         {ci}\n"));
    }
    out.push_str(&format!("  reason     {}\n", clean(&grant.reason)));
    let (have, need) = votes(grant);
    let mut asked = format!(
        "  asked      {}; approvals {have} of {need}",
        format::ago(grant.created_at, now)
    );
    let approvers: Vec<String> = grant
        .votes
        .iter()
        .filter(|v| v.approve)
        .map(|v| clean(&v.approver).into_owned())
        .collect();
    if !approvers.is_empty() {
        asked.push_str(&format!(" ({})", approvers.join(", ")));
    }
    if let Some(rule) = &grant.approval {
        asked.push_str(&format!(
            "; lapses {} if undecided",
            format::relative(rule.expires_at, now)
        ));
    }
    out.push_str(&asked);
    out.push('\n');
    out
}

/// What `sluice approvals` shows for one statement held in a live session.
///
/// ```text
/// s_3fQ9: a statement in alice's session on pg-main (role write, grant g_7Kx2)
///   rule       approve-deletes: deletes need a second pair of eyes
///   requester  alice (a person, logged in through corp; groups: dba)
///   held       12s ago; denied automatically in 4m48s if undecided
///   sql        delete from orders where created_at < now() - interval '5 years'
/// ```
pub fn statement_block(hold: &StatementHold, now: u64) -> String {
    let what = match hold.kind.as_str() {
        "sql" => "a statement",
        "exec" => "a command",
        "kube" => "a Kubernetes request",
        "http" => "a request",
        _ => "an action",
    };
    let mut out = format!(
        "{}: {what} in {}'s session on {} (role {}, grant {})\n",
        clean(&hold.id),
        clean(&hold.requester.subject),
        clean(&hold.resource),
        clean(&hold.role),
        clean(&hold.grant),
    );
    let rule = if hold.reason.trim().is_empty() {
        clean(&hold.rule).into_owned()
    } else {
        format!("{}: {}", clean(&hold.rule), clean(&hold.reason))
    };
    out.push_str(&format!("  rule       {rule}\n"));
    out.push_str(&format!("  requester  {}\n", requester(&hold.requester)));
    if let Some(ci) = ci_claims(&hold.requester) {
        out.push_str(&format!("  ci         {ci}\n"));
    }
    // Exact to the second: holds time out in minutes, and the person in psql is waiting.
    let timeout = if hold.expires_at > now {
        format!(
            "denied automatically in {} if undecided",
            format::duration(hold.expires_at - now)
        )
    } else {
        "its time is up: it is being denied".to_string()
    };
    out.push_str(&format!(
        "  held       {}; {timeout}\n",
        format::ago(hold.created_at, now)
    ));
    let sql = sql_text(&hold.sql);
    // The held action under its kind (`sql`, later `exec`, `http`), as the broker names it.
    let first = format!("  {:<11}", hold.kind);
    for (i, line) in sql.lines.iter().enumerate() {
        let label = if i == 0 { first.as_str() } else { VALUE_INDENT };
        out.push_str(label);
        out.push_str(line);
        out.push('\n');
    }
    if let Some(cut) = sql.cut {
        out.push_str(&format!("  cut        {cut}\n"));
    }
    out
}

/// SQL as a block shows it: one cleaned string per line, and what was left out.
#[derive(Debug, PartialEq, Eq)]
struct SqlText {
    /// The lines shown, control characters escaped.
    lines: Vec<String>,
    /// Present when the SQL was too long to show whole: how much was left out.
    cut: Option<String>,
}

/// Splits `sql` into lines (on `\n` only: a `\r` is shown, as it is part of what runs) and
/// keeps at most [`SQL_MAX_LINES`] lines and [`SQL_MAX_CHARS`] characters of the original text.
/// Trailing new lines are left out; they change nothing about what runs.
fn sql_text(sql: &str) -> SqlText {
    let sql = sql.trim_end_matches('\n');
    if sql.is_empty() {
        return SqlText {
            lines: vec!["(empty)".to_string()],
            cut: None,
        };
    }
    let total_chars = sql.chars().count();
    let total_lines = sql.split('\n').count();
    let mut lines = Vec::new();
    // Characters of the original shown so far, counting the new lines between shown lines.
    let mut shown = 0;
    for line in sql.split('\n') {
        if lines.len() == SQL_MAX_LINES || shown >= SQL_MAX_CHARS {
            break;
        }
        let len = line.chars().count();
        let room = SQL_MAX_CHARS - shown;
        if len <= room {
            lines.push(clean(line).into_owned());
            shown += len + 1;
        } else {
            let part: String = line.chars().take(room).collect();
            lines.push(clean(&part).into_owned());
            shown += room;
            break;
        }
    }
    // The last shown line's new line was counted but is not part of the text when nothing
    // follows it.
    let shown = shown.min(total_chars);
    let left_chars = total_chars - shown;
    let left_lines = total_lines - lines.len();
    let cut = (left_chars > 0).then(|| {
        let lines_note = match left_lines {
            0 => String::new(),
            n => format!(" ({})", count(n, "more line")),
        };
        format!(
            "{}{lines_note} not shown; `sluice approvals --output json` prints the whole statement",
            count(left_chars, "more character")
        )
    });
    SqlText { lines, cut }
}

/// `1 more line`, `3 more lines`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// The answer to deciding a held statement: `approved s_1; it runs now in alice's session`,
/// `denied s_1`. `whose` is the session's owner when known (`sluice approvals --watch`).
pub fn hold_decision(decided: &HoldDecision, whose: Option<&str>) -> String {
    let id = clean(&decided.id);
    match (decided.approved, whose) {
        (true, Some(who)) => format!("approved {id}; it runs now in {}'s session", clean(who)),
        (true, None) => format!("approved {id}; it runs now in its session"),
        (false, _) => format!("denied {id}"),
    }
}

/// `14:32 (in 2h)`.
pub fn until(at: u64, now: u64) -> String {
    format!("{} ({})", format::clock(at, now), format::relative(at, now))
}

/// ` by bob: not during the freeze`, from who ended the grant and why.
fn by_and_why(grant: &Grant) -> String {
    let mut out = String::new();
    if let Some(by) = &grant.ended_by {
        out.push_str(&format!(" by {}", clean(by)));
    }
    if let Some(why) = grant.end_reason.as_deref().filter(|r| !r.is_empty()) {
        out.push_str(&format!(": {}", clean(why)));
    }
    out
}

/// The approvers who said yes, with their reasons: `bob ("looks fine"), carol`.
fn approved_by(grant: &Grant) -> Option<String> {
    let yes: Vec<String> = grant
        .votes
        .iter()
        .filter(|v| v.approve)
        .map(|v| match v.reason.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => format!("{} (\"{}\")", clean(&v.approver), clean(r)),
            None => clean(&v.approver).into_owned(),
        })
        .collect();
    (!yes.is_empty()).then(|| yes.join(", "))
}

/// A grant's state in one line, saying who decided and why.
pub fn outcome(grant: &Grant, now: u64) -> String {
    let id = clean(&grant.id);
    match grant.state {
        GrantState::Active => {
            let mut line = format!(
                "{id} is active: {} on {}",
                clean(&grant.role),
                clean(&grant.resource)
            );
            if let Some(at) = grant.expires_at {
                line.push_str(&format!(" until {}", until(at, now)));
            }
            if let Some(by) = approved_by(grant) {
                line.push_str(&format!("; approved by {by}"));
            }
            line
        }
        GrantState::Pending => {
            let (have, _) = votes(grant);
            match &grant.approval {
                Some(rule) => format!("{id} is pending: needs {} ({have} so far)", approvers(rule)),
                None => format!("{id} is pending"),
            }
        }
        GrantState::Denied => format!("{id} was denied{}", by_and_why(grant)),
        GrantState::Expired if grant.activated_at.is_none() => {
            let mut line = format!("{id} expired: nobody approved it in time");
            if let Some(why) = grant.end_reason.as_deref().filter(|r| !r.is_empty()) {
                line.push_str(&format!(" ({})", clean(why)));
            }
            line
        }
        GrantState::Expired => match grant.ended_at.or(grant.expires_at) {
            Some(at) => format!("{id} expired {}", format::ago(at, now)),
            None => format!("{id} expired"),
        },
        GrantState::Revoked => format!("{id} was revoked{}", by_and_why(grant)),
        GrantState::Unknown => format!("{id} is in a state this CLI does not know"),
    }
}

/// The answer to `sluice approve` / `sluice deny`: `approved g_1 (1 of 2); still pending`,
/// `approved g_1; active until 14:32 (in 2h)`, `denied g_1`.
pub fn decision(grant: &Grant, approved: bool, now: u64) -> String {
    let id = clean(&grant.id);
    match (approved, grant.state) {
        (true, GrantState::Pending) => {
            let (have, need) = votes(grant);
            format!("approved {id} ({have} of {need}); still pending")
        }
        (true, GrantState::Active) => match grant.expires_at {
            Some(at) => format!("approved {id}; active until {}", until(at, now)),
            None => format!("approved {id}; active"),
        },
        (false, GrantState::Denied) => format!("denied {id}"),
        _ => outcome(grant, now),
    }
}

/// The `grant list` table: ID, RESOURCE, ROLE, STATE, EXPIRES/ENDED, REASON.
pub fn grant_table(grants: &[Grant], now: u64) -> String {
    let rows: Vec<Vec<String>> = grants
        .iter()
        .map(|g| {
            let when = match g.state {
                GrantState::Active => g.expires_at.map(|at| format::relative(at, now)),
                GrantState::Pending => None,
                _ => g.ended_at.map(|at| format::ago(at, now)),
            };
            vec![
                clean(&g.id).into_owned(),
                clean(&g.resource).into_owned(),
                clean(&g.role).into_owned(),
                g.state.to_string(),
                when.unwrap_or_else(|| "-".to_string()),
                format::truncate(&g.reason, REASON_WIDTH),
            ]
        })
        .collect();
    format::table(
        &["ID", "RESOURCE", "ROLE", "STATE", "EXPIRES/ENDED", "REASON"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_shared::grants::Vote;
    use std::collections::BTreeMap;

    const NOW: u64 = 1_800_000_000;

    fn person() -> Requester {
        Requester {
            subject: "alice".into(),
            groups: vec!["dba".into(), "dev".into()],
            auth_method: "oidc".into(),
            provider: Some("corp".into()),
            ci: BTreeMap::new(),
        }
    }

    fn workload() -> Requester {
        Requester {
            subject: "repo:acme/api".into(),
            groups: vec!["ci".into()],
            auth_method: "workload".into(),
            provider: Some("github".into()),
            ci: BTreeMap::from([
                ("repository".to_string(), "acme/api".to_string()),
                ("workflow".to_string(), "deploy.yml".to_string()),
                ("ref".to_string(), "refs/heads/main".to_string()),
            ]),
        }
    }

    fn pending(requester: Requester) -> Grant {
        Grant {
            id: "g_7Kx2".into(),
            state: GrantState::Pending,
            requester,
            resource: "pg-main".into(),
            role: "write".into(),
            rule: "dba-write".into(),
            reason: "fix invoice 4411".into(),
            ttl_secs: 2 * 3600,
            requested_ttl_secs: None,
            approval: Some(ApprovalRule {
                groups: vec!["dba-leads".into(), "sre".into()],
                count: 2,
                self_approve: false,
                expires_at: NOW + 57 * 60,
            }),
            votes: vec![],
            created_at: NOW - 3 * 60,
            activated_at: None,
            expires_at: None,
            ended_at: None,
            ended_by: None,
            end_reason: None,
        }
    }

    fn vote(approver: &str, approve: bool, reason: Option<&str>) -> Vote {
        Vote {
            approver: approver.into(),
            approve,
            reason: reason.map(str::to_string),
            at: NOW - 60,
        }
    }

    #[test]
    fn a_capped_ttl_says_what_was_asked_and_what_was_granted() {
        let mut g = pending(person());
        assert_eq!(cap_note(&g), None);
        assert_eq!(ttl(&g), "2h");
        g.ttl_secs = 8 * 3600;
        g.requested_ttl_secs = Some(10 * 3600);
        assert_eq!(
            cap_note(&g).as_deref(),
            Some("asked for 10h; role write allows at most 8h, granted 8h")
        );
        assert_eq!(
            ttl(&g),
            "8h (asked for 10h; role write allows at most 8h, granted 8h)"
        );
    }

    #[test]
    fn approvers_name_the_groups_and_count() {
        let g = pending(person());
        let rule = g.approval.as_ref().expect("rule");
        assert_eq!(approvers(rule), "2 approvals from dba-leads or sre");
        let one = ApprovalRule {
            groups: vec!["dba-leads".into()],
            count: 1,
            ..rule.clone()
        };
        assert_eq!(approvers(&one), "1 approval from dba-leads");
    }

    #[test]
    fn a_person_request_reads_as_a_person() {
        let mut g = pending(person());
        g.votes.push(vote("bob", true, None));
        assert_eq!(
            request_block(&g, NOW),
            "g_7Kx2: write on pg-main for 2h\n\
             \x20 requester  alice (a person, logged in through corp; groups: dba, dev)\n\
             \x20 reason     fix invoice 4411\n\
             \x20 asked      3m ago; approvals 1 of 2 (bob); lapses in 57m if undecided\n"
        );
    }

    #[test]
    fn a_workload_request_shows_its_ci_claims() {
        let g = pending(workload());
        let block = request_block(&g, NOW);
        assert!(block.contains(
            "requester  repo:acme/api (a workload, vouched for by rule github; groups: ci)\n"
        ));
        assert!(block.contains(
            "ci         ref=refs/heads/main, repository=acme/api, workflow=deploy.yml\n"
        ));
        assert!(block.contains("approvals 0 of 2; lapses in 57m"));
    }

    #[test]
    fn operator_tokens_and_unknown_methods_are_named() {
        let mut r = person();
        r.auth_method = "operator".into();
        r.provider = None;
        assert_eq!(
            requester(&r),
            "alice (an operator-issued token; groups: dba, dev)"
        );
        r.auth_method = "mtls".into();
        r.groups.clear();
        assert_eq!(requester(&r), "alice (logged in by mtls; groups: none)");
    }

    #[test]
    fn a_hostile_reason_cannot_redraw_the_approvers_screen() {
        let mut g = pending(person());
        g.reason = "routine\x1b[1A\x1b[2K\rapproved by security".into();
        let block = request_block(&g, NOW);
        assert!(!block.contains('\x1b'));
        assert!(block.contains("reason     routine\\u{1b}[1A"));
    }

    #[test]
    fn outcomes_say_who_decided_and_why() {
        let mut g = pending(person());
        assert_eq!(
            outcome(&g, NOW),
            "g_7Kx2 is pending: needs 2 approvals from dba-leads or sre (0 so far)"
        );

        g.state = GrantState::Denied;
        g.ended_by = Some("bob".into());
        g.end_reason = Some("not during the freeze".into());
        assert_eq!(
            outcome(&g, NOW),
            "g_7Kx2 was denied by bob: not during the freeze"
        );

        g.state = GrantState::Expired;
        g.ended_by = Some("sluiced".into());
        g.end_reason = Some("approval timed out".into());
        assert_eq!(
            outcome(&g, NOW),
            "g_7Kx2 expired: nobody approved it in time (approval timed out)"
        );

        g.state = GrantState::Active;
        g.activated_at = Some(NOW);
        g.expires_at = Some(NOW + 2 * 3600);
        g.ended_by = None;
        g.end_reason = None;
        g.votes = vec![
            vote("bob", true, Some("looks fine")),
            vote("carol", true, None),
        ];
        let line = outcome(&g, NOW);
        assert!(
            line.starts_with("g_7Kx2 is active: write on pg-main until "),
            "{line}"
        );
        assert!(
            line.ends_with("(in 2h00m); approved by bob (\"looks fine\"), carol"),
            "{line}"
        );

        g.state = GrantState::Revoked;
        g.ended_by = Some("alice".into());
        g.end_reason = Some("command exited".into());
        assert_eq!(
            outcome(&g, NOW),
            "g_7Kx2 was revoked by alice: command exited"
        );
    }

    #[test]
    fn decisions_report_the_resulting_state() {
        let mut g = pending(person());
        g.votes.push(vote("bob", true, None));
        assert_eq!(
            decision(&g, true, NOW),
            "approved g_7Kx2 (1 of 2); still pending"
        );
        g.state = GrantState::Active;
        g.expires_at = Some(NOW + 3600);
        let line = decision(&g, true, NOW);
        assert!(line.starts_with("approved g_7Kx2; active until "), "{line}");
        assert!(line.ends_with("(in 1h00m)"), "{line}");
        g.state = GrantState::Denied;
        assert_eq!(decision(&g, false, NOW), "denied g_7Kx2");
    }

    fn hold(sql: &str) -> StatementHold {
        StatementHold {
            id: "s_3fQ9".into(),
            requester: Requester {
                groups: vec!["dba".into()],
                ..person()
            },
            resource: "pg-main".into(),
            role: "write".into(),
            grant: "g_7Kx2".into(),
            kind: "sql".into(),
            sql: sql.into(),
            rule: "approve-deletes".into(),
            reason: "deletes need a second pair of eyes".into(),
            approvers: vec!["dba-leads".into()],
            created_at: NOW - 12,
            expires_at: NOW + 4 * 60 + 48,
        }
    }

    #[test]
    fn a_held_statement_shows_whose_session_the_rule_and_the_sql() {
        assert_eq!(
            statement_block(
                &hold("delete from orders where created_at < now() - interval '5 years'"),
                NOW
            ),
            "s_3fQ9: a statement in alice's session on pg-main (role write, grant g_7Kx2)\n\
             \x20 rule       approve-deletes: deletes need a second pair of eyes\n\
             \x20 requester  alice (a person, logged in through corp; groups: dba)\n\
             \x20 held       12s ago; denied automatically in 4m48s if undecided\n\
             \x20 sql        delete from orders where created_at < now() - interval '5 years'\n"
        );
        let mut late = hold("delete from orders");
        late.expires_at = NOW - 1;
        late.reason = String::new();
        let block = statement_block(&late, NOW);
        assert!(block.contains("  rule       approve-deletes\n"), "{block}");
        assert!(
            block.contains("  held       12s ago; its time is up: it is being denied\n"),
            "{block}"
        );
    }

    #[test]
    fn multi_line_sql_is_indented_under_its_first_line() {
        let block = statement_block(
            &hold("delete from orders\n\nwhere id in (\n  select id from old\n);\n"),
            NOW,
        );
        assert!(
            block.ends_with(
                "  sql        delete from orders\n\
                 \x20            \n\
                 \x20            where id in (\n\
                 \x20              select id from old\n\
                 \x20            );\n"
            ),
            "{block}"
        );
        // The empty line inside the statement does not end the block.
        assert!(!block.contains("\n\n"), "{block}");
    }

    #[test]
    fn hostile_sql_is_shown_escaped_and_cannot_forge_fields() {
        let block = statement_block(
            &hold("select 1; \x1b[2K\r-- harmless\r\n  held       approved by security\u{202e}"),
            NOW,
        );
        assert!(!block.contains('\x1b') && !block.contains('\r'), "{block}");
        assert!(!block.contains('\u{202e}'), "{block}");
        assert!(
            block.contains("  sql        select 1; \\u{1b}[2K\\u{d}-- harmless\\u{d}\n"),
            "{block}"
        );
        // Every SQL line stays indented as a value, so it cannot pass for a `held` field.
        assert!(
            block.ends_with("\n             \x20 held       approved by security\\u{202e}\n"),
            "{block}"
        );
        assert_eq!(block.matches("\n  held ").count(), 1, "{block}");
        let mut header = hold("select 1");
        header.requester.subject = "mallory\n  rule       fine".into();
        let block = statement_block(&header, NOW);
        assert!(
            block.starts_with("s_3fQ9: a statement in mallory\\u{a}  rule "),
            "{block}"
        );
    }

    #[test]
    fn long_sql_is_cut_with_a_note_of_how_much() {
        // 30 lines of 9 characters: 20 are shown, and the note counts the rest.
        let sql: Vec<String> = (0..30).map(|i| format!("select {i:02}")).collect();
        let text = sql_text(&sql.join("\n"));
        assert_eq!(text.lines.len(), SQL_MAX_LINES);
        assert_eq!(text.lines[19], "select 19");
        assert_eq!(
            text.cut.as_deref(),
            Some(
                "99 more characters (10 more lines) not shown; \
                 `sluice approvals --output json` prints the whole statement"
            )
        );
        // One line of 2,500 characters: 2,000 are shown.
        let text = sql_text(&"x".repeat(2_500));
        assert_eq!(text.lines, ["x".repeat(SQL_MAX_CHARS)]);
        assert!(
            text.cut
                .as_deref()
                .is_some_and(|c| c.starts_with("500 more characters not shown;")),
            "{:?}",
            text.cut
        );
        // Cut inside the third line of three (new lines count: 999 + 1 + 998 + 1 + 1 = 2,000).
        let long = format!(
            "{}\n{}\n{}",
            "a".repeat(999),
            "b".repeat(998),
            "c".repeat(100)
        );
        let text = sql_text(&long);
        assert_eq!(text.lines.len(), 3);
        assert_eq!(text.lines[2], "c");
        assert!(
            text.cut
                .as_deref()
                .is_some_and(|c| c.starts_with("99 more characters not shown;")),
            "{:?}",
            text.cut
        );
        // Exactly at the limits: nothing is cut.
        let exact: Vec<&str> = vec!["y"; SQL_MAX_LINES];
        assert_eq!(sql_text(&exact.join("\n")).cut, None);
        assert_eq!(sql_text(&"z".repeat(SQL_MAX_CHARS)).cut, None);
        assert_eq!(sql_text("select 1\n").lines, ["select 1"]);
        assert_eq!(sql_text("").lines, ["(empty)"]);
        // The note is its own field in the block.
        let block = statement_block(&hold(&"x".repeat(2_001)), NOW);
        assert!(
            block.contains("\n  cut        1 more character not shown;"),
            "{block}"
        );
    }

    #[test]
    fn hold_decisions_say_whether_it_runs() {
        let approved = HoldDecision {
            id: "s_3fQ9".into(),
            approved: true,
        };
        assert_eq!(
            hold_decision(&approved, Some("alice")),
            "approved s_3fQ9; it runs now in alice's session"
        );
        assert_eq!(
            hold_decision(&approved, None),
            "approved s_3fQ9; it runs now in its session"
        );
        let denied = HoldDecision {
            approved: false,
            ..approved
        };
        assert_eq!(hold_decision(&denied, Some("alice")), "denied s_3fQ9");
    }

    #[test]
    fn the_grant_table_shows_when_each_grant_ends() {
        let mut active = pending(person());
        active.id = "g_a".into();
        active.state = GrantState::Active;
        active.expires_at = Some(NOW + 29 * 60 + 30);
        let mut denied = pending(person());
        denied.id = "g_b".into();
        denied.state = GrantState::Denied;
        denied.ended_at = Some(NOW - 3 * 60);
        denied.reason = "a reason that goes on and on and on and on and on".into();
        let waiting = pending(workload());
        assert_eq!(
            grant_table(&[active, denied, waiting], NOW),
            "ID      RESOURCE  ROLE   STATE    EXPIRES/ENDED  REASON\n\
             g_a     pg-main   write  active   in 29m         fix invoice 4411\n\
             g_b     pg-main   write  denied   3m ago         a reason that goes on and on and on and…\n\
             g_7Kx2  pg-main   write  pending  -              fix invoice 4411\n"
        );
    }
}
