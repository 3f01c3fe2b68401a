//! The `policy.guardrails` and `policy.masking` sections, and the role keys that name them.
//!
//! Read like the rest of the schema (see `schema.rs`): every problem is recorded at its key and
//! a profile is only built when it had none. Both sections are read before the roles, and each
//! returns every name written under it, valid or not, so a role naming a broken profile is not
//! reported a second time. Checked here: profile names (guardrail profiles may not take a
//! built-in's name), rule names unique within a profile (a masking profile's column and detector
//! rules share one namespace, because audit counts name them), every guardrail rule has a
//! matcher, every `hash` style has the profile's `key`. Regular expressions are only checked to
//! be non-empty: this crate has no regex engine, the masker compiles them.

use std::time::Duration;

use crate::extract::{Cx, Item, suggest};
use crate::policy_schema::{Names, is_role_name, values};
use crate::profiles::{
    ColumnMaskSpec, DetectorKind, DetectorSpec, GuardAction, GuardBase, GuardRuleSpec,
    GuardrailProfile, GuardrailsRef, MaskStyle, MaskingProfile, STATEMENT_CLASSES,
};
use crate::schema::{credential, duration, optional, unknown_choice};

const GUARDRAIL_KEYS: &[&str] = &["base", "approvers", "approval_timeout", "rules"];
const GUARD_RULE_KEYS: &[&str] = &[
    "name",
    "action",
    "classes",
    "tables",
    "schemas",
    "functions",
    "commands",
    "pattern",
    "message",
];
/// The keys that select statements; a rule needs at least one.
const MATCHER_KEYS: &[&str] = &[
    "classes",
    "tables",
    "schemas",
    "functions",
    "commands",
    "pattern",
];
const MASKING_KEYS: &[&str] = &["key", "columns", "detectors"];
const COLUMN_KEYS: &[&str] = &["name", "column", "style"];
const DETECTOR_KEYS: &[&str] = &["name", "detector", "style"];

/// How long a statement held by an `approve` rule waits for a decision: long enough to reach
/// someone, short enough that the client's session is not left hanging.
const DEFAULT_HOLD_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The names written under `policy.guardrails` and `policy.masking`, for checking roles.
#[derive(Debug)]
pub(crate) struct ProfileNames {
    /// Under `policy.guardrails`.
    pub guardrails: Names,
    /// Under `policy.masking`.
    pub masking: Names,
}

/// Reads `policy.guardrails`, and returns the names written for checking roles.
pub(crate) fn guardrails(
    cx: &mut Cx<'_>,
    item: &Item<'_>,
) -> (Option<Vec<GuardrailProfile>>, Names) {
    let Some(fields) = cx.mapping(
        item,
        "a mapping of profile names to guardrail profiles, e.g. {analyst: {base: read-only}}",
    ) else {
        return (None, Names::Unreadable);
    };
    let mut names = Vec::new();
    let mut profiles = Some(Vec::new());
    for (name, item) in fields.all() {
        names.push(name.to_owned());
        let profile = guardrail_profile(cx, name, &item);
        profiles = profiles.zip(profile).map(|(mut all, one)| {
            all.push(one);
            all
        });
    }
    (profiles, Names::Written(names))
}

/// Reads `policy.masking`, and returns the names written for checking roles.
pub(crate) fn masking(cx: &mut Cx<'_>, item: &Item<'_>) -> (Option<Vec<MaskingProfile>>, Names) {
    let Some(fields) = cx.mapping(
        item,
        "a mapping of profile names to masking profiles, e.g. {pii: {detectors: [...]}}",
    ) else {
        return (None, Names::Unreadable);
    };
    let mut names = Vec::new();
    let mut profiles = Some(Vec::new());
    for (name, item) in fields.all() {
        names.push(name.to_owned());
        let profile = masking_profile(cx, name, &item);
        profiles = profiles.zip(profile).map(|(mut all, one)| {
            all.push(one);
            all
        });
    }
    (profiles, Names::Written(names))
}

