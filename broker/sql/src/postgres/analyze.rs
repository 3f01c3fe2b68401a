//! From one parse tree to one [`StatementFacts`].
//!
//! Two steps. [`describe`] looks at the top node only and gives the base class and the
//! command tag. [`Collector`] then walks the *whole* tree (every child of every node, see
//! [`super::walk`]) collecting relations, functions, writes and flags; its findings can
//! escalate the class (`SELECT pg_terminate_backend(1)` is `Admin`).
//!
//! "Runs" matters: `EXPLAIN` without `ANALYZE`, `PREPARE`, and definitions whose bodies are
//! stored rather than run (views, rules, functions, triggers, policies, column defaults of a
//! new table) still list the relations and functions they name, but their side-effect
//! functions, writes and flags do not count, because nothing runs them now.

use std::ops::Range;

use pg_query::NodeEnum;
use pg_query::NodeRef;
use pg_query::protobuf::{
    self, CmdType, DefElem, DiscardMode, FuncCall, GrantTargetType, MergeMatchKind, Node,
    ObjectType, RangeVar, TransactionStmtKind, VariableSetKind, WithClause, a_const,
};

use super::filter::{Target, parse_bool, shape_for};
use super::walk::for_each_child;
use crate::facts::{
    CopyDirection, CopyFacts, CopyTarget, PreparedRef, SideEffectKind, StatementClass,
    StatementFacts, TableRef, WhereFacts, WriteFacts, harmless_setting, side_effect_kind,
};

/// Deeper trees than this are refused as `Unknown` rather than walked. Unreachable today (the
/// protobuf decoder already stops at 100 nested messages); the walker's own bound, so that
/// its recursion stays bounded whatever the decoder allows.
const MAX_DEPTH: usize = 256;

/// The facts of one top-level statement.
pub(crate) fn analyze(stmt: &NodeEnum, span: Range<usize>) -> StatementFacts {
    match stmt {
        NodeEnum::ExplainStmt(explain) => {
            let inner = explain.query.as_deref().and_then(|n| n.node.as_ref());
            if explain_analyzes(explain) {
                // EXPLAIN ANALYZE runs the statement: it is that statement.
                let Some(inner) = inner else {
                    return StatementFacts::unknown(span, "EXPLAIN without a statement");
                };
                let mut facts = analyze(inner, span);
                facts.explain_analyze_write = facts.modifies();
                return facts;
            }
            let mut collector = Collector::new(false);
            collector.walk_node(explain.query.as_deref());
            collector.finish(StatementClass::Read, "EXPLAIN".into(), span)
        }
        NodeEnum::PrepareStmt(prepare) => {
            let Some(inner) = prepare.query.as_deref().and_then(|n| n.node.as_ref()) else {
                return StatementFacts::unknown(span, "PREPARE without a statement");
            };
            let inner = analyze(inner, span.clone());
            let mut facts = StatementFacts::new(StatementClass::Session, "PREPARE", span);
            facts.tables.clone_from(&inner.tables);
            facts.schemas.clone_from(&inner.schemas);
            facts.functions.clone_from(&inner.functions);
            facts.prepared = Some(PreparedRef::Prepare {
                name: prepare.name.clone(),
                statement: Box::new(inner),
            });
            facts
        }
        NodeEnum::CopyStmt(copy) => {
            let query = copy
                .query
                .as_deref()
                .and_then(|n| n.node.as_ref())
                .map(|q| Box::new(analyze(q, span.clone())));
            let direction = if copy.is_from {
                CopyDirection::From
            } else {
                CopyDirection::To
            };
            let target = if copy.is_program {
                CopyTarget::Program(copy.filename.clone())
            } else if copy.filename.is_empty() {
                CopyTarget::Stdio
            } else {
                CopyTarget::File(copy.filename.clone())
            };
            let mut collector = Collector::new(true);
            if let Some(rel) = &copy.relation {
                collector.table(rel);
                if copy.is_from {
                    collector.writes.push(WriteFacts {
                        command: "COPY".into(),
                        table: table_ref(rel),
                        filter: None,
                    });
                }
            }
            for n in &copy.attlist {
                collector.walk_node(Some(n));
            }
            collector.walk_node(copy.where_clause.as_deref());
            if let Some(q) = &query {
                collector.absorb(q);
            }
            let mut facts = collector.finish(StatementClass::Copy, "COPY".into(), span);
            facts.copy = Some(CopyFacts {
                direction,
                target,
                query,
            });
            facts
        }
        _ => {
            let Some((class, command)) = describe(stmt) else {
                return StatementFacts::unknown(
                    span,
                    format!("sluice does not know the statement type {stmt:?}")
                        .chars()
                        .take(120)
                        .collect::<String>(),
                );
            };
            let mut collector = Collector::new(runs_body(stmt));
            collector.top_level(stmt);
            collector.walk(stmt.to_ref());
            let mut facts = collector.finish(class, command, span);
            if let NodeEnum::DeallocateStmt(d) = stmt {
                facts.prepared = Some(PreparedRef::Deallocate {
                    name: (!d.isall).then(|| d.name.clone()),
                });
            }
            facts
        }
    }
}

fn explain_analyzes(explain: &protobuf::ExplainStmt) -> bool {
    explain.options.iter().any(|o| match &o.node {
        Some(NodeEnum::DefElem(d)) if d.defname.eq_ignore_ascii_case("analyze") => {
            def_elem_bool(d).unwrap_or(true)
        }
        _ => false,
    })
}

