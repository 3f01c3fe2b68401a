//! The guard decision: statement facts and a role's policy in, one verdict out. Pure.
//!
//! Order of evaluation for each statement: the policy's custom rules in order (the first
//! that matches decides: block, or hold for approval), then the built-in profile. A string
//! of several statements gets the strictest verdict of its statements, so one refused
//! statement refuses the whole string and the engine never runs half of it.
//!
//! Statements that carry another statement are decided on both, strictest wins: `PREPARE x
//! AS s` and `COPY (s) TO` on `s` as well, `EXECUTE x` on what `PREPARE x` defined (looked up
//! through [`PreparedLookup`]; unknown names are refused under guarded profiles).
//!
//! Every built-in refusal names a rule of the form `<profile>` or `<profile>:<reason>`
//! (`read-only`, `guarded-write:no-where`), and its reason is written for the person at the
//! `psql` prompt: what was refused and why.

use std::collections::HashMap;
use std::fmt;

use crate::facts::{
    CopyDirection, CopyTarget, PreparedRef, SideEffectKind, StatementClass, StatementFacts,
    TableRef, WhereFacts, side_effect_kind,
};

/// A built-in guard profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Only statements without side effects.
    ReadOnly,
    /// Read-only plus `INSERT`, `MERGE`, and `UPDATE`/`DELETE` with a real `WHERE`.
    GuardedWrite,
    /// Everything (recorded); custom rules still apply.
    Admin,
}

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 3] = [Profile::ReadOnly, Profile::GuardedWrite, Profile::Admin];

    /// The name used in configuration and in rule names: `read-only`, `guarded-write`, `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::ReadOnly => "read-only",
            Profile::GuardedWrite => "guarded-write",
            Profile::Admin => "admin",
        }
    }

    /// The profile named `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Profile> {
        Profile::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a matching custom rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Action {
    /// Refuse the statement.
    #[default]
    Block,
    /// Hold the statement until a human approves it (configuration: `approve`).
    RequireApproval,
}

impl Action {
    /// The action named `name` in configuration: `block` or `approve`.
    pub fn from_name(name: &str) -> Option<Action> {
        match name.trim().to_ascii_lowercase().as_str() {
            "block" => Some(Action::Block),
            "approve" | "require-approval" | "require_approval" => Some(Action::RequireApproval),
            _ => None,
        }
    }
}

/// A named custom rule. It matches a statement when every non-empty criterion matches
/// (criteria are AND-ed; the entries of one criterion are OR-ed). A rule without any
/// criterion matches every statement.
///
/// Name patterns are case-insensitive globs (`*` any run, `?` one character). A pattern with
/// a dot (`public.users`, `*.secrets`) is `schema.name`; one without (`users`) matches the
/// name in any schema. A name the statement did not qualify matches on its name part alone,
/// since the classifier cannot know the `search_path`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuardRule {
    /// Named in verdicts, audit events and the message the client sees.
    pub name: String,
    /// Block, or hold for approval.
    pub action: Action,
    /// Statement classes, any of.
    pub classes: Vec<StatementClass>,
    /// Relation patterns, any of, matched against [`StatementFacts::tables`].
    pub tables: Vec<String>,
    /// Schema patterns, any of, matched against [`StatementFacts::schemas`] plus `public`
    /// for every relation the statement did not qualify (the default `search_path`).
    pub schemas: Vec<String>,
    /// Function patterns, any of, matched against [`StatementFacts::functions`].
    pub functions: Vec<String>,
    /// Command-tag patterns, any of (`DROP TABLE`, `DROP *`, `TRUNCATE`).
    pub commands: Vec<String>,
    /// A case-insensitive glob searched for anywhere in the statement's normalized text
    /// (comments removed, whitespace collapsed to one space).
    pub pattern: Option<String>,
}

impl GuardRule {
    /// A rule with no criteria yet.
    pub fn new(name: impl Into<String>, action: Action) -> Self {
        GuardRule {
            name: name.into(),
            action,
            ..GuardRule::default()
        }
    }

