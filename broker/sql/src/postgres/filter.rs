//! The shape of a row filter: missing, trivially true, or a real filter.
//!
//! A filter is trivially true when a small constant evaluator proves it true (`1=1`, `x = x`,
//! `NOT false`, `... OR true`, `'a' = 'a'`, `1 < 2`, `x IS NULL OR x IS NOT NULL`), or when
//! it does not mention any column at all: then it is the same for every row, so the statement
//! touches all rows or none (`WHERE $1`, `WHERE now() > '2020-01-01'`,
//! `WHERE EXISTS (SELECT 1)`). Everything else is `Present`.
//!
//! Direction of safety: saying "true" of a filter that is not only refuses a statement the
//! profile would have allowed; saying "false" of one that is true lets an unfiltered write
//! through. So the evaluator answers `Unknown` whenever the server's answer could differ from
//! a naive one (string ordering depends on collation, decimal arithmetic is not `f64`), and
//! never guesses "false".

use pg_query::NodeEnum;
use pg_query::NodeRef;
use pg_query::protobuf::{
    AExpr, AExprKind, BoolExprType, BoolTestType, ColumnRef, Node, NullTestType, RangeVar,
    SubLinkType, a_const,
};

use super::walk::for_each_child;
use crate::facts::WhereFacts;

/// The shape of an optional `WHERE` expression.
pub(crate) fn shape(filter: Option<&Node>) -> WhereFacts {
    shape_for(filter, None)
}

/// The shape of the `WHERE` of a write to `target`: a column qualified with the target's name
/// or alias is the same column as the bare name (`where id = canary.id` is `id = id`).
pub(crate) fn shape_for(filter: Option<&Node>, target: Option<&RangeVar>) -> WhereFacts {
    let names: Vec<String> = target
        .map(|t| {
            let mut names = vec![t.relname.clone()];
            if let Some(alias) = &t.alias {
                names.push(alias.aliasname.clone());
            }
            names
        })
        .unwrap_or_default();
    TARGET.with(|t| *t.borrow_mut() = names);
    let shape = shape_inner(filter);
    TARGET.with(|t| t.borrow_mut().clear());
    if let Some(filter) = filter
        && !constants_cannot_matter(filter)
    {
        super::shape::note_read();
    }
    shape
}

/// Whether the shape of `filter` is the same whatever values its constants have: it has no
/// constants, or each one is compared with a plain column (`aid = 42`, `name IN ('a', 'b')`,
/// `n BETWEEN 1 AND 9`) under `AND`/`OR`/`NOT`. Such a comparison is unknown to the
/// evaluator for every value. Anything else (`1 = 1`, `x LIKE '%'`, `x = 5 OR 1 = 1`) may be
/// proven true for some values and not others.
fn constants_cannot_matter(filter: &Node) -> bool {
    let Some(expr) = filter.node.as_ref() else {
        return true;
    };
    if !has_constant(expr.to_ref()) {
        return true;
    }
    match expr {
        NodeEnum::BoolExpr(b) => b.args.iter().all(constants_cannot_matter),
        NodeEnum::AExpr(e) => {
            let kind = AExprKind::try_from(e.kind).unwrap_or(AExprKind::Undefined);
            let comparison = match kind {
                AExprKind::AexprOp => matches!(operator(e), "=" | "<>" | "<" | ">" | "<=" | ">="),
                AExprKind::AexprIn | AExprKind::AexprBetween | AExprKind::AexprNotBetween => true,
                _ => false,
            };
            let plain_column =
                |n: Option<&Node>| column(n).is_some_and(|c| !has_constant(NodeRef::ColumnRef(c)));
            let constants = |n: Option<&Node>| match n.and_then(|n| n.node.as_ref()) {
                Some(NodeEnum::List(list)) => list.items.iter().all(is_constant_leaf),
                Some(_) => n.is_some_and(is_constant_leaf),
                None => false,
            };
            comparison
                && ((plain_column(e.lexpr.as_deref()) && constants(e.rexpr.as_deref()))
                    || (kind == AExprKind::AexprOp
                        && constants(e.lexpr.as_deref())
                        && plain_column(e.rexpr.as_deref())))
        }
        _ => false,
    }
}

