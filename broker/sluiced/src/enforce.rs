//! What a session enforces, built from its role: the SQL guard (classifier + guardrail
//! profile), result masking (masking profile) and approvals of held statements.
//!
//! Everything that can fail (masking keys, rule patterns) is built once at start-up, so a
//! broken profile stops the broker with a located error instead of failing sessions later.

mod lineage;

use crate::holds::{Holds, Session, SessionApprovals};
use crate::plan::RolePlan;
use anyhow::{Context, Result};
use lineage::{ColumnVerdict, SessionLineage};
use sluice_config::{
    AgentWrites, Config, DetectorKind, GuardAction, GuardBase, GuardRuleSpec, GuardrailsRef,
    MaskStyle,
};
use sluice_engine_postgres::catalog::Columns;
use sluice_engine_postgres::hooks::{
    Check, ColumnInfo, Enforcement, Guard, Masked, Masker, ResultOf, RowMask, TextFacts,
};
use sluice_mask::{MaskCounts, MaskPolicy};
use sluice_sql::{
    Action, Classifier, GuardPolicy, GuardRule, PreparedRef, Profile, StatementClass,
    StatementFacts, Verdict,
};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tracing::info;

/// Classified texts kept per broker; repeated statements cost a lookup.
const CLASSIFIER_CACHE: usize = 4096;
/// How long a resource's catalog (column names behind table OIDs) is reused.
const CATALOG_TTL: Duration = Duration::from_secs(60);
/// How long a held statement waits when the role's profile does not say.
const DEFAULT_HOLD_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// What the broker's SQL sessions share: the statement classifier, the approvals service and
/// each resource's catalog. A session's own enforcement comes from its role's [`SqlPlan`].
pub struct Enforcer {
    classifier: Arc<Classifier>,
    holds: Arc<Holds>,
    /// Column names behind table OIDs, per resource, shared with its sessions (which look up
    /// tables created since, decision 28).
    catalogs: Mutex<HashMap<String, Arc<Columns>>>,
}

impl std::fmt::Debug for Enforcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enforcer").finish_non_exhaustive()
    }
}

/// What one role enforces on SQL resources, compiled from its guardrails and masking.
#[derive(Default)]
pub struct SqlPlan {
    guard: Option<Arc<GuardPolicy>>,
    base: Option<GuardBase>,
    masking: Option<MaskPolicy>,
    approvers: Vec<String>,
    hold_timeout: Duration,
    agent_writes: Option<AgentWrites>,
}

impl std::fmt::Debug for SqlPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlPlan")
            .field("base", &self.base)
            .field("masking", &self.masking.is_some())
            .finish_non_exhaustive()
    }
}

impl SqlPlan {
    /// Builds every role's guard and masking policy, by role name, with the masking profiles
    /// [`mask_policies`] compiled.
    pub(crate) fn compile_with(
        config: &Config,
        masks: &HashMap<String, MaskPolicy>,
    ) -> Result<HashMap<String, SqlPlan>> {
        let mut roles = HashMap::new();
        for role in &config.policy.roles {
            let approvers_of_role = role
                .approval
                .as_ref()
                .map(|a| a.groups.clone())
                .unwrap_or_default();
            let (guard, base, approvers, hold_timeout) = match &role.sql.guardrails {
                None => (None, None, approvers_of_role, DEFAULT_HOLD_TIMEOUT),
                Some(GuardrailsRef::Builtin(base)) => (
                    Some(Arc::new(GuardPolicy::new(profile(*base)))),
                    Some(*base),
                    approvers_of_role,
                    DEFAULT_HOLD_TIMEOUT,
                ),
                Some(GuardrailsRef::Profile(name)) => {
                    let spec = config
                        .policy
                        .guardrail_profile(name)
                        .with_context(|| format!("guardrail profile {name} is missing"))?;
                    let rules = spec.rules.iter().map(rule).collect();
                    let approvers = if spec.approvers.is_empty() {
                        approvers_of_role
                    } else {
                        spec.approvers.clone()
                    };
                    (
                        Some(Arc::new(GuardPolicy {
                            profile: profile(spec.base),
                            rules,
                        })),
                        Some(spec.base),
                        approvers,
                        spec.approval_timeout,
                    )
                }
            };
            let masking = role
                .sql
                .masking
                .as_ref()
                .and_then(|name| masks.get(name).cloned());
            roles.insert(
                role.name.clone(),
                SqlPlan {
                    guard,
                    base,
                    masking,
                    approvers,
                    hold_timeout,
                    agent_writes: role.sql.agent_writes,
                },
            );
        }
        Ok(roles)
    }

