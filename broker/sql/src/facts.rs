//! What a statement does, said without reference to any SQL dialect.
//!
//! A dialect engine (today [`crate::postgres`], later a MySQL one built on `sqlparser`) turns
//! SQL text into one [`StatementFacts`] per statement; [`crate::guard`] decides on facts alone
//! and never sees a parse tree. Everything the guard may need to refuse a statement therefore
//! has to be a field here: the guard cannot look again.
//!
//! Invariant relied on by the guard: a dialect engine never leaves a statement it could not
//! understand with a class other than [`StatementClass::Unknown`]; "I could not tell" is a
//! fact, and guarded profiles refuse it.

use std::fmt;
use std::ops::Range;

/// The broad kind of a statement, the unit in which profiles and rules speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatementClass {
    /// Reads data and nothing else (`SELECT`, `EXPLAIN` without `ANALYZE`, cursors, `FETCH`).
    Read,
    /// Changes rows: `INSERT`, `UPDATE`, `DELETE`, `MERGE`, `TRUNCATE`, `LOCK`, a `SELECT` that
    /// locks rows, calls `nextval`, or carries a data-modifying `WITH`.
    Write,
    /// Changes the schema: `CREATE`/`ALTER`/`DROP` of schema objects, `COMMENT`,
    /// `SELECT ... INTO`, `CREATE TABLE AS`, `REFRESH MATERIALIZED VIEW`.
    Ddl,
    /// Changes who may do what: `GRANT`, `REVOKE`, roles, ownership, policies, user mappings.
    Dcl,
    /// Runs the server rather than the data: `VACUUM`, `ANALYZE`, `CLUSTER`, `REINDEX`,
    /// `CHECKPOINT`, `LOAD`, `ALTER SYSTEM`, databases, tablespaces, extensions, languages,
    /// replication, and `SELECT`s of server/file functions (`pg_terminate_backend`, ...).
    Admin,
    /// Runs code the guard cannot see into: `DO`, `CALL`.
    Procedural,
    /// Transaction control: `BEGIN`, `COMMIT`, `ROLLBACK`, savepoints, two-phase commit.
    Transaction,
    /// Session state: `SET`, `RESET`, `SHOW`, `DISCARD`, `LISTEN`/`UNLISTEN`/`NOTIFY`,
    /// `PREPARE`/`EXECUTE`/`DEALLOCATE`, `CLOSE`, `SET CONSTRAINTS`, `set_config(...)`.
    Session,
    /// `COPY`, with the direction and target in [`StatementFacts::copy`].
    Copy,
    /// Not understood: the text does not parse ([`StatementFacts::parse_error`] says why).
    Unknown,
}

impl StatementClass {
    /// Every class, in declaration order.
    pub const ALL: [StatementClass; 10] = [
        StatementClass::Read,
        StatementClass::Write,
        StatementClass::Ddl,
        StatementClass::Dcl,
        StatementClass::Admin,
        StatementClass::Procedural,
        StatementClass::Transaction,
        StatementClass::Session,
        StatementClass::Copy,
        StatementClass::Unknown,
    ];