/// A constant, possibly cast or negated: `42`, `'x'::date`, `-1`.
fn is_constant_leaf(node: &Node) -> bool {
    match node.node.as_ref() {
        Some(NodeEnum::AConst(_)) => true,
        Some(NodeEnum::TypeCast(cast)) => cast.arg.as_deref().is_some_and(is_constant_leaf),
        Some(NodeEnum::AExpr(e)) => {
            e.lexpr.is_none()
                && matches!(operator(e), "-" | "+")
                && e.rexpr.as_deref().is_some_and(is_constant_leaf)
        }
        _ => false,
    }
}

/// Whether a non-NULL constant appears anywhere inside (`NULL` is a keyword, not a value).
fn has_constant(node: NodeRef<'_>) -> bool {
    if let NodeRef::AConst(c) = node
        && !c.isnull
    {
        return true;
    }
    let mut found = false;
    for_each_child(node, &mut |child| {
        if !found && has_constant(child) {
            found = true;
        }
    });
    found
}

thread_local! {
    /// Names (relation, alias) of the table whose filter is being shaped.
    static TARGET: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A column reference as the server resolves it against the target: `t.id` and `id` are the
/// same when `t` names the target.
fn column_key(c: &ColumnRef) -> Vec<String> {
    let fields: Vec<String> = c
        .fields
        .iter()
        .map(|f| match &f.node {
            Some(NodeEnum::String(s)) => s.sval.clone(),
            Some(NodeEnum::AStar(_)) => "*".to_owned(),
            _ => "?".to_owned(),
        })
        .collect();
    let qualifier_is_target = |q: &str| TARGET.with(|t| t.borrow().iter().any(|n| n == q));
    match fields.as_slice() {
        [table, column] if qualifier_is_target(table) => vec![column.clone()],
        [_, table, column] if qualifier_is_target(table) => vec![column.clone()],
        _ => fields,
    }
}

/// The same expression on both sides, whatever its source positions: `(id + 0) = (id + 0)`.
fn same_expr(a: &Node, b: &Node) -> bool {
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

fn shape_inner(filter: Option<&Node>) -> WhereFacts {
    let Some(expr) = filter.and_then(|n| n.node.as_ref()) else {
        return WhereFacts::Missing;
    };
    match truth(eval(expr)) {
        Value::Bool(true) => WhereFacts::TriviallyTrue,
        Value::Unknown if !mentions_columns(expr.to_ref()) => WhereFacts::TriviallyTrue,
        _ => WhereFacts::Present,
    }
}

/// Whether the expression refers to any column (or to a cursor position), anywhere inside,
/// subqueries included (a conservative stand-in for "depends on the row").
fn mentions_columns(node: NodeRef<'_>) -> bool {
    if matches!(node, NodeRef::ColumnRef(_) | NodeRef::CurrentOfExpr(_)) {
        return true;
    }
    let mut found = false;
    for_each_child(node, &mut |child| {
        if !found && mentions_columns(child) {
            found = true;
        }
    });
    found
}

fn mentions_columns_node(node: &Node) -> bool {
    node.node
        .as_ref()
        .is_some_and(|n| mentions_columns(n.to_ref()))
}

/// A constant's value, as far as the evaluator can tell.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Bool(bool),
    Int(i64),
    /// A decimal literal, kept as text: compared only when both sides parse exactly alike.
    Num(f64),
    Str(String),
    Null,
    Unknown,
}

fn node_value(node: Option<&Node>) -> Value {
    node.and_then(|n| n.node.as_ref())
        .map_or(Value::Unknown, eval)
}

fn eval(expr: &NodeEnum) -> Value {
    match expr {
        NodeEnum::AConst(c) => {
            if c.isnull {
                return Value::Null;
            }
            match &c.val {
                Some(a_const::Val::Ival(i)) => Value::Int(i64::from(i.ival)),
                Some(a_const::Val::Fval(f)) => f.fval.parse().map_or(Value::Unknown, Value::Num),
                Some(a_const::Val::Boolval(b)) => Value::Bool(b.boolval),
                Some(a_const::Val::Sval(s)) => Value::Str(s.sval.clone()),
                Some(a_const::Val::Bsval(_)) | None => Value::Unknown,
            }
        }
        NodeEnum::TypeCast(cast) => {
            let inner = node_value(cast.arg.as_deref());
            let target = cast
                .type_name
                .as_ref()
                .and_then(|t| t.names.last())
                .and_then(|n| match &n.node {
                    Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
                    _ => None,
                });
            cast_to(inner, target.unwrap_or(""))
        }
        NodeEnum::BoolExpr(b) => {
            let args = b.args.iter().map(|a| node_value(Some(a)));
            match BoolExprType::try_from(b.boolop) {
                Ok(BoolExprType::AndExpr) => and(args),
                Ok(BoolExprType::OrExpr) => {
                    if is_null_or_not_null(&b.args) {
                        Value::Bool(true)
                    } else {
                        or(args)
                    }
                }
                Ok(BoolExprType::NotExpr) => match truth(node_value(b.args.first())) {
                    Value::Bool(v) => Value::Bool(!v),
                    other => other,
                },
                _ => Value::Unknown,
            }
        }
        NodeEnum::AExpr(e) => eval_a_expr(e),
        NodeEnum::NullTest(t) => {
            let is_null = match node_value(t.arg.as_deref()) {
                Value::Unknown => return Value::Unknown,
                Value::Null => true,
                _ => false,
            };
            match NullTestType::try_from(t.nulltesttype) {
                Ok(NullTestType::IsNull) => Value::Bool(is_null),
                Ok(NullTestType::IsNotNull) => Value::Bool(!is_null),
                _ => Value::Unknown,
            }
        }
        NodeEnum::BooleanTest(t) => {
            let v = truth(node_value(t.arg.as_deref()));
            let (is_true, is_false, is_unknown) = match v {
                Value::Bool(b) => (b, !b, false),
                Value::Null => (false, false, true),
                _ => return Value::Unknown,
            };
            match BoolTestType::try_from(t.booltesttype) {
                Ok(BoolTestType::IsTrue) => Value::Bool(is_true),
                Ok(BoolTestType::IsNotTrue) => Value::Bool(!is_true),
                Ok(BoolTestType::IsFalse) => Value::Bool(is_false),
                Ok(BoolTestType::IsNotFalse) => Value::Bool(!is_false),
                Ok(BoolTestType::IsUnknown) => Value::Bool(is_unknown),
                Ok(BoolTestType::IsNotUnknown) => Value::Bool(!is_unknown),
                _ => Value::Unknown,
            }
        }
        NodeEnum::SubLink(s) if s.sub_link_type == SubLinkType::ExistsSublink as i32 => {
            match s.subselect.as_deref().and_then(|n| n.node.as_ref()) {
                Some(NodeEnum::SelectStmt(sel))
                    if sel.from_clause.is_empty()
                        && sel.values_lists.is_empty()
                        && sel.larg.is_none()
                        && sel.having_clause.is_none()
                        && sel.limit_count.is_none()
                        && sel.limit_offset.is_none()
                        && sel.group_clause.is_empty()
                        && (sel.where_clause.is_none()
                            || truth(node_value(sel.where_clause.as_deref()))
                                == Value::Bool(true)) =>
                {
                    Value::Bool(true)
                }
                _ => Value::Unknown,
            }
        }
        NodeEnum::CoalesceExpr(c) => {
            for arg in &c.args {
                match node_value(Some(arg)) {
                    Value::Null => continue,
                    v => return v,
                }
            }
            Value::Null
        }
        _ => Value::Unknown,
    }
}

/// The value as a boolean, the way a `WHERE` reads it (`'t'`, `'yes'`, `1` are true).
fn truth(v: Value) -> Value {
    match v {
        Value::Bool(_) | Value::Null | Value::Unknown => v,
        Value::Int(i) => Value::Bool(i != 0),
        Value::Str(s) => parse_bool(&s).map_or(Value::Unknown, Value::Bool),
        Value::Num(_) => Value::Unknown,
    }
}

fn and(args: impl Iterator<Item = Value>) -> Value {
    let (mut unknown, mut null) = (false, false);
    for v in args {
        match truth(v) {
            Value::Bool(false) => return Value::Bool(false),
            Value::Bool(true) => {}
            Value::Null => null = true,
            _ => unknown = true,
        }
    }
    if unknown {
        Value::Unknown
    } else if null {
        Value::Null
    } else {
        Value::Bool(true)
    }
}

fn or(args: impl Iterator<Item = Value>) -> Value {
    let (mut unknown, mut null) = (false, false);
    for v in args {
        match truth(v) {
            Value::Bool(true) => return Value::Bool(true),
            Value::Bool(false) => {}
            Value::Null => null = true,
            _ => unknown = true,
        }
    }
    if unknown {
        Value::Unknown
    } else if null {
        Value::Null
    } else {
        Value::Bool(false)
    }
}

/// `x IS NULL OR ... OR x IS NOT NULL`: true for every row.
fn is_null_or_not_null(args: &[Node]) -> bool {
    let tests: Vec<(&ColumnRef, bool)> = args
        .iter()
        .filter_map(|a| match &a.node {
            Some(NodeEnum::NullTest(t)) => match t.arg.as_deref().and_then(|n| n.node.as_ref()) {
                Some(NodeEnum::ColumnRef(c)) => {
                    Some((c, t.nulltesttype == NullTestType::IsNull as i32))
                }
                _ => None,
            },
            _ => None,
        })
        .collect();
    tests.iter().any(|(c, is_null)| {
        *is_null
            && tests
                .iter()
                .any(|(d, other_null)| !*other_null && column_key(c) == column_key(d))
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

fn list_values(node: Option<&Node>) -> Option<Vec<Value>> {
    match node.and_then(|n| n.node.as_ref()) {
        Some(NodeEnum::List(l)) => Some(l.items.iter().map(|i| node_value(Some(i))).collect()),
        _ => None,
    }
}

fn eval_a_expr(e: &AExpr) -> Value {
    let op = operator(e);
    let kind = AExprKind::try_from(e.kind).unwrap_or(AExprKind::Undefined);
    // The same column on both sides: `x = x`, `x <= x`, `x IS NOT DISTINCT FROM x`; or the
    // same expression: `(x + 0) = (x + 0)`.
    let same_column = matches!(
        (column(e.lexpr.as_deref()), column(e.rexpr.as_deref())),
        (Some(l), Some(r)) if column_key(l) == column_key(r)
    );
    let same = same_column
        || matches!(
            (e.lexpr.as_deref(), e.rexpr.as_deref()),
            (Some(l), Some(r)) if mentions_columns_node(l) && same_expr(l, r)
        );
    if same {
        return match (kind, op) {
            (AExprKind::AexprOp, "=" | "<=" | ">=") | (AExprKind::AexprNotDistinct, _) => {
                Value::Bool(true)
            }
            (AExprKind::AexprOp, "<>" | "<" | ">") | (AExprKind::AexprDistinct, _) => {
                Value::Bool(false)
            }
            _ => Value::Unknown,
        };
    }
    match kind {
        AExprKind::AexprOp => {
            let right = node_value(e.rexpr.as_deref());
            if e.lexpr.is_none() {
                return match (op, right) {
                    ("-", Value::Int(i)) => i.checked_neg().map_or(Value::Unknown, Value::Int),
                    ("-", Value::Num(n)) => Value::Num(-n),
                    ("+", v @ (Value::Int(_) | Value::Num(_))) => v,
                    _ => Value::Unknown,
                };
            }
            binary(op, node_value(e.lexpr.as_deref()), right)
        }
        AExprKind::AexprDistinct | AExprKind::AexprNotDistinct => {
            let l = node_value(e.lexpr.as_deref());
            let r = node_value(e.rexpr.as_deref());
            let distinct = match (&l, &r) {
                (Value::Null, Value::Null) => false,
                (Value::Null, Value::Unknown) | (Value::Unknown, Value::Null) => {
                    return Value::Unknown;
                }
                (Value::Null, _) | (_, Value::Null) => true,
                _ => match compare("=", l, r) {
                    Value::Bool(eq) => !eq,
                    other => return other,
                },
            };
            Value::Bool(if kind == AExprKind::AexprDistinct {
                distinct
            } else {
                !distinct
            })
        }
        AExprKind::AexprIn => {
            let Some(items) = list_values(e.rexpr.as_deref()) else {
                return Value::Unknown;
            };
            let l = node_value(e.lexpr.as_deref());
            let any = or(items.into_iter().map(|i| compare("=", l.clone(), i)));
            match (op, any) {
                ("=", v) => v,
                ("<>", Value::Bool(b)) => Value::Bool(!b),
                _ => Value::Unknown,
            }
        }
        AExprKind::AexprBetween | AExprKind::AexprNotBetween => {
            let Some(bounds) = list_values(e.rexpr.as_deref()) else {
                return Value::Unknown;
            };
            let [lo, hi] =
                <[Value; 2]>::try_from(bounds).unwrap_or([Value::Unknown, Value::Unknown]);
            let l = node_value(e.lexpr.as_deref());
            let between = and([compare(">=", l.clone(), lo), compare("<=", l, hi)].into_iter());
            match (kind, between) {
                (AExprKind::AexprBetween, v) => v,
                (_, Value::Bool(b)) => Value::Bool(!b),
                (_, v) => v,
            }
        }
        AExprKind::AexprLike | AExprKind::AexprIlike => {
            let pattern = node_value(e.rexpr.as_deref());
            let negated = op.starts_with('!');
            // `col LIKE '%'`: every non-null value matches.
            if let Value::Str(p) = &pattern
                && !p.is_empty()
                && p.chars().all(|c| c == '%')
                && column(e.lexpr.as_deref()).is_some()
            {
                return Value::Bool(!negated);
            }
            match (node_value(e.lexpr.as_deref()), pattern) {
                (Value::Str(s), Value::Str(p)) => {
                    let (s, p) = if kind == AExprKind::AexprIlike {
                        (s.to_lowercase(), p.to_lowercase())
                    } else {
                        (s, p)
                    };
                    match like(&s, &p) {
                        Some(m) => Value::Bool(m != negated),
                        None => Value::Unknown,
                    }
                }
                (Value::Null, _) | (_, Value::Null) => Value::Null,
                _ => Value::Unknown,
            }
        }
        _ => Value::Unknown,
    }
}

fn binary(op: &str, l: Value, r: Value) -> Value {
    match op {
        "=" | "<>" | "<" | ">" | "<=" | ">=" => compare(op, l, r),
        "+" | "-" | "*" | "/" | "%" => match (l, r) {
            (Value::Int(a), Value::Int(b)) => match op {
                "+" => a.checked_add(b),
                "-" => a.checked_sub(b),
                "*" => a.checked_mul(b),
                "/" => a.checked_div(b),
                _ => a.checked_rem(b),
            }
            .map_or(Value::Unknown, Value::Int),
            (Value::Null, _) | (_, Value::Null) => Value::Null,
            _ => Value::Unknown,
        },
        "||" => match (l, r) {
            (Value::Str(a), Value::Str(b)) => Value::Str(a + &b),
            _ => Value::Unknown,
        },
        _ => Value::Unknown,
    }
}

/// A comparison between two constants, answered only where the server's answer cannot
/// differ (numbers, booleans, string equality; not string ordering, which is collation's).
fn compare(op: &str, l: Value, r: Value) -> Value {
    use std::cmp::Ordering;
    let ordering = match (l, r) {
        (Value::Null, _) | (_, Value::Null) => return Value::Null,
        (Value::Int(a), Value::Int(b)) => a.cmp(&b),
        (Value::Int(a), Value::Num(b)) => match (a as f64).partial_cmp(&b) {
            Some(o) => o,
            None => return Value::Unknown,
        },
        (Value::Num(a), Value::Int(b)) => match a.partial_cmp(&(b as f64)) {
            Some(o) => o,
            None => return Value::Unknown,
        },
        (Value::Num(a), Value::Num(b)) => match a.partial_cmp(&b) {
            Some(o) => o,
            None => return Value::Unknown,
        },
        // An untyped literal compared with a number is read as that number.
        (Value::Str(s), Value::Int(b)) => match s.trim().parse::<i64>() {
            Ok(a) => a.cmp(&b),
            Err(_) => return Value::Unknown,
        },
        (Value::Int(a), Value::Str(s)) => match s.trim().parse::<i64>() {
            Ok(b) => a.cmp(&b),
            Err(_) => return Value::Unknown,
        },
        (Value::Bool(a), b) => match truth(b) {
            Value::Bool(b) => a.cmp(&b),
            _ => return Value::Unknown,
        },
        (a, Value::Bool(b)) => match truth(a) {
            Value::Bool(a) => a.cmp(&b),
            _ => return Value::Unknown,
        },
        (Value::Str(a), Value::Str(b)) => match op {
            "=" => return Value::Bool(a == b),
            "<>" => return Value::Bool(a != b),
            _ => return Value::Unknown,
        },
        _ => return Value::Unknown,
    };
    Value::Bool(match op {
        "=" => ordering == Ordering::Equal,
        "<>" => ordering != Ordering::Equal,
        "<" => ordering == Ordering::Less,
        ">" => ordering == Ordering::Greater,
        "<=" => ordering != Ordering::Greater,
        ">=" => ordering != Ordering::Less,
        _ => return Value::Unknown,
    })
}

fn cast_to(v: Value, type_name: &str) -> Value {
    match type_name {
        "bool" | "boolean" => truth(v),
        "int2" | "int4" | "int8" | "int" | "integer" | "smallint" | "bigint" => match v {
            Value::Int(_) | Value::Null => v,
            Value::Str(s) => s.trim().parse().map_or(Value::Unknown, Value::Int),
            _ => Value::Unknown,
        },
        "text" | "varchar" => match v {
            Value::Str(_) | Value::Null => v,
            Value::Int(i) => Value::Str(i.to_string()),
            _ => Value::Unknown,
        },
        _ => Value::Unknown,
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

/// SQL `LIKE` on characters with the default escape `\`; `None` when the pattern is malformed.
///
/// The classic greedy wildcard match, which backtracks only to the last `%`: O(len(s) x
/// len(p)) at worst, so a hostile constant cannot make classification slow.
fn like(s: &str, p: &str) -> Option<bool> {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Any,
        One,
        Lit(char),
    }
    let s: Vec<char> = s.chars().collect();
    let mut pattern = Vec::with_capacity(p.len());
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        pattern.push(match c {
            '%' => Tok::Any,
            '_' => Tok::One,
            '\\' => Tok::Lit(chars.next()?),
            other => Tok::Lit(other),
        });
    }
    let (mut si, mut pi) = (0, 0);
    let mut resume: Option<(usize, usize)> = None;
    while si < s.len() {
        match pattern.get(pi) {
            Some(Tok::Any) => {
                resume = Some((pi, si));
                pi += 1;
            }
            Some(Tok::One) => {
                si += 1;
                pi += 1;
            }
            Some(Tok::Lit(c)) if *c == s[si] => {
                si += 1;
                pi += 1;
            }
            _ => match resume {
                Some((star, matched)) => {
                    pi = star + 1;
                    si = matched + 1;
                    resume = Some((star, matched + 1));
                }
                None => return Some(false),
            },
        }
    }
    Some(pattern[pi..].iter().all(|t| *t == Tok::Any))
}
