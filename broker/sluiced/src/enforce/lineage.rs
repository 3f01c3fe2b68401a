//! Masking that follows values: the lineage of a session's statements (`sluice_sql::lineage`)
//! over the resource's catalog, turned into what the masker redacts and what the guard refuses
//! under a profile with column rules (decision 38).
//!
//! ```text
//!  text ──analyze──▶ lineage per statement ──▶ result columns: Plain(c) → c's rule,
//!    │                 (catalog: columns,      revealing Derived over a masked c → redacted,
//!    │                  view definitions)      Unknown → redacted, hidden-only → as named
//!    └──guard──▶ stored values and side-channel payloads over a masked c → refused
//! ```

use sluice_engine_postgres::catalog::{Columns, Known};
use sluice_engine_postgres::hooks::TextFacts;
use sluice_mask::MaskPolicy;
use sluice_sql::{BaseColumn, ColumnLineage, Deferred, Output, Relations, StatementLineage};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Cursors and prepared statements remembered per session, at most.
const MAX_DEFERRED: usize = 1024;

/// The catalog as lineage asks it.
struct CatalogRelations<'a>(&'a Known<'a>);

impl Relations for CatalogRelations<'_> {
    fn columns(&self, schema: Option<&str>, name: &str) -> Option<Vec<String>> {
        let relation = self.0.relation(schema, name)?;
        Some(relation.columns.iter().map(|c| (*c).to_owned()).collect())
    }

    fn view_definition(&self, schema: Option<&str>, name: &str) -> Option<String> {
        self.0.relation(schema, name)?.definition.map(str::to_owned)
    }
}

/// The result columns of each statement of one text, handed back with its results.
#[derive(Debug)]
pub struct Outputs {
    /// Per statement.
    pub outputs: Vec<Output>,
    /// The text reads a table with a masked column (or one the catalog does not know): an
    /// error it causes may quote a masked value (`invalid input syntax for type integer:
    /// "ada@example.com"`).
    pub reads_masked: bool,
}

/// One session's lineage: the analysis of the last text (shared by the masker and the guard,
/// which see the same text one after the other) and the cursors and prepared statements it
/// declared.
pub struct SessionLineage {
    columns: Arc<Columns>,
    classifier: Arc<sluice_sql::Classifier>,
    last: Mutex<Option<(String, Arc<Vec<StatementLineage>>)>>,
    deferred: Mutex<HashMap<(bool, String), Output>>,
    /// Whether each relation read so far has a masked column (the rules and the catalog do not
    /// change under a session; a reload that changes masking ends it).
    masked_tables: Mutex<HashMap<(Option<String>, String), bool>>,
}

impl SessionLineage {
    /// The lineage of a session over the resource's catalog.
    pub fn new(columns: Arc<Columns>, classifier: Arc<sluice_sql::Classifier>) -> Self {
        Self {
            columns,
            classifier,
            last: Mutex::new(None),
            deferred: Mutex::new(HashMap::new()),
            masked_tables: Mutex::new(HashMap::new()),
        }
    }