    /// The lower-case name used in configuration and audit events (`read`, `write`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            StatementClass::Read => "read",
            StatementClass::Write => "write",
            StatementClass::Ddl => "ddl",
            StatementClass::Dcl => "dcl",
            StatementClass::Admin => "admin",
            StatementClass::Procedural => "procedural",
            StatementClass::Transaction => "transaction",
            StatementClass::Session => "session",
            StatementClass::Copy => "copy",
            StatementClass::Unknown => "unknown",
        }
    }

    /// The class named `name` (case-insensitive), as written in configuration.
    pub fn from_name(name: &str) -> Option<StatementClass> {
        StatementClass::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

impl fmt::Display for StatementClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A relation named by a statement, as written (the schema only when it was written).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableRef {
    /// The schema, when the statement qualified the name; `None` means "found on the
    /// session's `search_path`", which the classifier cannot know.
    pub schema: Option<String>,
    /// The relation name, case as the server sees it (unquoted names folded to lower case).
    pub name: String,
}

impl TableRef {
    /// A reference, optionally schema-qualified.
    pub fn new(schema: Option<&str>, name: &str) -> TableRef {
        TableRef {
            schema: schema.filter(|s| !s.is_empty()).map(str::to_owned),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The shape of the row filter of an `UPDATE`/`DELETE` (or of the join of a `MERGE` that
/// updates or deletes), ordered from weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WhereFacts {
    /// No `WHERE` at all: every row.
    Missing,
    /// A `WHERE` that may be true for every row: some branch that can make it true does not
    /// refer to the target's row (`... OR 1 = 1`, `WHERE $1`, `WHERE now() > $1`, `... OR
    /// EXISTS (SELECT 1)`), or is a row tautology (`x = x`, `x LIKE '%'`). Constants are never
    /// evaluated (decision 37).
    TriviallyTrue,
    /// A filter that depends on the rows (or one the classifier could not see through).
    Present,
}

/// One table a statement writes to, with the filter that limits the write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFacts {
    /// `INSERT`, `UPDATE`, `DELETE`, `MERGE`, `TRUNCATE` or `COPY` (for `COPY ... FROM`).
    pub command: String,
    /// The target.
    pub table: TableRef,
    /// For `UPDATE`/`DELETE`/`MERGE` (matched actions): the filter; `TRUNCATE` is
    /// `Some(Missing)`; `INSERT`, `COPY FROM` and insert-only `MERGE` are `None`.
    pub filter: Option<WhereFacts>,
}

/// Which way a `COPY` moves rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CopyDirection {
    /// `COPY ... TO`: rows leave the database.
    To,
    /// `COPY ... FROM`: rows enter the database.
    From,
}

/// Where a `COPY` reads or writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CopyTarget {
    /// `STDIN`/`STDOUT`: through the client connection (and so through Sluice).
    Stdio,
    /// A file on the database server.
    File(String),
    /// A shell command run on the database server.
    Program(String),
}

/// The facts of a `COPY`.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyFacts {
    /// To or from the database.
    pub direction: CopyDirection,
    /// Client stream, server file, or server program.
    pub target: CopyTarget,
    /// For `COPY (query) TO`: the facts of the query, which may itself write
    /// (`COPY (DELETE ... RETURNING *) TO STDOUT`).
    pub query: Option<Box<StatementFacts>>,
}

/// A statement that defines, runs or forgets a SQL-level prepared statement. The engine keeps
/// the facts of every `PREPARE` it let through, by name, so that an `EXECUTE` is decided on
/// what it runs (see [`crate::guard::PreparedLookup`]).
#[derive(Debug, Clone, PartialEq)]
pub enum PreparedRef {
    /// `PREPARE name AS statement`: the facts of `statement`.
    Prepare {
        /// The prepared statement's name.
        name: String,
        /// What `EXECUTE name` will run.
        statement: Box<StatementFacts>,
    },
    /// `EXECUTE name` (also inside `EXPLAIN ANALYZE` or `CREATE TABLE AS`).
    Execute {
        /// The prepared statement's name.
        name: String,
    },
    /// `DEALLOCATE name`, or `DEALLOCATE ALL` (`None`).
    Deallocate {
        /// The name, `None` for `ALL`.
        name: Option<String>,
    },
}