/// A `DefElem`'s boolean argument: absent means true (`EXPLAIN (ANALYZE)`); `None` when the
/// argument is not a boolean constant.
fn def_elem_bool(d: &DefElem) -> Option<bool> {
    super::shape::note_read();
    match d.arg.as_deref().and_then(|n| n.node.as_ref()) {
        None => Some(true),
        Some(NodeEnum::Boolean(b)) => Some(b.boolval),
        Some(NodeEnum::Integer(i)) => Some(i.ival != 0),
        Some(NodeEnum::String(s)) => parse_bool(&s.sval),
        Some(NodeEnum::AConst(c)) => match &c.val {
            Some(a_const::Val::Ival(i)) => Some(i.ival != 0),
            Some(a_const::Val::Boolval(b)) => Some(b.boolval),
            Some(a_const::Val::Sval(s)) => parse_bool(&s.sval),
            _ => None,
        },
        _ => None,
    }
}

/// Whether running the statement runs the expressions and queries inside it now (see the
/// module documentation).
pub(super) fn runs_body(stmt: &NodeEnum) -> bool {
    !matches!(
        stmt,
        NodeEnum::ViewStmt(_)
            | NodeEnum::RuleStmt(_)
            | NodeEnum::CreateFunctionStmt(_)
            | NodeEnum::AlterFunctionStmt(_)
            | NodeEnum::CreateTrigStmt(_)
            | NodeEnum::CreatePolicyStmt(_)
            | NodeEnum::AlterPolicyStmt(_)
            | NodeEnum::CreateStmt(_)
            | NodeEnum::CreateDomainStmt(_)
            | NodeEnum::AlterDomainStmt(_)
            | NodeEnum::DefineStmt(_)
            | NodeEnum::CreateEventTrigStmt(_)
            | NodeEnum::AlterRoleSetStmt(_)
            | NodeEnum::AlterDatabaseSetStmt(_)
            | NodeEnum::AlterSystemStmt(_)
    )
}

/// Relations, functions, writes and flags found anywhere in one statement's tree.
struct Collector<'a> {
    /// Whether the statement runs what the walker is looking at (see module docs).
    runs: bool,
    tables: Vec<TableRef>,
    schemas: Vec<String>,
    functions: Vec<String>,
    side_effects: Vec<String>,
    writes: Vec<WriteFacts>,
    modifying_cte: bool,
    select_into: bool,
    locking: bool,
    role_change: bool,
    unlisted_settings: Vec<String>,
    read_only_change: bool,
    lexer_change: bool,
    /// `EXECUTE name` seen (top level, or inside `CREATE TABLE AS` / `EXPLAIN ANALYZE`).
    executes: Option<String>,
    /// CTE names visible at the current point of the walk, innermost last; a bare relation
    /// name that matches one is a CTE reference, not a table.
    ctes: Vec<&'a str>,
    depth: usize,
    too_deep: bool,
}

impl<'a> Collector<'a> {
    fn new(runs: bool) -> Self {
        Collector {
            runs,
            tables: Vec::new(),
            schemas: Vec::new(),
            functions: Vec::new(),
            side_effects: Vec::new(),
            writes: Vec::new(),
            modifying_cte: false,
            select_into: false,
            locking: false,
            role_change: false,
            unlisted_settings: Vec::new(),
            read_only_change: false,
            lexer_change: false,
            executes: None,
            ctes: Vec::new(),
            depth: 0,
            too_deep: false,
        }
    }

    fn finish(self, base: StatementClass, command: String, span: Range<usize>) -> StatementFacts {
        if self.too_deep {
            return StatementFacts::unknown(
                span,
                format!("statement nests deeper than {MAX_DEPTH} levels"),
            );
        }
        let mut class = base;
        if matches!(base, StatementClass::Read | StatementClass::Write) {
            let mut raise = |to: StatementClass| {
                if rank(to) > rank(class) {
                    class = to;
                }
            };
            if self.modifying_cte || self.locking || !self.writes.is_empty() {
                raise(StatementClass::Write);
            }
            for f in &self.side_effects {
                if let Some(kind) = side_effect_kind(f) {
                    raise(kind.class());
                }
            }
            if self.select_into {
                raise(StatementClass::Ddl);
            }
        }
        let where_clause = self
            .writes
            .iter()
            .filter(|w| w.command != "TRUNCATE")
            .filter_map(|w| w.filter)
            .min();
        let mut facts = StatementFacts::new(class, command, span);
        facts.tables = self.tables;
        facts.schemas = self.schemas;
        facts.functions = self.functions;
        facts.side_effect_functions = self.side_effects;
        facts.where_clause = where_clause;
        facts.writes = self.writes;
        facts.modifying_cte = self.modifying_cte;
        facts.select_into = self.select_into;
        facts.locking = self.locking;
        facts.role_change = self.role_change;
        facts.unlisted_settings = self.unlisted_settings;
        facts.read_only_change = self.read_only_change;
        facts.lexer_change = self.lexer_change;
        if let Some(name) = self.executes {
            facts.prepared = Some(PreparedRef::Execute { name });
        }
        facts
    }

    /// Takes in the facts of a nested statement (the query of `COPY (query) TO`).
    fn absorb(&mut self, inner: &StatementFacts) {
        for t in &inner.tables {
            push_unique(&mut self.tables, t.clone());
        }
        for s in &inner.schemas {
            push_unique(&mut self.schemas, s.clone());
        }
        for f in &inner.functions {
            push_unique(&mut self.functions, f.clone());
        }
        for f in &inner.side_effect_functions {
            push_unique(&mut self.side_effects, f.clone());
        }
        self.writes.extend(inner.writes.iter().cloned());
        self.modifying_cte |= inner.modifying_cte;
        self.select_into |= inner.select_into;
        self.locking |= inner.locking;
        self.role_change |= inner.role_change;
        for name in &inner.unlisted_settings {
            push_unique(&mut self.unlisted_settings, name.clone());
        }
        self.read_only_change |= inner.read_only_change;
        self.lexer_change |= inner.lexer_change;
        if let Some(PreparedRef::Execute { name }) = &inner.prepared {
            self.executes = Some(name.clone());
        }
    }

    fn table(&mut self, rv: &RangeVar) {
        if !rv.schemaname.is_empty() {
            push_unique(&mut self.schemas, rv.schemaname.clone());
        }
        push_unique(&mut self.tables, table_ref(rv));
    }

