//! Whether a row filter selects the target's rows: the filter of an `UPDATE`/`DELETE`, the
//! `ON` and `WHEN ... AND` conditions of a `MERGE`, the `WHERE` of an upsert's `DO UPDATE`.
//!
//! The rule never evaluates a constant (decision 37). A filter selects rows only if **every
//! branch that can make it true constrains the target's own row**: an `AND` needs one such
//! conjunct, an `OR` needs all its branches to be such, `NOT` swaps the two (De Morgan), and
//! `IN (...)`, `= ANY (ARRAY[...])`, `BETWEEN`, `COALESCE` and `CASE` are read as the `OR`s and
//! `AND`s they stand for. A branch that does not refer to a column of the target row
//! (constants, parameters `$n`, `now()`, `current_user`, uncorrelated subqueries, a `CASE` over
//! constants) may be true for every row, whatever its constants say, so the filter is
//! [`TriviallyTrue`](WhereFacts::TriviallyTrue): the statement can change every row.
//!
//! ```text
//!  id = 1 OR 1e400 < 1e401     ─▶ the second branch names no target column ─▶ every row
//!  id = 1 AND now() > $1       ─▶ one conjunct constrains the row         ─▶ selective
//!  NOT (id <> 1 AND $1)        ─▶ id = 1 OR NOT $1                        ─▶ every row
//! ```
//!
//! A target column is an unqualified column, or one qualified with the target's name or alias;
//! inside a subquery only the qualified form counts (an unqualified name there may be the
//! subquery's own). A few forms that refer to the row are still true for every row and are
//! recognised without reading a value: the same expression on both sides of `=`/`<=`/`>=`/`IS
//! NOT DISTINCT FROM`, `x IS NULL OR x IS NOT NULL`, and `x LIKE '%'`. Direction of safety:
//! answering "every row" of a selective filter refuses (or holds) a statement the profile would
//! have allowed; answering "selective" of one that is not lets an unfiltered write through.

use pg_query::NodeEnum;
use pg_query::NodeRef;
use pg_query::protobuf::{
    AExpr, AExprKind, BoolExprType, BoolTestType, ColumnRef, Node, NullTestType, RangeVar,
    SubLinkType, a_const,
};

use super::walk::for_each_child;
use crate::facts::WhereFacts;

/// The names a target's columns may be qualified with: the relation and its alias.
#[derive(Debug, Clone, Default)]
pub(crate) struct Target {
    names: Vec<String>,
}

impl Target {
    /// The target of a write to `relation`.
    pub(crate) fn of(relation: Option<&RangeVar>) -> Self {
        let mut names = Vec::new();
        if let Some(rel) = relation {
            names.push(rel.relname.clone());
            if let Some(alias) = &rel.alias {
                names.push(alias.aliasname.clone());
            }
        }
        Self { names }
    }

    fn is(&self, qualifier: &str) -> bool {
        self.names.iter().any(|n| n == qualifier)
    }
}

/// The shape of an optional filter on the rows of `target`.
pub(crate) fn shape_for(filter: Option<&Node>, target: &Target) -> WhereFacts {
    let Some(expr) = filter.and_then(|n| n.node.as_ref()) else {
        return WhereFacts::Missing;
    };
    if selects(expr, target, false) {
        WhereFacts::Present
    } else {
        WhereFacts::TriviallyTrue
    }
}

/// Whether `expr` (negated when `negated`) is false for some rows of the target whatever its
/// constants are: every way it can be true constrains the target's row.
fn selects(expr: &NodeEnum, t: &Target, negated: bool) -> bool {
    match expr {
        NodeEnum::BoolExpr(b) => {
            let args = || b.args.iter().filter_map(|a| a.node.as_ref());
            match BoolExprType::try_from(b.boolop) {
                // AND: one constraining conjunct is enough; NOT (a AND b) is NOT a OR NOT b.
                Ok(BoolExprType::AndExpr) if !negated => args().any(|a| selects(a, t, false)),
                Ok(BoolExprType::AndExpr) => args().all(|a| selects(a, t, true)),
                Ok(BoolExprType::OrExpr) if !negated => {
                    !is_null_or_not_null(&b.args, t) && args().all(|a| selects(a, t, false))
                }
                Ok(BoolExprType::OrExpr) => args().any(|a| selects(a, t, true)),
                Ok(BoolExprType::NotExpr) => args().all(|a| selects(a, t, !negated)),
                _ => false,
            }
        }
        NodeEnum::BooleanTest(test) => {
            let Some(arg) = test.arg.as_deref().and_then(|n| n.node.as_ref()) else {
                return false;
            };
            match BoolTestType::try_from(test.booltesttype) {
                Ok(BoolTestType::IsTrue | BoolTestType::IsNotFalse) => selects(arg, t, negated),
                Ok(BoolTestType::IsFalse | BoolTestType::IsNotTrue) => selects(arg, t, !negated),
                _ => refers(arg.to_ref(), t, false),
            }
        }
        // The first non-null argument decides: any of them may be the one.
        NodeEnum::CoalesceExpr(c) => c
            .args
            .iter()
            .filter_map(|a| a.node.as_ref())
            .all(|a| selects(a, t, negated)),
        NodeEnum::CaseExpr(case) => case_selects(case, t, negated),
        // `WHERE false` and `WHERE NULL` are written, not computed: they change no row.
        NodeEnum::AConst(c) => {
            c.isnull || matches!(&c.val, Some(a_const::Val::Boolval(b)) if b.boolval == negated)
        }
        NodeEnum::AExpr(e) => a_expr_selects(e, t, negated),
        NodeEnum::NullTest(test) => test
            .arg
            .as_deref()
            .and_then(|n| n.node.as_ref())
            .is_some_and(|arg| refers(arg.to_ref(), t, false)),
        other => refers(other.to_ref(), t, false),
    }
}

