//! The walk over one statement's parse tree that [`super::lineage`] runs: scopes of row
//! sources, CTEs and views, expressions, writes, side channels, and the final sweep. The
//! rules it follows are described in the documentation of [`super`].

use crate::postgres::analyze::runs_body;
use std::collections::{HashMap, HashSet};
use std::ops::Range;

use pg_query::protobuf::{
    self, AExprKind, CmdType, JoinType, JsonExprOp, JsonTableColumnType, Node, OnConflictAction,
    ReturningOptionKind, SetOperation, SubLinkType,
};
use pg_query::{NodeEnum, NodeRef};

use super::functions;
use super::{
    BaseColumn, Col, ColumnLineage, Columns, Deferred, MAX_DEPTH, MAX_RECURSIVE_ROUNDS,
    MAX_VIEW_DEPTH, Output, Relations, SideChannel, StatementLineage, StoredValue,
};
use crate::postgres::walk::for_each_child;

/// The names and row sources one query level resolves against.
#[derive(Debug, Default, Clone)]
struct Level {
    /// Row sources for unqualified names and `*`, in `FROM` order (a join is one source).
    unqualified: Vec<Columns>,
    /// Row sources by the name that qualifies their columns (alias or relation name).
    named: Vec<(String, Columns)>,
}

/// One `FROM` item: its columns and the names it makes visible.
struct FromItem {
    columns: Columns,
    named: Vec<(String, Columns)>,
}

/// A CTE in scope.
struct Cte {
    name: String,
    columns: Columns,
}

/// The walk over one statement. See the module documentation.
pub(super) struct Analyzer<'r> {
    relations: &'r dyn Relations,
    /// Query levels, innermost last.
    scopes: Vec<Level>,
    /// CTEs in scope, innermost last.
    ctes: Vec<Cte>,
    /// Views being expanded (cycle detection).
    views: Vec<(Option<String>, String)>,
    /// Views already expanded in this statement.
    view_cache: HashMap<(Option<String>, String), Columns>,
    depth: usize,
    fuel: usize,
    /// Why the analysis gave up, if it did.
    gave_up: Option<String>,
    stored: Vec<StoredValue>,
    /// Side channels found, by the address of their call node (evaluating a node twice,
    /// as recursive CTE rounds do, must not report it twice).
    channels: Vec<(usize, SideChannel)>,
    /// Addresses of write nodes analysed (for the final sweep).
    handled: HashSet<usize>,
}

fn address<T>(node: &T) -> usize {
    std::ptr::from_ref(node) as usize
}

impl<'r> Analyzer<'r> {
    pub(super) fn new(relations: &'r dyn Relations, fuel: usize) -> Self {
        Analyzer {
            relations,
            scopes: Vec::new(),
            ctes: Vec::new(),
            views: Vec::new(),
            view_cache: HashMap::new(),
            depth: 0,
            fuel,
            gave_up: None,
            stored: Vec::new(),
            channels: Vec::new(),
            handled: HashSet::new(),
        }
    }

