//! `sluiced policy explain`: what the policy in a configuration file answers to one request,
//! without a running broker, so a rule change can be tried before it is deployed.
//!
//! It loads the file (reporting problems as `check-config` does), finds the resource, and runs
//! the same pure [`sluice_config::Policy::decide`] the broker runs for `sluice grant request`.
//! Exit codes: 0 the request would be granted (at once or after approval), 1 it would be
//! refused, 2 the configuration, the resource or the arguments are wrong.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use sluice_config::{
    Approval, Config, Decision, Grantable, Principal, Refusal, RefusalKind, Resource,
};

/// `sluiced policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show which rule, role, TTL and approval a request would get, or why it would be refused.
    ///
    /// Exit codes: 0 granted (at once or after approval), 1 refused, 2 the configuration, the
    /// resource or an argument is wrong.
    Explain(ExplainArgs),
}

/// The request to explain.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The config file.
    #[arg(long, short, env = "SLUICED_CONFIG")]
    config: PathBuf,
    /// Who asks: a user name or a workload subject such as
    /// `github:acme/api:refs/heads/main:deploy`.
    #[arg(long)]
    subject: String,
    /// Their groups, comma-separated.
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
    /// The resource asked for.
    #[arg(long)]
    resource: String,
    /// The role asked for; without it, the default role of the first rule that matches.
    #[arg(long)]
    role: Option<String>,
    /// The lifetime asked for, e.g. 30m; without it, the role's default_ttl.
    #[arg(long, value_parser = positive_duration)]
    ttl: Option<Duration>,
    /// Text for people, or one JSON object.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// How the answer is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Aligned `key: value` lines.
    Text,
    /// One JSON object on one line.
    Json,
}

/// Exit code when the request would be refused.
const REFUSED: u8 = 1;
/// Exit code when the configuration or the resource is wrong.
const BAD_INPUT: u8 = 2;

/// Runs `sluiced policy explain`.
pub fn run(args: &ExplainArgs) -> Result<ExitCode> {
    let config = match sluice_config::load(&args.config) {
        Ok(config) => config,
        Err(errors) => {
            for error in errors.iter() {
                eprintln!("{error}");
            }
            eprintln!("{} problem(s) found", errors.len());
            return Ok(ExitCode::from(BAD_INPUT));
        }
    };
    let Some(resource) = config.resource(&args.resource) else {
        eprintln!(
            "sluiced: error: {}",
            unknown_resource(&config, &args.resource)
        );
        return Ok(ExitCode::from(BAD_INPUT));
    };
    let groups: Vec<String> = args
        .groups
        .iter()
        .filter(|group| !group.is_empty())
        .cloned()
        .collect();
    let who = Principal {
        subject: &args.subject,
        groups: &groups,
    };
    let decision = config
        .policy
        .decide(&who, resource, args.role.as_deref(), args.ttl);
    let text = match args.output {
        Output::Text => text(&config, &decision, args.ttl),
        Output::Json => format!("{}\n", json_answer(&config, &who, resource, &decision)),
    };
    print(&text)?;
    Ok(match decision {
        Decision::Grant(_) => ExitCode::SUCCESS,
        Decision::Refuse(_) => ExitCode::from(REFUSED),
    })
}