/// A `CASE`: each `WHEN c THEN r` applies only to rows where `c` holds, so it is constraining
/// when `c` or `r` is; the `ELSE` (or the NULL of a missing one) applies where every `WHEN`
/// fails. A simple `CASE x WHEN v` compares `x`: it is read as an opaque condition.
fn case_selects(case: &pg_query::protobuf::CaseExpr, t: &Target, negated: bool) -> bool {
    let simple = case.arg.is_some();
    let mut when_fails_somewhere = false;
    for when in &case.args {
        let Some(NodeEnum::CaseWhen(w)) = &when.node else {
            return false;
        };
        let condition = w.expr.as_deref().and_then(|n| n.node.as_ref());
        let result = w.result.as_deref().and_then(|n| n.node.as_ref());
        let condition_selects = |negated: bool| {
            condition.is_some_and(|c| {
                if simple {
                    refers(c.to_ref(), t, false)
                        || case.arg.as_deref().is_some_and(|a| {
                            a.node
                                .as_ref()
                                .is_some_and(|a| refers(a.to_ref(), t, false))
                        })
                } else {
                    selects(c, t, negated)
                }
            })
        };
        let branch = condition_selects(false) || result.is_some_and(|r| selects(r, t, negated));
        if !branch {
            return false;
        }
        when_fails_somewhere |= condition_selects(true);
    }
    match case.defresult.as_deref().and_then(|n| n.node.as_ref()) {
        None => true,
        Some(default) => when_fails_somewhere || selects(default, t, negated),
    }
}

fn a_expr_selects(e: &AExpr, t: &Target, negated: bool) -> bool {
    let kind = AExprKind::try_from(e.kind).unwrap_or(AExprKind::Undefined);
    let op = operator(e);
    let left = e.lexpr.as_deref().and_then(|n| n.node.as_ref());
    let right = e.rexpr.as_deref().and_then(|n| n.node.as_ref());
    let refers_opt = |n: Option<&NodeEnum>| n.is_some_and(|n| refers(n.to_ref(), t, false));
    if tautology(e, kind, op, t, negated) {
        return false;
    }
    match kind {
        // `x IN (a, b)` is `x = a OR x = b`; `x NOT IN (a, b)` is `x <> a AND x <> b`.
        AExprKind::AexprIn => match right {
            Some(NodeEnum::List(items)) => {
                comparisons(left, &items.items, (op == "=") != negated, t)
            }
            _ => refers_opt(left) || refers_opt(right),
        },
        // `x = ANY (ARRAY[a, b])` is an OR of comparisons, `x <> ALL (ARRAY[...])` an AND.
        AExprKind::AexprOpAny | AExprKind::AexprOpAll => match right {
            Some(NodeEnum::AArrayExpr(array)) => comparisons(
                left,
                &array.elements,
                (kind == AExprKind::AexprOpAny) != negated,
                t,
            ),
            _ => refers_opt(left) || refers_opt(right),
        },
        // `x BETWEEN a AND b` is `x >= a AND x <= b`; `NOT BETWEEN` is `x < a OR x > b`.
        AExprKind::AexprBetween
        | AExprKind::AexprNotBetween
        | AExprKind::AexprBetweenSym
        | AExprKind::AexprNotBetweenSym => {
            let bounds: Vec<bool> = match right {
                Some(NodeEnum::List(l)) => l.items.iter().map(|i| refers_node(i, t)).collect(),
                _ => vec![refers_opt(right)],
            };
            let between = matches!(kind, AExprKind::AexprBetween | AExprKind::AexprBetweenSym);
            let and_like = between != negated;
            refers_opt(left)
                || if and_like {
                    bounds.iter().any(|b| *b)
                } else {
                    bounds.iter().all(|b| *b)
                }
        }
        _ => {
            // A comparison of truth values, `(id = 1 OR true) = true`: each side that is a
            // condition must constrain the row either way it is read.
            let condition_ok = |side: Option<&NodeEnum>| {
                side.is_none_or(|s| {
                    !is_condition(s) || (selects(s, t, false) && selects(s, t, true))
                })
            };
            (refers_opt(left) || refers_opt(right)) && condition_ok(left) && condition_ok(right)
        }
    }
}