    /// One step deeper; `false` (and the analysis given up) over a bound.
    fn enter(&mut self) -> bool {
        if self.gave_up.is_some() {
            return false;
        }
        if self.depth >= MAX_DEPTH {
            self.gave_up = Some(format!(
                "the statement nests deeper than {MAX_DEPTH} levels"
            ));
            return false;
        }
        if self.fuel == 0 {
            self.gave_up = Some("the statement is too large to analyse".into());
            return false;
        }
        self.fuel -= 1;
        self.depth += 1;
        true
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    // ---- statements ----

    pub(super) fn statement(mut self, stmt: &NodeEnum, span: Range<usize>) -> StatementLineage {
        let (output, deferred, runs) = self.top(stmt);
        if runs {
            self.sweep(stmt.to_ref());
        }
        let output = if self.gave_up.is_some() {
            Output::Unknown
        } else {
            output
        };
        let mut stored: Vec<StoredValue> = Vec::new();
        for value in self.stored {
            if !stored.contains(&value) {
                stored.push(value);
            }
        }
        let reads = match stmt {
            NodeEnum::FetchStmt(fetch) if !fetch.ismove => {
                Some(Deferred::Cursor(fetch.portalname.clone()))
            }
            NodeEnum::ExecuteStmt(execute) => Some(Deferred::Prepared(execute.name.clone())),
            _ => None,
        };
        StatementLineage {
            span,
            output,
            deferred,
            reads,
            stored,
            side_channels: self.channels.into_iter().map(|(_, c)| c).collect(),
            incomplete: self.gave_up,
        }
    }

    /// The output of a top-level statement, rows returned later, and whether it runs now
    /// (so that the final sweep applies).
    fn top(&mut self, stmt: &NodeEnum) -> (Output, Option<Deferred>, bool) {
        use NodeEnum as N;
        match stmt {
            N::SelectStmt(s) => {
                let columns = self.select(s);
                let output = if s.into_clause.is_some() {
                    Output::NoRows
                } else {
                    rows(columns)
                };
                (output, None, true)
            }
            N::InsertStmt(_) | N::UpdateStmt(_) | N::DeleteStmt(_) | N::MergeStmt(_) => {
                let columns = self.query(stmt.to_ref());
                let returns = match stmt {
                    N::InsertStmt(i) => returns(i.returning_clause.as_ref()),
                    N::UpdateStmt(u) => returns(u.returning_clause.as_ref()),
                    N::DeleteStmt(d) => returns(d.returning_clause.as_ref()),
                    N::MergeStmt(m) => returns(m.returning_clause.as_ref()),
                    _ => false,
                };
                let output = if returns {
                    rows(columns)
                } else {
                    Output::NoRows
                };
                (output, None, true)
            }
            N::CopyStmt(copy) => (self.copy(copy), None, true),
            N::DeclareCursorStmt(declare) => {
                let output = self.deferred_rows(declare.query.as_deref());
                (
                    output,
                    Some(Deferred::Cursor(declare.portalname.clone())),
                    true,
                )
            }
            N::PrepareStmt(prepare) => {
                let output = self.deferred_rows(prepare.query.as_deref());
                (output, Some(Deferred::Prepared(prepare.name.clone())), true)
            }
            N::ExplainStmt(explain) => {
                let inner = explain.query.as_deref().and_then(|n| n.node.as_ref());
                match inner {
                    Some(inner) if explain_analyzes(explain) => {
                        // EXPLAIN ANALYZE runs the statement (its writes and side channels
                        // happen); the plan it returns holds no table values.
                        let _ = self.top(inner);
                        (Output::Constants, None, true)
                    }
                    _ => (Output::Constants, None, false),
                }
            }
            N::CreateTableAsStmt(ctas) => {
                self.create_table_as(ctas);
                (Output::NoRows, None, true)
            }
            N::VariableShowStmt(_) => (Output::Constants, None, true),
            N::FetchStmt(fetch) if fetch.ismove => (Output::NoRows, None, true),
            N::ExecuteStmt(_) | N::FetchStmt(_) | N::CallStmt(_) => (Output::Unknown, None, true),
            _ => (Output::NoRows, None, runs_body(stmt)),
        }
    }

    fn deferred_rows(&mut self, query: Option<&Node>) -> Output {
        let Some(query) = query.and_then(|n| n.node.as_ref()) else {
            return Output::Unknown;
        };
        let columns = self.query(query.to_ref());
        let returns = match query {
            NodeEnum::SelectStmt(s) => s.into_clause.is_none(),
            NodeEnum::InsertStmt(i) => returns(i.returning_clause.as_ref()),
            NodeEnum::UpdateStmt(u) => returns(u.returning_clause.as_ref()),
            NodeEnum::DeleteStmt(d) => returns(d.returning_clause.as_ref()),
            NodeEnum::MergeStmt(m) => returns(m.returning_clause.as_ref()),
            _ => true,
        };
        if returns {
            rows(columns)
        } else {
            Output::NoRows
        }
    }

    fn copy(&mut self, copy: &protobuf::CopyStmt) -> Output {
        if let Some(query) = copy.query.as_deref().and_then(|n| n.node.as_ref()) {
            return rows(self.query(query.to_ref()));
        }
        if copy.is_from {
            // Values come from the client; the WHERE filter is evaluated for side channels.
            if let Some(rel) = &copy.relation {
                self.scopes.push(Level::default());
                let item = self.table_item(rel);
                self.push_item(item);
                self.eval_opt(copy.where_clause.as_deref());
                self.scopes.pop();
            }
            return Output::NoRows;
        }
        let Some(rel) = &copy.relation else {
            return Output::Unknown;
        };
        let Some(columns) = self.relation(rel) else {
            return Output::Unknown;
        };
        let wanted = names(&copy.attlist);
        if wanted.is_empty() {
            return Output::Rows(columns.into_iter().map(|c| c.lineage).collect());
        }
        Output::Rows(
            wanted
                .iter()
                .map(|name| {
                    columns
                        .iter()
                        .find(|c| &c.name == name)
                        .map_or(ColumnLineage::Unknown, |c| c.lineage.clone())
                })
                .collect(),
        )
    }

    fn create_table_as(&mut self, ctas: &protobuf::CreateTableAsStmt) {
        self.handled.insert(address(ctas));
        let Some(query) = ctas.query.as_deref().and_then(|n| n.node.as_ref()) else {
            return;
        };
        let columns = self.query(query.to_ref());
        if let Some(into) = &ctas.into {
            self.store_into(into, columns);
        }
    }

    /// The new table of `CREATE TABLE AS` / `SELECT INTO` stores every output column.
    fn store_into(&mut self, into: &protobuf::IntoClause, columns: Columns) {
        let Some(rel) = &into.rel else { return };
        let renamed = names(&into.col_names);
        match columns {
            Some(columns) => {
                for (i, col) in columns.into_iter().enumerate() {
                    let name = renamed.get(i).cloned().unwrap_or(col.name);
                    self.store(rel, Some(name), col.lineage);
                }
            }
            None => self.store(rel, None, ColumnLineage::Unknown),
        }
    }

    fn store(&mut self, rel: &protobuf::RangeVar, column: Option<String>, lineage: ColumnLineage) {
        if lineage == ColumnLineage::Constant {
            return;
        }
        self.stored.push(StoredValue {
            schema: non_empty(&rel.schemaname),
            table: rel.relname.clone(),
            column,
            lineage,
        });
    }

    fn channel(&mut self, at: usize, function: &str, lineage: ColumnLineage) {
        if let Some((_, existing)) = self.channels.iter_mut().find(|(a, _)| *a == at) {
            existing.lineage = existing.lineage.clone().or(lineage);
            return;
        }
        self.channels.push((
            at,
            SideChannel {
                function: function.to_owned(),
                lineage,
            },
        ));
    }

    /// The fail-closed net: every write and side-channel call in the tree that the analysis
    /// did not reach (a bound, a clause it does not model) is reported as `Unknown`. Bodies
    /// that are stored rather than run (`CREATE VIEW`, `CREATE FUNCTION`, ...) are skipped.
    fn sweep(&mut self, node: NodeRef<'_>) {
        let mut stack = vec![node];
        while let Some(node) = stack.pop() {
            match node {
                NodeRef::InsertStmt(i) if !self.handled.contains(&address(i)) => {
                    if let Some(rel) = &i.relation {
                        self.store(rel, None, ColumnLineage::Unknown);
                    }
                }
                NodeRef::UpdateStmt(u) if !self.handled.contains(&address(u)) => {
                    if let Some(rel) = &u.relation {
                        self.store(rel, None, ColumnLineage::Unknown);
                    }
                }
                NodeRef::MergeStmt(m) if !self.handled.contains(&address(m)) => {
                    if let Some(rel) = &m.relation {
                        self.store(rel, None, ColumnLineage::Unknown);
                    }
                }
                NodeRef::SelectStmt(s) if !self.handled.contains(&address(s)) => {
                    if let Some(rel) = s.into_clause.as_ref().and_then(|i| i.rel.as_ref()) {
                        self.store(rel, None, ColumnLineage::Unknown);
                    }
                }
                NodeRef::CreateTableAsStmt(c) if !self.handled.contains(&address(c)) => {
                    if let Some(rel) = c.into.as_ref().and_then(|i| i.rel.as_ref()) {
                        self.store(rel, None, ColumnLineage::Unknown);
                    }
                }
                NodeRef::FuncCall(call) => {
                    let (_, name) = function_name(&call.funcname);
                    if functions::side_channel(name)
                        && !self.channels.iter().any(|(a, _)| *a == address(call))
                    {
                        self.channel(address(call), name, ColumnLineage::Unknown);
                    }
                }
                _ => {}
            }
            let stored_body = match node {
                NodeRef::ViewStmt(_)
                | NodeRef::RuleStmt(_)
                | NodeRef::CreateFunctionStmt(_)
                | NodeRef::CreateTrigStmt(_)
                | NodeRef::CreatePolicyStmt(_)
                | NodeRef::AlterPolicyStmt(_)
                | NodeRef::CreateStmt(_)
                | NodeRef::CreateDomainStmt(_)
                | NodeRef::AlterDomainStmt(_) => true,
                NodeRef::ExplainStmt(e) => !explain_analyzes(e),
                _ => false,
            };
            if !stored_body {
                for_each_child(node, &mut |child| stack.push(child));
            }
        }
    }

    // ---- queries ----

    /// The output columns of anything that can stand where a query can.
    fn query(&mut self, node: NodeRef<'_>) -> Columns {
        if !self.enter() {
            return None;
        }
        let columns = match node {
            NodeRef::SelectStmt(s) => self.select(s),
            NodeRef::InsertStmt(i) => self.insert(i),
            NodeRef::UpdateStmt(u) => self.update(u),
            NodeRef::DeleteStmt(d) => self.delete(d),
            NodeRef::MergeStmt(m) => self.merge(m),
            other => {
                // Not a query (EXECUTE in CREATE TABLE AS, ...): nothing is known of it.
                let _ = self.generic(other);
                None
            }
        };
        self.leave();
        columns
    }

    fn select(&mut self, s: &protobuf::SelectStmt) -> Columns {
        if !self.enter() {
            return None;
        }
        self.handled.insert(address(s));
        let mark = self.with(s.with_clause.as_ref());
        let op = SetOperation::try_from(s.op).unwrap_or(SetOperation::Undefined);
        let columns = if matches!(
            op,
            SetOperation::SetopUnion | SetOperation::SetopIntersect | SetOperation::SetopExcept
        ) {
            let left = s.larg.as_deref().and_then(|l| self.select(l));
            let right = s.rarg.as_deref().and_then(|r| self.select(r));
            let columns = either_columns(left, right);
            // ORDER BY / LIMIT of a set operation see its output columns.
            self.scopes.push(Level {
                unqualified: vec![columns.clone()],
                named: Vec::new(),
            });
            self.clauses(s);
            self.scopes.pop();
            columns
        } else if !s.values_lists.is_empty() {
            let columns = self.values(&s.values_lists);
            self.clauses(s);
            columns
        } else {
            self.scopes.push(Level::default());
            self.range_list(&s.from_clause);
            let columns = self.target_list(&s.target_list);
            self.eval_opt(s.where_clause.as_deref());
            self.eval_all(&s.group_clause);
            self.eval_opt(s.having_clause.as_deref());
            self.eval_all(&s.window_clause);
            self.eval_all(&s.distinct_clause);
            self.clauses(s);
            self.scopes.pop();
            columns
        };
        self.ctes.truncate(mark);
        if let Some(into) = &s.into_clause {
            self.store_into(into, columns.clone());
        }
        self.leave();
        columns
    }

    /// `ORDER BY` and `LIMIT`, evaluated only for side channels.
    fn clauses(&mut self, s: &protobuf::SelectStmt) {
        self.eval_all(&s.sort_clause);
        self.eval_opt(s.limit_offset.as_deref());
        self.eval_opt(s.limit_count.as_deref());
    }

    fn values(&mut self, lists: &[Node]) -> Columns {
        let mut columns: Option<Vec<ColumnLineage>> = None;
        let mut consistent = true;
        for row in lists {
            let items: &[Node] = match &row.node {
                Some(NodeEnum::List(list)) => &list.items,
                _ => std::slice::from_ref(row),
            };
            let row: Vec<ColumnLineage> = items.iter().map(|n| self.eval(n)).collect();
            columns = Some(match columns {
                None => row,
                Some(previous) if previous.len() == row.len() => previous
                    .into_iter()
                    .zip(row)
                    .map(|(a, b)| a.or(b))
                    .collect(),
                Some(previous) => {
                    consistent = false;
                    previous
                }
            });
        }
        if !consistent {
            return None;
        }
        columns.map(|columns| {
            columns
                .into_iter()
                .enumerate()
                .map(|(i, lineage)| Col {
                    name: format!("column{}", i + 1),
                    lineage,
                })
                .collect()
        })
    }

    /// A select list or `RETURNING` list against the innermost level.
    fn target_list(&mut self, targets: &[Node]) -> Columns {
        let mut columns = Some(Vec::new());
        for target in targets {
            let Some(NodeEnum::ResTarget(res)) = &target.node else {
                let lineage = self.eval(target);
                push_col(&mut columns, "?column?".into(), lineage);
                continue;
            };
            let val = res.val.as_deref().and_then(|v| v.node.as_ref());
            if let Some(NodeEnum::ColumnRef(c)) = val
                && ends_with_star(&c.fields)
            {
                let expanded = self.star(&c.fields);
                match (&mut columns, expanded) {
                    (Some(all), Some(more)) => all.extend(more),
                    _ => columns = None,
                }
                continue;
            }
            if let Some(NodeEnum::AIndirection(ind)) = val
                && matches!(
                    ind.indirection.last().and_then(|n| n.node.as_ref()),
                    Some(NodeEnum::AStar(_))
                )
            {
                // `(p).*` expands to the columns of row source `p`; `(f(x)).*` and the like
                // to columns whose number is unknown.
                let expanded = match (
                    ind.arg.as_deref().and_then(|n| n.node.as_ref()),
                    ind.indirection.as_slice(),
                ) {
                    (Some(NodeEnum::ColumnRef(c)), [_]) if !ends_with_star(&c.fields) => {
                        match field_names(&c.fields).as_slice() {
                            [name] if self.unqualified(name).is_none() => {
                                self.named(name).unwrap_or(None)
                            }
                            _ => None,
                        }
                    }
                    _ => {
                        let _ = self.eval_opt(res.val.as_deref());
                        None
                    }
                };
                match (&mut columns, expanded) {
                    (Some(all), Some(more)) => all.extend(more),
                    _ => columns = None,
                }
                continue;
            }
            let lineage = self.eval_opt(res.val.as_deref());
            let name = if res.name.is_empty() {
                val.map_or_else(|| "?column?".into(), figure_name)
            } else {
                res.name.clone()
            };
            push_col(&mut columns, name, lineage);
        }
        columns
    }

    /// `*` or `t.*` in a select list: the columns it expands to.
    fn star(&mut self, fields: &[Node]) -> Columns {
        let strings = field_names(fields);
        if strings.is_empty() {
            let level = self.scopes.last()?;
            let mut all = Vec::new();
            for source in &level.unqualified {
                all.extend(source.clone()?);
            }
            return Some(all);
        }
        let qualifier = strings.last()?;
        self.named(qualifier).unwrap_or(None)
    }

    /// The columns of the innermost row source named `name`: `None` when no source has that
    /// name, `Some(None)` when it has but its columns are unknown.
    fn named(&self, name: &str) -> Option<Columns> {
        for level in self.scopes.iter().rev() {
            let found: Vec<&Columns> = level
                .named
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, c)| c)
                .collect();
            match found.as_slice() {
                [] => continue,
                [one] => return Some((*one).clone()),
                // Two sources of the same name at one level: PostgreSQL refuses it.
                _ => return Some(None),
            }
        }
        None
    }

    // ---- CTEs ----

    fn with(&mut self, with: Option<&protobuf::WithClause>) -> usize {
        let mark = self.ctes.len();
        let Some(with) = with else { return mark };
        for cte in &with.ctes {
            let Some(NodeEnum::CommonTableExpr(cte)) = &cte.node else {
                continue;
            };
            let renamed = names(&cte.aliascolnames);
            let query = cte.ctequery.as_deref().and_then(|n| n.node.as_ref());
            let Some(query) = query else {
                self.ctes.push(Cte {
                    name: cte.ctename.clone(),
                    columns: None,
                });
                continue;
            };
            if with.recursive {
                self.recursive_cte(cte, query, &renamed);
            } else {
                let columns = rename(self.query(query.to_ref()), &renamed);
                self.ctes.push(Cte {
                    name: cte.ctename.clone(),
                    columns,
                });
            }
        }
        mark
    }

    /// A CTE of `WITH RECURSIVE`: the base term, then rounds of the whole query until the
    /// lineage stops growing. Leaves the CTE pushed.
    fn recursive_cte(
        &mut self,
        cte: &protobuf::CommonTableExpr,
        query: &NodeEnum,
        renamed: &[String],
    ) {
        let at = self.ctes.len();
        self.ctes.push(Cte {
            name: cte.ctename.clone(),
            columns: None,
        });
        let base = match query {
            NodeEnum::SelectStmt(s)
                if s.op == SetOperation::SetopUnion as i32 && s.larg.is_some() =>
            {
                s.larg.as_deref().and_then(|l| self.select(l))
            }
            other => self.query(other.to_ref()),
        };
        let mut current = rename(base, renamed);
        let mut converged = false;
        for _ in 0..MAX_RECURSIVE_ROUNDS {
            self.ctes[at].columns = current.clone();
            let next = rename(self.query(query.to_ref()), renamed);
            let merged = either_columns(current.clone(), next);
            if merged == current {
                converged = true;
                break;
            }
            current = merged;
        }
        if !converged {
            current = current.map(|cols| {
                cols.into_iter()
                    .map(|c| Col {
                        name: c.name,
                        lineage: ColumnLineage::Unknown,
                    })
                    .collect()
            });
        }
        // SEARCH and CYCLE add columns built from the row's values.
        if let Some(columns) = &mut current {
            let whole = columns
                .iter()
                .fold(ColumnLineage::Constant, |acc, c| acc.and(c.lineage.clone()))
                .through(true);
            if let Some(search) = &cte.search_clause {
                columns.push(Col {
                    name: search.search_seq_column.clone(),
                    lineage: whole.clone(),
                });
            }
            if let Some(cycle) = &cte.cycle_clause {
                columns.push(Col {
                    name: cycle.cycle_mark_column.clone(),
                    lineage: ColumnLineage::Constant,
                });
                columns.push(Col {
                    name: cycle.cycle_path_column.clone(),
                    lineage: whole,
                });
            }
        }
        self.ctes[at].columns = current;
    }

    // ---- FROM ----

    /// Processes a `FROM` list into the innermost level (which the caller pushed). Each item
    /// sees the ones before it (LATERAL).
    fn range_list(&mut self, items: &[Node]) {
        for item in items {
            let item = self.range_item(item);
            self.push_item(item);
        }
    }

    fn push_item(&mut self, item: FromItem) {
        if let Some(level) = self.scopes.last_mut() {
            level.unqualified.push(item.columns);
            level.named.extend(item.named);
        }
    }

    fn range_item(&mut self, node: &Node) -> FromItem {
        let unknown = FromItem {
            columns: None,
            named: Vec::new(),
        };
        let Some(node) = node.node.as_ref() else {
            return unknown;
        };
        if !self.enter() {
            return unknown;
        }
        let item = match node {
            NodeEnum::RangeVar(rv) => self.table_item(rv),
            NodeEnum::RangeSubselect(sub) => {
                let columns = sub
                    .subquery
                    .as_deref()
                    .and_then(|n| n.node.as_ref())
                    .and_then(|q| self.query(q.to_ref()));
                aliased(columns, sub.alias.as_ref())
            }
            NodeEnum::RangeFunction(rf) => self.function_item(rf),
            NodeEnum::JoinExpr(join) => self.join(join),
            NodeEnum::RangeTableSample(sample) => {
                self.eval_all(&sample.args);
                match sample.relation.as_deref() {
                    Some(rel) => self.range_item(rel),
                    None => unknown,
                }
            }
            NodeEnum::RangeTableFunc(table) => self.xmltable(table),
            NodeEnum::JsonTable(table) => self.json_table(table),
            other => {
                let _ = self.generic(other.to_ref());
                unknown
            }
        };
        self.leave();
        item
    }

    fn table_item(&mut self, rv: &protobuf::RangeVar) -> FromItem {
        let columns = self.relation(rv);
        let name = match &rv.alias {
            Some(alias) => alias.aliasname.clone(),
            None => rv.relname.clone(),
        };
        let columns = rename(
            columns,
            &rv.alias
                .as_ref()
                .map(|a| names(&a.colnames))
                .unwrap_or_default(),
        );
        FromItem {
            named: vec![(name, columns.clone())],
            columns,
        }
    }

    /// The columns of a relation named in `FROM`: a CTE, a statistics catalog, a view or a
    /// table.
    fn relation(&mut self, rv: &protobuf::RangeVar) -> Columns {
        let schema = non_empty(&rv.schemaname);
        if schema.is_none()
            && rv.catalogname.is_empty()
            && let Some(cte) = self.ctes.iter().rev().find(|c| c.name == rv.relname)
        {
            return cte.columns.clone();
        }
        let schema = schema.as_deref();
        let name = rv.relname.as_str();
        if let Some(values) = functions::catalog_value_columns(schema, name) {
            let columns = self.relations.columns(schema, name)?;
            return Some(
                columns
                    .into_iter()
                    .map(|column| Col {
                        lineage: if values.contains(&column.as_str()) {
                            ColumnLineage::Unknown
                        } else {
                            ColumnLineage::Plain(BaseColumn::new(schema, name, &column))
                        },
                        name: column,
                    })
                    .collect(),
            );
        }
        if let Some(definition) = self.relations.view_definition(schema, name) {
            return self.view(schema, name, &definition);
        }
        let columns = self.relations.columns(schema, name)?;
        Some(
            columns
                .into_iter()
                .map(|column| Col {
                    lineage: ColumnLineage::Plain(BaseColumn::new(schema, name, &column)),
                    name: column,
                })
                .collect(),
        )
    }

    fn view(&mut self, schema: Option<&str>, name: &str, definition: &str) -> Columns {
        let key = (schema.map(str::to_owned), name.to_owned());
        if let Some(cached) = self.view_cache.get(&key) {
            return cached.clone();
        }
        if self.views.contains(&key) || self.views.len() >= MAX_VIEW_DEPTH {
            return None;
        }
        let analysed = match pg_query::parse(definition, 0) {
            Ok(tree) => {
                let query = tree
                    .protobuf
                    .stmts
                    .first()
                    .and_then(|raw| raw.stmt.as_ref())
                    .and_then(|stmt| stmt.node.as_ref());
                match query {
                    Some(NodeEnum::SelectStmt(s)) => {
                        // A view sees neither the statement's CTEs nor its query levels.
                        let scopes = std::mem::take(&mut self.scopes);
                        let ctes = std::mem::take(&mut self.ctes);
                        self.views.push(key.clone());
                        let columns = self.select(s);
                        self.views.pop();
                        self.scopes = scopes;
                        self.ctes = ctes;
                        columns
                    }
                    _ => None,
                }
            }
            Err(_) => None,
        };
        // The catalog's column names win (a view may rename its columns); a width the
        // catalog disagrees with is not trusted.
        let columns = match (self.relations.columns(schema, name), analysed) {
            (Some(catalog), Some(columns)) if catalog.len() == columns.len() => Some(
                catalog
                    .into_iter()
                    .zip(columns)
                    .map(|(name, c)| Col {
                        name,
                        lineage: c.lineage,
                    })
                    .collect(),
            ),
            (Some(catalog), _) => Some(
                catalog
                    .into_iter()
                    .map(|name| Col {
                        name,
                        lineage: ColumnLineage::Unknown,
                    })
                    .collect(),
            ),
            (None, analysed) => analysed,
        };
        self.view_cache.insert(key, columns.clone());
        columns
    }

    fn function_item(&mut self, rf: &protobuf::RangeFunction) -> FromItem {
        let mut columns = Some(Vec::new());
        let mut single_scalar = false;
        let count = rf.functions.len();
        for entry in &rf.functions {
            let (call, coldefs): (Option<&Node>, &[Node]) = match &entry.node {
                Some(NodeEnum::List(list)) => {
                    let coldefs = match list.items.get(1).and_then(|n| n.node.as_ref()) {
                        Some(NodeEnum::List(defs)) => defs.items.as_slice(),
                        _ => &[],
                    };
                    (list.items.first(), coldefs)
                }
                _ => (Some(entry), &[]),
            };
            let coldefs = if coldefs.is_empty() && count == 1 {
                rf.coldeflist.as_slice()
            } else {
                coldefs
            };
            let lineage = call.map_or(ColumnLineage::Unknown, |c| self.eval(c));
            let defined: Vec<String> = coldefs
                .iter()
                .filter_map(|d| match &d.node {
                    Some(NodeEnum::ColumnDef(def)) => Some(def.colname.clone()),
                    _ => None,
                })
                .collect();
            let produced: Option<Vec<String>> = if !defined.is_empty() {
                Some(defined)
            } else {
                match call.and_then(|c| c.node.as_ref()) {
                    Some(NodeEnum::FuncCall(f)) => {
                        let (schema, name) = function_name(&f.funcname);
                        if !self.relations.computes_from_arguments(schema, name) {
                            None
                        } else {
                            match functions::from_shape(schema, name) {
                                functions::FromShape::PerArgument => {
                                    single_scalar = count == 1 && f.args.len() == 1;
                                    Some(vec![name.to_owned(); f.args.len().max(1)])
                                }
                                functions::FromShape::Columns(cols) => {
                                    Some(cols.iter().map(|c| (*c).to_owned()).collect())
                                }
                                functions::FromShape::Scalar => {
                                    single_scalar = count == 1;
                                    Some(vec![name.to_owned()])
                                }
                                functions::FromShape::Record => None,
                            }
                        }
                    }
                    Some(NodeEnum::SqlvalueFunction(_)) => {
                        single_scalar = count == 1;
                        Some(vec!["?column?".to_owned()])
                    }
                    _ => None,
                }
            };
            match (&mut columns, produced) {
                (Some(all), Some(produced)) => all.extend(produced.into_iter().map(|name| Col {
                    name,
                    lineage: lineage.clone(),
                })),
                _ => columns = None,
            }
        }
        if rf.ordinality
            && let Some(all) = &mut columns
        {
            all.push(Col {
                name: "ordinality".into(),
                lineage: ColumnLineage::Constant,
            });
        }
        if single_scalar
            && let (Some(alias), Some(all)) = (&rf.alias, &mut columns)
            && alias.colnames.is_empty()
            && let Some(first) = all.first_mut()
        {
            first.name = alias.aliasname.clone();
        }
        aliased(columns, rf.alias.as_ref())
    }

    fn join(&mut self, join: &protobuf::JoinExpr) -> FromItem {
        let left = join.larg.as_deref().map_or_else(
            || FromItem {
                columns: None,
                named: Vec::new(),
            },
            |n| self.range_item(n),
        );
        // The right side may be LATERAL and see the left; the condition sees both.
        let mark = self.mark();
        self.push_item(FromItem {
            columns: left.columns.clone(),
            named: left.named.clone(),
        });
        let right = join.rarg.as_deref().map_or_else(
            || FromItem {
                columns: None,
                named: Vec::new(),
            },
            |n| self.range_item(n),
        );
        self.push_item(FromItem {
            columns: right.columns.clone(),
            named: right.named.clone(),
        });
        self.eval_opt(join.quals.as_deref());
        self.reset(mark);

        let kind = JoinType::try_from(join.jointype).unwrap_or(JoinType::Undefined);
        let using: Option<Vec<String>> = if join.is_natural {
            match (&left.columns, &right.columns) {
                (Some(l), Some(r)) => Some(
                    l.iter()
                        .filter(|c| r.iter().any(|o| o.name == c.name))
                        .map(|c| c.name.clone())
                        .collect(),
                ),
                _ => None,
            }
        } else {
            Some(names(&join.using_clause))
        };
        let (columns, merged) = match (&left.columns, &right.columns, using) {
            (Some(l), Some(r), Some(using)) => {
                let mut merged = Vec::new();
                for name in &using {
                    let from = |side: &[Col]| {
                        side.iter()
                            .find(|c| &c.name == name)
                            .map_or(ColumnLineage::Unknown, |c| c.lineage.clone())
                    };
                    let lineage = match kind {
                        JoinType::JoinInner | JoinType::JoinLeft => from(l),
                        JoinType::JoinRight => from(r),
                        _ => from(l).or(from(r)),
                    };
                    merged.push(Col {
                        name: name.clone(),
                        lineage,
                    });
                }
                let mut all = merged.clone();
                all.extend(l.iter().filter(|c| !using.contains(&c.name)).cloned());
                all.extend(r.iter().filter(|c| !using.contains(&c.name)).cloned());
                (Some(all), Some(merged))
            }
            _ => (None, None),
        };
        let mut named = match &join.alias {
            Some(alias) => vec![(
                alias.aliasname.clone(),
                rename(columns.clone(), &names(&alias.colnames)),
            )],
            None => {
                let mut named = left.named;
                named.extend(right.named);
                named
            }
        };
        if let Some(alias) = &join.join_using_alias {
            named.push((alias.aliasname.clone(), merged));
        }
        FromItem {
            columns: rename(
                columns,
                &join
                    .alias
                    .as_ref()
                    .map(|a| names(&a.colnames))
                    .unwrap_or_default(),
            ),
            named,
        }
    }

    fn mark(&self) -> (usize, usize) {
        self.scopes
            .last()
            .map_or((0, 0), |l| (l.unqualified.len(), l.named.len()))
    }

    fn reset(&mut self, (unqualified, named): (usize, usize)) {
        if let Some(level) = self.scopes.last_mut() {
            level.unqualified.truncate(unqualified);
            level.named.truncate(named);
        }
    }

    fn xmltable(&mut self, table: &protobuf::RangeTableFunc) -> FromItem {
        let document = self
            .eval_opt(table.docexpr.as_deref())
            .and(self.eval_opt(table.rowexpr.as_deref()))
            .and(self.eval_all(&table.namespaces))
            .through(true);
        let mut columns = Vec::new();
        for col in &table.columns {
            let Some(NodeEnum::RangeTableFuncCol(col)) = &col.node else {
                continue;
            };
            let lineage = if col.for_ordinality {
                ColumnLineage::Constant
            } else {
                document
                    .clone()
                    .and(self.eval_opt(col.colexpr.as_deref()))
                    .and(self.eval_opt(col.coldefexpr.as_deref()))
                    .through(true)
            };
            columns.push(Col {
                name: col.colname.clone(),
                lineage,
            });
        }
        aliased(Some(columns), table.alias.as_ref())
    }

    fn json_table(&mut self, table: &protobuf::JsonTable) -> FromItem {
        let context = self
            .eval_opt(
                table
                    .context_item
                    .as_deref()
                    .and_then(|v| v.raw_expr.as_deref()),
            )
            .and(self.eval_all(&table.passing))
            .through(true);
        let mut columns = Some(Vec::new());
        self.json_table_columns(&table.columns, &context, &mut columns, 0);
        aliased(columns, table.alias.as_ref())
    }

    fn json_table_columns(
        &mut self,
        nodes: &[Node],
        context: &ColumnLineage,
        out: &mut Columns,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            *out = None;
            return;
        }
        for node in nodes {
            let Some(NodeEnum::JsonTableColumn(col)) = &node.node else {
                *out = None;
                continue;
            };
            let kind = JsonTableColumnType::try_from(col.coltype)
                .unwrap_or(JsonTableColumnType::Undefined);
            match kind {
                JsonTableColumnType::JtcNested => {
                    self.json_table_columns(&col.columns, context, out, depth + 1);
                }
                JsonTableColumnType::JtcForOrdinality => {
                    push_col(out, col.name.clone(), ColumnLineage::Constant);
                }
                JsonTableColumnType::JtcExists => {
                    push_col(out, col.name.clone(), context.clone().through(false));
                }
                _ => push_col(out, col.name.clone(), context.clone()),
            }
        }
    }

    // ---- writes ----

    /// The target of a write as the row source its clauses see.
    fn target(&mut self, rel: Option<&protobuf::RangeVar>) -> (String, Columns) {
        let Some(rel) = rel else {
            return (String::new(), None);
        };
        let name = rel
            .alias
            .as_ref()
            .map_or_else(|| rel.relname.clone(), |a| a.aliasname.clone());
        // A write target is never a CTE, whatever is in scope.
        let ctes = std::mem::take(&mut self.ctes);
        let columns = self.relation(rel);
        self.ctes = ctes;
        (name, columns)
    }

    fn insert(&mut self, insert: &protobuf::InsertStmt) -> Columns {
        self.handled.insert(address(insert));
        let mark = self.with(insert.with_clause.as_ref());
        let rel = insert.relation.as_ref();
        let (target_name, plain) = self.target(rel);
        let listed: Vec<(String, bool)> = insert
            .cols
            .iter()
            .filter_map(|c| match &c.node {
                Some(NodeEnum::ResTarget(r)) => Some((r.name.clone(), !r.indirection.is_empty())),
                _ => None,
            })
            .collect();
        let targets: Option<Vec<(String, bool)>> = if listed.is_empty() {
            plain
                .as_ref()
                .map(|cols| cols.iter().map(|c| (c.name.clone(), false)).collect())
        } else {
            Some(listed)
        };
        let source = insert
            .select_stmt
            .as_deref()
            .and_then(|n| n.node.as_ref())
            .map(|q| self.query(q.to_ref()));
        let mut assigned: HashMap<String, ColumnLineage> = HashMap::new();
        match source {
            None => {} // DEFAULT VALUES
            Some(None) => {
                if let Some(rel) = rel {
                    self.store(rel, None, ColumnLineage::Unknown);
                }
            }
            Some(Some(values)) => {
                for (i, value) in values.into_iter().enumerate() {
                    let target = targets.as_ref().and_then(|t| t.get(i));
                    let lineage = match target {
                        Some((_, true)) => value.lineage.through(true),
                        _ => value.lineage,
                    };
                    if let Some(rel) = rel {
                        self.store(rel, target.map(|(n, _)| n.clone()), lineage.clone());
                    }
                    if let Some((name, _)) = target {
                        assign(&mut assigned, name, lineage);
                    } else {
                        // A value for an unknown column: `excluded.*` cannot be trusted.
                        assigned.insert(String::new(), ColumnLineage::Unknown);
                    }
                }
            }
        }
        self.scopes.push(Level::default());
        self.push_item(FromItem {
            columns: plain.clone(),
            named: vec![(target_name.clone(), plain.clone())],
        });
        if let Some(conflict) = &insert.on_conflict_clause
            && conflict.action == OnConflictAction::OnconflictUpdate as i32
        {
            let excluded = match (&plain, assigned.get("")) {
                (Some(cols), None) => Some(
                    cols.iter()
                        .map(|c| Col {
                            name: c.name.clone(),
                            lineage: assigned
                                .get(&c.name)
                                .cloned()
                                .unwrap_or(ColumnLineage::Constant),
                        })
                        .collect(),
                ),
                _ => None,
            };
            let mark_level = self.mark();
            if let Some(level) = self.scopes.last_mut() {
                level.named.push(("excluded".into(), excluded));
            }
            let updates = self.set_list(rel, &conflict.target_list);
            self.eval_opt(conflict.where_clause.as_deref());
            self.reset(mark_level);
            for (name, lineage) in updates {
                assign(&mut assigned, &name, lineage);
            }
        }
        let columns = self.returning(
            insert.returning_clause.as_ref(),
            &target_name,
            plain,
            &assigned,
        );
        self.scopes.pop();
        self.ctes.truncate(mark);
        columns
    }

    /// `SET col = expr, (a, b) = (...)` against the innermost level: stores each value and
    /// returns (column, lineage) pairs.
    fn set_list(
        &mut self,
        rel: Option<&protobuf::RangeVar>,
        targets: &[Node],
    ) -> Vec<(String, ColumnLineage)> {
        let mut assigned = Vec::new();
        for target in targets {
            let Some(NodeEnum::ResTarget(res)) = &target.node else {
                let _ = self.eval(target);
                continue;
            };
            let lineage = match res.val.as_deref().and_then(|v| v.node.as_ref()) {
                Some(NodeEnum::MultiAssignRef(multi)) => self.multi_assign(multi),
                _ => self.eval_opt(res.val.as_deref()),
            };
            let lineage = if res.indirection.is_empty() {
                lineage
            } else {
                lineage.and(self.eval_all(&res.indirection)).through(true)
            };
            if let Some(rel) = rel {
                self.store(rel, Some(res.name.clone()), lineage.clone());
            }
            assigned.push((res.name.clone(), lineage));
        }
        assigned
    }

    /// One column of `SET (a, b, ...) = source`.
    fn multi_assign(&mut self, multi: &protobuf::MultiAssignRef) -> ColumnLineage {
        let index = usize::try_from(multi.colno).unwrap_or(0).saturating_sub(1);
        match multi.source.as_deref().and_then(|n| n.node.as_ref()) {
            Some(NodeEnum::RowExpr(row)) => match row.args.get(index) {
                Some(arg) if row.args.len() == usize::try_from(multi.ncolumns).unwrap_or(0) => {
                    self.eval(arg)
                }
                _ => self.eval_all(&row.args).through(true),
            },
            Some(NodeEnum::SubLink(link)) => {
                let columns = link
                    .subselect
                    .as_deref()
                    .and_then(|n| n.node.as_ref())
                    .and_then(|q| self.query(q.to_ref()));
                match columns {
                    Some(cols) => match cols.get(index) {
                        Some(col) => col.lineage.clone(),
                        None => ColumnLineage::Unknown,
                    },
                    None => ColumnLineage::Unknown,
                }
            }
            Some(other) => self.expr(other.to_ref()).through(true),
            None => ColumnLineage::Unknown,
        }
    }

    /// `RETURNING` against the innermost level, whose first source is the write's target:
    /// it becomes the new row; `old`/`new` (or their `WITH (OLD AS ...)` names) are added.
    fn returning(
        &mut self,
        clause: Option<&protobuf::ReturningClause>,
        target_name: &str,
        plain: Columns,
        assigned: &HashMap<String, ColumnLineage>,
    ) -> Columns {
        let clause = clause?;
        if clause.exprs.is_empty() {
            return None;
        }
        let new_row: Columns = match (&plain, assigned.get("")) {
            (Some(cols), None) => Some(
                cols.iter()
                    .map(|c| Col {
                        name: c.name.clone(),
                        lineage: match assigned.get(&c.name) {
                            Some(value) if *value != ColumnLineage::Constant => {
                                c.lineage.clone().or(value.clone())
                            }
                            _ => c.lineage.clone(),
                        },
                    })
                    .collect(),
            ),
            _ => None,
        };
        let (mut old_name, mut new_name) = ("old".to_owned(), "new".to_owned());
        for option in &clause.options {
            if let Some(NodeEnum::ReturningOption(o)) = &option.node {
                if o.option == ReturningOptionKind::ReturningOptionOld as i32 {
                    old_name.clone_from(&o.value);
                } else if o.option == ReturningOptionKind::ReturningOptionNew as i32 {
                    new_name.clone_from(&o.value);
                }
            }
        }
        if let Some(level) = self.scopes.last_mut() {
            if let Some(first) = level.unqualified.first_mut() {
                first.clone_from(&new_row);
            }
            for (name, columns) in &mut level.named {
                if name == target_name {
                    columns.clone_from(&new_row);
                }
            }
            level.named.push((old_name, plain));
            level.named.push((new_name, new_row));
        }
        self.target_list(&clause.exprs)
    }

    fn update(&mut self, update: &protobuf::UpdateStmt) -> Columns {
        self.handled.insert(address(update));
        let mark = self.with(update.with_clause.as_ref());
        let rel = update.relation.as_ref();
        let (target_name, plain) = self.target(rel);
        self.scopes.push(Level::default());
        self.push_item(FromItem {
            columns: plain.clone(),
            named: vec![(target_name.clone(), plain.clone())],
        });
        self.range_list(&update.from_clause);
        let mut assigned = HashMap::new();
        for (name, lineage) in self.set_list(rel, &update.target_list) {
            assign(&mut assigned, &name, lineage);
        }
        self.eval_opt(update.where_clause.as_deref());
        let columns = self.returning(
            update.returning_clause.as_ref(),
            &target_name,
            plain,
            &assigned,
        );
        self.scopes.pop();
        self.ctes.truncate(mark);
        columns
    }

    fn delete(&mut self, delete: &protobuf::DeleteStmt) -> Columns {
        let mark = self.with(delete.with_clause.as_ref());
        let (target_name, plain) = self.target(delete.relation.as_ref());
        self.scopes.push(Level::default());
        self.push_item(FromItem {
            columns: plain.clone(),
            named: vec![(target_name.clone(), plain.clone())],
        });
        self.range_list(&delete.using_clause);
        self.eval_opt(delete.where_clause.as_deref());
        let columns = self.returning(
            delete.returning_clause.as_ref(),
            &target_name,
            plain,
            &HashMap::new(),
        );
        self.scopes.pop();
        self.ctes.truncate(mark);
        columns
    }

    fn merge(&mut self, merge: &protobuf::MergeStmt) -> Columns {
        self.handled.insert(address(merge));
        let mark = self.with(merge.with_clause.as_ref());
        let rel = merge.relation.as_ref();
        let (target_name, plain) = self.target(rel);
        self.scopes.push(Level::default());
        self.push_item(FromItem {
            columns: plain.clone(),
            named: vec![(target_name.clone(), plain.clone())],
        });
        if let Some(source) = merge.source_relation.as_deref() {
            let item = self.range_item(source);
            self.push_item(item);
        }
        self.eval_opt(merge.join_condition.as_deref());
        let mut assigned = HashMap::new();
        for clause in &merge.merge_when_clauses {
            let Some(NodeEnum::MergeWhenClause(when)) = &clause.node else {
                continue;
            };
            self.eval_opt(when.condition.as_deref());
            let command = CmdType::try_from(when.command_type).unwrap_or(CmdType::Undefined);
            match command {
                CmdType::CmdUpdate => {
                    for (name, lineage) in self.set_list(rel, &when.target_list) {
                        assign(&mut assigned, &name, lineage);
                    }
                }
                CmdType::CmdInsert => {
                    let listed: Vec<String> = when
                        .target_list
                        .iter()
                        .filter_map(|c| match &c.node {
                            Some(NodeEnum::ResTarget(r)) => Some(r.name.clone()),
                            _ => None,
                        })
                        .collect();
                    let targets: Option<Vec<String>> = if listed.is_empty() {
                        plain
                            .as_ref()
                            .map(|c| c.iter().map(|c| c.name.clone()).collect())
                    } else {
                        Some(listed)
                    };
                    for (i, value) in when.values.iter().enumerate() {
                        let lineage = self.eval(value);
                        let target = targets.as_ref().and_then(|t| t.get(i)).cloned();
                        if let Some(rel) = rel {
                            self.store(rel, target.clone(), lineage.clone());
                        }
                        match target {
                            Some(name) => assign(&mut assigned, &name, lineage),
                            None => {
                                assigned.insert(String::new(), ColumnLineage::Unknown);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let columns = self.returning(
            merge.returning_clause.as_ref(),
            &target_name,
            plain,
            &assigned,
        );
        self.scopes.pop();
        self.ctes.truncate(mark);
        columns
    }

    // ---- expressions ----

    fn eval(&mut self, node: &Node) -> ColumnLineage {
        match &node.node {
            Some(n) => self.expr(n.to_ref()),
            None => ColumnLineage::Constant,
        }
    }

    fn eval_opt(&mut self, node: Option<&Node>) -> ColumnLineage {
        node.map_or(ColumnLineage::Constant, |n| self.eval(n))
    }

    /// All of them flowing into one value.
    fn eval_all(&mut self, nodes: &[Node]) -> ColumnLineage {
        let mut all = ColumnLineage::Constant;
        for node in nodes {
            all = all.and(self.eval(node));
        }
        all
    }

    fn expr(&mut self, node: NodeRef<'_>) -> ColumnLineage {
        if !self.enter() {
            return ColumnLineage::Unknown;
        }
        let lineage = self.expr_inner(node);
        self.leave();
        lineage
    }

    fn expr_inner(&mut self, node: NodeRef<'_>) -> ColumnLineage {
        use ColumnLineage::{Constant, Unknown};
        match node {
            NodeRef::ColumnRef(c) => self.column_ref(&c.fields),
            NodeRef::AConst(_)
            | NodeRef::ParamRef(_)
            | NodeRef::SqlvalueFunction(_)
            | NodeRef::SetToDefault(_)
            | NodeRef::CurrentOfExpr(_)
            | NodeRef::TypeName(_) => Constant,
            NodeRef::TypeCast(cast) => self.eval_opt(cast.arg.as_deref()).through(true),
            NodeRef::CollateClause(collate) => self.eval_opt(collate.arg.as_deref()),
            NodeRef::AExpr(a) => self.a_expr(a),
            NodeRef::BoolExpr(b) => self.eval_all(&b.args).through(false),
            NodeRef::NullTest(t) => self.eval_opt(t.arg.as_deref()).through(false),
            NodeRef::BooleanTest(t) => self.eval_opt(t.arg.as_deref()).through(false),
            NodeRef::JsonIsPredicate(p) => self.eval_opt(p.expr.as_deref()).through(false),
            NodeRef::GroupingFunc(g) => self.eval_all(&g.args).through(false),
            NodeRef::FuncCall(call) => self.func_call(call),
            NodeRef::SubLink(link) => self.sublink(link),
            NodeRef::CaseExpr(case) => {
                let mut tested = self.eval_opt(case.arg.as_deref());
                let mut results = ColumnLineage::Constant;
                for when in &case.args {
                    match &when.node {
                        Some(NodeEnum::CaseWhen(w)) => {
                            tested = tested.and(self.eval_opt(w.expr.as_deref()));
                            results = results.and(self.eval_opt(w.result.as_deref()));
                        }
                        _ => results = results.and(self.eval(when)),
                    }
                }
                results = results.and(self.eval_opt(case.defresult.as_deref()));
                tested.through(false).and(results.through(true))
            }
            NodeRef::CoalesceExpr(c) => self.eval_all(&c.args).through(true),
            NodeRef::MinMaxExpr(m) => self.eval_all(&m.args).through(true),
            NodeRef::RowExpr(r) => self.eval_all(&r.args).through(true),
            NodeRef::AArrayExpr(a) => self.eval_all(&a.elements).through(true),
            NodeRef::AIndirection(ind) => self.indirection(ind),
            NodeRef::JsonFuncExpr(f) if f.op == JsonExprOp::JsonExistsOp as i32 => {
                self.generic(node).through(false)
            }
            NodeRef::SelectStmt(_)
            | NodeRef::InsertStmt(_)
            | NodeRef::UpdateStmt(_)
            | NodeRef::DeleteStmt(_)
            | NodeRef::MergeStmt(_) => match self.query(node) {
                Some(cols) => cols
                    .into_iter()
                    .fold(Constant, |acc, c| acc.and(c.lineage))
                    .through(true),
                None => Unknown,
            },
            _ => self.generic(node).through(true),
        }
    }

    /// Every child flowing into one value (the through-state is the caller's).
    fn generic(&mut self, node: NodeRef<'_>) -> ColumnLineage {
        let mut children = Vec::new();
        for_each_child(node, &mut |child| children.push(child));
        let mut all = ColumnLineage::Constant;
        for child in children {
            all = all.and(self.expr(child));
        }
        all
    }

    fn a_expr(&mut self, a: &protobuf::AExpr) -> ColumnLineage {
        let left = self.eval_opt(a.lexpr.as_deref());
        let right = self.eval_opt(a.rexpr.as_deref());
        let both = left.and(right);
        let kind = AExprKind::try_from(a.kind).unwrap_or(AExprKind::Undefined);
        match kind {
            AExprKind::AexprOp => {
                let (schema, symbol) = function_name(&a.name);
                if functions::catalog_name(schema, symbol).is_none() {
                    return ColumnLineage::Unknown;
                }
                let unary = a.lexpr.is_none();
                if !unary && COMPARISON_OPERATORS.contains(&symbol) {
                    both.through(false)
                } else if REVEALING_OPERATORS.contains(&symbol)
                    || COMPARISON_OPERATORS.contains(&symbol)
                {
                    both.through(true)
                } else {
                    ColumnLineage::Unknown
                }
            }
            AExprKind::AexprNullif => both.through(true),
            AExprKind::Undefined => ColumnLineage::Unknown,
            // ANY/ALL, [NOT] DISTINCT FROM, IN, LIKE, ILIKE, SIMILAR TO, BETWEEN: boolean.
            _ => {
                let (schema, symbol) = function_name(&a.name);
                if functions::catalog_name(schema, symbol).is_none() {
                    return ColumnLineage::Unknown;
                }
                both.through(false)
            }
        }
    }

    fn func_call(&mut self, call: &protobuf::FuncCall) -> ColumnLineage {
        let (schema, name) = function_name(&call.funcname);
        let args = self.eval_all(&call.args);
        let mut ordering = self.eval_all(&call.agg_order);
        ordering = ordering.and(self.eval_opt(call.agg_filter.as_deref()));
        if let Some(over) = &call.over {
            ordering = ordering
                .and(self.eval_all(&over.partition_clause))
                .and(self.eval_all(&over.order_clause))
                .and(self.eval_opt(over.start_offset.as_deref()))
                .and(self.eval_opt(over.end_offset.as_deref()));
        }
        let ordering = ordering.through(false);
        if functions::side_channel(name) {
            self.channel(address(call), name, args.clone());
        }
        if functions::reads_tables(name) {
            return ColumnLineage::Unknown;
        }
        if functions::catalog_name(schema, name) == Some("pg_notify") {
            // Returns void; the payload is a side channel.
            return ordering;
        }
        if functions::non_revealing(schema, name) {
            return args.through(false).and(ordering);
        }
        if self.relations.computes_from_arguments(schema, name) {
            return args.through(true).and(ordering);
        }
        ColumnLineage::Unknown
    }

    fn sublink(&mut self, link: &protobuf::SubLink) -> ColumnLineage {
        let tested = self.eval_opt(link.testexpr.as_deref());
        let columns = link
            .subselect
            .as_deref()
            .and_then(|n| n.node.as_ref())
            .and_then(|q| self.query(q.to_ref()));
        let Some(columns) = columns else {
            return ColumnLineage::Unknown;
        };
        let all = columns
            .iter()
            .fold(ColumnLineage::Constant, |acc, c| acc.and(c.lineage.clone()));
        let kind = SubLinkType::try_from(link.sub_link_type).unwrap_or(SubLinkType::Undefined);
        match kind {
            SubLinkType::ExistsSublink => all.through(false),
            SubLinkType::AnySublink | SubLinkType::AllSublink | SubLinkType::RowcompareSublink => {
                tested.and(all).through(false)
            }
            SubLinkType::ExprSublink => match columns.as_slice() {
                [one] => one.lineage.clone(),
                _ => all.through(true),
            },
            _ => tested.and(all).through(true),
        }
    }

    /// `(expr).field`, `(expr)[i]`, `(expr).*`.
    fn indirection(&mut self, ind: &protobuf::AIndirection) -> ColumnLineage {
        if let Some(NodeEnum::ColumnRef(c)) = ind.arg.as_deref().and_then(|n| n.node.as_ref())
            && !ends_with_star(&c.fields)
            && let [one] = ind.indirection.as_slice()
            && matches!(
                one.node,
                Some(NodeEnum::String(_)) | Some(NodeEnum::AStar(_))
            )
        {
            let mut fields = c.fields.clone();
            fields.push(one.clone());
            return self.column_ref(&fields);
        }
        self.eval_opt(ind.arg.as_deref())
            .and(self.eval_all(&ind.indirection))
            .through(true)
    }

    /// A column reference (see the module documentation for the rules).
    fn column_ref(&mut self, fields: &[Node]) -> ColumnLineage {
        let strings = field_names(fields);
        if ends_with_star(fields) {
            let columns = match strings.as_slice() {
                [] => self.star(fields),
                [.., table] => self.named(table).unwrap_or(None),
            };
            return whole_row(columns);
        }
        match strings.as_slice() {
            [name] => {
                if let Some(found) = self.unqualified(name) {
                    return found;
                }
                if let Some(columns) = self.named(name) {
                    return whole_row(columns);
                }
                if SYSTEM_COLUMNS.contains(&name.as_str()) {
                    return ColumnLineage::Constant;
                }
                ColumnLineage::Unknown
            }
            [table, column] => {
                if let Some(columns) = self.named(table) {
                    return column_of(columns, column);
                }
                // `composite_column.field`
                match self.unqualified(table) {
                    Some(found) => found.through(true),
                    None => ColumnLineage::Unknown,
                }
            }
            [first, second, .., column] => {
                // `schema.table.column` (or `catalog.schema.table.column`)
                let table = &strings[strings.len() - 2];
                if let Some(columns) = self.named(table) {
                    return column_of(columns, column);
                }
                // `t.composite_column.field...`
                if let Some(columns) = self.named(first) {
                    return column_of(columns, second).through(true);
                }
                // `composite_column.field.field...`
                match self.unqualified(first) {
                    Some(found) => found.through(true),
                    None => ColumnLineage::Unknown,
                }
            }
            [] => ColumnLineage::Unknown,
        }
    }

    /// An unqualified column name: the candidates of the innermost level that has any.
    fn unqualified(&self, name: &str) -> Option<ColumnLineage> {
        for level in self.scopes.iter().rev() {
            let mut found: Option<ColumnLineage> = None;
            for source in &level.unqualified {
                let candidates: Vec<ColumnLineage> = match source {
                    None => vec![ColumnLineage::Unknown],
                    Some(cols) => cols
                        .iter()
                        .filter(|c| c.name == name)
                        .map(|c| c.lineage.clone())
                        .collect(),
                };
                for candidate in candidates {
                    found = Some(match found {
                        None => candidate,
                        Some(previous) => previous.or(candidate),
                    });
                }
            }
            if found.is_some() {
                return found;
            }
        }
        None
    }
}

/// Comparison and matching operators: boolean results that reveal one bit.
const COMPARISON_OPERATORS: &[&str] = &[
    "=", "<>", "!=", "<", ">", "<=", ">=", "~", "!~", "~*", "!~*", "~~", "!~~", "~~*", "!~~*",
    "@>", "<@", "&&", "@@", "@@@", "?", "?|", "?&", "@?", "^@", "<<=", ">>=", "-|-", "&<", "&>",
    "<<|", "|>>", "&<|", "|&>", "~=", "?#", "?-", "?-|", "?||",
];

/// Other built-in operator symbols: their result may show their operands.
const REVEALING_OPERATORS: &[&str] = &[
    "+", "-", "*", "/", "%", "^", "|/", "||/", "@", "&", "|", "#", "~", "<<", ">>", "||", "->",
    "->>", "#>", "#>>", "#-", "@-@", "@@", "##", "<->", "<#>", "<=>", "!!", "!",
];

/// Columns every table has that hold no user data.
const SYSTEM_COLUMNS: &[&str] = &["ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"];

fn rows(columns: Columns) -> Output {
    match columns {
        Some(columns) => Output::Rows(columns.into_iter().map(|c| c.lineage).collect()),
        None => Output::Unknown,
    }
}

fn returns(clause: Option<&protobuf::ReturningClause>) -> bool {
    clause.is_some_and(|c| !c.exprs.is_empty())
}

fn explain_analyzes(explain: &protobuf::ExplainStmt) -> bool {
    explain.options.iter().any(|o| match &o.node {
        Some(NodeEnum::DefElem(d)) if d.defname.eq_ignore_ascii_case("analyze") => {
            // `ANALYZE false` is rare; treating every ANALYZE option as running is the
            // cautious reading (writes and side channels are reported).
            true
        }
        _ => false,
    })
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// The `String` items of a name list.
fn names(nodes: &[Node]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            Some(NodeEnum::ResTarget(r)) => Some(r.name.clone()),
            _ => None,
        })
        .collect()
}

fn field_names(fields: &[Node]) -> Vec<String> {
    fields
        .iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect()
}

fn ends_with_star(fields: &[Node]) -> bool {
    matches!(
        fields.last().and_then(|n| n.node.as_ref()),
        Some(NodeEnum::AStar(_))
    )
}

/// (schema, name) of a function or operator name list; the schema is the part before the
/// name (a catalog before that is ignored).
fn function_name(parts: &[Node]) -> (Option<&str>, &str) {
    let strings: Vec<&str> = parts
        .iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect();
    match strings.as_slice() {
        [] => (None, ""),
        [name] => (None, name),
        [.., schema, name] => (Some(schema), name),
    }
}

/// Renames the first columns (`AS alias(a, b)`); more names than columns make the source
/// unknown (PostgreSQL refuses that).
fn rename(columns: Columns, names: &[String]) -> Columns {
    let mut columns = columns?;
    if names.len() > columns.len() {
        return None;
    }
    for (col, name) in columns.iter_mut().zip(names) {
        col.name.clone_from(name);
    }
    Some(columns)
}

fn aliased(columns: Columns, alias: Option<&protobuf::Alias>) -> FromItem {
    match alias {
        Some(alias) => {
            let columns = rename(columns, &names(&alias.colnames));
            FromItem {
                named: vec![(alias.aliasname.clone(), columns.clone())],
                columns,
            }
        }
        None => FromItem {
            columns,
            named: Vec::new(),
        },
    }
}

fn push_col(columns: &mut Columns, name: String, lineage: ColumnLineage) {
    if let Some(all) = columns {
        all.push(Col { name, lineage });
    }
}

fn assign(assigned: &mut HashMap<String, ColumnLineage>, name: &str, lineage: ColumnLineage) {
    let merged = match assigned.remove(name) {
        Some(previous) => previous.or(lineage),
        None => lineage,
    };
    assigned.insert(name.to_owned(), merged);
}

/// Positional union of two row sources (set-operation branches, recursive CTE rounds).
fn either_columns(left: Columns, right: Columns) -> Columns {
    let (left, right) = (left?, right?);
    if left.len() != right.len() {
        return None;
    }
    Some(
        left.into_iter()
            .zip(right)
            .map(|(l, r)| Col {
                name: l.name,
                lineage: l.lineage.or(r.lineage),
            })
            .collect(),
    )
}

/// A whole row as one value.
fn whole_row(columns: Columns) -> ColumnLineage {
    match columns {
        Some(columns) => columns
            .into_iter()
            .fold(ColumnLineage::Constant, |acc, c| acc.and(c.lineage))
            .through(true),
        None => ColumnLineage::Unknown,
    }
}

fn column_of(columns: Columns, name: &str) -> ColumnLineage {
    let Some(columns) = columns else {
        return ColumnLineage::Unknown;
    };
    let mut found: Option<ColumnLineage> = None;
    for col in columns.into_iter().filter(|c| c.name == name) {
        found = Some(match found {
            None => col.lineage,
            Some(previous) => previous.or(col.lineage),
        });
    }
    match found {
        Some(found) => found,
        None if SYSTEM_COLUMNS.contains(&name) => ColumnLineage::Constant,
        None => ColumnLineage::Unknown,
    }
}

/// The name PostgreSQL gives an unnamed select-list expression (the common cases).
fn figure_name(node: &NodeEnum) -> String {
    match node {
        NodeEnum::ColumnRef(c) => field_names(&c.fields)
            .pop()
            .unwrap_or_else(|| "?column?".into()),
        NodeEnum::FuncCall(f) => function_name(&f.funcname).1.to_owned(),
        NodeEnum::TypeCast(t) => {
            let inner = t
                .arg
                .as_deref()
                .and_then(|n| n.node.as_ref())
                .map(figure_name)
                .filter(|n| n != "?column?");
            inner.unwrap_or_else(|| {
                t.type_name
                    .as_ref()
                    .map(|ty| function_name(&ty.names).1.to_owned())
                    .unwrap_or_else(|| "?column?".into())
            })
        }
        NodeEnum::CollateClause(c) => c
            .arg
            .as_deref()
            .and_then(|n| n.node.as_ref())
            .map_or_else(|| "?column?".into(), figure_name),
        NodeEnum::AIndirection(i) => match i.indirection.last().and_then(|n| n.node.as_ref()) {
            Some(NodeEnum::String(s)) => s.sval.clone(),
            _ => i
                .arg
                .as_deref()
                .and_then(|n| n.node.as_ref())
                .map_or_else(|| "?column?".into(), figure_name),
        },
        NodeEnum::CaseExpr(_) => "case".into(),
        NodeEnum::CoalesceExpr(_) => "coalesce".into(),
        NodeEnum::AArrayExpr(_) => "array".into(),
        NodeEnum::RowExpr(_) => "row".into(),
        NodeEnum::SubLink(link) => {
            match SubLinkType::try_from(link.sub_link_type).unwrap_or(SubLinkType::Undefined) {
                SubLinkType::ExistsSublink => "exists".into(),
                SubLinkType::ArraySublink => "array".into(),
                _ => "?column?".into(),
            }
        }
        _ => "?column?".into(),
    }
}