    /// The lineage of every statement of `sql` (the last text's is reused).
    pub fn of(&self, sql: &str) -> Arc<Vec<StatementLineage>> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((text, found)) = last.as_ref()
            && text == sql
        {
            return Arc::clone(found);
        }
        let found = {
            let known = self.columns.known();
            Arc::new(sluice_sql::lineage(sql, &CatalogRelations(&known)))
        };
        *last = Some((sql.to_owned(), Arc::clone(&found)));
        found
    }

    /// What the masker keeps for the results of `sql`: each statement's output, `FETCH` and
    /// `EXECUTE` resolved to what their `DECLARE` or `PREPARE` said.
    pub fn analyze(&self, sql: &str, policy: &MaskPolicy) -> TextFacts {
        let found = self.of(sql);
        let reads_masked = self.reads_masked(sql, policy);
        let mut deferred = self.deferred.lock().unwrap_or_else(PoisonError::into_inner);
        let key = |d: &Deferred| match d {
            Deferred::Cursor(name) => (true, name.clone()),
            Deferred::Prepared(name) => (false, name.clone()),
        };
        let outputs = found
            .iter()
            .map(|statement| {
                if let Some(declared) = &statement.deferred
                    && (deferred.len() < MAX_DEFERRED || deferred.contains_key(&key(declared)))
                {
                    deferred.insert(key(declared), statement.output.clone());
                }
                match &statement.reads {
                    Some(read) => deferred.get(&key(read)).cloned().unwrap_or(Output::Unknown),
                    None => statement.output.clone(),
                }
            })
            .collect();
        Arc::new(Outputs {
            outputs,
            reads_masked,
        })
    }

    /// Whether `sql` reads a relation with a column a rule masks, or one the catalog does not
    /// know.
    fn reads_masked(&self, sql: &str, policy: &MaskPolicy) -> bool {
        let facts = self.classifier.classify(sql);
        let mut cache = self
            .masked_tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() > MAX_DEFERRED {
            cache.clear();
        }
        let known = self.columns.known();
        facts.iter().flat_map(|f| &f.tables).any(|table| {
            *cache
                .entry((table.schema.clone(), table.name.clone()))
                .or_insert_with(|| has_masked_column(table, policy, &known))
        })
    }

    /// A stored value or side-channel payload of `sql` that carries a masked column (or
    /// whose sources are unknown), as `(rule, message)` for the guard's refusal.
    pub fn launders(&self, sql: &str, policy: &MaskPolicy) -> Option<(String, String)> {
        let found = self.of(sql);
        let known = self.columns.known();
        for statement in found.iter() {
            for stored in &statement.stored {
                let target = match &stored.column {
                    Some(column) => format!("{}.{column}", stored.table),
                    None => stored.table.clone(),
                };
                if let Some(why) = carries_masked(&stored.lineage, policy, &known) {
                    return Some((
                        "masking:write".into(),
                        format!(
                            "this write stores {why} into {target}, where it could be read back \
                             unmasked; this role masks that column"
                        ),
                    ));
                }
            }
            for channel in &statement.side_channels {
                if let Some(why) = carries_masked(&channel.lineage, policy, &known) {
                    return Some((
                        "masking:side-channel".into(),
                        format!(
                            "{}() would send {why} outside the result, unmasked; this role \
                             masks that column",
                            channel.function
                        ),
                    ));
                }
            }
        }
        None
    }
}

/// Whether `table` has a column a rule masks; a relation the catalog does not know counts.
fn has_masked_column(table: &sluice_sql::TableRef, policy: &MaskPolicy, known: &Known<'_>) -> bool {
    let Some(relation) = known.relation(table.schema.as_deref(), &table.name) else {
        return true;
    };
    let (schema, name) = relation.name.split_once('.').unwrap_or(("", relation.name));
    relation.columns.iter().any(|column| {
        rule_for(&BaseColumn::new(Some(schema), name, column), policy, known).is_some()
    })
}

/// What of a masked column a value may show: `Some("a value of customers.email (rule
/// emails)")`, or for `Unknown` lineage a value sluice cannot trace.
fn carries_masked(
    lineage: &ColumnLineage,
    policy: &MaskPolicy,
    known: &Known<'_>,
) -> Option<String> {
    if *lineage == ColumnLineage::Unknown {
        return Some(
            "a value sluice cannot trace to its columns (a function or relation it does not \
             know)"
                .into(),
        );
    }
    lineage.revealed_sources().into_iter().find_map(|source| {
        rule_for(source, policy, known).map(|rule| {
            format!(
                "a value derived from {} (masking rule {rule})",
                source.column_path()
            )
        })
    })
}

/// The column rule that masks `column`, if any.
pub fn rule_for(column: &BaseColumn, policy: &MaskPolicy, known: &Known<'_>) -> Option<String> {
    let table = qualified(column, known);
    let plan = policy.plan(&[sluice_mask::Column {
        name: &column.column,
        table: Some(&table),
        type_oid: 25,
        binary: false,
    }]);
    plan.column_rule(0).map(str::to_owned)
}