    fn table_from_names(&mut self, names: &[&str]) {
        match names {
            [] => {}
            [name] => push_unique(&mut self.tables, TableRef::new(None, name)),
            [.., schema, name] => {
                push_unique(&mut self.schemas, (*schema).to_owned());
                push_unique(&mut self.tables, TableRef::new(Some(schema), name));
            }
        }
    }

    fn schema(&mut self, name: &str) {
        if !name.is_empty() {
            push_unique(&mut self.schemas, name.to_owned());
        }
    }

    fn walk_node(&mut self, node: Option<&'a Node>) {
        if let Some(n) = node.and_then(|n| n.node.as_ref()) {
            self.walk(n.to_ref());
        }
    }

    fn children(&mut self, node: NodeRef<'a>) {
        for_each_child(node, &mut |child| self.walk(child));
    }

    fn walk(&mut self, node: NodeRef<'a>) {
        if self.depth >= MAX_DEPTH {
            self.too_deep = true;
            return;
        }
        self.depth += 1;
        self.visit(node);
        self.depth -= 1;
    }

    fn visit(&mut self, node: NodeRef<'a>) {
        match node {
            NodeRef::RangeVar(rv) => {
                let cte = rv.schemaname.is_empty()
                    && rv.catalogname.is_empty()
                    && self.ctes.contains(&rv.relname.as_str());
                if !cte {
                    self.table(rv);
                }
            }
            NodeRef::FuncCall(call) => {
                self.function(call);
                self.children(node);
            }
            NodeRef::SelectStmt(select) => {
                if self.runs {
                    if let Some(into) = &select.into_clause {
                        self.select_into = true;
                        if let Some(rel) = &into.rel {
                            self.table(rel);
                        }
                    }
                    if !select.locking_clause.is_empty() {
                        self.locking = true;
                    }
                }
                self.scoped(node, select.with_clause.as_ref());
            }
            NodeRef::InsertStmt(insert) => {
                self.dml("INSERT", insert.relation.as_ref(), upsert_filter(insert));
                self.scoped(node, insert.with_clause.as_ref());
            }
            NodeRef::UpdateStmt(update) => {
                let filter = shape_for(
                    update.where_clause.as_deref(),
                    &Target::of(update.relation.as_ref()),
                );
                self.dml("UPDATE", update.relation.as_ref(), Some(filter));
                self.scoped(node, update.with_clause.as_ref());
            }
            NodeRef::DeleteStmt(delete) => {
                let filter = shape_for(
                    delete.where_clause.as_deref(),
                    &Target::of(delete.relation.as_ref()),
                );
                self.dml("DELETE", delete.relation.as_ref(), Some(filter));
                self.scoped(node, delete.with_clause.as_ref());
            }
            NodeRef::MergeStmt(merge) => {
                self.dml("MERGE", merge.relation.as_ref(), merge_filter(merge));
                self.scoped(node, merge.with_clause.as_ref());
            }
            NodeRef::CommonTableExpr(cte) => {
                if self.runs
                    && matches!(
                        cte.ctequery.as_deref().and_then(|n| n.node.as_ref()),
                        Some(
                            NodeEnum::InsertStmt(_)
                                | NodeEnum::UpdateStmt(_)
                                | NodeEnum::DeleteStmt(_)
                                | NodeEnum::MergeStmt(_)
                        )
                    )
                {
                    self.modifying_cte = true;
                }
                self.children(node);
            }
            NodeRef::IntoClause(into) => {
                // The target of `SELECT INTO` / `CREATE TABLE AS` is a new table even when a
                // CTE of the same name is in scope.
                if let Some(rel) = &into.rel {
                    self.table(rel);
                }
                self.children(node);
            }
            NodeRef::ExecuteStmt(execute) => {
                if self.runs {
                    self.executes = Some(execute.name.clone());
                }
                self.children(node);
            }
            NodeRef::TruncateStmt(truncate) => {
                for rel in &truncate.relations {
                    if let Some(NodeEnum::RangeVar(rv)) = &rel.node {
                        self.writes.push(WriteFacts {
                            command: "TRUNCATE".into(),
                            table: table_ref(rv),
                            filter: Some(WhereFacts::Missing),
                        });
                    }
                }
                self.children(node);
            }
            NodeRef::LockStmt(_) => {
                self.locking = true;
                self.children(node);
            }
            NodeRef::DropStmt(drop) => {
                let kind = ObjectType::try_from(drop.remove_type).unwrap_or(ObjectType::Undefined);
                for object in &drop.objects {
                    self.named_object(kind, object);
                }
                self.children(node);
            }
            NodeRef::CommentStmt(comment) => {
                let kind = ObjectType::try_from(comment.objtype).unwrap_or(ObjectType::Undefined);
                if let Some(object) = &comment.object {
                    self.named_object(kind, object);
                }
                self.children(node);
            }
            NodeRef::SecLabelStmt(label) => {
                let kind = ObjectType::try_from(label.objtype).unwrap_or(ObjectType::Undefined);
                if let Some(object) = &label.object {
                    self.named_object(kind, object);
                }
                self.children(node);
            }
            NodeRef::CreateSchemaStmt(create) => {
                self.schema(&create.schemaname);
                self.children(node);
            }
            NodeRef::GrantStmt(grant) => {
                if grant.targtype == GrantTargetType::AclTargetAllInSchema as i32
                    || grant.objtype == ObjectType::ObjectSchema as i32
                {
                    for object in &grant.objects {
                        if let Some(NodeEnum::String(s)) = &object.node {
                            self.schema(&s.sval);
                        }
                    }
                }
                self.children(node);
            }
            NodeRef::RenameStmt(rename) => {
                if rename.rename_type == ObjectType::ObjectSchema as i32 {
                    self.schema(&rename.subname);
                    self.schema(&rename.newname);
                }
                self.children(node);
            }
            NodeRef::AlterObjectSchemaStmt(alter) => {
                self.schema(&alter.newschema);
                self.children(node);
            }
            _ => self.children(node),
        }
    }