/// A role's `guardrails`: a built-in, or a profile written under `policy.guardrails`.
pub(crate) fn guardrails_ref(
    cx: &mut Cx<'_>,
    item: &Item<'_>,
    names: &Names,
) -> Option<GuardrailsRef> {
    let name = cx.text(item)?;
    if let Some(base) = GuardBase::from_name(&name) {
        return Some(GuardrailsRef::Builtin(base));
    }
    let written = match names {
        // Already reported; checking against it would only repeat that error.
        Names::Unreadable => return Some(GuardrailsRef::Profile(name)),
        Names::Absent => &[][..],
        Names::Written(written) => written.as_slice(),
    };
    if written.contains(&name) {
        return Some(GuardrailsRef::Profile(name));
    }
    let builtins = GuardBase::ALL.map(GuardBase::as_str);
    let candidates = builtins
        .iter()
        .copied()
        .chain(written.iter().map(String::as_str));
    let message = match suggest(&name, candidates) {
        Some(close) => format!("unknown guardrails \"{name}\"; did you mean \"{close}\"?"),
        None => {
            let defined = match names {
                Names::Absent => "policy.guardrails is missing".to_owned(),
                _ if written.is_empty() => "policy.guardrails defines none".to_owned(),
                _ => format!("policy.guardrails defines {}", written.join(", ")),
            };
            format!(
                "unknown guardrails \"{name}\"; expected a built-in ({}) or a profile defined \
                 under policy.guardrails ({defined})",
                builtins.join(", ")
            )
        }
    };
    cx.invalid(item, message);
    None
}

/// A role's `masking`: a profile written under `policy.masking`.
pub(crate) fn masking_ref(cx: &mut Cx<'_>, item: &Item<'_>, names: &Names) -> Option<String> {
    let name = cx.text(item)?;
    let message = match names {
        Names::Unreadable => return Some(name),
        Names::Written(written) if written.contains(&name) => return Some(name),
        Names::Absent => format!(
            "no masking profile named \"{name}\": policy.masking is missing; define it there, \
             e.g. masking: {{{name}: {{detectors: [{{name: cards, detector: card, style: \
             last4}}]}}}}"
        ),
        Names::Written(written) if written.is_empty() => {
            format!("no masking profile named \"{name}\": policy.masking defines none")
        }
        Names::Written(written) => match suggest(&name, written.iter().map(String::as_str)) {
            Some(close) => format!(
                "no masking profile named \"{name}\" in policy.masking; did you mean \"{close}\"?"
            ),
            None => format!(
                "no masking profile named \"{name}\" in policy.masking (defined: {})",
                written.join(", ")
            ),
        },
    };
    cx.invalid(item, message);
    None
}

/// Checks a profile's name as written; false when it was reported.
fn profile_name(cx: &mut Cx<'_>, name: &str, item: &Item<'_>, section: &str) -> bool {
    if !is_role_name(name) {
        cx.invalid(
            item,
            format!(
                "invalid {section} profile name: use 1 to 63 lowercase letters, digits, '-' or \
                 '_', starting with a letter or digit"
            ),
        );
        return false;
    }
    true
}