    /// The masking sessions under this plan apply, if any.
    pub fn masking(&self) -> Option<&MaskPolicy> {
        self.masking.as_ref()
    }

    /// Whether sessions under this plan have statement guardrails.
    pub fn is_guarded(&self) -> bool {
        self.guard.is_some()
    }

    /// Whether sessions under this plan mask by column name, and so need the catalog to see
    /// through aliases.
    pub fn needs_catalog(&self) -> bool {
        self.masking
            .as_ref()
            .is_some_and(|m| !m.columns().is_empty())
    }
}

impl Enforcer {
    /// What SQL sessions share, over the broker's approvals service.
    pub fn new(holds: Arc<Holds>) -> Self {
        Self {
            classifier: Arc::new(Classifier::new(CLASSIFIER_CACHE)),
            holds,
            catalogs: Mutex::new(HashMap::new()),
        }
    }

    /// The resource's columns, read whole at most every [`CATALOG_TTL`] with the broker's own
    /// login. Sessions of the resource share them: a table one of them looks up is known to
    /// all.
    pub async fn catalog(
        &self,
        resource: &str,
        target: &sluice_engine_postgres::Target,
    ) -> Result<Arc<Columns>, sluice_engine_postgres::catalog::CatalogError> {
        let columns = Arc::clone(
            self.catalogs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(resource.to_owned())
                .or_insert_with(|| Arc::new(Columns::new(target.clone()))),
        );
        columns.refresh(CATALOG_TTL, target).await?;
        Ok(columns)
    }

    /// The enforcement of a session under `role`'s plan, and the settings its upstream login
    /// imposes. `updates` carries the role's plan as reloads replace it (the guard takes the
    /// new guardrails before the next statement).
    pub fn for_session(
        &self,
        role: &RolePlan,
        mut session: Session,
        columns: Option<Arc<Columns>>,
        updates: Option<watch::Receiver<Arc<RolePlan>>>,
    ) -> SessionEnforcement {
        let plan = &role.sql;
        let counts = Arc::new(Mutex::new(MaskCounts::new()));
        let mut settings = Vec::new();
        if plan.guard.is_some() {
            // The server must read and judge the statements as the guard did, whatever the
            // database's or role's own defaults say (`ALTER DATABASE ... SET`).
            for (name, value) in [
                ("client_encoding", "UTF8"),
                ("standard_conforming_strings", "on"),
                ("transform_null_equals", "off"),
            ] {
                settings.push((name.to_owned(), value.to_owned()));
            }
        }
        if plan.base == Some(GuardBase::ReadOnly) {
            settings.push(("default_transaction_read_only".to_owned(), "on".to_owned()));
        }
        session.approvers = plan.approvers.clone();
        session.timeout = plan.hold_timeout;
        // COPY text carries no column names, so column rules could not apply to it.
        let column_rules = plan
            .masking
            .as_ref()
            .is_some_and(|m| !m.columns().is_empty());
        // Column rules need a guard even without guardrails: COPY TO and the statistics views
        // would carry masked values past them.
        // An agent's writes need the statements classified even without guardrails.
        let agent_writes = plan
            .agent_writes
            .filter(|_| session.via.as_deref() == Some(crate::agents_api::VIA_MCP));
        let guard_policy = plan.guard.clone().or_else(|| {
            (column_rules || agent_writes.is_some())
                .then(|| Arc::new(GuardPolicy::new(Profile::Admin)))
        });
        // Column rules follow values through expressions, views and writes (decision 38).
        let lineage = column_rules.then(|| {
            Arc::new(SessionLineage::new(
                columns.clone().unwrap_or_default(),
                Arc::clone(&self.classifier),
            ))
        });
        let guard = guard_policy.map(|policy| {
            Arc::new(SessionGuard {
                classifier: Arc::clone(&self.classifier),
                policy: Mutex::new(policy),
                updates: updates.map(Mutex::new),
                refuse_copy_out: column_rules,
                lineage: lineage.clone().zip(plan.masking.clone()),
                prepared: Mutex::new(HashMap::new()),
                subject: session.requester.subject.clone(),
                grant: session.grant.clone(),
                agent_writes,
            }) as Arc<dyn Guard>
        });
        let masker = plan
            .masking
            .as_ref()
            .filter(|m| !m.is_empty())
            .map(|policy| {
                Arc::new(SessionMasker {
                    policy: policy.clone(),
                    column_rules,
                    counts: Arc::clone(&counts),
                    columns: columns.clone().unwrap_or_default(),
                    lineage: lineage.clone(),
                }) as Arc<dyn Masker>
            });
        let approvals = guard.as_ref().map(|_| {
            Arc::new(SessionApprovals {
                holds: Arc::clone(&self.holds),
                session,
            }) as Arc<dyn sluice_engine_postgres::hooks::Approvals>
        });
        SessionEnforcement {
            enforcement: Enforcement {
                guard,
                approvals,
                masker,
                // The session's recording sets it (sessions.rs).
                journal: None,
            },
            settings,
            counts,
        }
    }
}