/// `schema.table` as the catalog names it, or as written when the catalog does not know it.
fn qualified(column: &BaseColumn, known: &Known<'_>) -> String {
    match known.relation(column.schema.as_deref(), &column.table) {
        Some(relation) => relation.name.to_owned(),
        None => match &column.schema {
            Some(schema) => format!("{schema}.{}", column.table),
            None => column.table.clone(),
        },
    }
}

/// `table.column` for messages.
trait ColumnPath {
    fn column_path(&self) -> String;
}

impl ColumnPath for BaseColumn {
    fn column_path(&self) -> String {
        format!("{}.{}", self.table, self.column)
    }
}

/// How lineage has a result column masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnVerdict {
    /// Lineage says nothing more than the RowDescription does.
    AsDescribed,
    /// The column is exactly this base column: mask it by that column's rule.
    Plain(BaseColumn),
    /// Derived from a masked column, or untraceable: redact it whole.
    Redact,
}

/// The verdict on each of `fields` result columns of the statement `statement` of a text.
pub fn verdicts(
    facts: Option<&TextFacts>,
    statement: usize,
    fields: usize,
    policy: &MaskPolicy,
    known: &Known<'_>,
) -> Option<Vec<ColumnVerdict>> {
    let outputs = facts?.downcast_ref::<Outputs>()?;
    let output = outputs
        .outputs
        .get(statement)
        .cloned()
        .unwrap_or(Output::Unknown);
    Some(
        output
            .for_fields(fields)
            .into_iter()
            .map(|lineage| match lineage {
                ColumnLineage::Constant => ColumnVerdict::AsDescribed,
                ColumnLineage::Plain(column) => ColumnVerdict::Plain(column),
                ColumnLineage::Unknown => ColumnVerdict::Redact,
                derived @ ColumnLineage::Derived { .. } => {
                    if carries_masked(&derived, policy, known).is_some() {
                        ColumnVerdict::Redact
                    } else {
                        ColumnVerdict::AsDescribed
                    }
                }
            })
            .collect(),
    )
}

/// `schema.table` of a base column for a mask plan.
pub fn table_of(column: &BaseColumn, known: &Known<'_>) -> String {
    qualified(column, known)
}

/// Whether the text behind `facts` reads a masked column's table.
pub fn reads_masked(facts: Option<&TextFacts>) -> bool {
    facts
        .and_then(|f| f.downcast_ref::<Outputs>())
        .is_some_and(|o| o.reads_masked)
}

/// `text` with what the server quotes of values replaced by `****`: the contents of `"..."`,
/// and of `(...)` after `=` or `contains ` (`Key (email)=(...)`, `Failing row contains (...)`).
pub fn redact_quoted(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(at) = rest.find(['"', '(']) {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let quote = from.starts_with('"');
        let opens_value =
            quote || out.ends_with('=') || out.ends_with("contains ") || out.ends_with("contains");
        let close = if quote { '"' } else { ')' };
        match from[1..].find(close).filter(|_| opens_value) {
            Some(end) => {
                out.push(if quote { '"' } else { '(' });
                out.push_str("****");
                out.push(close);
                rest = &from[1 + end + 1..];
                changed = true;
            }
            None => {
                out.push_str(&from[..1]);
                rest = &from[1..];
            }
        }
    }
    out.push_str(rest);
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::redact_quoted;

    #[test]
    fn quoted_values_are_redacted_and_names_kept() {
        assert_eq!(
            redact_quoted("invalid input syntax for type integer: \"ada@example.com\"").as_deref(),
            Some("invalid input syntax for type integer: \"****\"")
        );
        assert_eq!(
            redact_quoted("Key (email)=(ada@example.com) already exists.").as_deref(),
            Some("Key (email)=(****) already exists.")
        );
        assert_eq!(
            redact_quoted("Failing row contains (1, ada, null).").as_deref(),
            Some("Failing row contains (****).")
        );
        assert_eq!(redact_quoted("division by zero"), None);
        assert_eq!(redact_quoted("unbalanced \"quote"), None);
    }
}