    /// Walks a statement that may carry a `WITH`, keeping CTE names in scope exactly where
    /// PostgreSQL does: a non-recursive CTE sees the ones before it (so
    /// `WITH users AS (SELECT * FROM users)` reads the real `users`), a recursive list sees
    /// all of them, and the statement body sees all of them.
    fn scoped(&mut self, node: NodeRef<'a>, with: Option<&'a WithClause>) {
        let Some(with) = with else {
            self.children(node);
            return;
        };
        let base = self.ctes.len();
        let names: Vec<Option<&'a str>> = with
            .ctes
            .iter()
            .map(|c| match &c.node {
                Some(NodeEnum::CommonTableExpr(c)) => Some(c.ctename.as_str()),
                _ => None,
            })
            .collect();
        if with.recursive {
            self.ctes.extend(names.iter().flatten());
            for cte in &with.ctes {
                self.walk_node(Some(cte));
            }
        } else {
            for (i, cte) in with.ctes.iter().enumerate() {
                self.ctes.truncate(base);
                self.ctes.extend(names[..i].iter().flatten());
                self.walk_node(Some(cte));
            }
            self.ctes.truncate(base);
            self.ctes.extend(names.iter().flatten());
        }
        for_each_child(node, &mut |child| {
            let is_this_with = matches!(child, NodeRef::WithClause(w) if std::ptr::eq(w, with));
            if !is_this_with {
                self.walk(child);
            }
        });
        self.ctes.truncate(base);
    }

    fn dml(&mut self, command: &str, relation: Option<&RangeVar>, filter: Option<WhereFacts>) {
        // A DML target is always a real table, whatever CTE names are in scope.
        let Some(rel) = relation else { return };
        self.table(rel);
        if self.runs {
            self.writes.push(WriteFacts {
                command: command.into(),
                table: table_ref(rel),
                filter,
            });
        }
    }

    fn function(&mut self, call: &FuncCall) {
        let parts: Vec<&str> = call
            .funcname
            .iter()
            .filter_map(|n| match &n.node {
                Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
                _ => None,
            })
            .collect();
        if parts.len() >= 2 {
            self.schema(parts[parts.len() - 2]);
        }
        let name = parts.join(".");
        if self.runs
            && let Some(kind) = side_effect_kind(&name)
        {
            if kind == SideEffectKind::Config {
                self.set_config(call);
            }
            push_unique(&mut self.side_effects, name.clone());
        }
        push_unique(&mut self.functions, name);
    }

    /// `set_config(name, value, is_local)`: the function form of `SET`.
    fn set_config(&mut self, call: &FuncCall) {
        let name = call.args.first().and_then(constant_text);
        let value = call.args.get(1).and_then(constant_text);
        match name {
            Some(name) => self.setting(&name, Setting::Value(value.as_deref())),
            None => {
                // A computed setting name could be any of them.
                push_unique(&mut self.unlisted_settings, "(computed)".to_owned());
                self.role_change = true;
                self.read_only_change = true;
                self.lexer_change = true;
            }
        }
    }

    /// Flags for the top-level statements that change session state.
    fn top_level(&mut self, stmt: &NodeEnum) {
        match stmt {
            NodeEnum::VariableSetStmt(set) => {
                match VariableSetKind::try_from(set.kind).unwrap_or(VariableSetKind::Undefined) {
                    VariableSetKind::VarSetValue => {
                        let value = set.args.first().and_then(constant_text);
                        let value = (set.args.len() == 1).then_some(value).flatten();
                        self.setting(&set.name, Setting::Value(value.as_deref()));
                    }
                    VariableSetKind::VarSetDefault
                    | VariableSetKind::VarSetCurrent
                    | VariableSetKind::VarReset => self.setting(&set.name, Setting::Reset),
                    VariableSetKind::VarResetAll => self.read_only_change = true,
                    VariableSetKind::VarSetMulti => {
                        // SET TRANSACTION ... / SET SESSION CHARACTERISTICS AS TRANSACTION ...
                        if read_write_requested(&set.args) {
                            self.read_only_change = true;
                        }
                    }
                    VariableSetKind::Undefined => {
                        self.role_change = true;
                        self.read_only_change = true;
                    }
                }
            }
            NodeEnum::TransactionStmt(t) => {
                let begins = matches!(
                    TransactionStmtKind::try_from(t.kind),
                    Ok(TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart)
                );
                if begins && read_write_requested(&t.options) {
                    self.read_only_change = true;
                }
            }
            NodeEnum::DiscardStmt(d) if d.target == DiscardMode::DiscardAll as i32 => {
                // DISCARD ALL includes RESET ALL.
                self.read_only_change = true;
            }
            _ => {}
        }
    }

    fn setting(&mut self, name: &str, change: Setting<'_>) {
        let name = name.to_ascii_lowercase();
        let value = match change {
            Setting::Value(v) => v,
            Setting::Reset => None,
        };
        let truthy = value.and_then(parse_bool);
        let set = matches!(change, Setting::Value(_));
        if !harmless_setting(&name) {
            push_unique(&mut self.unlisted_settings, name.clone());
        }
        match name.as_str() {
            "role" | "session_authorization" => self.role_change = true,
            "default_transaction_read_only" | "transaction_read_only" if truthy != Some(true) => {
                self.read_only_change = true;
            }
            "client_encoding" if set && !value.is_some_and(is_utf8) => self.lexer_change = true,
            "standard_conforming_strings" if set && truthy != Some(true) => {
                self.lexer_change = true;
            }
            "backslash_quote" if set && !value.is_some_and(is_safe_backslash_quote) => {
                self.lexer_change = true;
            }
            _ => {}
        }
    }