/// One session's hooks, the settings for its upstream login, and its masking counts.
#[derive(Debug, Default)]
pub struct SessionEnforcement {
    /// For the engine.
    pub enforcement: Enforcement,
    /// For the upstream login.
    pub settings: Vec<(String, String)>,
    /// How many values each masking rule rewrote, for the audit record at the end.
    pub counts: Arc<Mutex<MaskCounts>>,
}

fn profile(base: GuardBase) -> Profile {
    match base {
        GuardBase::ReadOnly => Profile::ReadOnly,
        GuardBase::GuardedWrite => Profile::GuardedWrite,
        GuardBase::Admin => Profile::Admin,
    }
}

fn rule(spec: &GuardRuleSpec) -> GuardRule {
    GuardRule {
        name: spec.name.clone(),
        action: match spec.action {
            GuardAction::Block => Action::Block,
            GuardAction::Approve => Action::RequireApproval,
        },
        // The config validated the names against the same list.
        classes: spec
            .classes
            .iter()
            .filter_map(|c| StatementClass::from_name(c))
            .collect(),
        tables: spec.tables.clone(),
        schemas: spec.schemas.clone(),
        functions: spec.functions.clone(),
        commands: spec.commands.clone(),
        pattern: spec.pattern.clone(),
    }
}

/// Every masking profile, compiled (its key read), by name: SQL roles and Kubernetes roles
/// name them.
pub fn mask_policies(config: &Config) -> Result<HashMap<String, MaskPolicy>> {
    let mut masks = HashMap::new();
    for profile in &config.policy.masking {
        let key = match &profile.key {
            Some(key) => {
                let secret = key.value.resolve().map_err(|e| {
                    anyhow::anyhow!("{}: policy.masking.{}.key: {e}", key.location, profile.name)
                })?;
                let digest = aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA256,
                    secret.expose().as_bytes(),
                );
                let mut key = [0u8; 32];
                key.copy_from_slice(digest.as_ref());
                key
            }
            // No `hash` style uses it (the config checks that): any key will do.
            None => rand::random(),
        };
        let columns = profile
            .columns
            .iter()
            .map(|rule| sluice_mask::ColumnRule {
                name: rule.name.clone(),
                column: rule.column.clone(),
                style: style(rule.style),
            })
            .collect();
        let detectors = profile
            .detectors
            .iter()
            .map(|rule| sluice_mask::DetectorRule {
                name: rule.name.clone(),
                detector: detector(rule.detector),
                style: style(rule.style),
            })
            .collect();
        let policy = MaskPolicy::new(columns, detectors, key)
            .with_context(|| format!("{}: policy.masking.{}", profile.location, profile.name))?;
        masks.insert(profile.name.clone(), policy);
    }
    Ok(masks)
}

fn style(style: MaskStyle) -> sluice_mask::Style {
    match style {
        MaskStyle::Redact => sluice_mask::Style::Redact,
        MaskStyle::Last4 => sluice_mask::Style::Last4,
        MaskStyle::Hash => sluice_mask::Style::Hash,
    }
}