/// Everything the guard knows about one statement.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementFacts {
    /// The broad kind, after escalation: a `SELECT` that calls `pg_terminate_backend` is
    /// `Admin`, one that locks rows or calls `nextval` is `Write`, `SELECT ... INTO` is `Ddl`.
    pub class: StatementClass,
    /// Upper-case command tag as PostgreSQL reports it: `SELECT`, `UPDATE`, `CREATE TABLE`,
    /// `DROP TABLE`, `DO`, `SET`, ... (`EXPLAIN ANALYZE x` carries the tag of `x`).
    pub command: String,
    /// Every relation touched, in order of first appearance, including subqueries, CTE
    /// bodies, DML targets and DDL objects; CTE names are not tables and are left out.
    pub tables: Vec<TableRef>,
    /// Every schema named explicitly: qualifiers of tables and functions, and the object of
    /// `CREATE`/`DROP`/`ALTER SCHEMA`, `GRANT ... IN SCHEMA`.
    pub schemas: Vec<String>,
    /// Every function called, as the server resolves its name (unquoted names are lower
    /// case; a quoted `"PG_READ_FILE"` is a different function and stays as written),
    /// schema-qualified when written (`pg_catalog.set_config`).
    pub functions: Vec<String>,
    /// The subset of `functions` that the statement runs and that have side effects beyond
    /// reading rows (see [`side_effect_kind`]).
    pub side_effect_functions: Vec<String>,
    /// The weakest filter of any `UPDATE`/`DELETE`/`MERGE` the statement runs (including in
    /// a CTE); `None` when it runs none.
    pub where_clause: Option<WhereFacts>,
    /// Every table the statement writes to, with its filter.
    pub writes: Vec<WriteFacts>,
    /// `WITH x AS (DELETE/UPDATE/INSERT/MERGE ...) ...`.
    pub modifying_cte: bool,
    /// `EXPLAIN ANALYZE` of a statement that writes (it runs it).
    pub explain_analyze_write: bool,
    /// `SELECT ... INTO new_table` (creates a table).
    pub select_into: bool,
    /// `COPY` details; `None` for other statements.
    pub copy: Option<CopyFacts>,
    /// `PREPARE`/`EXECUTE`/`DEALLOCATE` details; `None` for other statements.
    pub prepared: Option<PreparedRef>,
    /// `SET [LOCAL|SESSION] ROLE`, `SET SESSION AUTHORIZATION`, their `RESET`s, and
    /// `set_config('role'|'session_authorization', ...)`.
    pub role_change: bool,
    /// Anything that may make a read-only session writable: `SET`/`RESET` of
    /// `default_transaction_read_only`/`transaction_read_only` (other than to a true
    /// constant), `SET [SESSION CHARACTERISTICS AS] TRANSACTION READ WRITE`,
    /// `BEGIN`/`START TRANSACTION READ WRITE`, `RESET ALL`, `DISCARD ALL`, and `set_config` of
    /// those settings.
    pub read_only_change: bool,
    /// A change to how the server tokenizes later statements: `SET client_encoding` (or
    /// `SET NAMES`) to anything but UTF-8, `SET standard_conforming_strings` off,
    /// `SET backslash_quote`. After one, the server and the classifier could read the same
    /// bytes as different statements, so guarded profiles refuse it.
    pub lexer_change: bool,
    /// Settings a `SET`/`RESET`/`set_config` changes that are not on the allow-list of
    /// harmless session settings ([`harmless_setting`]), lower-cased; `(computed)` for a
    /// `set_config` whose name is not a constant. Guarded profiles refuse them: they can switch
    /// off the server's own protections (`session_replication_role`,
    /// `allow_system_table_mods`), silence its audit logging (`log_*`), change how later
    /// statements are judged (`transform_null_equals`) or feed row-level security.
    pub unlisted_settings: Vec<String>,
    /// `SELECT ... FOR UPDATE/SHARE/...`, `LOCK TABLE`.
    pub locking: bool,
    /// Byte range of this statement in the text given to the classifier.
    pub span: Range<usize>,
    /// The statement text with comments removed and whitespace runs collapsed to one space;
    /// what rule `pattern`s are matched against. For unparsable text, the whole text with
    /// whitespace collapsed (comments cannot be told apart without a parse).
    pub normalized: String,
    /// PostgreSQL's (or the dialect's) message when `class` is `Unknown` because the text
    /// does not parse.
    pub parse_error: Option<String>,
}