    /// Tables and schemas named by `DROP`/`COMMENT ON`/`SECURITY LABEL` objects, which are
    /// name lists rather than `RangeVar`s.
    fn named_object(&mut self, kind: ObjectType, object: &Node) {
        let names: Vec<&str> = match &object.node {
            Some(NodeEnum::List(list)) => list
                .items
                .iter()
                .filter_map(|i| match &i.node {
                    Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
                    _ => None,
                })
                .collect(),
            Some(NodeEnum::String(s)) => vec![s.sval.as_str()],
            _ => return,
        };
        match kind {
            ObjectType::ObjectTable
            | ObjectType::ObjectView
            | ObjectType::ObjectMatview
            | ObjectType::ObjectForeignTable
            | ObjectType::ObjectSequence
            | ObjectType::ObjectIndex => self.table_from_names(&names),
            ObjectType::ObjectColumn
            | ObjectType::ObjectRule
            | ObjectType::ObjectTrigger
            | ObjectType::ObjectPolicy
            | ObjectType::ObjectTabconstraint => {
                if let Some((_, table)) = names.split_last() {
                    self.table_from_names(table);
                }
            }
            ObjectType::ObjectSchema => {
                for name in names {
                    self.schema(name);
                }
            }
            _ => {}
        }
    }
}

/// What a `SET`-like statement does to one setting.
#[derive(Clone, Copy)]
enum Setting<'v> {
    /// `SET name = value` (`None` when the value is not a single constant).
    Value(Option<&'v str>),
    /// `RESET name`, `SET name TO DEFAULT`, `SET name FROM CURRENT`.
    Reset,
}

/// Whether a `client_encoding` value names UTF-8 (PostgreSQL ignores case and punctuation
/// in encoding names). Every other value is treated as a change: the client-only encodings
/// SJIS, BIG5, GBK, UHC and GB18030 can hide a quote or backslash inside a multi-byte
/// character, and an allow-list cannot miss an alias.
fn is_utf8(value: &str) -> bool {
    let name: String = value
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    name == "utf8" || name == "unicode"
}

fn is_safe_backslash_quote(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case("safe_encoding") || parse_bool(value) == Some(false)
}

/// `transaction_read_only = false` among transaction-mode options (`READ WRITE`).
fn read_write_requested(options: &[Node]) -> bool {
    options.iter().any(|o| match &o.node {
        Some(NodeEnum::DefElem(d)) if d.defname == "transaction_read_only" => {
            def_elem_bool(d) != Some(true)
        }
        _ => false,
    })
}

/// The text of a constant argument (`'x'`, `1`, `true`, `'x'::text`), if it is one.
fn constant_text(node: &Node) -> Option<String> {
    super::shape::note_read();
    match node.node.as_ref()? {
        NodeEnum::AConst(c) => match c.val.as_ref()? {
            a_const::Val::Sval(s) => Some(s.sval.clone()),
            a_const::Val::Ival(i) => Some(i.ival.to_string()),
            a_const::Val::Fval(f) => Some(f.fval.clone()),
            a_const::Val::Boolval(b) => Some(if b.boolval { "on" } else { "off" }.into()),
            a_const::Val::Bsval(_) => None,
        },
        NodeEnum::TypeCast(cast) => constant_text(cast.arg.as_deref()?),
        _ => None,
    }
}

/// The weakest filter among a `MERGE`'s `UPDATE`/`DELETE` actions. A `WHEN MATCHED` action
/// is filtered by the join condition or its own `AND` condition; a `WHEN NOT MATCHED BY
/// SOURCE` action touches target rows the join did not find, so only its own condition
/// filters it. `None` for insert-only merges.
fn merge_filter(merge: &protobuf::MergeStmt) -> Option<WhereFacts> {
    let target = Target::of(merge.relation.as_ref());
    let on = shape_for(merge.join_condition.as_deref(), &target);
    merge
        .merge_when_clauses
        .iter()
        .filter_map(|c| match &c.node {
            Some(NodeEnum::MergeWhenClause(w)) => Some(w),
            _ => None,
        })
        .filter(|w| {
            w.command_type == CmdType::CmdUpdate as i32
                || w.command_type == CmdType::CmdDelete as i32
        })
        .map(|w| {
            let own = shape_for(w.condition.as_deref(), &target);
            if w.match_kind == MergeMatchKind::MergeWhenMatched as i32 {
                own.max(on)
            } else {
                own
            }
        })
        .min()
}

/// The filter of an upsert that reads its own table: `INSERT INTO t SELECT ... FROM t ON
/// CONFLICT DO UPDATE` conflicts on every row it reads and so updates them all unless the `DO
/// UPDATE`'s own `WHERE` selects rows. `None` for plain inserts and upserts fed by other
/// sources (each conflicting row was named by the statement's own values).
fn upsert_filter(insert: &protobuf::InsertStmt) -> Option<WhereFacts> {
    let conflict = insert.on_conflict_clause.as_deref()?;
    if conflict.action != protobuf::OnConflictAction::OnconflictUpdate as i32 {
        return None;
    }
    let target = insert.relation.as_ref()?;
    let source = insert.select_stmt.as_deref()?.node.as_ref()?;
    let ctes_read = insert
        .with_clause
        .as_ref()
        .is_some_and(|w| reads(NodeRef::WithClause(w), &target.relname));
    (ctes_read || reads(source.to_ref(), &target.relname))
        .then(|| shape_for(conflict.where_clause.as_deref(), &Target::of(Some(target))))
}

/// Whether a table named `relname` is read anywhere inside (CTEs and subqueries included).
fn reads(node: NodeRef<'_>, relname: &str) -> bool {
    if let NodeRef::RangeVar(rv) = node {
        return rv.relname == relname;
    }
    let mut found = false;
    super::walk::for_each_child(node, &mut |child| {
        if !found && reads(child, relname) {
            found = true;
        }
    });
    found
}