fn guardrail_profile(cx: &mut Cx<'_>, name: &str, item: &Item<'_>) -> Option<GuardrailProfile> {
    let mut name_ok = profile_name(cx, name, item, "guardrails");
    if name_ok && GuardBase::from_name(name).is_some() {
        // A role naming it could not say which of the two it means.
        cx.invalid(
            item,
            format!(
                "\"{name}\" is a built-in profile; give this profile another name (it can extend \
                 the built-in with base: {name})"
            ),
        );
        name_ok = false;
    }
    let fields = cx.fields(item, GUARDRAIL_KEYS)?;
    let base = cx.required(&fields, "base").and_then(|item| {
        let text = cx.text(&item)?;
        let base = GuardBase::from_name(&text);
        if base.is_none() {
            let choices = GuardBase::ALL.map(GuardBase::as_str);
            cx.invalid(&item, unknown_choice("base", &text, &choices));
        }
        base
    });
    let approvers = optional(fields.optional("approvers"), |list_item| {
        let groups = cx.string_list(list_item)?;
        if groups.is_empty() {
            cx.invalid(
                list_item,
                "list at least one group whose members may approve held statements, or remove \
                 approvers to use the role's approval groups",
            );
            return None;
        }
        Some(values(groups))
    });
    let approval_timeout = optional(fields.optional("approval_timeout"), |item| {
        duration(cx, item)
    });
    let rules = optional(fields.optional("rules"), |list_item| {
        let items = cx.list(list_item, "a list of guardrail rules")?;
        let mut rules = Some(Vec::with_capacity(items.len()));
        // Name and line of each rule read so far, to report duplicates against the first.
        let mut seen: Vec<(String, usize)> = Vec::new();
        for item in &items {
            let rule = guard_rule(cx, item, &mut seen);
            rules = rules.zip(rule).map(|(mut all, one)| {
                all.push(one);
                all
            });
        }
        rules
    });
    let profile = GuardrailProfile {
        name: name.to_owned(),
        base: base?,
        approvers: approvers?.unwrap_or_default(),
        approval_timeout: approval_timeout?.unwrap_or(DEFAULT_HOLD_TIMEOUT),
        rules: rules?.unwrap_or_default(),
        location: cx.location(item.pos),
    };
    name_ok.then_some(profile)
}

/// Reads a rule's `name`, refusing one already used in the same profile.
fn rule_name(
    cx: &mut Cx<'_>,
    fields: &crate::extract::Fields<'_>,
    seen: &mut Vec<(String, usize)>,
) -> Option<String> {
    let name_item = cx.required(fields, "name")?;
    let name = cx.text(&name_item)?;
    if let Some((_, line)) = seen.iter().find(|(seen_name, _)| *seen_name == name) {
        cx.invalid(
            &name_item,
            format!("duplicate rule name \"{name}\" in this profile (first used at line {line})"),
        );
        return None;
    }
    seen.push((name.clone(), name_item.pos.line));
    Some(name)
}

fn guard_rule(
    cx: &mut Cx<'_>,
    item: &Item<'_>,
    seen: &mut Vec<(String, usize)>,
) -> Option<GuardRuleSpec> {
    let fields = cx.fields(item, GUARD_RULE_KEYS)?;
    let name = rule_name(cx, &fields, seen);
    let action = cx.required(&fields, "action").and_then(|item| {
        let text = cx.text(&item)?;
        let action = GuardAction::ALL
            .into_iter()
            .find(|action| action.as_str() == text);
        if action.is_none() {
            let choices = GuardAction::ALL.map(GuardAction::as_str);
            cx.invalid(&item, unknown_choice("action", &text, &choices));
        }
        action
    });
    let classes = optional(fields.optional("classes"), |item| {
        matcher_list(cx, item, "statement class, e.g. [write, ddl]", |class| {
            if STATEMENT_CLASSES.contains(&class) {
                Ok(class.to_owned())
            } else {
                Err(unknown_choice("class", class, STATEMENT_CLASSES))
            }
        })
    });
    let tables = optional(fields.optional("tables"), |item| {
        matcher_list(cx, item, "table or glob, e.g. [\"payroll.*\"]", |table| {
            qualified_glob(table, 2, "table or schema.table")
        })
    });
    let schemas = optional(fields.optional("schemas"), |item| {
        matcher_list(cx, item, "schema or glob, e.g. [payroll]", |schema| {
            qualified_glob(schema, 1, "a schema name, without a dot")
        })
    });
    let functions = optional(fields.optional("functions"), |item| {
        matcher_list(
            cx,
            item,
            "function or glob, e.g. [\"pg_read_*\"]",
            |function| qualified_glob(function, 2, "function or schema.function"),
        )
    });
    let commands = optional(fields.optional("commands"), |item| {
        matcher_list(cx, item, "command tag, e.g. [\"DROP TABLE\"]", command_tag)
    });
    let pattern = optional(fields.optional("pattern"), |item| cx.text(item));
    let message = optional(fields.optional("message"), |item| cx.text(item));
    if MATCHER_KEYS
        .iter()
        .all(|key| fields.optional(key).is_none())
    {
        cx.invalid(
            item,
            format!(
                "a guardrail rule needs at least one of {}; to match every statement write \
                 pattern: \"*\"",
                MATCHER_KEYS.join(", ")
            ),
        );
        return None;
    }
    Some(GuardRuleSpec {
        name: name?,
        action: action?,
        classes: classes?.unwrap_or_default(),
        tables: tables?.unwrap_or_default(),
        schemas: schemas?.unwrap_or_default(),
        functions: functions?.unwrap_or_default(),
        commands: commands?.unwrap_or_default(),
        pattern: pattern?,
        message: message?,
        location: cx.location(item.pos),
    })
}