impl StatementFacts {
    /// Facts with nothing known beyond class and command; the starting point of every engine.
    pub fn new(class: StatementClass, command: impl Into<String>, span: Range<usize>) -> Self {
        StatementFacts {
            class,
            command: command.into(),
            tables: Vec::new(),
            schemas: Vec::new(),
            functions: Vec::new(),
            side_effect_functions: Vec::new(),
            where_clause: None,
            writes: Vec::new(),
            modifying_cte: false,
            explain_analyze_write: false,
            select_into: false,
            copy: None,
            prepared: None,
            role_change: false,
            unlisted_settings: Vec::new(),
            read_only_change: false,
            lexer_change: false,
            locking: false,
            span,
            normalized: String::new(),
            parse_error: None,
        }
    }

    /// The facts of text that could not be understood.
    pub fn unknown(span: Range<usize>, parse_error: impl Into<String>) -> Self {
        let mut facts = StatementFacts::new(StatementClass::Unknown, "UNKNOWN", span);
        facts.parse_error = Some(parse_error.into());
        facts
    }

    /// Whether running the statement changes data, the schema, privileges or the server
    /// (as far as the classifier can see).
    pub fn modifies(&self) -> bool {
        !self.writes.is_empty()
            || self.select_into
            || matches!(
                self.class,
                StatementClass::Write
                    | StatementClass::Ddl
                    | StatementClass::Dcl
                    | StatementClass::Admin
                    | StatementClass::Procedural
            )
    }
}

/// Why a built-in function is not a plain read. The guard allows the first two kinds under
/// `guarded-write` and none under `read-only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SideEffectKind {
    /// `nextval`, `setval`: sequences, which `INSERT`s into serial columns need.
    Sequence,
    /// Advisory locks and `pg_notify`: coordination between sessions, no data change.
    Coordination,
    /// `set_config`: the function form of `SET` (including `SET ROLE`).
    Config,
    /// Writes to large objects (`lo_unlink`, `lo_create`, `lo_put`, `lowrite`, ...).
    LargeObject,
    /// Server files: `pg_read_file`, `pg_ls_dir`, `lo_import`, `lo_export`, adminpack.
    File,
    /// SQL the guard cannot see: sent elsewhere (`dblink*`) or run from a string
    /// (`query_to_xml*`, `ts_stat`, `ts_rewrite`).
    Remote,
    /// The server itself: signalling backends, configuration reloads, WAL, backups,
    /// replication slots and origins, statistics resets.
    Server,
}

impl SideEffectKind {
    /// The class a `SELECT` calling such a function is escalated to.
    pub fn class(self) -> StatementClass {
        match self {
            SideEffectKind::Sequence | SideEffectKind::LargeObject => StatementClass::Write,
            SideEffectKind::Coordination | SideEffectKind::Config => StatementClass::Session,
            SideEffectKind::File | SideEffectKind::Remote | SideEffectKind::Server => {
                StatementClass::Admin
            }
        }
    }
}

