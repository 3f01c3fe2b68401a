//! A role's plan: what sessions of the role enforce, compiled once per configuration and handed
//! out by the gate with each tunnel it authorizes. Engines read the section of their kind
//! (`sql` today) and never look a role up by name; a reload hands open sessions the new plan of
//! their role, or ends them when the new plan cannot apply mid-session.

use crate::enforce::SqlPlan;
use anyhow::Result;
use sluice_config::{Config, MaskingProfile, RecordMode};
use std::collections::HashMap;
use std::sync::Arc;

/// What one role enforces, per kind of resource.
#[derive(Debug)]
pub struct RolePlan {
    /// Whether a session may go on unrecorded.
    pub record: RecordMode,
    /// How many result rows per statement the recording keeps (SQL).
    pub record_rows: u32,
    /// Guardrails, masking and approvals of SQL sessions.
    pub sql: SqlPlan,
    /// Shell and exec rules of SSH sessions.
    pub ssh: sluice_engine_ssh::Policy,
    /// Who may approve the commands the role's SSH sessions hold (`ssh.exec.approvers`, else
    /// `approval.groups`).
    pub approvers: Vec<String>,
    /// Request rules of Kubernetes sessions; `None` without a `kube:` section (the cluster's
    /// RBAC for the broker's credential is the limit).
    pub kube: Option<Arc<KubePlan>>,
    /// Request rules and masking of HTTP sessions; `None` without an `http:` section
    /// (everything is relayed, the service's own authorization for the broker's credential is
    /// the limit).
    pub http: Option<Arc<HttpPlan>>,
    /// What a running session was built from and cannot take on mid-way.
    fixed: Fixed,
}

/// Whether the role has statement guardrails at all, and its masking as configured: a session's
/// login settings, masker and catalog were built from these.
#[derive(Debug, PartialEq)]
struct Fixed {
    guarded: bool,
    masking: Option<MaskingProfile>,
}

/// A role's `kube:` section, compiled: its profile's rules, then its own.
#[derive(Debug, Clone)]
pub struct KubePlan {
    /// Allow, block and approve rules.
    pub rules: sluice_engine_http::kube::KubeRules,
    /// `Impersonate-Group` values.
    pub groups: Vec<String>,
    /// Who may approve held requests (`kube.approvers`, else `approval.groups`).
    pub approvers: Vec<String>,
    /// Detectors that scan every string of JSON responses and every line of text ones.
    pub masking: Option<Arc<sluice_mask::MaskPolicy>>,
    /// JSON paths redacted in every response.
    pub paths: Vec<sluice_engine_http::JsonPath>,
    /// Answers' bodies kept in the recording (`kube.record_bodies`).
    pub record_bodies: bool,
}

impl KubePlan {
    /// Whether responses other than Secrets' are rewritten.
    pub fn masks(&self) -> bool {
        self.masking.is_some() || !self.paths.is_empty()
    }
}

/// A role's `http:` section, compiled: its profile's rules, then its own.
#[derive(Debug, Clone)]
pub struct HttpPlan {
    /// Allow, block and approve rules by method and path.
    pub rules: sluice_engine_http::RouteRules,
    /// Who may approve held requests (`http.approvers`, else `approval.groups`).
    pub approvers: Vec<String>,
    /// Detectors that scan every string of JSON responses and every line of text ones.
    pub masking: Option<Arc<sluice_mask::MaskPolicy>>,
    /// JSON paths redacted in every JSON response.
    pub paths: Vec<sluice_engine_http::JsonPath>,
    /// Answers' bodies kept in the recording (`http.record_bodies`).
    pub record_bodies: bool,
}

impl HttpPlan {
    /// Whether responses are rewritten.
    pub fn masks(&self) -> bool {
        self.masking.is_some() || !self.paths.is_empty()
    }
}

/// A section's `masking` profile and `mask` JSON paths, compiled; `section` (`kube`, `http`)
/// names them in errors.
type ResponseMasks = (
    Option<Arc<sluice_mask::MaskPolicy>>,
    Vec<sluice_engine_http::JsonPath>,
);