fn detector(kind: DetectorKind) -> sluice_mask::Detector {
    match kind {
        DetectorKind::Card => sluice_mask::Detector::CardNumber,
        DetectorKind::Email => sluice_mask::Detector::Email,
        DetectorKind::Ssn => sluice_mask::Detector::UsSsn,
        DetectorKind::Iban => sluice_mask::Detector::Iban,
        DetectorKind::Phone => sluice_mask::Detector::Phone,
        DetectorKind::Secret => sluice_mask::Detector::Secret,
    }
}

/// The guard of one session: classifies, decides, and remembers what `PREPARE` defined so an
/// `EXECUTE` is decided on what it runs.
struct SessionGuard {
    classifier: Arc<Classifier>,
    /// The role's guardrails; a reload that changes them replaces this before the next
    /// statement.
    policy: Mutex<Arc<GuardPolicy>>,
    /// The role's plan as reloads replace it, to pick up its new guardrails.
    updates: Option<Mutex<watch::Receiver<Arc<RolePlan>>>>,
    /// The role's masking has column rules, which COPY output cannot honour.
    refuse_copy_out: bool,
    /// Under column rules: the session's lineage and the masking policy, to refuse writes and
    /// side channels that would carry a masked value out of reach of the masker.
    lineage: Option<(Arc<SessionLineage>, MaskPolicy)>,
    prepared: Mutex<HashMap<String, StatementFacts>>,
    subject: String,
    grant: String,
    /// Set when the session came through `sluice mcp` and the role says what agents' writes
    /// get (`agent_writes`).
    agent_writes: Option<AgentWrites>,
}

impl SessionGuard {
    /// The role's guardrails now: after a reload, the new ones (one atomic load otherwise).
    /// A reload that takes the role's guardrails away ends the session instead (tunnel.rs), so
    /// the old ones stay until then.
    fn policy(&self) -> Arc<GuardPolicy> {
        let mut policy = self.policy.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(updates) = &self.updates {
            let mut updates = updates.lock().unwrap_or_else(|p| p.into_inner());
            if updates.has_changed().unwrap_or(false)
                && let Some(new) = updates.borrow_and_update().sql.guard.clone()
            {
                *policy = new;
            }
        }
        Arc::clone(&policy)
    }
}

impl Guard for SessionGuard {
    fn check_sql(&self, sql: &str) -> Check {
        let facts = self.classifier.classify(sql);
        let policy = self.policy();
        let mut prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        let mut verdict = policy.decide_with(&facts, &*prepared);
        if verdict.is_allow() && self.refuse_copy_out {
            if facts.iter().any(copies_out) {
                verdict = Verdict::Block {
                    rule: "masking:copy-out".into(),
                    reason: "COPY ... TO cannot be masked column by column (COPY output carries \
                             no column names) and this role masks columns; use SELECT instead"
                        .into(),
                };
            } else if let Some(view) = facts.iter().flat_map(|f| &f.tables).find(|t| statistics(t))
            {
                verdict = Verdict::Block {
                    rule: "masking:statistics".into(),
                    reason: format!(
                        "{view} holds sample values of every column (most common values, \
                         histograms), masked ones included, and this role masks columns"
                    ),
                };
            } else if let Some((lineage, masking)) = &self.lineage
                && let Some((rule, reason)) = lineage.launders(sql, masking)
            {
                verdict = Verdict::Block { rule, reason };
            }
        }
        if verdict.is_allow()
            && let Some(mode) = self.agent_writes
            && facts.iter().any(changes_something)
        {
            let what = format!(
                "{} by an AI agent (a session through sluice mcp)",
                commands(&facts)
            );
            verdict = match mode {
                AgentWrites::Approve => Verdict::Hold {
                    rule: "agent_writes".into(),
                    reason: format!("{what} needs approval"),
                },
                AgentWrites::Block => Verdict::Block {
                    rule: "agent_writes".into(),
                    reason: format!("{what} is not allowed: this role lets agents read only"),
                },
            };
        }
        match verdict {
            Verdict::Allow => {
                for statement in facts.iter() {
                    remember(&mut prepared, statement);
                }
                Check::Allow
            }
            Verdict::Block { rule, reason } => {
                info!(target: "audit", event = "statement.blocked.v1", subject = %self.subject,
                    grant = %self.grant, rule = %rule,
                    commands = %commands(&facts));
                Check::Block {
                    rule,
                    message: reason,
                }
            }
            Verdict::Hold { rule, reason } => Check::Hold { rule, reason },
        }
    }