    /// What matched, one phrase per criterion, or `None` when the rule does not match.
    fn matches(&self, facts: &StatementFacts) -> Option<Vec<String>> {
        let mut why = Vec::new();
        if !self.classes.is_empty() {
            let class = self.classes.iter().find(|c| **c == facts.class)?;
            why.push(format!("class {class}"));
        }
        if !self.tables.is_empty() {
            let table = facts
                .tables
                .iter()
                .find(|t| self.tables.iter().any(|p| qualified_match(p, t)))?;
            why.push(format!("table {table}"));
        }
        if !self.schemas.is_empty() {
            let implicit_public = facts.tables.iter().any(|t| t.schema.is_none());
            let schema = facts
                .schemas
                .iter()
                .map(String::as_str)
                .chain(implicit_public.then_some("public"))
                .find(|s| self.schemas.iter().any(|p| glob(p, s)))?;
            why.push(format!("schema {schema}"));
        }
        if !self.functions.is_empty() {
            let function = facts.functions.iter().find(|f| {
                let (schema, name) = match f.rsplit_once('.') {
                    Some((schema, name)) => (Some(schema), name),
                    None => (None, f.as_str()),
                };
                let as_ref = TableRef::new(schema, name);
                self.functions.iter().any(|p| qualified_match(p, &as_ref))
            })?;
            why.push(format!("function {function}"));
        }
        if !self.commands.is_empty() {
            self.commands.iter().find(|p| glob(p, &facts.command))?;
            why.push(format!("command {}", facts.command));
        }
        if let Some(pattern) = &self.pattern {
            if !glob(&format!("*{pattern}*"), &facts.normalized) {
                return None;
            }
            why.push(format!("text matching \"{pattern}\""));
        }
        Some(why)
    }
}

/// A role's guardrails: a built-in profile and custom rules evaluated before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardPolicy {
    /// The base profile.
    pub profile: Profile,
    /// Custom rules, first match wins.
    pub rules: Vec<GuardRule>,
}

/// The decision for a statement or a string of statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Run it.
    Allow,
    /// Refuse it; nothing reaches the database.
    Block {
        /// The rule that refused it (`read-only`, `guarded-write:no-where`, a custom name).
        rule: String,
        /// What was refused and why, for the client.
        reason: String,
    },
    /// Hold it until a human approves or denies it.
    Hold {
        /// The custom rule that requires approval.
        rule: String,
        /// What needs approval and why.
        reason: String,
    },
}

impl Verdict {
    fn block(rule: impl Into<String>, reason: impl Into<String>) -> Verdict {
        Verdict::Block {
            rule: rule.into(),
            reason: reason.into(),
        }
    }

    fn severity(&self) -> u8 {
        match self {
            Verdict::Allow => 0,
            Verdict::Hold { .. } => 1,
            Verdict::Block { .. } => 2,
        }
    }

    /// Whether the statement may run without anyone's approval.
    pub fn is_allow(&self) -> bool {
        matches!(self, Verdict::Allow)
    }

    /// The stricter of two verdicts (the first on a tie).
    fn stricter(self, other: Verdict) -> Verdict {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    fn with_context(self, context: &str) -> Verdict {
        match self {
            Verdict::Allow => Verdict::Allow,
            Verdict::Block { rule, reason } => Verdict::Block {
                rule,
                reason: format!("{context}: {reason}"),
            },
            Verdict::Hold { rule, reason } => Verdict::Hold {
                rule,
                reason: format!("{context}: {reason}"),
            },
        }
    }
}

/// The facts of the SQL-level prepared statements of one session, by name: the engine
/// records the facts of each `PREPARE` it let through and forgets them on `DEALLOCATE` and
/// `DISCARD ALL`.
pub trait PreparedLookup {
    /// The facts of the statement prepared under `name`.
    fn prepared(&self, name: &str) -> Option<&StatementFacts>;
}

/// No prepared statements known: every `EXECUTE` is of an unknown statement.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPrepared;

impl PreparedLookup for NoPrepared {
    fn prepared(&self, _name: &str) -> Option<&StatementFacts> {
        None
    }
}

impl PreparedLookup for HashMap<String, StatementFacts> {
    fn prepared(&self, name: &str) -> Option<&StatementFacts> {
        self.get(name)
    }
}

/// The session's prepared statements plus those a string defines before the statement being
/// decided (latest definition first; `None` is a `DEALLOCATE`).
struct Earlier<'a> {
    outer: &'a dyn PreparedLookup,
    defined: Vec<(&'a str, Option<&'a StatementFacts>)>,
}

impl PreparedLookup for Earlier<'_> {
    fn prepared(&self, name: &str) -> Option<&StatementFacts> {
        match self.defined.iter().rev().find(|(n, _)| *n == name) {
            Some((_, facts)) => *facts,
            None => self.outer.prepared(name),
        }
    }
}