fn response_masks(
    role: &sluice_config::Role,
    section: &str,
    masking: Option<&sluice_config::Located<String>>,
    mask: &[sluice_config::Located<String>],
    masks: &HashMap<String, sluice_mask::MaskPolicy>,
) -> Result<ResponseMasks> {
    let masking = match masking {
        Some(name) => Some(Arc::new(masks.get(&name.value).cloned().ok_or_else(
            || {
                anyhow::anyhow!(
                    "{}: policy.roles.{}.{section}.masking: there is no masking profile named {}",
                    name.location,
                    role.name,
                    name.value
                )
            },
        )?)),
        None => None,
    };
    let paths = mask
        .iter()
        .map(|path| {
            sluice_engine_http::JsonPath::parse(&path.value).map_err(|why| {
                anyhow::anyhow!(
                    "{}: policy.roles.{}.{section}.mask: {why}",
                    path.location,
                    role.name
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((masking, paths))
}

/// The approvers of a section's held requests: its own, else the role's approval groups.
fn section_approvers(role: &sluice_config::Role, own: &[String]) -> Vec<String> {
    if own.is_empty() {
        role.approval
            .as_ref()
            .map(|a| a.groups.clone())
            .unwrap_or_default()
    } else {
        own.to_vec()
    }
}

/// Compiles a role's `http:` section.
fn http_plan(
    role: &sluice_config::Role,
    masks: &HashMap<String, sluice_mask::MaskPolicy>,
) -> Result<Option<HttpPlan>> {
    use sluice_engine_http::{RouteRule, RouteRules};
    let Some(http) = &role.http else {
        return Ok(None);
    };
    let mut rules = match &http.profile {
        Some(name) => RouteRules::profile(name)
            .ok_or_else(|| anyhow::anyhow!("role {}: unknown http profile {name}", role.name))?,
        None => RouteRules::default(),
    };
    let convert = |specs: &[sluice_config::HttpRuleSpec]| -> Vec<RouteRule> {
        specs
            .iter()
            .map(|spec| RouteRule {
                name: spec.name.clone(),
                methods: spec.methods.clone(),
                paths: spec.paths.clone(),
            })
            .collect()
    };
    rules.allow.extend(convert(&http.allow));
    rules.block.extend(convert(&http.block));
    rules.approve.extend(convert(&http.approve));
    let (masking, paths) = response_masks(role, "http", http.masking.as_ref(), &http.mask, masks)?;
    Ok(Some(HttpPlan {
        rules,
        approvers: section_approvers(role, &http.approvers),
        masking,
        paths,
        record_bodies: http.record_bodies,
    }))
}

/// Compiles a role's `kube:` section; a rule the engine would misread is a load error.
fn kube_plan(
    role: &sluice_config::Role,
    masks: &HashMap<String, sluice_mask::MaskPolicy>,
) -> Result<Option<KubePlan>> {
    use sluice_engine_http::kube::{KubeRule, KubeRules};
    let Some(kube) = &role.kube else {
        return Ok(None);
    };
    let mut rules = match &kube.profile {
        Some(name) => KubeRules::profile(name)
            .ok_or_else(|| anyhow::anyhow!("role {}: unknown kube profile {name}", role.name))?,
        None => KubeRules::default(),
    };
    let convert = |specs: &[sluice_config::KubeRuleSpec]| -> Vec<KubeRule> {
        specs
            .iter()
            .map(|spec| KubeRule {
                name: spec.name.clone(),
                verbs: spec.verbs.clone(),
                resources: spec.resources.clone(),
                namespaces: spec.namespaces.clone(),
                names: spec.names.clone(),
            })
            .collect()
    };
    rules.allow.extend(convert(&kube.allow));
    rules.block.extend(convert(&kube.block));
    rules.approve.extend(convert(&kube.approve));
    rules.validate().map_err(|errors| {
        anyhow::anyhow!("role {}: kube rules: {}", role.name, errors.join("; "))
    })?;
    let (masking, paths) = response_masks(role, "kube", kube.masking.as_ref(), &kube.mask, masks)?;
    Ok(Some(KubePlan {
        rules,
        masking,
        paths,
        record_bodies: kube.record_bodies,
        groups: kube.groups.clone(),
        approvers: section_approvers(role, &kube.approvers),
    }))
}

impl RolePlan {
    /// Whether a session that started under `self` can go on under `new` (its next statement
    /// decided by `new`'s guardrails); if not, it must end and the client connect again.
    pub fn carries_over_to(&self, new: &RolePlan) -> bool {
        self.fixed == new.fixed
    }
}

/// Every role's plan under one configuration.
#[derive(Debug, Default)]
pub struct Plans {
    roles: HashMap<String, Arc<RolePlan>>,
}

/// A role's SSH rules: without an `ssh:` section, a shell, any command and any file transfer
/// (the host's own permissions are the limit, as for a PostgreSQL role without guardrails),
/// and no forwards. With one, file transfers need its `files:` and forwards its `forward:`.
fn ssh_policy(ssh: Option<&sluice_config::SshRole>) -> sluice_engine_ssh::Policy {
    let Some(ssh) = ssh else {
        return sluice_engine_ssh::Policy {
            shell: true,
            exec: Default::default(),
            files: Some(Default::default()),
            forwards: Vec::new(),
            logins: Vec::new(),
            record_input: false,
            remote_forward: false,
            agent: false,
        };
    };
    let rules = |specs: &[sluice_config::ExecRuleSpec]| {
        specs
            .iter()
            .map(|spec| sluice_engine_ssh::ExecRule {
                name: spec.name.clone(),
                commands: spec.commands.clone(),
            })
            .collect()
    };
    sluice_engine_ssh::Policy {
        shell: ssh.shell,
        exec: sluice_engine_ssh::ExecRules {
            allow: rules(&ssh.exec.allow),
            block: rules(&ssh.exec.block),
            approve: rules(&ssh.exec.approve),
        },
        files: ssh
            .files
            .as_ref()
            .map(|files| sluice_engine_ssh::FileRules {
                read_only: files.read_only,
                allow: files.allow.clone(),
                deny: files.deny.clone(),
            }),
        forwards: ssh.forward.clone(),
        logins: ssh.logins.clone(),
        record_input: ssh.record_input,
        remote_forward: ssh.remote_forward,
        agent: ssh.agent,
    }
}

impl Plans {
    /// Compiles every role (masking keys are read here, so a broken one is a load error).
    pub fn compile(config: &Config) -> Result<Self> {
        let masks = crate::enforce::mask_policies(config)?;
        let mut sql = SqlPlan::compile_with(config, &masks)?;
        let roles = config
            .policy
            .roles
            .iter()
            .map(|role| {
                let kube = kube_plan(role, &masks)?.map(Arc::new);
                let http = http_plan(role, &masks)?.map(Arc::new);
                let plan = RolePlan {
                    kube,
                    http,
                    record: role.record,
                    record_rows: role.sql.record_rows,
                    sql: sql.remove(&role.name).unwrap_or_default(),
                    ssh: ssh_policy(role.ssh.as_ref()),
                    approvers: role
                        .ssh
                        .as_ref()
                        .map(|s| s.exec.approvers.clone())
                        .filter(|a| !a.is_empty())
                        .or_else(|| role.approval.as_ref().map(|a| a.groups.clone()))
                        .unwrap_or_default(),
                    fixed: Fixed {
                        guarded: role.sql.guardrails.is_some(),
                        masking: role
                            .sql
                            .masking
                            .as_deref()
                            .and_then(|name| config.policy.masking_profile(name))
                            .cloned(),
                    },
                };
                Ok((role.name.clone(), Arc::new(plan)))
            })
            .collect::<Result<_>>()?;
        Ok(Self { roles })
    }

    /// The plan of `role`, if the configuration defines it.
    pub fn get(&self, role: &str) -> Option<Arc<RolePlan>> {
        self.roles.get(role).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plans(roles: &str) -> Plans {
        let text = format!(
            "\
listen: 127.0.0.1:8443
tls: {{cert: tls/server.crt, key: tls/server.key, ca: tls/ca.crt}}
tokens: {{signing_key: keys/session-signing.pem}}
store: {{sqlite: sluice.db}}
resources:
  db: {{kind: postgres, address: 127.0.0.1:9, database: app, user: app, password: 'env:PW'}}
policy:
  masking:
    pii: {{columns: [{{name: mail, column: '*.email', style: redact}}]}}
    light: {{columns: [{{name: mail, column: '*.email', style: last4}}]}}
  roles:
{roles}
  rules:
    - {{name: all, groups: [dev], resources: [db], roles: [r]}}
"
        );
        let config = sluice_config::parse(&text, std::path::Path::new("/etc/sluice/sluice.yaml"))
            .unwrap_or_else(|e| panic!("test config: {e}"));
        Plans::compile(&config).expect("the plans compile")
    }

    fn role(plans: &Plans) -> Arc<RolePlan> {
        plans.get("r").expect("role r has a plan")
    }

    #[test]
    fn new_guardrails_carry_over_to_a_running_session() {
        let old = role(&plans("    r: {max_ttl: 1h, guardrails: read-only}"));
        let new = role(&plans("    r: {max_ttl: 1h, guardrails: guarded-write}"));
        assert!(old.carries_over_to(&new));
        assert!(new.sql.needs_catalog() == old.sql.needs_catalog());
    }

    #[test]
    fn gaining_or_losing_guardrails_or_changing_masking_does_not() {
        let plain = role(&plans("    r: {max_ttl: 1h}"));
        let guarded = role(&plans("    r: {max_ttl: 1h, guardrails: read-only}"));
        let pii = role(&plans("    r: {max_ttl: 1h, masking: pii}"));
        let light = role(&plans("    r: {max_ttl: 1h, masking: light}"));
        assert!(!plain.carries_over_to(&guarded));
        assert!(!guarded.carries_over_to(&plain));
        assert!(!pii.carries_over_to(&light));
        assert!(!plain.carries_over_to(&pii));
        assert!(pii.sql.needs_catalog());
        assert!(!plain.sql.needs_catalog());
    }

    #[test]
    fn a_role_the_configuration_does_not_define_has_no_plan() {
        assert!(plans("    r: {max_ttl: 1h}").get("gone").is_none());
    }
}