/// `left` compared with each of `items`, the comparisons joined by OR (`or_like`) or AND:
/// under OR every comparison must refer to the row, under AND one is enough.
fn comparisons(left: Option<&NodeEnum>, items: &[Node], or_like: bool, t: &Target) -> bool {
    let left_refers = left.is_some_and(|n| refers(n.to_ref(), t, false));
    let mut branches = items.iter().map(|i| left_refers || refers_node(i, t));
    if or_like {
        branches.all(|b| b)
    } else {
        branches.any(|b| b)
    }
}

/// Forms that refer to the row and are still true for every row (read with `negated`): the
/// same expression on both sides of `=`, `<=`, `>=`, `IS NOT DISTINCT FROM` (of `<>`, `<`,
/// `>`, `IS DISTINCT FROM` under `NOT`), and `x LIKE '%'`.
fn tautology(e: &AExpr, kind: AExprKind, op: &str, t: &Target, negated: bool) -> bool {
    let same = matches!(
        (e.lexpr.as_deref(), e.rexpr.as_deref()),
        (Some(l), Some(r)) if same_expr(l, r, t)
    );
    if same {
        let always = match (kind, op) {
            (AExprKind::AexprOp, "=" | "<=" | ">=") | (AExprKind::AexprNotDistinct, _) => true,
            (AExprKind::AexprOp, "<>" | "!=" | "<" | ">") | (AExprKind::AexprDistinct, _) => false,
            _ => return false,
        };
        return always != negated;
    }
    if matches!(kind, AExprKind::AexprLike | AExprKind::AexprIlike)
        && op.starts_with('!') == negated
        && column(e.lexpr.as_deref()).is_some()
        && let Some(NodeEnum::AConst(c)) = e.rexpr.as_deref().and_then(|n| n.node.as_ref())
        && let Some(a_const::Val::Sval(pattern)) = &c.val
    {
        // The pattern's value is read: a text with another pattern has the same shape.
        super::shape::note_read();
        return !pattern.sval.is_empty() && pattern.sval.chars().all(|c| c == '%');
    }
    false
}

/// Whether the node is itself a condition (a truth value built from others).
fn is_condition(node: &NodeEnum) -> bool {
    match node {
        NodeEnum::BoolExpr(_)
        | NodeEnum::BooleanTest(_)
        | NodeEnum::NullTest(_)
        | NodeEnum::CaseExpr(_)
        | NodeEnum::CoalesceExpr(_) => true,
        // EXISTS, IN (subquery), op ANY/ALL (subquery); a scalar subquery is a value.
        NodeEnum::SubLink(link) => !matches!(
            SubLinkType::try_from(link.sub_link_type),
            Ok(SubLinkType::ExprSublink | SubLinkType::ArraySublink)
        ),
        NodeEnum::AExpr(e) => {
            let kind = AExprKind::try_from(e.kind).unwrap_or(AExprKind::Undefined);
            kind != AExprKind::AexprOp
                || matches!(operator(e), "=" | "<>" | "!=" | "<" | ">" | "<=" | ">=")
        }
        NodeEnum::TypeCast(cast) => cast
            .arg
            .as_deref()
            .and_then(|n| n.node.as_ref())
            .is_some_and(is_condition),
        _ => false,
    }
}

/// Whether a column of the target's row (or the cursor position of `WHERE CURRENT OF`) occurs
/// anywhere inside. In a subquery (`nested`) only columns qualified with the target's name or
/// alias count, and not when the subquery's own `FROM` reuses that name.
fn refers(node: NodeRef<'_>, t: &Target, nested: bool) -> bool {
    match node {
        NodeRef::CurrentOfExpr(_) => return true,
        NodeRef::ColumnRef(c) => return is_target_column(c, t, nested),
        NodeRef::SelectStmt(select) => {
            if select.from_clause.iter().any(|f| names_in_from(f, t)) {
                return false;
            }
            let mut found = false;
            for_each_child(node, &mut |child| {
                if !found && refers(child, t, true) {
                    found = true;
                }
            });
            return found;
        }
        _ => {}
    }
    let mut found = false;
    for_each_child(node, &mut |child| {
        if !found && refers(child, t, nested) {
            found = true;
        }
    });
    found
}

fn refers_node(node: &Node, t: &Target) -> bool {
    node.node
        .as_ref()
        .is_some_and(|n| refers(n.to_ref(), t, false))
}

