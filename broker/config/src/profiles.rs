//! Guardrail and masking profiles: what a session may run, and which values it sees.
//!
//! Plain data, validated when the configuration is read (`profile_schema.rs`): names are unique,
//! every rule has a matcher, every `hash` style has a key. The broker maps these types to the SQL
//! guard's and the masker's own (this crate depends on neither, so it stays a light, pure
//! parser); the spellings returned by the `as_str` methods are the configuration's, shared with
//! those crates and with audit events.

use std::fmt;
use std::time::Duration;

use crate::credential::CredentialRef;
use crate::location::{Located, Location};

/// The built-in statement guardrail profiles, which custom profiles extend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuardBase {
    /// Reads only.
    ReadOnly,
    /// Reads and writes, with the guard's checks on risky writes.
    GuardedWrite,
    /// Everything the database account may do.
    Admin,
}

impl GuardBase {
    /// Every built-in, in documentation order.
    pub const ALL: [GuardBase; 3] = [
        GuardBase::ReadOnly,
        GuardBase::GuardedWrite,
        GuardBase::Admin,
    ];

    /// The configuration spelling: `read-only`, `guarded-write`, `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read-only",
            Self::GuardedWrite => "guarded-write",
            Self::Admin => "admin",
        }
    }

    /// The built-in spelled `name`, if any.
    pub fn from_name(name: &str) -> Option<GuardBase> {
        Self::ALL.into_iter().find(|base| base.as_str() == name)
    }
}

impl fmt::Display for GuardBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a role's `guardrails` names: a built-in, or a profile under `policy.guardrails` (which
/// can never share a built-in's name, so the written name alone decides).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GuardrailsRef {
    /// A built-in profile, used as it is.
    Builtin(GuardBase),
    /// A profile defined under `policy.guardrails`; always defined in a loaded configuration.
    Profile(String),
}

impl GuardrailsRef {
    /// The name as written in the role: the built-in's spelling or the profile's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Builtin(base) => base.as_str(),
            Self::Profile(name) => name,
        }
    }
}

impl fmt::Display for GuardrailsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A statement guardrail profile: a built-in base plus rules checked before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardrailProfile {
    /// Unique name (`[a-z0-9][a-z0-9-_]{0,62}`), never a built-in's.
    pub name: String,
    /// The built-in that decides statements no rule matches.
    pub base: GuardBase,
    /// Groups whose members may approve statements held by `approve` rules; empty means the
    /// approval groups of the role the session holds.
    pub approvers: Vec<String>,
    /// A held statement nobody decides within this long is denied.
    pub approval_timeout: Duration,
    /// Rules in file order, checked before the base; the first match wins. Names are unique.
    pub rules: Vec<GuardRuleSpec>,
    /// Where the profile is written, for messages about it.
    pub location: Location,
}

/// What a guardrail rule does with a statement it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuardAction {
    /// Refuse the statement.
    Block,
    /// Hold the statement until an approver allows or denies it.
    Approve,
}

impl GuardAction {
    /// Every action, in documentation order.
    pub const ALL: [GuardAction; 2] = [GuardAction::Block, GuardAction::Approve];

    /// The configuration spelling: `block`, `approve`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Approve => "approve",
        }
    }
}

impl fmt::Display for GuardAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The statement classes a guardrail rule may name, as the SQL guard spells them.
pub(crate) const STATEMENT_CLASSES: &[&str] = &[
    "read",
    "write",
    "ddl",
    "dcl",
    "admin",
    "procedural",
    "transaction",
    "session",
    "copy",
    "unknown",
];

/// One guardrail rule. It matches a statement when every matcher it sets matches (a list
/// matches when any of its entries does); it always sets at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardRuleSpec {
    /// Unique within the profile; named in audit events and in the message the user sees.
    pub name: String,
    /// What happens to a matching statement.
    pub action: GuardAction,
    /// Statement classes, lower case, each one of `read`, `write`, `ddl`, `dcl`, `admin`,
    /// `procedural`, `transaction`, `session`, `copy`, `unknown`.
    pub classes: Vec<String>,
    /// Table globs, `table` or `schema.table`.
    pub tables: Vec<String>,
    /// Schema globs.
    pub schemas: Vec<String>,
    /// Function globs, `function` or `schema.function`.
    pub functions: Vec<String>,
    /// Command tags in upper case with single spaces, e.g. `DROP TABLE`.
    pub commands: Vec<String>,
    /// Glob matched case-insensitively against the whole statement text.
    pub pattern: Option<String>,
    /// Shown to the user instead of the default message.
    pub message: Option<String>,
    /// Where the rule is written, for messages about it.
    pub location: Location,
}

/// A masking profile: column rules and detectors, and the key of the `hash` style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskingProfile {
    /// Unique name (`[a-z0-9][a-z0-9-_]{0,62}`).
    pub name: String,
    /// Where the HMAC key of the `hash` style is read from; always set when a rule hashes.
    pub key: Option<Located<CredentialRef>>,
    /// Rules masking whole columns by name, in file order.
    pub columns: Vec<ColumnMaskSpec>,
    /// Rules masking what a detector finds in any value, in file order.
    pub detectors: Vec<DetectorSpec>,
    /// Where the profile is written, for messages about it.
    pub location: Location,
}

/// Masks every value of the columns a pattern names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMaskSpec {
    /// Unique among the profile's column and detector rules; audit counts name it.
    pub name: String,
    /// A glob (`column`, `table.column` or `schema.table.column`, non-empty parts), or
    /// `re:` and a non-empty regular expression, compiled by the masker.
    pub column: String,
    /// How matching values are rewritten.
    pub style: MaskStyle,
    /// Where the rule is written, for messages about it.
    pub location: Location,
}

/// How a masked value is rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaskStyle {
    /// Replaced whole.
    Redact,
    /// All but the last four characters hidden.
    Last4,
    /// A keyed hash, so equal values still compare equal.
    Hash,
}

impl MaskStyle {
    /// Every style, in documentation order.
    pub const ALL: [MaskStyle; 3] = [MaskStyle::Redact, MaskStyle::Last4, MaskStyle::Hash];

    /// The configuration spelling: `redact`, `last4`, `hash`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redact => "redact",
            Self::Last4 => "last4",
            Self::Hash => "hash",
        }
    }
}

impl fmt::Display for MaskStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Masks what a content detector finds, whatever the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorSpec {
    /// Unique among the profile's column and detector rules; audit counts name it.
    pub name: String,
    /// What to look for.
    pub detector: DetectorKind,
    /// How found values are rewritten.
    pub style: MaskStyle,
    /// Where the rule is written, for messages about it.
    pub location: Location,
}

/// The content detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DetectorKind {
    /// Payment card numbers.
    Card,
    /// Email addresses.
    Email,
    /// US social security numbers.
    Ssn,
    /// International bank account numbers.
    Iban,
    /// Phone numbers.
    Phone,
    /// Credentials and tokens.
    Secret,
}

impl DetectorKind {
    /// Every detector, in documentation order.
    pub const ALL: [DetectorKind; 6] = [
        DetectorKind::Card,
        DetectorKind::Email,
        DetectorKind::Ssn,
        DetectorKind::Iban,
        DetectorKind::Phone,
        DetectorKind::Secret,
    ];

    /// The configuration spelling: `card`, `email`, `ssn`, `iban`, `phone`, `secret`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::Email => "email",
            Self::Ssn => "ssn",
            Self::Iban => "iban",
            Self::Phone => "phone",
            Self::Secret => "secret",
        }
    }
}

impl fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