/// A non-empty list of strings, each checked (and normalised) by `check`; errors are reported
/// at the entry. `what` names one entry, with an example, for the empty-list message.
fn matcher_list(
    cx: &mut Cx<'_>,
    item: &Item<'_>,
    what: &str,
    check: impl Fn(&str) -> Result<String, String>,
) -> Option<Vec<String>> {
    let entries = cx.string_list(item)?;
    if entries.is_empty() {
        cx.invalid(item, format!("list at least one {what}, or remove the key"));
        return None;
    }
    let mut checked = Some(Vec::with_capacity(entries.len()));
    for entry in &entries {
        match check(&entry.value) {
            Ok(value) => {
                if let Some(all) = &mut checked {
                    all.push(value);
                }
            }
            Err(message) => {
                cx.push(entry.error(message));
                checked = None;
            }
        }
    }
    checked
}

/// A glob of one to `parts` dot-separated, non-empty parts (`*` and `?` within a part).
fn qualified_glob(text: &str, parts: usize, shape: &str) -> Result<String, String> {
    let written: Vec<&str> = text.split('.').collect();
    if written.iter().any(|part| part.trim().is_empty()) {
        Err(format!("\"{text}\" has an empty part; write {shape}"))
    } else if written.len() > parts {
        Err(format!("\"{text}\" has too many dots; write {shape}"))
    } else {
        Ok(text.to_owned())
    }
}

/// A command tag as PostgreSQL reports it (`DROP TABLE`), or a glob of one (`DROP *`): stored
/// upper case with single spaces, as the guard compares it.
fn command_tag(text: &str) -> Result<String, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.iter().all(|word| {
        word.chars()
            .all(|c| c.is_ascii_alphabetic() || matches!(c, '*' | '?'))
    }) {
        Ok(words.join(" ").to_ascii_uppercase())
    } else {
        Err(format!(
            "\"{text}\" is not a command tag: write words of letters as PostgreSQL reports them, \
             e.g. DROP TABLE or DROP *"
        ))
    }
}

fn masking_profile(cx: &mut Cx<'_>, name: &str, item: &Item<'_>) -> Option<MaskingProfile> {
    let name_ok = profile_name(cx, name, item, "masking");
    let fields = cx.fields(item, MASKING_KEYS)?;
    let key_item = fields.optional("key");
    // Written but invalid still counts as written: its own error is enough.
    let has_key = key_item.is_some();
    let key = optional(key_item, |item| credential(cx, item));
    // Column and detector rules share one namespace: audit counts name either kind.
    let mut seen: Vec<(String, usize)> = Vec::new();
    let columns = optional(fields.optional("columns"), |list_item| {
        let items = cx.list(list_item, "a list of column rules")?;
        let mut rules = Some(Vec::with_capacity(items.len()));
        for item in &items {
            let rule = column_rule(cx, item, &mut seen, has_key);
            rules = rules.zip(rule).map(|(mut all, one)| {
                all.push(one);
                all
            });
        }
        rules
    });
    let detectors = optional(fields.optional("detectors"), |list_item| {
        let items = cx.list(list_item, "a list of detector rules")?;
        let mut rules = Some(Vec::with_capacity(items.len()));
        // Each detector with the line of the rule that first used it: two rules for one
        // detector would leave it unclear which style applies.
        let mut used: Vec<(DetectorKind, usize)> = Vec::new();
        for item in &items {
            let rule = detector_rule(cx, item, &mut seen, &mut used, has_key);
            rules = rules.zip(rule).map(|(mut all, one)| {
                all.push(one);
                all
            });
        }
        rules
    });
    let profile = MaskingProfile {
        name: name.to_owned(),
        key: key?,
        columns: columns?.unwrap_or_default(),
        detectors: detectors?.unwrap_or_default(),
        location: cx.location(item.pos),
    };
    name_ok.then_some(profile)
}