    fn check_function_call(&self, oid: u32) -> Check {
        let policy = self.policy();
        if policy.profile == Profile::Admin && policy.rules.is_empty() {
            return Check::Allow;
        }
        info!(target: "audit", event = "statement.blocked.v1", subject = %self.subject,
            grant = %self.grant, rule = "function-call", function_oid = oid);
        Check::Block {
            rule: "function-call".into(),
            message: format!(
                "a FunctionCall message (function OID {oid}) cannot be inspected; call the \
                 function from SQL instead"
            ),
        }
    }
}

/// The planner statistics, which keep sample values of columns.
fn statistics(table: &sluice_sql::TableRef) -> bool {
    matches!(table.schema.as_deref(), None | Some("pg_catalog"))
        && matches!(
            table.name.as_str(),
            "pg_stats"
                | "pg_statistic"
                | "pg_stats_ext"
                | "pg_stats_ext_exprs"
                | "pg_statistic_ext_data"
        )
}

/// Whether a statement sends rows out with COPY (to the client, a file or a program).
/// Whether a statement may change anything: every class but reads, transaction control and
/// session settings, and among those a read that calls a function with side effects, a COPY
/// other than to the client, and `EXECUTE` (whose prepared statement is not looked into).
fn changes_something(facts: &StatementFacts) -> bool {
    use sluice_sql::StatementClass as C;
    match facts.class {
        C::Read => !facts.side_effect_functions.is_empty(),
        C::Transaction => false,
        C::Session => facts.command.eq_ignore_ascii_case("EXECUTE"),
        C::Copy => !facts.copy.as_ref().is_some_and(|c| {
            c.direction == sluice_sql::CopyDirection::To
                && c.target == sluice_sql::CopyTarget::Stdio
        }),
        _ => true,
    }
}

fn copies_out(facts: &StatementFacts) -> bool {
    facts
        .copy
        .as_ref()
        .is_some_and(|c| c.direction == sluice_sql::CopyDirection::To)
}

/// Keeps the prepared-statement table in step with what ran.
fn remember(prepared: &mut HashMap<String, StatementFacts>, statement: &StatementFacts) {
    match &statement.prepared {
        Some(PreparedRef::Prepare { name, statement }) => {
            prepared.insert(name.clone(), (**statement).clone());
        }
        Some(PreparedRef::Deallocate { name: Some(name) }) => {
            prepared.remove(name);
        }
        Some(PreparedRef::Deallocate { name: None }) => prepared.clear(),
        _ if statement.command == "DISCARD ALL" => prepared.clear(),
        _ => {}
    }
}

/// `SELECT, DELETE` — command tags only: statement text can carry values and stays out of the
/// audit trail.
fn commands(facts: &[StatementFacts]) -> String {
    facts
        .iter()
        .map(|f| f.command.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Masking of one session.
struct SessionMasker {
    policy: MaskPolicy,
    /// The policy has column rules: result columns need their real names, and a column whose
    /// name cannot be found is masked (decision 28).
    column_rules: bool,
    counts: Arc<Mutex<MaskCounts>>,
    /// Real table and column names behind result columns, shared with the resource's other
    /// sessions.
    columns: Arc<Columns>,
    /// What flows into each result column, when the policy has column rules.
    lineage: Option<Arc<SessionLineage>>,
}

/// The rule that masks a result column derived from a masked one (or from what sluice cannot
/// trace), reported in audit counts under this name.
const DERIVED_RULE: &str = "derived-column";

/// Redacts every column it is asked about, counted under `rule`.
fn redact_all(rule: &str) -> MaskPolicy {
    MaskPolicy::new(
        vec![sluice_mask::ColumnRule {
            name: rule.into(),
            column: "*".into(),
            style: sluice_mask::Style::Redact,
        }],
        Vec::new(),
        // The `hash` style is not used: any key will do.
        [0; 32],
    )
    .expect("a one-rule profile with the pattern `*` compiles")
}

/// See [`DERIVED_RULE`].
fn derived_policy() -> &'static MaskPolicy {
    static POLICY: std::sync::OnceLock<MaskPolicy> = std::sync::OnceLock::new();
    POLICY.get_or_init(|| redact_all(DERIVED_RULE))
}

/// The rule that masks a result column whose table could not be named, reported in audit
/// counts under this name.
const UNRESOLVED_RULE: &str = "unresolved-column";

/// Masks every column it is asked about with `redact`, the style that gives nothing away
/// (`last4` keeps a part, `hash` keeps equality), whatever the role's rules would have chosen.
fn unresolved_policy() -> &'static MaskPolicy {
    static POLICY: std::sync::OnceLock<MaskPolicy> = std::sync::OnceLock::new();
    POLICY.get_or_init(|| redact_all(UNRESOLVED_RULE))
}