/// Whether a `FROM` item of a subquery is named (or aliased) like the target, hiding it.
fn names_in_from(item: &Node, t: &Target) -> bool {
    match &item.node {
        Some(NodeEnum::RangeVar(rv)) => rv
            .alias
            .as_ref()
            .map_or(t.is(&rv.relname), |a| t.is(&a.aliasname)),
        Some(NodeEnum::RangeSubselect(s)) => s.alias.as_ref().is_some_and(|a| t.is(&a.aliasname)),
        Some(NodeEnum::JoinExpr(j)) => {
            j.larg.as_deref().is_some_and(|n| names_in_from(n, t))
                || j.rarg.as_deref().is_some_and(|n| names_in_from(n, t))
        }
        _ => false,
    }
}

fn is_target_column(c: &ColumnRef, t: &Target, nested: bool) -> bool {
    let fields = column_fields(c);
    match fields.as_slice() {
        [_column] => !nested,
        [table, _] | [_, table, _] | [_, _, table, _] => t.is(table),
        _ => false,
    }
}

fn column_fields(c: &ColumnRef) -> Vec<String> {
    c.fields
        .iter()
        .map(|f| match &f.node {
            Some(NodeEnum::String(s)) => s.sval.clone(),
            Some(NodeEnum::AStar(_)) => "*".to_owned(),
            _ => "?".to_owned(),
        })
        .collect()
}

/// A column reference as the server resolves it against the target: `t.id` and `id` are the
/// same when `t` names the target.
fn column_key(c: &ColumnRef, t: &Target) -> Vec<String> {
    let fields = column_fields(c);
    match fields.as_slice() {
        [table, column] if t.is(table) => vec![column.clone()],
        [_, table, column] if t.is(table) => vec![column.clone()],
        _ => fields,
    }
}

/// The same expression referring to the row on both sides, whatever its source positions and
/// target qualifiers: `(id + 0) = (t.id + 0)`.
fn same_expr(a: &Node, b: &Node, t: &Target) -> bool {
    if !refers_node(a, t) {
        return false;
    }
    if let (Some(l), Some(r)) = (column(Some(a)), column(Some(b))) {
        return column_key(l, t) == column_key(r, t);
    }
    fn without_locations(node: &Node) -> String {
        let text = format!("{node:?}");
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(at) = rest.find("location: ") {
            out.push_str(&rest[..at]);
            rest = rest[at + "location: ".len()..]
                .trim_start_matches(|c: char| c == '-' || c.is_ascii_digit());
        }
        out.push_str(rest);
        out
    }
    without_locations(a) == without_locations(b)
}

/// `x IS NULL OR ... OR x IS NOT NULL`: true for every row.
fn is_null_or_not_null(args: &[Node], t: &Target) -> bool {
    let tests: Vec<(&ColumnRef, bool)> = args
        .iter()
        .filter_map(|a| match &a.node {
            Some(NodeEnum::NullTest(test)) => {
                match test.arg.as_deref().and_then(|n| n.node.as_ref()) {
                    Some(NodeEnum::ColumnRef(c)) => {
                        Some((c, test.nulltesttype == NullTestType::IsNull as i32))
                    }
                    _ => None,
                }
            }
            _ => None,
        })
        .collect();
    tests.iter().any(|(c, is_null)| {
        *is_null
            && tests
                .iter()
                .any(|(d, other_null)| !*other_null && column_key(c, t) == column_key(d, t))
    })
}

fn column(node: Option<&Node>) -> Option<&ColumnRef> {
    match node.and_then(|n| n.node.as_ref()) {
        Some(NodeEnum::ColumnRef(c)) => Some(c),
        _ => None,
    }
}

fn operator(e: &AExpr) -> &str {
    match e.name.last().and_then(|n| n.node.as_ref()) {
        Some(NodeEnum::String(s)) => s.sval.as_str(),
        _ => "",
    }
}

/// PostgreSQL's boolean input: `t`/`true`/`y`/`yes`/`on`/`1` and the false spellings,
/// case-insensitive, unique prefixes allowed, surrounding whitespace ignored.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    let s = text.trim().to_ascii_lowercase();
    if s.is_empty() {
        return None;
    }
    let prefix_of = |word: &str| word.starts_with(s.as_str());
    match s.as_bytes()[0] {
        b't' if prefix_of("true") => Some(true),
        b'f' if prefix_of("false") => Some(false),
        b'y' if prefix_of("yes") => Some(true),
        b'n' if prefix_of("no") => Some(false),
        b'o' if s == "on" => Some(true),
        b'o' if s.len() >= 2 && prefix_of("off") => Some(false),
        b'1' if s == "1" => Some(true),
        b'0' if s == "0" => Some(false),
        _ => None,
    }
}