/// Exact names of built-in functions with side effects, and their kinds.
const SIDE_EFFECT_FUNCTIONS: &[(&str, SideEffectKind)] = &[
    ("nextval", SideEffectKind::Sequence),
    ("setval", SideEffectKind::Sequence),
    ("pg_notify", SideEffectKind::Coordination),
    ("set_config", SideEffectKind::Config),
    ("lo_unlink", SideEffectKind::LargeObject),
    ("lo_create", SideEffectKind::LargeObject),
    ("lo_creat", SideEffectKind::LargeObject),
    ("lo_from_bytea", SideEffectKind::LargeObject),
    ("lo_put", SideEffectKind::LargeObject),
    ("lo_truncate", SideEffectKind::LargeObject),
    ("lo_truncate64", SideEffectKind::LargeObject),
    ("lowrite", SideEffectKind::LargeObject),
    // Run the SQL text they are given, which the guard never sees.
    ("query_to_xml", SideEffectKind::Remote),
    ("query_to_xmlschema", SideEffectKind::Remote),
    ("query_to_xml_and_xmlschema", SideEffectKind::Remote),
    ("ts_stat", SideEffectKind::Remote),
    ("ts_rewrite", SideEffectKind::Remote),
    ("lo_import", SideEffectKind::File),
    ("lo_export", SideEffectKind::File),
    ("pg_read_file", SideEffectKind::File),
    ("pg_read_binary_file", SideEffectKind::File),
    ("pg_stat_file", SideEffectKind::File),
    ("pg_logdir_ls", SideEffectKind::File),
    ("pg_cancel_backend", SideEffectKind::Server),
    ("pg_terminate_backend", SideEffectKind::Server),
    ("pg_reload_conf", SideEffectKind::Server),
    ("pg_rotate_logfile", SideEffectKind::Server),
    ("pg_promote", SideEffectKind::Server),
    ("pg_log_backend_memory_contexts", SideEffectKind::Server),
    ("pg_log_standby_snapshot", SideEffectKind::Server),
    ("pg_switch_wal", SideEffectKind::Server),
    ("pg_switch_xlog", SideEffectKind::Server),
    ("pg_create_restore_point", SideEffectKind::Server),
    ("pg_backup_start", SideEffectKind::Server),
    ("pg_backup_stop", SideEffectKind::Server),
    ("pg_start_backup", SideEffectKind::Server),
    ("pg_stop_backup", SideEffectKind::Server),
    ("pg_wal_replay_pause", SideEffectKind::Server),
    ("pg_wal_replay_resume", SideEffectKind::Server),
    (
        "pg_create_physical_replication_slot",
        SideEffectKind::Server,
    ),
    ("pg_create_logical_replication_slot", SideEffectKind::Server),
    ("pg_drop_replication_slot", SideEffectKind::Server),
    ("pg_copy_physical_replication_slot", SideEffectKind::Server),
    ("pg_copy_logical_replication_slot", SideEffectKind::Server),
    ("pg_replication_slot_advance", SideEffectKind::Server),
    ("pg_logical_slot_get_changes", SideEffectKind::Server),
    ("pg_logical_slot_get_binary_changes", SideEffectKind::Server),
    ("pg_logical_emit_message", SideEffectKind::Server),
    ("pg_sync_replication_slots", SideEffectKind::Server),
    ("pg_import_system_collations", SideEffectKind::Server),
    ("pg_set_relation_stats", SideEffectKind::Server),
    ("pg_clear_relation_stats", SideEffectKind::Server),
    ("pg_restore_relation_stats", SideEffectKind::Server),
    ("pg_set_attribute_stats", SideEffectKind::Server),
    ("pg_clear_attribute_stats", SideEffectKind::Server),
    ("pg_restore_attribute_stats", SideEffectKind::Server),
    ("pg_truncate_visibility_map", SideEffectKind::Server),
    // Rewrite index pages, even in a read-only transaction.
    ("brin_summarize_new_values", SideEffectKind::Server),
    ("brin_summarize_range", SideEffectKind::Server),
    ("brin_desummarize_range", SideEffectKind::Server),
    ("gin_clean_pending_list", SideEffectKind::Server),
];

/// Name prefixes of families of built-in or common-extension functions with side effects.
const SIDE_EFFECT_PREFIXES: &[(&str, SideEffectKind)] = &[
    ("pg_advisory_", SideEffectKind::Coordination),
    ("pg_try_advisory_", SideEffectKind::Coordination),
    ("pg_ls_", SideEffectKind::File),
    ("pg_file_", SideEffectKind::File),
    ("dblink", SideEffectKind::Remote),
    ("pg_stat_reset", SideEffectKind::Server),
    ("pg_stat_statements_reset", SideEffectKind::Server),
    ("pg_replication_origin_", SideEffectKind::Server),
    ("binary_upgrade_", SideEffectKind::Server),
];