fn column_rule(
    cx: &mut Cx<'_>,
    item: &Item<'_>,
    seen: &mut Vec<(String, usize)>,
    has_key: bool,
) -> Option<ColumnMaskSpec> {
    let fields = cx.fields(item, COLUMN_KEYS)?;
    let name = rule_name(cx, &fields, seen);
    let column = cx.required(&fields, "column").and_then(|item| {
        let text = cx.text(&item)?;
        let checked = match text.strip_prefix("re:") {
            Some(regex) if regex.trim().is_empty() => {
                Err("re: must be followed by a regular expression, e.g. re:^(ssn|tax_id)$".into())
            }
            Some(_) => Ok(text),
            None => qualified_glob(&text, 3, "column, table.column or schema.table.column"),
        };
        checked.map_err(|message| cx.invalid(&item, message)).ok()
    });
    let style = cx
        .required(&fields, "style")
        .and_then(|item| style(cx, &item, has_key));
    Some(ColumnMaskSpec {
        name: name?,
        column: column?,
        style: style?,
        location: cx.location(item.pos),
    })
}

fn detector_rule(
    cx: &mut Cx<'_>,
    item: &Item<'_>,
    seen: &mut Vec<(String, usize)>,
    used: &mut Vec<(DetectorKind, usize)>,
    has_key: bool,
) -> Option<DetectorSpec> {
    let fields = cx.fields(item, DETECTOR_KEYS)?;
    let name = rule_name(cx, &fields, seen);
    let rule_line = item.pos.line;
    let detector = cx.required(&fields, "detector").and_then(|item| {
        let text = cx.text(&item)?;
        let Some(detector) = DetectorKind::ALL
            .into_iter()
            .find(|detector| detector.as_str() == text)
        else {
            let choices = DetectorKind::ALL.map(DetectorKind::as_str);
            cx.invalid(&item, unknown_choice("detector", &text, &choices));
            return None;
        };
        if let Some((_, line)) = used.iter().find(|(kind, _)| *kind == detector) {
            cx.invalid(
                &item,
                format!(
                    "detector {text} is already used by the rule at line {line}; write one rule \
                     per detector"
                ),
            );
            return None;
        }
        used.push((detector, rule_line));
        Some(detector)
    });
    let style = cx
        .required(&fields, "style")
        .and_then(|item| style(cx, &item, has_key));
    Some(DetectorSpec {
        name: name?,
        detector: detector?,
        style: style?,
        location: cx.location(item.pos),
    })
}

/// A rule's `style`; `hash` only when the profile has a key to hash with.
fn style(cx: &mut Cx<'_>, item: &Item<'_>, has_key: bool) -> Option<MaskStyle> {
    let text = cx.text(item)?;
    let Some(style) = MaskStyle::ALL
        .into_iter()
        .find(|style| style.as_str() == text)
    else {
        let choices = MaskStyle::ALL.map(MaskStyle::as_str);
        cx.invalid(item, unknown_choice("style", &text, &choices));
        return None;
    };
    if style == MaskStyle::Hash && !has_key {
        cx.invalid(
            item,
            "style hash needs the profile's key: add key: env:NAME or file:PATH to this masking \
             profile",
        );
        return None;
    }
    Some(style)
}