/// How deep `EXECUTE` → `PREPARE` → `COPY (...)` nesting is followed before refusing.
const MAX_NESTING: usize = 4;

impl GuardPolicy {
    /// A policy of a built-in profile with no custom rules.
    pub fn new(profile: Profile) -> Self {
        GuardPolicy {
            profile,
            rules: Vec::new(),
        }
    }

    /// The verdict for a string of statements, without knowledge of prepared statements.
    pub fn decide(&self, facts: &[StatementFacts]) -> Verdict {
        self.decide_with(facts, &NoPrepared)
    }

    /// The verdict for a string of statements; `EXECUTE name` is decided on the facts that
    /// `prepared` holds for `name`.
    pub fn decide_with(&self, facts: &[StatementFacts], prepared: &dyn PreparedLookup) -> Verdict {
        let total = facts.len();
        // `PREPARE p AS ...; EXECUTE p` in one string: the EXECUTE sees the PREPARE before it.
        let mut earlier = Earlier {
            outer: prepared,
            defined: Vec::new(),
        };
        let mut verdict = Verdict::Allow;
        for (i, f) in facts.iter().enumerate() {
            let mut one = self.decide_one(f, &earlier, 0);
            if total > 1 {
                one = one.with_context(&format!("statement {} of {total} ({})", i + 1, f.command));
            }
            verdict = verdict.stricter(one);
            match &f.prepared {
                Some(PreparedRef::Prepare { name, statement }) => {
                    earlier.defined.push((name, Some(statement)));
                }
                Some(PreparedRef::Deallocate { name: Some(name) }) => {
                    earlier.defined.push((name, None));
                }
                _ => {}
            }
        }
        verdict
    }

    fn decide_one(
        &self,
        facts: &StatementFacts,
        prepared: &dyn PreparedLookup,
        depth: usize,
    ) -> Verdict {
        let profile = self.profile.as_str();
        if depth > MAX_NESTING {
            return Verdict::block(
                format!("{profile}:nesting"),
                "statements nest too deeply through PREPARE/EXECUTE/COPY for sluice to follow; refused",
            );
        }
        // A matching rule replaces the profile's verdict on this statement; the statements it
        // carries are still decided, so approving `EXECUTE p` cannot release a refused `p`.
        let mut verdict = self
            .rule_verdict(facts)
            .unwrap_or_else(|| self.profile_verdict(facts));
        if let Some(copy) = &facts.copy
            && let Some(query) = &copy.query
        {
            let inner = self.decide_one(query, prepared, depth + 1);
            verdict = verdict.stricter(inner.with_context("the query of COPY (...) TO"));
        }
        match &facts.prepared {
            Some(PreparedRef::Prepare { name, statement }) => {
                let inner = self.decide_one(statement, prepared, depth + 1);
                verdict = verdict.stricter(inner.with_context(&format!("PREPARE {name}")));
            }
            Some(PreparedRef::Execute { name }) => {
                verdict = verdict.stricter(match prepared.prepared(name) {
                    Some(inner) => self
                        .decide_one(inner, prepared, depth + 1)
                        .with_context(&format!("EXECUTE {name} (prepared {})", inner.command)),
                    None if self.profile == Profile::Admin && self.rules.is_empty() => {
                        Verdict::Allow
                    }
                    None => Verdict::block(
                        format!("{profile}:unknown-prepared"),
                        format!(
                            "EXECUTE {name} runs a prepared statement sluice did not see prepared \
                             in this session, so it cannot tell what it does; refused"
                        ),
                    ),
                });
            }
            Some(PreparedRef::Deallocate { .. }) | None => {}
        }
        verdict
    }

