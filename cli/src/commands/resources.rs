//! `sluice resources`: what you may ask for, resource by resource (`GET /v1/resources`).
//!
//! The broker answers from its policy for the caller's subject and groups: every resource with
//! at least one role they may request, and those roles, the default first, each with its longest
//! grant and who has to approve it. Nothing here opens a tunnel or asks for a grant.

use crate::args::{GlobalArgs, Output};
use crate::exit::{CliResult, Exit};
use crate::format::{self, clean};
use sluice_shared::api::{ResourceInfo, ResourceList, RoleInfo};

/// The broker's list of requestable resources.
const RESOURCES_PATH: &str = "/v1/resources";
/// Longest description shown in the table; `--output json` carries all of it.
const DESCRIPTION_WIDTH: usize = 60;
/// What an empty list says (on stderr; the exit code stays 0).
const NOTHING: &str = "policy gives you no role on any resource; ask an administrator";

pub async fn run(global: &GlobalArgs, output: Output) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let token = crate::auth::session::token(&broker).await?;
    let list: ResourceList = broker.get(RESOURCES_PATH, Some(&token)).await?;
    match output {
        Output::Json => super::print_json(&list),
        Output::Text if list.resources.is_empty() => eprintln!("{NOTHING}"),
        Output::Text => print!("{}", table(&list.resources)),
    }
    Ok(Exit::Ok as u8)
}

/// The table: NAME, KIND, ROLES, DESCRIPTION.
///
/// ```text
/// NAME     KIND      ROLES                                       DESCRIPTION
/// pg-main  postgres  read (8h), write (1h, approval: dba-leads)  Orders database
/// ```
fn table(resources: &[ResourceInfo]) -> String {
    let rows: Vec<Vec<String>> = resources
        .iter()
        .map(|r| {
            vec![
                clean(&r.name).into_owned(),
                r.kind.as_str().to_string(),
                r.roles.iter().map(role).collect::<Vec<_>>().join(", "),
                r.description
                    .as_deref()
                    .map(|d| format::truncate(d, DESCRIPTION_WIDTH))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    format::table(&["NAME", "KIND", "ROLES", "DESCRIPTION"], &rows)
}

/// `read (8h)`, `write (1h, approval: dba-leads or sre)`: the role, its longest grant, and who
/// approves it when someone has to.
fn role(role: &RoleInfo) -> String {
    let ttl = format::duration(role.max_ttl_secs);
    let name = clean(&role.name);
    match role.approvers.as_deref() {
        None => format!("{name} ({ttl})"),
        Some([]) => format!("{name} ({ttl}, approval)"),
        Some(groups) => format!(
            "{name} ({ttl}, approval: {})",
            groups
                .iter()
                .map(|g| clean(g).into_owned())
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_shared::api::ResourceKind;

    fn role_info(name: &str, max_ttl_secs: u64, approvers: Option<&[&str]>) -> RoleInfo {
        RoleInfo {
            name: name.into(),
            rule: "r".into(),
            max_ttl_secs,
            approvers: approvers.map(|a| a.iter().map(|g| g.to_string()).collect()),
            description: None,
        }
    }

    #[test]
    fn roles_show_their_longest_grant_and_approvers() {
        assert_eq!(role(&role_info("read", 8 * 3600, None)), "read (8h)");
        assert_eq!(
            role(&role_info("write", 5400, Some(&["dba-leads", "sre"]))),
            "write (1h30m, approval: dba-leads or sre)"
        );
        assert_eq!(role(&role_info("odd", 60, Some(&[]))), "odd (1m, approval)");
    }

    #[test]
    fn the_table_lists_roles_default_first_and_cleans_broker_text() {
        let resources = vec![
            ResourceInfo {
                name: "pg-main".into(),
                kind: ResourceKind::Postgres,
                description: Some("Orders\x1b[2J database".into()),
                labels: Default::default(),
                roles: vec![
                    role_info("read", 8 * 3600, None),
                    role_info("write", 3600, Some(&["dba-leads"])),
                ],
            },
            ResourceInfo {
                name: "cache".into(),
                kind: ResourceKind::Tcp,
                description: None,
                labels: Default::default(),
                roles: vec![role_info("use", 12 * 3600, None)],
            },
        ];
        assert_eq!(
            table(&resources),
            "NAME     KIND      ROLES                                       DESCRIPTION\n\
             pg-main  postgres  read (8h), write (1h, approval: dba-leads)  Orders\\u{1b}[2J database\n\
             cache    tcp       use (12h)\n"
        );
    }
}
