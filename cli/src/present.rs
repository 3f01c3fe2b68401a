//! How grants and approval requests read to a person: a grant's state in one line, the TTL with
//! its cap, the requester as an approver needs to judge them, and the `grant list` table.
//! Pure (the clock is passed in) and unit-tested; commands only choose where the text goes.
//! Every string that came from the broker is [`clean`]ed first.

use crate::format::{self, clean};
use sluice_shared::grants::{ApprovalRule, Grant, GrantState, Requester};

/// Longest reason shown in a table cell.
const REASON_WIDTH: usize = 40;

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
