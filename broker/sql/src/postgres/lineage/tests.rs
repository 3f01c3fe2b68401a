//! Lineage tests: tables of statements with the lineage each output column, stored value and
//! side channel must have, against a small fake catalog; then robustness over the regression
//! corpus.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{
    BaseColumn, ColumnLineage as L, Deferred, NoRelations, Output, Relations, SideChannel,
    StatementLineage, StoredValue, lineage,
};

/// people(id, name, email, card, ssn, note), notes(n), orders(id, person_id, total) and a
/// few views; `pg_stats` as the catalog has it.
struct Catalog;

impl Relations for Catalog {
    fn columns(&self, schema: Option<&str>, name: &str) -> Option<Vec<String>> {
        if !matches!(schema, None | Some("public") | Some("pg_catalog")) {
            return None;
        }
        let columns: &[&str] = match name {
            "people" => &["id", "name", "email", "card", "ssn", "note"],
            "notes" => &["n"],
            "orders" => &["id", "person_id", "total"],
            "contacts" => &["id", "contact"],
            "contact_emails" => &["address"],
            "renamed" => &["a", "b"],
            "loop_a" | "loop_b" | "notifying" => &["x"],
            "pg_stats" => &[
                "schemaname",
                "tablename",
                "attname",
                "null_frac",
                "most_common_vals",
                "histogram_bounds",
            ],
            _ => return None,
        };
        Some(columns.iter().map(|c| (*c).to_owned()).collect())
    }

    fn view_definition(&self, schema: Option<&str>, name: &str) -> Option<String> {
        if !matches!(schema, None | Some("public")) {
            return None;
        }
        let sql = match name {
            "contacts" => " SELECT id, email AS contact FROM people;",
            "contact_emails" => " SELECT contacts.contact FROM contacts;",
            // As pg_get_viewdef prints `create view renamed(a, b) as select id, email ...`.
            "renamed" => " SELECT people.id, people.email FROM people;",
            "loop_a" => " SELECT loop_b.x FROM loop_b;",
            "loop_b" => " SELECT loop_a.x FROM loop_a;",
            "opaque" => " SELECT secret_fn() AS x;",
            "notifying" => " SELECT pg_notify('c'::text, people.email) AS x FROM people;",
            _ => return None,
        };
        Some(sql.to_owned())
    }
}

fn col(table: &str, column: &str) -> BaseColumn {
    BaseColumn::new(None, table, column)
}

/// A plain `people` column.
fn p(column: &str) -> L {
    L::Plain(col("people", column))
}

/// Revealing-derived from these `people` columns.
fn r(columns: &[&str]) -> L {
    L::derived(columns.iter().map(|c| col("people", c)), [])
}

/// Non-revealing-derived from these `people` columns.
fn h(columns: &[&str]) -> L {
    L::derived([], columns.iter().map(|c| col("people", c)))
}

fn every_people_column() -> L {
    r(&["id", "name", "email", "card", "ssn", "note"])
}

fn one(sql: &str) -> StatementLineage {
    let mut all = lineage(sql, &Catalog);
    assert_eq!(all.len(), 1, "{sql}: {all:#?}");
    let one = all.remove(0);
    assert_eq!(one.incomplete, None, "{sql}");
    one
}

fn output(sql: &str) -> Output {
    one(sql).output
}