fn table_ref(rv: &RangeVar) -> TableRef {
    TableRef::new(Some(&rv.schemaname), &rv.relname)
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Escalation order among the classes a `SELECT`/DML can be raised to.
fn rank(class: StatementClass) -> u8 {
    match class {
        StatementClass::Read => 0,
        StatementClass::Session => 1,
        StatementClass::Write => 2,
        StatementClass::Ddl => 3,
        _ => 4,
    }
}

/// The PostgreSQL spelling of an object type in command tags (`DROP <this>`).
fn object_name(kind: ObjectType) -> &'static str {
    use ObjectType as O;
    match kind {
        O::ObjectAccessMethod => "ACCESS METHOD",
        O::ObjectAggregate => "AGGREGATE",
        O::ObjectAmop | O::ObjectAmproc | O::ObjectOpfamily => "OPERATOR FAMILY",
        O::ObjectAttribute | O::ObjectType => "TYPE",
        O::ObjectCast => "CAST",
        O::ObjectColumn | O::ObjectTabconstraint | O::ObjectTable => "TABLE",
        O::ObjectCollation => "COLLATION",
        O::ObjectConversion => "CONVERSION",
        O::ObjectDatabase => "DATABASE",
        O::ObjectDefault => "DEFAULT",
        O::ObjectDefacl => "DEFAULT PRIVILEGES",
        O::ObjectDomain | O::ObjectDomconstraint => "DOMAIN",
        O::ObjectEventTrigger => "EVENT TRIGGER",
        O::ObjectExtension => "EXTENSION",
        O::ObjectFdw => "FOREIGN DATA WRAPPER",
        O::ObjectForeignServer => "SERVER",
        O::ObjectForeignTable => "FOREIGN TABLE",
        O::ObjectFunction => "FUNCTION",
        O::ObjectIndex => "INDEX",
        O::ObjectLanguage => "LANGUAGE",
        O::ObjectLargeobject => "LARGE OBJECT",
        O::ObjectMatview => "MATERIALIZED VIEW",
        O::ObjectOpclass => "OPERATOR CLASS",
        O::ObjectOperator => "OPERATOR",
        O::ObjectParameterAcl => "PARAMETER",
        O::ObjectPolicy => "POLICY",
        O::ObjectProcedure => "PROCEDURE",
        O::ObjectPublication | O::ObjectPublicationNamespace | O::ObjectPublicationRel => {
            "PUBLICATION"
        }
        O::ObjectRole => "ROLE",
        O::ObjectRoutine => "ROUTINE",
        O::ObjectRule => "RULE",
        O::ObjectSchema => "SCHEMA",
        O::ObjectSequence => "SEQUENCE",
        O::ObjectSubscription => "SUBSCRIPTION",
        O::ObjectStatisticExt => "STATISTICS",
        O::ObjectTablespace => "TABLESPACE",
        O::ObjectTransform => "TRANSFORM",
        O::ObjectTrigger => "TRIGGER",
        O::ObjectTsconfiguration => "TEXT SEARCH CONFIGURATION",
        O::ObjectTsdictionary => "TEXT SEARCH DICTIONARY",
        O::ObjectTsparser => "TEXT SEARCH PARSER",
        O::ObjectTstemplate => "TEXT SEARCH TEMPLATE",
        O::ObjectUserMapping => "USER MAPPING",
        O::ObjectView => "VIEW",
        O::Undefined => "OBJECT",
    }
}

/// The class of DDL on an object type: server-wide objects are `Admin`, access-control
/// objects `Dcl`, everything else `Ddl`.
fn object_class(kind: ObjectType) -> StatementClass {
    use ObjectType as O;
    match kind {
        O::ObjectDatabase
        | O::ObjectTablespace
        | O::ObjectSubscription
        | O::ObjectPublication
        | O::ObjectPublicationNamespace
        | O::ObjectPublicationRel
        | O::ObjectEventTrigger
        | O::ObjectExtension
        | O::ObjectFdw
        | O::ObjectForeignServer
        | O::ObjectLanguage
        | O::ObjectAccessMethod => StatementClass::Admin,
        O::ObjectRole | O::ObjectPolicy | O::ObjectUserMapping | O::ObjectDefacl => {
            StatementClass::Dcl
        }
        _ => StatementClass::Ddl,
    }
}

fn object_kind(raw: i32) -> ObjectType {
    ObjectType::try_from(raw).unwrap_or(ObjectType::Undefined)
}