    fn rule_verdict(&self, facts: &StatementFacts) -> Option<Verdict> {
        self.rules.iter().find_map(|rule| {
            let why = rule.matches(facts)?;
            let because = if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.join(", "))
            };
            Some(match rule.action {
                Action::Block => Verdict::Block {
                    rule: rule.name.clone(),
                    reason: format!(
                        "{} is refused by guardrail rule '{}'{because}",
                        facts.command, rule.name
                    ),
                },
                Action::RequireApproval => Verdict::Hold {
                    rule: rule.name.clone(),
                    reason: format!(
                        "{} needs approval under guardrail rule '{}'{because}",
                        facts.command, rule.name
                    ),
                },
            })
        })
    }

    /// The built-in profile's verdict on one statement, ignoring nested statements.
    fn profile_verdict(&self, f: &StatementFacts) -> Verdict {
        let profile = self.profile;
        let p = profile.as_str();
        if profile == Profile::Admin {
            // Custom rules rely on the classifier reading statements as the server does.
            if f.lexer_change && !self.rules.is_empty() {
                return Verdict::block("admin:lexer-change", lexer_change_reason(f));
            }
            return Verdict::Allow;
        }
        if f.class == StatementClass::Unknown {
            let error = f.parse_error.as_deref().unwrap_or("unknown error");
            return Verdict::block(
                format!("{p}:unparsed"),
                format!(
                    "sluice cannot parse this statement ({error}); under a guarded role what \
                     cannot be understood is refused"
                ),
            );
        }
        if f.role_change {
            return Verdict::block(
                format!("{p}:role-change"),
                format!(
                    "{} would change the database role sluice connected as (SET ROLE / SET \
                     SESSION AUTHORIZATION); refused for guarded roles",
                    f.command
                ),
            );
        }
        if f.lexer_change {
            return Verdict::block(format!("{p}:lexer-change"), lexer_change_reason(f));
        }
        if !f.unlisted_settings.is_empty() {
            return Verdict::block(
                format!("{p}:setting"),
                format!(
                    "{} changes {} (not on the list of harmless session settings in \
                     docs/guardrails.md); settings can switch off the server's own protections, \
                     its audit logging or row-level security, so guarded roles may not change it",
                    f.command,
                    f.unlisted_settings.join(", ")
                ),
            );
        }
        if let Some(relation) = f.tables.iter().find(|t| server_secret(t)) {
            return Verdict::block(
                format!("{p}:server-secrets"),
                format!(
                    "{} reads {relation}, which holds password hashes or the server's own \
                     configuration files; guarded roles may not read it",
                    f.command
                ),
            );
        }
        if profile == Profile::ReadOnly && f.read_only_change {
            return Verdict::block(
                "read-only:read-only-change",
                format!(
                    "{} could make this read-only session writable (default_transaction_read_only, \
                     transaction_read_only, READ WRITE, RESET ALL, DISCARD ALL); this role is \
                     read-only",
                    f.command
                ),
            );
        }
        if let Some(verdict) = self.side_effect_verdict(f) {
            return verdict;
        }
        match f.class {
            StatementClass::Read => Verdict::Allow,
            StatementClass::Write => self.write_verdict(f),
            StatementClass::Ddl => {
                let what = if f.select_into {
                    "SELECT ... INTO creates a table".to_owned()
                } else {
                    format!("{} changes the schema", f.command)
                };
                Verdict::block(
                    format!("{p}:ddl"),
                    format!("{}; this role may not run DDL", explained(f, &what)),
                )
            }
            StatementClass::Dcl => Verdict::block(
                format!("{p}:dcl"),
                format!(
                    "{} changes roles or privileges; this role may not run it",
                    f.command
                ),
            ),
            StatementClass::Admin => Verdict::block(
                format!("{p}:admin"),
                format!(
                    "{} is a server administration command; this role may not run it",
                    f.command
                ),
            ),
            StatementClass::Procedural => Verdict::block(
                format!("{p}:procedural"),
                format!(
                    "{} runs procedural code that sluice cannot inspect; this role may not run it",
                    f.command
                ),
            ),
            StatementClass::Transaction => {
                if matches!(
                    f.command.as_str(),
                    "PREPARE TRANSACTION" | "COMMIT PREPARED" | "ROLLBACK PREPARED"
                ) {
                    Verdict::block(
                        format!("{p}:two-phase"),
                        format!(
                            "{} is two-phase commit, which outlives the session; this role may \
                             not use it",
                            f.command
                        ),
                    )
                } else {
                    Verdict::Allow
                }
            }
            StatementClass::Session => {
                if profile == Profile::ReadOnly && f.command == "NOTIFY" {
                    Verdict::block(
                        "read-only:notify",
                        "NOTIFY signals other sessions; this role is read-only",
                    )
                } else {
                    Verdict::Allow
                }
            }
            StatementClass::Copy => self.copy_verdict(f),
            StatementClass::Unknown => Verdict::Allow, // handled above
        }
    }

    fn side_effect_verdict(&self, f: &StatementFacts) -> Option<Verdict> {
        let p = self.profile.as_str();
        let refused = f.side_effect_functions.iter().find_map(|name| {
            let kind = side_effect_kind(name)?;
            let allowed = self.profile == Profile::GuardedWrite
                && matches!(
                    kind,
                    SideEffectKind::Sequence | SideEffectKind::Coordination
                );
            (!allowed).then_some((name, kind))
        })?;
        let (name, kind) = refused;
        let what = match kind {
            SideEffectKind::Sequence => "advances a sequence",
            SideEffectKind::Coordination => "takes a lock or signals other sessions",
            SideEffectKind::Config => "changes session settings",
            SideEffectKind::LargeObject => "changes large objects",
            SideEffectKind::File => "reads or writes files on the database server",
            SideEffectKind::Remote => {
                "runs SQL that sluice cannot inspect (sent elsewhere or given as a string)"
            }
            SideEffectKind::Server => "acts on the database server itself",
        };
        Some(Verdict::block(
            format!("{p}:side-effect-function"),
            format!("{}() {what}; this role may not call it", name),
        ))
    }

    fn write_verdict(&self, f: &StatementFacts) -> Verdict {
        if self.profile == Profile::ReadOnly {
            if f.locking && f.writes.is_empty() && !f.modifying_cte {
                return Verdict::block(
                    "read-only:locking",
                    format!(
                        "{} locks rows or tables; this role is read-only",
                        explained_command(f)
                    ),
                );
            }
            let what = if f.modifying_cte {
                format!(
                    "{} has a data-modifying WITH ({})",
                    f.command,
                    describe_writes(f)
                )
            } else {
                explained(
                    f,
                    &format!("{} writes data ({})", f.command, describe_writes(f)),
                )
            };
            return Verdict::block("read-only", format!("{what}; this role is read-only"));
        }
        // guarded-write: no write to the system catalogs, whatever its filter.
        if let Some(write) = f.writes.iter().find(|w| system_catalog(&w.table)) {
            return Verdict::block(
                "guarded-write:catalog-write",
                format!(
                    "{} writes to the system catalog {}, which changes the schema or the server's \
                     own state like DDL does; this role may not run DDL",
                    explained_write(f, &write.command),
                    write.table
                ),
            );
        }
        // guarded-write: every write must be limited by a real filter.
        for write in &f.writes {
            let target = &write.table;
            let command = write.command.as_str();
            let (rule, problem) = match (command, write.filter) {
                ("TRUNCATE", _) => {
                    return Verdict::block(
                        "guarded-write:truncate",
                        format!("TRUNCATE {target} removes every row; this role may not truncate"),
                    );
                }
                ("MERGE", Some(WhereFacts::Missing | WhereFacts::TriviallyTrue)) => (
                    if write.filter == Some(WhereFacts::Missing) {
                        "guarded-write:no-where"
                    } else {
                        "guarded-write:trivial-where"
                    },
                    "can update or delete every row: its ON condition, or the AND condition of \
                     a WHEN ... THEN UPDATE/DELETE, does not select rows",
                ),
                ("INSERT", Some(WhereFacts::Missing | WhereFacts::TriviallyTrue)) => (
                    if write.filter == Some(WhereFacts::Missing) {
                        "guarded-write:no-where"
                    } else {
                        "guarded-write:trivial-where"
                    },
                    "reads its own table and its ON CONFLICT DO UPDATE can update every row it \
                     reads: the DO UPDATE has no WHERE that selects rows",
                ),
                (_, Some(WhereFacts::Missing)) => (
                    "guarded-write:no-where",
                    "has no WHERE clause and would change every row",
                ),
                (_, Some(WhereFacts::TriviallyTrue)) => (
                    "guarded-write:trivial-where",
                    "has a WHERE clause that is always true or does not depend on the rows, so \
                     it would change every row",
                ),
                _ => continue,
            };
            return Verdict::block(
                rule,
                format!(
                    "{} on {target} {problem}; this role may only {} rows selected by a real \
                     WHERE",
                    explained_write(f, command),
                    verb(command)
                ),
            );
        }
        Verdict::Allow
    }

    fn copy_verdict(&self, f: &StatementFacts) -> Verdict {
        let p = self.profile.as_str();
        let Some(copy) = &f.copy else {
            return Verdict::Allow;
        };
        match (&copy.target, copy.direction) {
            (CopyTarget::Program(command), _) => Verdict::block(
                format!("{p}:copy-program"),
                format!(
                    "COPY ... PROGRAM runs a shell command on the database server ({command}); \
                     this role may not use it"
                ),
            ),
            (CopyTarget::File(path), _) => Verdict::block(
                format!("{p}:copy-file"),
                format!(
                    "COPY with a server file ({path}) reads or writes files on the database \
                     server; use COPY ... STDIN/STDOUT (psql \\copy) instead"
                ),
            ),
            (CopyTarget::Stdio, CopyDirection::From) if self.profile == Profile::ReadOnly => {
                Verdict::block(
                    "read-only:copy-from",
                    format!(
                        "COPY ... FROM loads rows ({}); this role is read-only",
                        describe_writes(f)
                    ),
                )
            }
            (CopyTarget::Stdio, _) => Verdict::Allow,
        }
    }
}