/// Session settings a guarded role may change: presentation, time zones and locales, timeouts,
/// memory and planner knobs, transaction modes. Settings with rules of their own are listed
/// too and judged by those rules (`role`, `session_authorization`, the read-only and lexer
/// settings). Anything else, custom `app.*` settings included, is refused under guarded
/// profiles; `docs/guardrails.md` lists this table.
const HARMLESS_SETTINGS: &[&str] = &[
    "application_name",
    "search_path",
    "client_min_messages",
    "datestyle",
    "intervalstyle",
    "timezone",
    "extra_float_digits",
    "bytea_output",
    "xmlbinary",
    "xmloption",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "default_text_search_config",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",
    "transaction_timeout",
    "work_mem",
    "hash_mem_multiplier",
    "maintenance_work_mem",
    "temp_buffers",
    "default_transaction_isolation",
    "transaction_isolation",
    "default_transaction_deferrable",
    "transaction_deferrable",
    "cursor_tuple_fraction",
    "constraint_exclusion",
    "from_collapse_limit",
    "join_collapse_limit",
    "plan_cache_mode",
    "default_statistics_target",
    "random_page_cost",
    "seq_page_cost",
    "cpu_tuple_cost",
    "cpu_index_tuple_cost",
    "cpu_operator_cost",
    "effective_cache_size",
    "effective_io_concurrency",
    "parallel_setup_cost",
    "parallel_tuple_cost",
    "min_parallel_table_scan_size",
    "min_parallel_index_scan_size",
    "max_parallel_workers_per_gather",
    "parallel_leader_participation",
    "quote_all_identifiers",
    "synchronize_seqscans",
    "gin_fuzzy_search_limit",
    // Judged by their own rules.
    "role",
    "session_authorization",
    "default_transaction_read_only",
    "transaction_read_only",
    "client_encoding",
    "standard_conforming_strings",
    "backslash_quote",
];

/// Families of harmless planner settings, by prefix.
const HARMLESS_SETTING_PREFIXES: &[&str] = &["enable_", "geqo", "jit"];

/// Whether a guarded role may change the session setting `name` (lower-cased).
pub fn harmless_setting(name: &str) -> bool {
    HARMLESS_SETTINGS.contains(&name)
        || HARMLESS_SETTING_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix) && !name.contains('.'))
}

/// Whether a function, named as in [`StatementFacts::functions`], has side effects, and which.
///
/// Only the last name component counts, whatever the schema: extensions such as `dblink` are
/// often installed in their own schema (`extensions.dblink_exec`), and a same-named function
/// elsewhere is more likely a wrapper than a coincidence. Names are compared exactly, as the
/// server resolves them: `"PG_READ_FILE"` (quoted, upper case) is not `pg_read_file`.
pub fn side_effect_kind(function: &str) -> Option<SideEffectKind> {
    let name = function.rsplit('.').next().unwrap_or(function);
    SIDE_EFFECT_FUNCTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .or_else(|| {
            SIDE_EFFECT_PREFIXES
                .iter()
                .find(|(prefix, _)| name.starts_with(prefix))
        })
        .map(|(_, kind)| *kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_effect_names_are_exact_and_schema_blind() {
        assert_eq!(
            side_effect_kind("pg_catalog.set_config"),
            Some(SideEffectKind::Config)
        );
        assert_eq!(
            side_effect_kind("extensions.dblink_exec"),
            Some(SideEffectKind::Remote)
        );
        assert_eq!(
            side_effect_kind("pg_advisory_xact_lock"),
            Some(SideEffectKind::Coordination)
        );
        assert_eq!(
            side_effect_kind("pg_catalog.query_to_xml"),
            Some(SideEffectKind::Remote)
        );
        assert_eq!(side_effect_kind("ts_stat"), Some(SideEffectKind::Remote));
        assert_eq!(side_effect_kind("PG_READ_FILE"), None);
        assert_eq!(side_effect_kind("lower"), None);
        assert_eq!(side_effect_kind("currval"), None);
    }

    #[test]
    fn class_names_round_trip() {
        for class in StatementClass::ALL {
            assert_eq!(StatementClass::from_name(class.as_str()), Some(class));
        }
        assert_eq!(
            StatementClass::from_name(" DDL "),
            Some(StatementClass::Ddl)
        );
        assert_eq!(StatementClass::from_name("nope"), None);
    }

    #[test]
    fn table_refs_display_as_written() {
        assert_eq!(TableRef::new(Some("public"), "t").to_string(), "public.t");
        assert_eq!(TableRef::new(Some(""), "t").to_string(), "t");
        assert_eq!(TableRef::new(None, "T").to_string(), "T");
    }
}