impl SessionMasker {
    /// The `(table OID, attribute number)` of each column, for the catalog.
    fn keys(columns: &[ColumnInfo]) -> impl Iterator<Item = (u32, i16)> + '_ {
        columns.iter().map(|c| (c.table_oid, c.column))
    }
}

impl SessionMasker {
    /// Plans a result shape; `of` says which statement's result it is, for lineage.
    fn plan_with(&self, columns: &[ColumnInfo], of: ResultOf<'_>) -> Option<Box<dyn RowMask>> {
        // As the client sees the columns (aliases), with no table.
        let as_named: Vec<sluice_mask::Column<'_>> = columns
            .iter()
            .map(|c| sluice_mask::Column {
                name: &c.name,
                table: None,
                type_oid: c.type_oid,
                binary: c.binary,
            })
            .collect();
        // As the catalog knows them: `SELECT email AS e FROM users` is `public.users.email`.
        let known = self.columns.known();
        // What the statement's text says flows into each column: through expressions and
        // views a value can carry a masked column that the RowDescription does not name.
        let verdicts = self
            .lineage
            .as_ref()
            .and_then(|_| {
                lineage::verdicts(of.facts, of.statement, columns.len(), &self.policy, &known)
            })
            .unwrap_or_default();
        let verdict = |i: usize| verdicts.get(i).unwrap_or(&ColumnVerdict::AsDescribed);
        let base_tables: Vec<Option<String>> = (0..columns.len())
            .map(|i| match verdict(i) {
                ColumnVerdict::Plain(base) => Some(lineage::table_of(base, &known)),
                _ => None,
            })
            .collect();
        let mut unresolved = vec![false; columns.len()];
        let mut derived = vec![false; columns.len()];
        let resolved: Vec<sluice_mask::Column<'_>> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| match known.get(c.table_oid, c.column) {
                // A stored column of a table is exactly what its row holds.
                Some((table, name)) if !known.is_view(c.table_oid) => sluice_mask::Column {
                    name,
                    table: Some(table),
                    type_oid: c.type_oid,
                    binary: c.binary,
                },
                found => match (verdict(i), &base_tables[i]) {
                    (ColumnVerdict::Plain(base), Some(table)) => sluice_mask::Column {
                        name: &base.column,
                        table: Some(table),
                        type_oid: c.type_oid,
                        binary: c.binary,
                    },
                    (ColumnVerdict::Redact, _) => {
                        derived[i] = true;
                        sluice_mask::Column {
                            name: &c.name,
                            table: None,
                            type_oid: c.type_oid,
                            binary: c.binary,
                        }
                    }
                    _ => match found {
                        Some((table, name)) => sluice_mask::Column {
                            name,
                            table: Some(table),
                            type_oid: c.type_oid,
                            binary: c.binary,
                        },
                        None => {
                            // A table column the catalog cannot name (not a computed one).
                            unresolved[i] = c.table_oid != 0 && self.column_rules;
                            sluice_mask::Column {
                                name: &c.name,
                                table: None,
                                type_oid: c.type_oid,
                                binary: c.binary,
                            }
                        }
                    },
                },
            })
            .collect();
        let named = self.policy.plan(&as_named);
        let real = self.policy.plan(&resolved);
        drop(known);
        let any_unresolved = unresolved.contains(&true);
        let any_derived = derived.contains(&true);
        if named.is_noop() && real.is_noop() && !any_unresolved && !any_derived {
            return None;
        }
        // A column a rule names by its real name is masked by that rule, whatever its alias;
        // one whose real name is unknown is masked by a rule its alias matches, or redacted:
        // it might be anything, so it fails closed.
        let source: Vec<Source> = (0..columns.len())
            .map(|i| {
                if derived[i] {
                    Source::Derived
                } else if real.column_rule(i).is_some() {
                    Source::Real
                } else if unresolved[i] {
                    Source::Unresolved
                } else {
                    Source::Named
                }
            })
            .collect();
        let fallback = any_unresolved.then(|| unresolved_policy().plan(&as_named));
        let redacted = any_derived.then(|| derived_policy().plan(&as_named));
        Some(Box::new(PlanMask {
            named,
            real,
            fallback,
            redacted,
            source,
            counts: MaskCounts::new(),
            sink: Arc::clone(&self.counts),
        }) as Box<dyn RowMask>)
    }
}