/// `no resource named "x" in FILE; configured: a, b`: the whole list rather than a suggestion,
/// since the operator may be exploring rather than mistyping.
fn unknown_resource(config: &Config, name: &str) -> String {
    let file = config.source.display();
    if config.resources.is_empty() {
        return format!("no resource named \"{name}\" in {file}; no resources are configured");
    }
    let names: Vec<&str> = config.resources.iter().map(|r| r.name.as_str()).collect();
    format!(
        "no resource named \"{name}\" in {file}; configured: {}",
        names.join(", ")
    )
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

/// The aligned text form; `asked` is the TTL the request named, if any.
fn text(config: &Config, decision: &Decision, asked: Option<Duration>) -> String {
    let mut out = String::new();
    // Infallible throughout: writing to a String cannot fail.
    match decision {
        Decision::Refuse(refusal) => {
            let _ = writeln!(out, "decision: refuse");
            let _ = writeln!(out, "reason:   {}", refusal.message);
        }
        Decision::Grant(grant) => {
            let verdict = if grant.approval.is_some() {
                "grant after approval"
            } else {
                "grant (auto)"
            };
            let _ = writeln!(out, "decision: {verdict}");
            let rule = config.policy.rule(&grant.rule);
            match rule {
                Some(rule) => {
                    let _ = writeln!(
                        out,
                        "rule:     {} ({}:{})",
                        grant.rule,
                        rule.location.file.display(),
                        rule.location.line
                    );
                }
                None => {
                    let _ = writeln!(out, "rule:     {}", grant.rule);
                }
            }
            let role = config.policy.role(&grant.role);
            match role.and_then(|role| role.description.as_deref()) {
                Some(description) => {
                    let _ = writeln!(out, "role:     {} ({description})", grant.role);
                }
                None => {
                    let _ = writeln!(out, "role:     {}", grant.role);
                }
            }
            let max_ttl = role.map(|role| role.max_ttl);
            let _ = writeln!(out, "ttl:      {}", ttl_line(grant, asked, max_ttl));
            let overridden = rule.is_some_and(|rule| rule.approval.is_some());
            let _ = writeln!(out, "approval: {}", approval_line(grant, overridden));
            if let Some(guardrails) = role.and_then(|role| role.sql.guardrails.as_ref()) {
                let _ = writeln!(out, "guardrails: {guardrails} (not enforced yet)");
            }
            if let Some(masking) = role.and_then(|role| role.sql.masking.as_deref()) {
                let _ = writeln!(out, "masking:  {masking} (not enforced yet)");
            }
        }
    }
    out
}

/// `8h (asked 10h, capped at the role's max_ttl 8h)`, `1h (the role's default_ttl; max_ttl 8h)`
/// or `30m (max_ttl 8h)`.
fn ttl_line(grant: &Grantable, asked: Option<Duration>, max_ttl: Option<Duration>) -> String {
    let ttl = humantime::format_duration(grant.ttl);
    let max = max_ttl.map(|max| humantime::format_duration(max).to_string());
    match (grant.requested_ttl, asked, max) {
        // Capped: the granted TTL is the role's max_ttl.
        (Some(requested), _, _) => format!(
            "{ttl} (asked {}, capped at the role's max_ttl {ttl})",
            humantime::format_duration(requested)
        ),
        (None, None, Some(max)) => format!("{ttl} (the role's default_ttl; max_ttl {max})"),
        (None, Some(_), Some(max)) => format!("{ttl} (max_ttl {max})"),
        (None, _, None) => ttl.to_string(),
    }
}

/// `2 of dba-leads, self-approval not allowed, expires after 30m undecided`, or `none`; says
/// when the rule, not the role, decided it.
fn approval_line(grant: &Grantable, overridden: bool) -> String {
    let mut line = match &grant.approval {
        None => "none".to_owned(),
        Some(approval) => format!(
            "{} of {}, self-approval {}, expires after {} undecided",
            approval.count,
            approval.groups.join(" or "),
            if approval.self_approve {
                "allowed"
            } else {
                "not allowed"
            },
            humantime::format_duration(approval.timeout)
        ),
    };
    if overridden {
        line.push_str(" (set by the rule, not the role)");
    }
    line
}

/// The JSON form: one object.
fn json_answer(
    config: &Config,
    who: &Principal<'_>,
    resource: &Resource,
    decision: &Decision,
) -> Value {
    let mut answer = match decision {
        Decision::Grant(grant) => json_grant(config, grant),
        Decision::Refuse(refusal) => json_refusal(config, who, resource, refusal),
    };
    answer["subject"] = json!(who.subject);
    answer["groups"] = json!(who.groups);
    answer["resource"] = json!(resource.name);
    answer
}

fn json_grant(config: &Config, grant: &Grantable) -> Value {
    let rule = config.policy.rule(&grant.rule);
    let role = config.policy.role(&grant.role);
    let approval_source = if rule.is_some_and(|rule| rule.approval.is_some()) {
        "rule"
    } else {
        "role"
    };
    json!({
        "decision": if grant.approval.is_some() { "grant_after_approval" } else { "grant" },
        "rule": grant.rule,
        "rule_location": rule.map(|rule| rule.location.to_string()),
        "role": grant.role,
        "ttl_secs": grant.ttl.as_secs(),
        "requested_ttl_secs": grant.requested_ttl.map(|ttl| ttl.as_secs()),
        "max_ttl_secs": role.map(|role| role.max_ttl.as_secs()),
        "approval": grant.approval.as_ref().map(json_approval),
        "approval_source": approval_source,
        "guardrails": role
            .and_then(|role| role.sql.guardrails.as_ref())
            .map(|guardrails| guardrails.name()),
        "masking": role.and_then(|role| role.sql.masking.clone()),
    })
}

fn json_approval(approval: &Approval) -> Value {
    json!({
        "groups": approval.groups,
        "count": approval.count,
        "self_approve": approval.self_approve,
        "timeout_secs": approval.timeout.as_secs(),
    })
}

fn json_refusal(
    config: &Config,
    who: &Principal<'_>,
    resource: &Resource,
    refusal: &Refusal,
) -> Value {
    let reason = match refusal.kind {
        RefusalKind::NoAccess => "no_access",
        RefusalKind::RoleNotAllowed => "role_not_allowed",
        RefusalKind::UnknownRole => "unknown_role",
    };
    let requestable: Vec<Value> = config
        .policy
        .requestable(who, resource)
        .into_iter()
        .map(|(role, rule)| json!({"role": role, "rule": rule}))
        .collect();
    json!({
        "decision": "refuse",
        "reason": reason,
        "message": refusal.message,
        "requestable": requestable,
    })
}

/// A humantime duration longer than zero: a grant of no time is a mistake, not a request.
fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be longer than zero".to_owned()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(format!("{error}; write e.g. 30m, 1h or 8h")),
    }
}