fn check(cases: &[(&str, Vec<L>)]) {
    let mut failures = Vec::new();
    for (sql, expected) in cases {
        let got = output(sql);
        if got != Output::Rows(expected.clone()) {
            failures.push(format!(
                "{sql}\n  expected {expected:?}\n  got      {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn plain_columns_through_names_subqueries_ctes_and_views() {
    check(&[
        ("select email from people", vec![p("email")]),
        ("select p.email from people p", vec![p("email")]),
        ("select people.email from people", vec![p("email")]),
        (
            "select public.people.email from public.people",
            vec![L::Plain(BaseColumn::new(Some("public"), "people", "email"))],
        ),
        (
            "select email as e, id from people",
            vec![p("email"), p("id")],
        ),
        ("select email collate \"C\" from people", vec![p("email")]),
        (
            "select * from people",
            ["id", "name", "email", "card", "ssn", "note"]
                .map(p)
                .to_vec(),
        ),
        ("select p.*, 1 from notes, people p", {
            let mut v = ["id", "name", "email", "card", "ssn", "note"]
                .map(p)
                .to_vec();
            v.push(L::Constant);
            v
        }),
        (
            "select x from (select email as x from people) s",
            vec![p("email")],
        ),
        (
            "select x from (select email from people) as s(x)",
            vec![p("email")],
        ),
        (
            "select s.email from (select * from people) s",
            vec![p("email")],
        ),
        (
            "with c as (select email from people) select email from c",
            vec![p("email")],
        ),
        (
            "with c(e) as (select email from people) select e from c",
            vec![p("email")],
        ),
        (
            "with a as (select email from people), b as (select email as m from a) select m from b",
            vec![p("email")],
        ),
        ("select contact from contacts", vec![p("email")]),
        ("select * from contacts", vec![p("id"), p("email")]),
        ("select address from contact_emails", vec![p("email")]),
        ("select b from renamed", vec![p("email")]),
        (
            "select email from people union select email from people",
            vec![p("email")],
        ),
        (
            "select (select email from people limit 1)",
            vec![p("email")],
        ),
        (
            "values ((select email from people limit 1))",
            vec![p("email")],
        ),
        (
            "select n from notes join people on true",
            vec![L::Plain(col("notes", "n"))],
        ),
        (
            "select id from people join orders using (id)",
            vec![p("id")],
        ),
        (
            "select o.total, p.ssn from orders o left join lateral (select ssn from people where id = o.person_id) p on true",
            vec![L::Plain(col("orders", "total")), p("ssn")],
        ),
        ("select (p).email from people p", vec![p("email")]),
        (
            "select email from people where exists (select 1 from notes)",
            vec![p("email")],
        ),
        (
            "select ctid, email from people",
            vec![L::Constant, p("email")],
        ),
        // Correlated: the inner query sees the outer one.
        (
            "select (select p.card from notes limit 1) from people p",
            vec![p("card")],
        ),
    ]);
}

#[test]
fn revealing_derivations() {
    check(&[
        ("select upper(email) from people", vec![r(&["email"])]),
        ("select reverse(email) from people", vec![r(&["email"])]),
        (
            "select substr(email, 1, 5), substr(email, 6) from people",
            vec![r(&["email"]), r(&["email"])],
        ),
        (
            "select substring(email from 2) from people",
            vec![r(&["email"])],
        ),
        (
            "select encode(email::bytea, 'base64') from people",
            vec![r(&["email"])],
        ),
        ("select email || '' from people", vec![r(&["email"])]),
        (
            "select format('%s', email) from people",
            vec![r(&["email"])],
        ),
        (
            "select coalesce(email, '') from people",
            vec![r(&["email"])],
        ),
        ("select nullif(email, '') from people", vec![r(&["email"])]),
        (
            "select greatest(email, name) from people",
            vec![r(&["email", "name"])],
        ),
        (
            "select case when true then email end from people",
            vec![r(&["email"])],
        ),
        ("select ascii(email) from people", vec![r(&["email"])]),
        ("select md5(ssn) from people", vec![r(&["ssn"])]),
        ("select to_tsvector(email) from people", vec![r(&["email"])]),
        (
            "select xmlelement(name x, email) from people",
            vec![r(&["email"])],
        ),
        (
            "select string_agg(email, ',') from people",
            vec![r(&["email"])],
        ),
        ("select array_agg(email) from people", vec![r(&["email"])]),
        ("select min(email) from people", vec![r(&["email"])]),
        (
            "select max(card) from people group by name",
            vec![r(&["card"])],
        ),
        (
            "select first_value(email) over () from people",
            vec![r(&["email"])],
        ),
        (
            "select lag(ssn) over (order by id) from people",
            vec![L::derived([col("people", "ssn")], [col("people", "id")])],
        ),
        (
            "select json_agg(p) from people p",
            vec![every_people_column()],
        ),
        (
            "select row_to_json(p) from people p",
            vec![every_people_column()],
        ),
        (
            "select to_jsonb(p) from people p",
            vec![every_people_column()],
        ),
        ("select p::text from people p", vec![every_people_column()]),
        ("select p from people p", vec![every_people_column()]),
        ("select row(p.*) from people p", vec![every_people_column()]),
        (
            "select row_to_json(p.*) from people p",
            vec![every_people_column()],
        ),
        (
            "select row_to_json(c) from contacts c",
            vec![r(&["id", "email"])],
        ),
        (
            "select jsonb_build_object('e', email) from people",
            vec![r(&["email"])],
        ),
        (
            "select json_object('e': email) from people",
            vec![r(&["email"])],
        ),
        (
            "select json_array(email, card) from people",
            vec![r(&["email", "card"])],
        ),
        (
            "select array[email, name] from people",
            vec![r(&["email", "name"])],
        ),
        ("select (array[email])[1] from people", vec![r(&["email"])]),
        ("select card::numeric + 1 from people", vec![r(&["card"])]),
        ("select -id from people", vec![r(&["id"])]),
        ("select email->>'x' from people", vec![r(&["email"])]),
        (
            "select extract(year from note::date) from people",
            vec![r(&["note"])],
        ),
        ("select trim(email) from people", vec![r(&["email"])]),
        (
            "select email from people union all select card from people",
            vec![r(&["email", "card"])],
        ),
        (
            "select 'x' as name union select email from people",
            vec![r(&["email"])],
        ),
        (
            "select email from people intersect select 'a'",
            vec![r(&["email"])],
        ),
        (
            "values ('a'), ((select ssn from people limit 1))",
            vec![r(&["ssn"])],
        ),
        (
            "select array(select email from people)",
            vec![r(&["email"])],
        ),
        (
            "select upper(x) from (select email as x from people) s",
            vec![r(&["email"])],
        ),
        ("select upper(contact) from contacts", vec![r(&["email"])]),
        (
            "select v.value from people p, jsonb_each_text(to_jsonb(p)) v",
            vec![every_people_column()],
        ),
        ("select * from people p, jsonb_each_text(to_jsonb(p))", {
            let mut v = ["id", "name", "email", "card", "ssn", "note"]
                .map(p)
                .to_vec();
            v.push(every_people_column());
            v.push(every_people_column());
            v
        }),
        (
            "select u from people, unnest(array[email]) u",
            vec![r(&["email"])],
        ),
        (
            "select unnest(array[email]) from people",
            vec![r(&["email"])],
        ),
        (
            "select x from people, lateral (select upper(card) as x) s",
            vec![r(&["card"])],
        ),
        (
            "select t.a from people p, xmltable('/r' passing xmlelement(name r, p.email) columns a text path '.') t",
            vec![r(&["email"])],
        ),
        (
            "select j.e from people p, json_table(to_jsonb(p), '$' columns (e text path '$.email')) j",
            vec![every_people_column()],
        ),
        (
            "with recursive r(n, e) as (select 1, email from people union all select n + 1, e || 'x' from r where n < 3) select e from r",
            vec![r(&["email"])],
        ),
        (
            "with recursive r(e) as (select ''::text union all select card from people, r) select e from r",
            vec![r(&["card"])],
        ),
        ("select email from people order by 1", vec![p("email")]),
        (
            "select (select upper(email) from people where people.id = o.person_id) from orders o",
            vec![r(&["email"])],
        ),
        (
            "select x from people join orders using (id) cross join lateral (select people.ssn || orders.total as x) s",
            vec![L::derived(
                [col("people", "ssn"), col("orders", "total")],
                [],
            )],
        ),
        // Several sources: the union, revealing and not.
        (
            "select name || (email = 'x')::text from people",
            vec![L::derived(
                [col("people", "name")],
                [col("people", "email")],
            )],
        ),
        (
            "select case when email = 'x' then card else name end from people",
            vec![L::derived(
                [col("people", "card"), col("people", "name")],
                [col("people", "email")],
            )],
        ),
        (
            "select string_agg(name, ',' order by email) from people",
            vec![L::derived(
                [col("people", "name")],
                [col("people", "email")],
            )],
        ),
    ]);
}

#[test]
fn non_revealing_derivations() {
    check(&[
        ("select count(email) from people", vec![h(&["email"])]),
        (
            "select count(distinct card) from people",
            vec![h(&["card"])],
        ),
        ("select email is null from people", vec![h(&["email"])]),
        (
            "select email is not null and ssn is null from people",
            vec![h(&["email", "ssn"])],
        ),
        ("select length(card) from people", vec![h(&["card"])]),
        (
            "select char_length(email), octet_length(ssn) from people",
            vec![h(&["email"]), h(&["ssn"])],
        ),
        ("select email = 'x' from people", vec![h(&["email"])]),
        ("select email like 'a%' from people", vec![h(&["email"])]),
        ("select ssn in ('1', '2') from people", vec![h(&["ssn"])]),
        (
            "select card between '1' and '2' from people",
            vec![h(&["card"])],
        ),
        (
            "select email is distinct from name from people",
            vec![h(&["email", "name"])],
        ),
        ("select not (email ~ 'x') from people", vec![h(&["email"])]),
        (
            "select exists (select email from people)",
            vec![h(&["email"])],
        ),
        (
            "select email = any (select name from people) from people",
            vec![h(&["email", "name"])],
        ),
        (
            "select case when email = 'x' then 1 else 0 end from people",
            vec![h(&["email"])],
        ),
        (
            "select count(*) filter (where email = 'x') from people",
            vec![h(&["email"])],
        ),
        (
            "select length(upper(email)) from people",
            vec![h(&["email"])],
        ),
        (
            "select upper(length(email)::text) from people",
            vec![h(&["email"])],
        ),
        ("select email is json from people", vec![h(&["email"])]),
        (
            "select row_number() over (order by email) from people",
            vec![h(&["email"])],
        ),
        ("select count(*) from people", vec![L::Constant]),
        (
            "select 1, now(), $1, current_user from people",
            vec![L::Constant; 4],
        ),
        (
            "select count(*) from people where email = 'x'",
            vec![L::Constant],
        ),
        ("select 'x' union select 'y'", vec![L::Constant]),
    ]);
}

#[test]
fn what_cannot_be_worked_out_is_unknown() {
    check(&[
        ("select secret_fn(email) from people", vec![L::Unknown]),
        ("select secret_fn()", vec![L::Unknown]),
        ("select public.upper(email) from people", vec![L::Unknown]),
        (
            "select email operator(public.===) 'x' from people",
            vec![L::Unknown],
        ),
        (
            "select query_to_xml('select email from people', true, true, '')",
            vec![L::Unknown],
        ),
        (
            "select ts_stat('select to_tsvector(email) from people')",
            vec![L::Unknown],
        ),
        ("select x from mystery", vec![L::Unknown]),
        (
            "select m.x, p.email from mystery m, people p",
            vec![L::Unknown, p("email")],
        ),
        // An unqualified name with an unknown source at its level could be that source's.
        ("select email from people, mystery", vec![L::Unknown]),
        ("select m from mystery m", vec![L::Unknown]),
        ("select nosuchcolumn from people", vec![L::Unknown]),
        ("select x from loop_a", vec![L::Unknown]),
        ("select x from opaque", vec![L::Unknown]),
        ("select f from secret_rows() f(f text)", vec![L::Unknown]),
        (
            "select most_common_vals, histogram_bounds, attname from pg_stats",
            vec![L::Unknown, L::Unknown, L::Plain(col("pg_stats", "attname"))],
        ),
        (
            "select most_common_vals from pg_catalog.pg_stats",
            vec![L::Unknown],
        ),
        ("select row_to_json(s) from pg_stats s", vec![L::Unknown]),
        ("select row_to_json(m.*) from mystery m", vec![L::Unknown]),
        (
            "select p.email, count(m.*) from people p, mystery m",
            vec![p("email"), L::Unknown],
        ),
        // Both sources have `id`: PostgreSQL refuses it; the union is kept.
        (
            "select id from people, orders",
            vec![r(&[]).or_plain_union()],
        ),
    ]);
    for sql in [
        "select * from mystery",
        "select * from people, mystery",
        "select * from secret_rows()",
        "select * from jsonb_to_record('{}')",
        "execute p(1)",
        "fetch all from c",
        "call proc(1)",
    ] {
        assert_eq!(output(sql), Output::Unknown, "{sql}");
    }
}

impl L {
    /// `people.id` or `orders.id`: what an ambiguous `id` resolves to.
    fn or_plain_union(self) -> L {
        L::derived([col("people", "id"), col("orders", "id")], [])
    }
}

#[test]
fn more_query_shapes() {
    check(&[
        (
            "table people",
            ["id", "name", "email", "card", "ssn", "note"]
                .map(p)
                .to_vec(),
        ),
        (
            "select distinct on (email) name from people",
            vec![p("name")],
        ),
        (
            "select id from people full join orders using (id)",
            vec![L::derived([col("people", "id"), col("orders", "id")], [])],
        ),
        (
            "select x.id from (people join orders using (id)) as x",
            vec![p("id")],
        ),
        (
            "select j.id from people join orders using (id) as j",
            vec![p("id")],
        ),
        (
            "select first_value(email) over w from people window w as (order by id)",
            vec![r(&["email"])],
        ),
        (
            "select grouping(email) from people group by rollup(email)",
            vec![h(&["email"])],
        ),
        (
            "select xmlagg(xmlelement(name e, email)) from people",
            vec![r(&["email"])],
        ),
        (
            "select string_agg(distinct email, ',') from people",
            vec![r(&["email"])],
        ),
        (
            "select pg_catalog.upper(email) from people",
            vec![r(&["email"])],
        ),
        (
            "select email::text::varchar(3) from people",
            vec![r(&["email"])],
        ),
        (
            "select e from people, lateral unnest(array[email, card]) as e",
            vec![r(&["email", "card"])],
        ),
        (
            "select generate_series(1, 3) from people",
            vec![L::Constant],
        ),
        ("select g from generate_series(1, 3) g", vec![L::Constant]),
        (
            "select k.key from people p, jsonb_each(to_jsonb(p)) k",
            vec![every_people_column()],
        ),
        (
            "select t.* from people p, rows from (unnest(array[p.email]), generate_series(1, 2)) with ordinality as t",
            vec![r(&["email"]), L::Constant, L::Constant],
        ),
        (
            "select email from people p1 where p1.id = (select max(id) from people)",
            vec![p("email")],
        ),
        (
            "select c.contact, p.card from contacts c join people p using (id)",
            vec![p("email"), p("card")],
        ),
        (
            "select s.* from (select email, upper(card) as c from people) s",
            vec![p("email"), r(&["card"])],
        ),
    ]);
    check(&[
        (
            "select (p).* from people p",
            ["id", "name", "email", "card", "ssn", "note"]
                .map(p)
                .to_vec(),
        ),
        (
            "select (c).*, 1 from contacts c",
            vec![p("id"), p("email"), L::Constant],
        ),
        ("select * from people natural join orders", {
            let mut v = ["id", "name", "email", "card", "ssn", "note"]
                .map(p)
                .to_vec();
            v.push(L::Plain(col("orders", "person_id")));
            v.push(L::Plain(col("orders", "total")));
            v
        }),
    ]);
    assert_eq!(output("select (jsonb_each('{}')).*"), Output::Unknown);
    assert_eq!(
        output("select * from pg_input_error_info('x', 'int4')"),
        Output::Rows(vec![L::Constant; 4])
    );
    assert_eq!(
        output("select t.token from people p, ts_parse('default', p.note) t"),
        Output::Rows(vec![r(&["note"])])
    );
    assert_eq!(
        output("select * from (select email from people) s, mystery"),
        Output::Unknown
    );
}

#[test]
fn output_of_other_statements() {
    check(&[
        (
            "update people set note = 'x' returning email, note",
            vec![p("email"), p("note")],
        ),
        (
            "update people set note = email returning note",
            vec![r(&["note", "email"])],
        ),
        (
            "update people set note = email returning old.note, new.note",
            vec![p("note"), r(&["note", "email"])],
        ),
        ("delete from people returning ssn", vec![p("ssn")]),
        (
            "insert into notes select email from people returning n",
            vec![L::derived([col("notes", "n"), col("people", "email")], [])],
        ),
        (
            "insert into notes values ('x') returning n, upper(n)",
            vec![
                L::Plain(col("notes", "n")),
                L::derived([col("notes", "n")], []),
            ],
        ),
        (
            "copy (select upper(email) from people) to stdout",
            vec![r(&["email"])],
        ),
        ("copy people (card, id) to stdout", vec![p("card"), p("id")]),
        ("copy contacts to stdout", vec![p("id"), p("email")]),
        (
            "with x as (update people set note = email returning note) select upper(note) from x",
            vec![r(&["note", "email"])],
        ),
        (
            "merge into people t using notes s on false when not matched then insert (note) values (s.n) returning note",
            vec![L::derived([col("people", "note"), col("notes", "n")], [])],
        ),
    ]);

    let declare = one("declare c cursor for select email from people");
    assert_eq!(declare.output, Output::Rows(vec![p("email")]));
    assert_eq!(declare.deferred, Some(Deferred::Cursor("c".into())));
    let prepare = one("prepare q as select upper(ssn) from people where id = $1");
    assert_eq!(prepare.output, Output::Rows(vec![r(&["ssn"])]));
    assert_eq!(prepare.deferred, Some(Deferred::Prepared("q".into())));
    assert_eq!(
        output("explain select email from people"),
        Output::Constants
    );
    assert_eq!(output("show search_path"), Output::Constants);
    assert_eq!(
        output("insert into notes select email from people"),
        Output::NoRows
    );
    assert_eq!(output("create table t (a int)"), Output::NoRows);
    assert_eq!(output("copy notes from stdin"), Output::NoRows);
    assert_eq!(output("select email into t from people"), Output::NoRows);

    let several = lineage(
        "select email from people; select 1; select upper(ssn) from people",
        &Catalog,
    );
    let outputs: Vec<&Output> = several.iter().map(|s| &s.output).collect();
    assert_eq!(
        outputs,
        [
            &Output::Rows(vec![p("email")]),
            &Output::Rows(vec![L::Constant]),
            &Output::Rows(vec![r(&["ssn"])]),
        ]
    );
    assert_eq!(
        several[2].span.start,
        "select email from people; select 1; ".len()
    );
}

/// (table, column, lineage) of a stored value.
type Stored = (String, Option<String>, L);

fn stored(sql: &str) -> Vec<Stored> {
    one(sql)
        .stored
        .into_iter()
        .map(|s: StoredValue| (s.table, s.column, s.lineage))
        .collect()
}

fn to(table: &str, column: &str, lineage: L) -> Stored {
    (table.to_owned(), Some(column.to_owned()), lineage)
}

#[test]
fn writes_report_what_they_store() {
    let cases: Vec<(&str, Vec<Stored>)> = vec![
        (
            "update people set note = email",
            vec![to("people", "note", p("email"))],
        ),
        (
            "update people set note = upper(card), name = 'x' where id = 1",
            vec![to("people", "note", r(&["card"]))],
        ),
        (
            "update people p set note = o.total::text from orders o where o.person_id = p.id",
            vec![to(
                "people",
                "note",
                L::derived([col("orders", "total")], []),
            )],
        ),
        (
            "update people set (note, name) = (select email, card from people limit 1)",
            vec![
                to("people", "note", p("email")),
                to("people", "name", p("card")),
            ],
        ),
        (
            "update people set (note, name) = (ssn, 'x')",
            vec![to("people", "note", p("ssn"))],
        ),
        (
            "insert into notes(n) select email from people",
            vec![to("notes", "n", p("email"))],
        ),
        (
            "insert into notes select email from people",
            vec![to("notes", "n", p("email"))],
        ),
        (
            "insert into notes values ('a'), ((select ssn from people limit 1))",
            vec![to("notes", "n", r(&["ssn"]))],
        ),
        ("insert into notes values ('a')", vec![]),
        (
            "insert into people (id, note) values (1, 'x') on conflict (id) do update set note = excluded.email",
            // `email` was not inserted: excluded.email is its default, a constant.
            vec![],
        ),
        (
            "insert into people (id, note) select id, 'x' from people on conflict (id) do update set note = excluded.id::text || people.ssn",
            vec![
                to("people", "id", p("id")),
                to("people", "note", r(&["id", "ssn"])),
            ],
        ),
        (
            "insert into people (id, email) select id, card from people on conflict (id) do update set note = excluded.email",
            vec![
                to("people", "id", p("id")),
                to("people", "email", p("card")),
                to("people", "note", p("card")),
            ],
        ),
        (
            "merge into people t using people s on t.id = s.id when matched then update set note = s.email",
            vec![to("people", "note", p("email"))],
        ),
        (
            "merge into notes t using people s on false when not matched then insert values (s.ssn)",
            vec![to("notes", "n", p("ssn"))],
        ),
        (
            "with s as (select email from people) insert into notes select * from s",
            vec![to("notes", "n", p("email"))],
        ),
        (
            "with w as (insert into notes select card from people returning n) select 1",
            vec![to("notes", "n", p("card"))],
        ),
        (
            "create table t as select email, 1 as one from people",
            vec![to("t", "email", p("email"))],
        ),
        (
            "create table t (e) as select email from people",
            vec![to("t", "e", p("email"))],
        ),
        (
            "select upper(email) as e into t from people",
            vec![to("t", "e", r(&["email"]))],
        ),
        (
            "explain analyze update people set note = ssn",
            vec![to("people", "note", p("ssn"))],
        ),
        ("explain update people set note = ssn", vec![]),
        ("delete from people where email = 'x'", vec![]),
        // Unknown target columns: the value is still reported.
        (
            "insert into mystery select email from people",
            vec![("mystery".into(), None, p("email"))],
        ),
        (
            "insert into notes select * from mystery",
            vec![("notes".into(), None, L::Unknown)],
        ),
        (
            "insert into notes(n) select secret_fn()",
            vec![to("notes", "n", L::Unknown)],
        ),
    ];
    let mut failures = Vec::new();
    for (sql, expected) in cases {
        let got = stored(sql);
        if got != expected {
            failures.push(format!(
                "{sql}\n  expected {expected:?}\n  got      {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn channels(sql: &str) -> Vec<SideChannel> {
    one(sql).side_channels
}

fn via(function: &str, lineage: L) -> SideChannel {
    SideChannel {
        function: function.into(),
        lineage,
    }
}

#[test]
fn side_channels_report_what_they_send() {
    let cases: Vec<(&str, Vec<SideChannel>)> = vec![
        (
            "select pg_notify('ch', email) from people",
            vec![via("pg_notify", p("email"))],
        ),
        (
            "select 1 from people where pg_notify('ch', upper(ssn)) is null",
            vec![via("pg_notify", r(&["ssn"]))],
        ),
        (
            "select count(*) from people group by pg_notify(card, '')",
            vec![via("pg_notify", p("card"))],
        ),
        (
            "with x as (select pg_notify('c', email) from people) select * from x",
            vec![via("pg_notify", p("email"))],
        ),
        (
            "select (select pg_notify('c', p.ssn)) from people p",
            vec![via("pg_notify", p("ssn"))],
        ),
        (
            "select set_config('my.x', email, false) from people",
            vec![via("set_config", p("email"))],
        ),
        (
            "select pg_notify('ch', 'constant')",
            vec![via("pg_notify", L::Constant)],
        ),
        (
            "update people set note = 'x' where pg_notify('c', ssn) is null",
            vec![via("pg_notify", p("ssn"))],
        ),
        (
            "select lo_from_bytea(0, card::bytea) from people",
            vec![via("lo_from_bytea", r(&["card"]))],
        ),
        ("notify ch, 'payload'", vec![]),
        // A view's body runs when it is read.
        (
            "select x from notifying",
            vec![via("pg_notify", p("email"))],
        ),
        ("select email from people", vec![]),
        // Stored bodies do not run now.
        (
            "create view v as select pg_notify('c', email) from people",
            vec![],
        ),
    ];
    let mut failures = Vec::new();
    for (sql, expected) in cases {
        let got = channels(sql);
        if got != expected {
            failures.push(format!(
                "{sql}\n  expected {expected:?}\n  got      {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The pg_notify output column itself is void.
    assert_eq!(
        output("select pg_notify('ch', email) from people"),
        Output::Rows(vec![L::Constant])
    );
}

#[test]
fn the_final_sweep_reports_what_the_analysis_did_not_reach() {
    // A write inside a statement this module does not model (here, `DO` cannot hold one as
    // a node, so a rule action stands for "not modelled"): nothing runs, nothing reported.
    assert!(
        stored(
            "create rule r as on insert to notes do also insert into people (note) values (new.n)"
        )
        .is_empty()
    );
    // Over the work budget: output Unknown, the write and the side channel still reported.
    let sql = "with x as (select pg_notify('c', ssn) from people) \
               update people set note = coalesce(email, email, email, email, email) \
               returning note";
    let all = super::analyse(sql, &Catalog, Some(6));
    assert_eq!(all.len(), 1);
    let bounded = &all[0];
    assert!(bounded.incomplete.is_some(), "{bounded:?}");
    assert_eq!(bounded.output, Output::Unknown);
    assert!(
        bounded
            .stored
            .iter()
            .any(|s| s.table == "people" && s.lineage == L::Unknown),
        "{bounded:?}"
    );
    assert_eq!(bounded.side_channels, vec![via("pg_notify", L::Unknown)]);
    // With the budget the statement's size gives it, the same statement is complete.
    let complete = one(sql);
    assert_eq!(complete.output, Output::Rows(vec![r(&["note", "email"])]));
    assert_eq!(complete.side_channels, vec![via("pg_notify", p("ssn"))]);
}

#[test]
fn a_bulk_insert_is_analysed_whole() {
    let rows = vec!["('x')"; 100_000].join(", ");
    let bulk = one(&format!(
        "insert into notes values {rows}, ((select ssn from people))"
    ));
    assert_eq!(
        bulk.stored,
        vec![StoredValue {
            schema: None,
            table: "notes".into(),
            column: Some("n".into()),
            lineage: r(&["ssn"]),
        }]
    );
}

#[test]
fn widths_are_checked_against_the_server() {
    let rows = Output::Rows(vec![p("email"), L::Constant]);
    assert_eq!(rows.for_fields(2), vec![p("email"), L::Constant]);
    assert_eq!(rows.for_fields(3), vec![L::Unknown; 3]);
    assert_eq!(Output::Unknown.for_fields(2), vec![L::Unknown; 2]);
    assert_eq!(Output::Constants.for_fields(2), vec![L::Constant; 2]);
    assert_eq!(Output::NoRows.for_fields(1), vec![L::Unknown]);
}

#[test]
fn lineage_helpers() {
    assert!(p("email").is_revealing());
    assert!(L::Unknown.is_revealing());
    assert!(!L::Constant.is_revealing());
    assert!(!h(&["email"]).is_revealing());
    let mixed = L::derived([col("people", "name")], [col("people", "email")]);
    assert!(mixed.is_revealing());
    assert_eq!(mixed.revealed_sources(), vec![&col("people", "name")]);
    assert_eq!(mixed.sources().len(), 2);
    // A column both revealed and hidden is revealed.
    assert_eq!(
        L::derived([col("people", "email")], [col("people", "email")]),
        r(&["email"])
    );
    assert_eq!(L::derived([], []), L::Constant);
}

#[test]
fn unparsable_text_is_one_unknown_statement() {
    let all = lineage("select from where", &Catalog);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].output, Output::Unknown);
    assert!(all[0].incomplete.is_some());
    assert!(lineage("", &Catalog).is_empty());
    assert!(lineage("-- nothing", &Catalog).is_empty());
}

#[test]
fn deep_nesting_is_bounded() {
    for depth in [10, 30, 45, 60, 80, 90, 95, 99, 100, 1_000, 10_000] {
        for sql in [
            format!(
                "select {}email{} from people",
                "upper(".repeat(depth),
                ")".repeat(depth)
            ),
            format!("select {}1{}", "(select ".repeat(depth), ")".repeat(depth)),
            format!(
                "select {}email{} from people",
                "(select ".repeat(depth),
                ")".repeat(depth)
            ),
            format!(
                "select 1 from {}people{}",
                "(select * from ".repeat(depth),
                ") s".repeat(depth)
            ),
            format!(
                "select {}email{} from people",
                "case when true then ".repeat(depth),
                " end".repeat(depth)
            ),
            format!(
                "select {}email{} from people",
                "row_to_json(row(".repeat(depth),
                "))".repeat(depth)
            ),
            format!("select email{} from people", " || email".repeat(depth)),
            format!(
                "with {} select 1",
                (0..depth.min(2_000))
                    .map(|i| format!("c{i} as (select 1)"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ] {
            let all = lineage(&sql, &Catalog);
            assert!(!all.is_empty(), "{}", &sql[..40]);
        }
    }
}

/// Statements of the PostgreSQL regression suite, as JSON lines with a "sql" field.
fn corpus() -> Vec<String> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/pg-regress-statements.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("corpus missing at {}: {e}", path.display()));
    let statements: Vec<String> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|case| case["sql"].as_str().map(str::to_owned))
        .collect();
    assert!(statements.len() > 40_000, "{}", statements.len());
    statements
}

fn check_well_formed(sql: &str, all: &[StatementLineage]) {
    for statement in all {
        assert!(statement.span.end <= sql.len(), "{sql:?}");
        if statement.incomplete.is_some() && statement.incomplete.as_deref() != Some("") {
            assert!(
                matches!(statement.output, Output::Unknown),
                "{sql:?}: {statement:?}"
            );
        }
        if let Output::Rows(columns) = &statement.output {
            for column in columns {
                if let L::Derived { revealed, hidden } = column {
                    assert!(!revealed.is_empty() || !hidden.is_empty(), "{sql:?}");
                    assert!(revealed.is_disjoint(hidden), "{sql:?}");
                }
            }
        }
    }
}

/// Every statement of the regression corpus, with no relations known and with the fake
/// catalog: no panic, and the run finishes.
#[test]
fn the_regression_corpus_does_not_break_it() {
    let statements = corpus();
    let mut rows = 0;
    for sql in &statements {
        let none = lineage(sql, &NoRelations);
        check_well_formed(sql, &none);
        let some = lineage(sql, &Catalog);
        check_well_formed(sql, &some);
        rows += some
            .iter()
            .filter(|s| matches!(s.output, Output::Rows(_)))
            .count();
    }
    // Most of the corpus is queries; a large share must have been described.
    assert!(rows > 5_000, "{rows}");
}

/// Mangled corpus statements (cut, spliced, with tokens dropped): no panic.
#[test]
fn mangled_statements_do_not_break_it() {
    let statements = corpus();
    let mut rng = StdRng::seed_from_u64(0x11ea6e);
    for _ in 0..3_000 {
        let a = &statements[rng.random_range(0..statements.len())];
        let b = &statements[rng.random_range(0..statements.len())];
        let cut = |s: &str, at: usize| -> String { s.chars().take(at).collect() };
        let variants = [
            cut(a, rng.random_range(0..=a.chars().count())),
            format!("{} {}", cut(a, a.chars().count() / 2), b),
            a.split_whitespace()
                .filter(|_| rng.random_range(0..8) != 0)
                .collect::<Vec<_>>()
                .join(" "),
            format!("select * from ({a}) s"),
            format!("with x as ({a}) select * from x"),
        ];
        for sql in &variants {
            let all = lineage(sql, &Catalog);
            check_well_formed(sql, &all);
        }
    }
}

#[test]
fn fetch_and_execute_name_what_they_read() {
    let found = super::lineage(
        "declare c cursor for select 1; fetch 5 from c; move c; execute p(1)",
        &super::NoRelations,
    );
    let reads: Vec<Option<super::Deferred>> = found.iter().map(|s| s.reads.clone()).collect();
    assert_eq!(
        reads,
        [
            None,
            Some(super::Deferred::Cursor("c".into())),
            None,
            Some(super::Deferred::Prepared("p".into())),
        ]
    );
}