fn lexer_change_reason(f: &StatementFacts) -> String {
    format!(
        "{} would change how the server reads later statements (client_encoding other than \
         UTF8, standard_conforming_strings off, backslash_quote), after which they could \
         bypass sluice's checks; refused",
        f.command
    )
}

/// "EXPLAIN ANALYZE runs the DELETE: " prefix when the facts come from an EXPLAIN ANALYZE.
fn explained(f: &StatementFacts, what: &str) -> String {
    if f.explain_analyze_write {
        format!("EXPLAIN ANALYZE runs the statement it explains, and {what}")
    } else {
        what.to_owned()
    }
}

fn explained_command(f: &StatementFacts) -> String {
    if f.explain_analyze_write {
        format!("EXPLAIN ANALYZE {}", f.command)
    } else {
        f.command.clone()
    }
}

fn explained_write(f: &StatementFacts, command: &str) -> String {
    if f.explain_analyze_write {
        format!("EXPLAIN ANALYZE {command}")
    } else if f.command != command {
        format!("{command} (inside {})", f.command)
    } else {
        command.to_owned()
    }
}

fn describe_writes(f: &StatementFacts) -> String {
    if f.writes.is_empty() {
        return "no table named".into();
    }
    f.writes
        .iter()
        .map(|w| format!("{} on {}", w.command, w.table))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A table of the system catalogs: in `pg_catalog`, `information_schema` or `pg_toast`, or an
/// unqualified `pg_` name (which resolves to `pg_catalog` first unless a table of that name
/// shadows it, and `pg_` names are reserved for the system).
fn system_catalog(table: &TableRef) -> bool {
    match table.schema.as_deref() {
        Some("pg_catalog" | "information_schema" | "pg_toast") => true,
        Some(_) => false,
        None => table.name.starts_with("pg_"),
    }
}

/// Relations that hold password hashes or read the server's configuration files.
fn server_secret(table: &TableRef) -> bool {
    matches!(table.schema.as_deref(), None | Some("pg_catalog"))
        && matches!(
            table.name.as_str(),
            "pg_authid"
                | "pg_shadow"
                | "pg_user_mapping"
                | "pg_user_mappings"
                | "pg_file_settings"
                | "pg_hba_file_rules"
                | "pg_ident_file_mappings"
        )
}

fn verb(command: &str) -> &'static str {
    match command {
        "DELETE" => "delete",
        "UPDATE" => "update",
        _ => "change",
    }
}

/// `pattern` against a possibly qualified name: `schema.name` patterns need both parts to
/// match (an unqualified name matches on its name part: its schema is unknown); patterns
/// without a dot match the name in any schema.
fn qualified_match(pattern: &str, name: &TableRef) -> bool {
    match pattern.split_once('.') {
        Some((schema_pattern, name_pattern)) => {
            glob(name_pattern, &name.name)
                && name
                    .schema
                    .as_deref()
                    .is_none_or(|schema| glob(schema_pattern, schema))
        }
        None => glob(pattern, &name.name),
    }
}

/// Case-insensitive glob over characters: `*` any run, `?` exactly one, everything else
/// literal. Greedy with backtracking to the last `*` only, so O(len(p) x len(text)).
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
    let t: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    let (mut ti, mut pi) = (0, 0);
    let mut resume: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                resume = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                ti += 1;
                pi += 1;
            }
            _ => match resume {
                Some((star, matched)) => {
                    pi = star + 1;
                    ti = matched + 1;
                    resume = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests;