impl Masker for SessionMasker {
    fn plan(&self, columns: &[ColumnInfo]) -> Option<Box<dyn RowMask>> {
        self.plan_with(columns, ResultOf::default())
    }

    fn analyze(&self, sql: &str) -> Option<TextFacts> {
        self.lineage
            .as_ref()
            .map(|lineage| lineage.analyze(sql, &self.policy))
    }

    fn plan_for(&self, columns: &[ColumnInfo], of: ResultOf<'_>) -> Option<Box<dyn RowMask>> {
        self.plan_with(columns, of)
    }

    fn mask_message(&self, text: &str, of: ResultOf<'_>) -> Option<String> {
        let detected = self.mask_text(text);
        if !lineage::reads_masked(of.facts) {
            return detected;
        }
        let base = detected.as_deref().unwrap_or(text);
        lineage::redact_quoted(base).or(detected)
    }

    fn unresolved(&self, columns: &[ColumnInfo]) -> bool {
        self.column_rules && self.columns.missing(Self::keys(columns))
    }

    fn resolve<'a>(
        &'a self,
        columns: &'a [ColumnInfo],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        let keys: Vec<(u32, i16)> = Self::keys(columns).collect();
        Box::pin(async move { self.columns.resolve(&keys).await })
    }

    fn mask_text(&self, text: &str) -> Option<String> {
        let mut counts = MaskCounts::new();
        match self.policy.mask_text(text, &mut counts) {
            Cow::Borrowed(_) => None,
            Cow::Owned(masked) => {
                self.counts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .merge(&counts);
                Some(masked)
            }
        }
    }
}

/// Which plan masks a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The plan by the name the client sees.
    Named,
    /// The plan by the real `schema.table.column`.
    Real,
    /// The column's table could not be named: redacted.
    Unresolved,
    /// Derived from a masked column, or untraceable: redacted.
    Derived,
}

/// One result shape's masking; its counts join the session's when the result is done.
struct PlanMask {
    named: sluice_mask::RowPlan,
    real: sluice_mask::RowPlan,
    /// Redacts every column; made only when some column is unresolved.
    fallback: Option<sluice_mask::RowPlan>,
    /// Redacts every column; made only when some column is derived from a masked one.
    redacted: Option<sluice_mask::RowPlan>,
    /// Per column, which plan masks it.
    source: Vec<Source>,
    counts: MaskCounts,
    sink: Arc<Mutex<MaskCounts>>,
}

impl RowMask for PlanMask {
    fn mask(&mut self, index: usize, value: &[u8]) -> Masked {
        let plan = match self.source.get(index) {
            Some(Source::Real) => &self.real,
            Some(Source::Unresolved) => self.fallback.as_ref().unwrap_or(&self.named),
            Some(Source::Derived) => self.redacted.as_ref().unwrap_or(&self.named),
            Some(Source::Named) | None => &self.named,
        };
        match plan.mask_value(index, value, &mut self.counts) {
            sluice_mask::Masked::Unchanged => Masked::Unchanged,
            sluice_mask::Masked::Replace(bytes) => Masked::Replace(bytes),
            sluice_mask::Masked::Null => Masked::Null,
        }
    }
}

impl Drop for PlanMask {
    fn drop(&mut self) {
        if !self.counts.is_empty() {
            self.sink
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .merge(&self.counts);
        }
    }
}

#[cfg(test)]
mod tests;