/// The base class and command tag of a top-level statement node, or `None` for a node that
/// is not a statement (never produced by the top-level grammar; refused as `Unknown`).
fn describe(stmt: &NodeEnum) -> Option<(StatementClass, String)> {
    use NodeEnum as N;
    use StatementClass::{Admin, Dcl, Ddl, Procedural, Read, Session, Transaction, Write};
    let fixed = |class: StatementClass, tag: &str| Some((class, tag.to_owned()));
    let on_object = |verb: &str, kind: ObjectType| {
        Some((object_class(kind), format!("{verb} {}", object_name(kind))))
    };
    match stmt {
        N::SelectStmt(s) if s.into_clause.is_some() => fixed(Read, "SELECT INTO"),
        N::SelectStmt(_) | N::SetOperationStmt(_) => fixed(Read, "SELECT"),
        N::InsertStmt(_) => fixed(Write, "INSERT"),
        N::UpdateStmt(_) => fixed(Write, "UPDATE"),
        N::DeleteStmt(_) => fixed(Write, "DELETE"),
        N::MergeStmt(_) => fixed(Write, "MERGE"),
        N::TruncateStmt(_) => fixed(Write, "TRUNCATE"),
        N::LockStmt(_) => fixed(Write, "LOCK TABLE"),
        N::DeclareCursorStmt(_) => fixed(Read, "DECLARE CURSOR"),
        N::FetchStmt(f) => fixed(Read, if f.ismove { "MOVE" } else { "FETCH" }),
        N::ClosePortalStmt(c) => fixed(
            Session,
            if c.portalname.is_empty() {
                "CLOSE CURSOR ALL"
            } else {
                "CLOSE CURSOR"
            },
        ),
        N::CallStmt(_) => fixed(Procedural, "CALL"),
        N::DoStmt(_) => fixed(Procedural, "DO"),
        N::TransactionStmt(t) => {
            use TransactionStmtKind as K;
            let tag = match K::try_from(t.kind).unwrap_or(K::Undefined) {
                K::TransStmtBegin => "BEGIN",
                K::TransStmtStart => "START TRANSACTION",
                K::TransStmtCommit => "COMMIT",
                K::TransStmtRollback | K::TransStmtRollbackTo => "ROLLBACK",
                K::TransStmtSavepoint => "SAVEPOINT",
                K::TransStmtRelease => "RELEASE",
                K::TransStmtPrepare => "PREPARE TRANSACTION",
                K::TransStmtCommitPrepared => "COMMIT PREPARED",
                K::TransStmtRollbackPrepared => "ROLLBACK PREPARED",
                K::Undefined => return None,
            };
            fixed(Transaction, tag)
        }
        N::VariableSetStmt(v) => {
            let reset = v.kind == VariableSetKind::VarReset as i32
                || v.kind == VariableSetKind::VarResetAll as i32;
            fixed(Session, if reset { "RESET" } else { "SET" })
        }
        N::VariableShowStmt(_) => fixed(Session, "SHOW"),
        N::DiscardStmt(d) => {
            let tag = match DiscardMode::try_from(d.target) {
                Ok(DiscardMode::DiscardAll) => "DISCARD ALL",
                Ok(DiscardMode::DiscardPlans) => "DISCARD PLANS",
                Ok(DiscardMode::DiscardSequences) => "DISCARD SEQUENCES",
                Ok(DiscardMode::DiscardTemp) => "DISCARD TEMP",
                _ => "DISCARD",
            };
            fixed(Session, tag)
        }
        N::ListenStmt(_) => fixed(Session, "LISTEN"),
        N::UnlistenStmt(_) => fixed(Session, "UNLISTEN"),
        N::NotifyStmt(_) => fixed(Session, "NOTIFY"),
        N::ExecuteStmt(_) => fixed(Session, "EXECUTE"),
        N::DeallocateStmt(d) => fixed(
            Session,
            if d.isall {
                "DEALLOCATE ALL"
            } else {
                "DEALLOCATE"
            },
        ),
        N::ConstraintsSetStmt(_) => fixed(Session, "SET CONSTRAINTS"),
        // Server administration.
        N::LoadStmt(_) => fixed(Admin, "LOAD"),
        N::CheckPointStmt(_) => fixed(Admin, "CHECKPOINT"),
        N::VacuumStmt(v) => fixed(Admin, if v.is_vacuumcmd { "VACUUM" } else { "ANALYZE" }),
        N::ClusterStmt(_) => fixed(Admin, "CLUSTER"),
        N::ReindexStmt(_) => fixed(Admin, "REINDEX"),
        N::AlterSystemStmt(_) => fixed(Admin, "ALTER SYSTEM"),
        N::CreatedbStmt(_) => fixed(Admin, "CREATE DATABASE"),
        N::DropdbStmt(_) => fixed(Admin, "DROP DATABASE"),
        N::AlterDatabaseStmt(_)
        | N::AlterDatabaseSetStmt(_)
        | N::AlterDatabaseRefreshCollStmt(_) => fixed(Admin, "ALTER DATABASE"),
        N::CreateTableSpaceStmt(_) => fixed(Admin, "CREATE TABLESPACE"),
        N::DropTableSpaceStmt(_) => fixed(Admin, "DROP TABLESPACE"),
        N::AlterTableSpaceOptionsStmt(_) => fixed(Admin, "ALTER TABLESPACE"),
        N::CreateExtensionStmt(_) => fixed(Admin, "CREATE EXTENSION"),
        N::AlterExtensionStmt(_) | N::AlterExtensionContentsStmt(_) => {
            fixed(Admin, "ALTER EXTENSION")
        }
        N::CreatePlangStmt(_) => fixed(Admin, "CREATE LANGUAGE"),
        N::CreateAmStmt(_) => fixed(Admin, "CREATE ACCESS METHOD"),
        N::CreateEventTrigStmt(_) => fixed(Admin, "CREATE EVENT TRIGGER"),
        N::AlterEventTrigStmt(_) => fixed(Admin, "ALTER EVENT TRIGGER"),
        N::CreateFdwStmt(_) => fixed(Admin, "CREATE FOREIGN DATA WRAPPER"),
        N::AlterFdwStmt(_) => fixed(Admin, "ALTER FOREIGN DATA WRAPPER"),
        N::CreateForeignServerStmt(_) => fixed(Admin, "CREATE SERVER"),
        N::AlterForeignServerStmt(_) => fixed(Admin, "ALTER SERVER"),
        N::CreatePublicationStmt(_) => fixed(Admin, "CREATE PUBLICATION"),
        N::AlterPublicationStmt(_) => fixed(Admin, "ALTER PUBLICATION"),
        N::CreateSubscriptionStmt(_) => fixed(Admin, "CREATE SUBSCRIPTION"),
        N::AlterSubscriptionStmt(_) => fixed(Admin, "ALTER SUBSCRIPTION"),
        N::DropSubscriptionStmt(_) => fixed(Admin, "DROP SUBSCRIPTION"),
        // Privileges, roles, ownership, row security, credentials for foreign servers.
        N::GrantStmt(g) => fixed(Dcl, if g.is_grant { "GRANT" } else { "REVOKE" }),
        N::GrantRoleStmt(g) => fixed(
            Dcl,
            if g.is_grant {
                "GRANT ROLE"
            } else {
                "REVOKE ROLE"
            },
        ),
        N::AlterDefaultPrivilegesStmt(_) => fixed(Dcl, "ALTER DEFAULT PRIVILEGES"),
        N::CreateRoleStmt(_) => fixed(Dcl, "CREATE ROLE"),
        N::AlterRoleStmt(_) | N::AlterRoleSetStmt(_) => fixed(Dcl, "ALTER ROLE"),
        N::DropRoleStmt(_) => fixed(Dcl, "DROP ROLE"),
        N::CreateUserMappingStmt(_) => fixed(Dcl, "CREATE USER MAPPING"),
        N::AlterUserMappingStmt(_) => fixed(Dcl, "ALTER USER MAPPING"),
        N::DropUserMappingStmt(_) => fixed(Dcl, "DROP USER MAPPING"),
        N::CreatePolicyStmt(_) => fixed(Dcl, "CREATE POLICY"),
        N::AlterPolicyStmt(_) => fixed(Dcl, "ALTER POLICY"),
        N::DropOwnedStmt(_) => fixed(Dcl, "DROP OWNED"),
        N::ReassignOwnedStmt(_) => fixed(Dcl, "REASSIGN OWNED"),
        N::AlterOwnerStmt(a) => Some((
            Dcl,
            format!("ALTER {}", object_name(object_kind(a.object_type))),
        )),
        // Schema objects.
        N::CreateStmt(_) => fixed(Ddl, "CREATE TABLE"),
        N::CreateForeignTableStmt(_) => fixed(Ddl, "CREATE FOREIGN TABLE"),
        N::AlterTableStmt(a) => on_object("ALTER", object_kind(a.objtype)),
        N::AlterTableMoveAllStmt(a) => on_object("ALTER", object_kind(a.objtype)),
        N::AlterDomainStmt(_) => fixed(Ddl, "ALTER DOMAIN"),
        N::DefineStmt(d) => on_object("CREATE", object_kind(d.kind)),
        N::DropStmt(d) => on_object("DROP", object_kind(d.remove_type)),
        N::CommentStmt(_) => fixed(Ddl, "COMMENT"),
        N::SecLabelStmt(_) => fixed(Ddl, "SECURITY LABEL"),
        N::IndexStmt(_) => fixed(Ddl, "CREATE INDEX"),
        N::CreateFunctionStmt(f) => fixed(
            Ddl,
            if f.is_procedure {
                "CREATE PROCEDURE"
            } else {
                "CREATE FUNCTION"
            },
        ),
        N::AlterFunctionStmt(a) => Some((
            Ddl,
            format!("ALTER {}", object_name(object_kind(a.objtype))),
        )),
        N::RenameStmt(r) => on_object("ALTER", object_kind(r.rename_type)),
        N::AlterObjectSchemaStmt(a) => on_object("ALTER", object_kind(a.object_type)),
        N::AlterObjectDependsStmt(a) => Some((
            Ddl,
            format!("ALTER {}", object_name(object_kind(a.object_type))),
        )),
        N::RuleStmt(_) => fixed(Ddl, "CREATE RULE"),
        N::ViewStmt(_) => fixed(Ddl, "CREATE VIEW"),
        N::CreateDomainStmt(_) => fixed(Ddl, "CREATE DOMAIN"),
        N::CreateTableAsStmt(c) => {
            let tag = if c.objtype == ObjectType::ObjectMatview as i32 {
                "CREATE MATERIALIZED VIEW"
            } else if c.is_select_into {
                "SELECT INTO"
            } else {
                "CREATE TABLE AS"
            };
            fixed(Ddl, tag)
        }
        N::RefreshMatViewStmt(_) => fixed(Ddl, "REFRESH MATERIALIZED VIEW"),
        N::CreateSeqStmt(_) => fixed(Ddl, "CREATE SEQUENCE"),
        N::AlterSeqStmt(_) => fixed(Ddl, "ALTER SEQUENCE"),
        N::CreateTrigStmt(_) => fixed(Ddl, "CREATE TRIGGER"),
        N::CreateSchemaStmt(_) => fixed(Ddl, "CREATE SCHEMA"),
        N::CreateConversionStmt(_) => fixed(Ddl, "CREATE CONVERSION"),
        N::CreateCastStmt(_) => fixed(Ddl, "CREATE CAST"),
        N::CreateOpClassStmt(_) => fixed(Ddl, "CREATE OPERATOR CLASS"),
        N::CreateOpFamilyStmt(_) => fixed(Ddl, "CREATE OPERATOR FAMILY"),
        N::AlterOpFamilyStmt(_) => fixed(Ddl, "ALTER OPERATOR FAMILY"),
        N::AlterOperatorStmt(_) => fixed(Ddl, "ALTER OPERATOR"),
        N::AlterTypeStmt(_) | N::AlterEnumStmt(_) => fixed(Ddl, "ALTER TYPE"),
        N::CompositeTypeStmt(_) | N::CreateEnumStmt(_) | N::CreateRangeStmt(_) => {
            fixed(Ddl, "CREATE TYPE")
        }
        N::AlterTsdictionaryStmt(_) => fixed(Ddl, "ALTER TEXT SEARCH DICTIONARY"),
        N::AlterTsconfigurationStmt(_) => fixed(Ddl, "ALTER TEXT SEARCH CONFIGURATION"),
        N::ImportForeignSchemaStmt(_) => fixed(Ddl, "IMPORT FOREIGN SCHEMA"),
        N::ReplicaIdentityStmt(_) => fixed(Ddl, "ALTER TABLE"),
        N::CreateTransformStmt(_) => fixed(Ddl, "CREATE TRANSFORM"),
        N::CreateStatsStmt(_) => fixed(Ddl, "CREATE STATISTICS"),
        N::AlterStatsStmt(_) => fixed(Ddl, "ALTER STATISTICS"),
        N::AlterCollationStmt(_) => fixed(Ddl, "ALTER COLLATION"),
        // Handled by `analyze` before `describe`; listed so the intent is visible.
        N::ExplainStmt(_) | N::CopyStmt(_) | N::PrepareStmt(_) => None,
        _ => None,
    }
}
