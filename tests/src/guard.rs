//! The guard corpus harness: SQL statements with the decision each built-in guardrail profile
//! must reach (`tests/data/guard-corpus.jsonl`), run in one real psql session per profile
//! through `sluice connect`, with a canary fixture that proves a refused statement changed
//! nothing.
//!
//! ```text
//!  corpus ──▶ psql args: \warn @@entry N │ -c SQL (or -f script) │ \warn @@end N │ -f after.sql
//!                                                                   commit; session probe;
//!                                                                   \! fingerprint (superuser)
//!  psql stderr ──▶ per entry: its lines (a sluice refusal is `ERROR:  42501: sluice: ...`),
//!                  the session probe and the database fingerprint taken right after it
//! ```
//!
//! Everything is written to stderr (`\warn`, errors, notices, the fingerprint script), which is
//! unbuffered, so lines arrive in the order they happened and each belongs to exactly one entry.
//! The fingerprint after entry N-1 is the state before entry N: a refused entry must leave both
//! the database fingerprint and the session probe unchanged.

use crate::cli::Cli;
use crate::postgres::{ADMIN, Postgres, psql};
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A built-in guardrail profile, as the corpus names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// `read-only`.
    ReadOnly,
    /// `guarded-write`.
    GuardedWrite,
    /// `admin`.
    Admin,
}

impl Profile {
    /// In the order the corpus test runs them: `admin` last, since what it allows may change
    /// the database.
    pub const ALL: [Profile; 3] = [Profile::ReadOnly, Profile::GuardedWrite, Profile::Admin];

    /// The profile's name in configuration and in the corpus.
    pub fn name(self) -> &'static str {
        match self {
            Profile::ReadOnly => "read-only",
            Profile::GuardedWrite => "guarded-write",
            Profile::Admin => "admin",
        }
    }

    fn index(self) -> usize {
        match self {
            Profile::ReadOnly => 0,
            Profile::GuardedWrite => 1,
            Profile::Admin => 2,
        }
    }

    fn from_name(name: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the guard does with a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Not refused by sluice (PostgreSQL may still reject it).
    Allow,
    /// Refused by sluice: SQLSTATE 42501, message starting with `sluice:`.
    Block,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Allow => "allow",
            Decision::Block => "block",
        })
    }
}

/// One corpus line.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Line number in the corpus file, for messages.
    pub line: usize,
    /// The SQL text, sent as one simple Query (`psql -c`), or a psql script when `script`.
    /// `{dir}` stands for the canary's data directory.
    pub sql: String,
    /// Run as a psql script (`psql -f`): for meta-commands such as `\copy` and `\gexec`.
    pub script: bool,
    /// The expected decision per profile, indexed like [`Profile::ALL`].
    expect: [Decision; 3],
    /// Profiles under which the statement must leave the database unchanged even though the
    /// guard lets it through (PostgreSQL's own read-only session refuses it).
    pub no_effect: Vec<Profile>,
    /// Why the expectation is what it is.
    pub why: String,
}

impl Entry {
    /// The expected decision under `profile`.
    pub fn expect(&self, profile: Profile) -> Decision {
        self.expect[profile.index()]
    }

    /// The SQL with `{dir}` replaced.
    pub fn text(&self, dir: &Path) -> String {
        self.sql.replace("{dir}", &dir.display().to_string())
    }
}

/// Reads the corpus: JSON objects one per line; blank lines and lines starting with `#`
/// are comments. Panics with the file and line on any malformed entry or unknown key.
pub fn load_corpus(path: &Path) -> Vec<Entry> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read corpus {}: {e}", path.display()));
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let at = format!("{}:{line}", path.display());
        let value: serde_json::Value =
            serde_json::from_str(trimmed).unwrap_or_else(|e| panic!("{at}: not JSON: {e}"));
        let object = value
            .as_object()
            .unwrap_or_else(|| panic!("{at}: not a JSON object"));
        for key in object.keys() {
            let known = matches!(key.as_str(), "sql" | "why" | "script" | "no_effect")
                || Profile::from_name(key).is_some();
            assert!(known, "{at}: unknown key `{key}`");
        }
        let text = |key: &str| -> String {
            object
                .get(key)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_else(|| panic!("{at}: `{key}` must be a string"))
                .to_owned()
        };
        let decision = |profile: Profile| match text(profile.name()).as_str() {
            "allow" => Decision::Allow,
            "block" => Decision::Block,
            other => panic!("{at}: `{profile}` must be block or allow, not `{other}`"),
        };
        let no_effect = match object.get("no_effect") {
            None => Vec::new(),
            Some(list) => list
                .as_array()
                .unwrap_or_else(|| panic!("{at}: `no_effect` must be a list of profiles"))
                .iter()
                .map(|p| {
                    p.as_str()
                        .and_then(Profile::from_name)
                        .unwrap_or_else(|| panic!("{at}: `no_effect` holds an unknown profile"))
                })
                .collect(),
        };
        let entry = Entry {
            line,
            sql: text("sql"),
            script: object
                .get("script")
                .map(|s| {
                    s.as_bool()
                        .unwrap_or_else(|| panic!("{at}: `script` is a bool"))
                })
                .unwrap_or(false),
            expect: Profile::ALL.map(decision),
            no_effect,
            why: text("why"),
        };
        assert!(!entry.sql.trim().is_empty(), "{at}: empty `sql`");
        assert!(!entry.why.trim().is_empty(), "{at}: empty `why`");
        assert!(
            entry.script || !entry.sql.starts_with('\\'),
            "{at}: a psql meta-command needs \"script\": true"
        );
        entries.push(entry);
    }
    entries
}

/// Objects the corpus statements aim at, all owned by the application role so that nothing
/// but the guard stands between a statement and its effect.
const FIXTURE: &str = r"
SET ROLE app;
DROP TABLE IF EXISTS canary, scratch CASCADE;
DROP SEQUENCE IF EXISTS canary_seq;
DROP FUNCTION IF EXISTS canary_touch();
DROP PROCEDURE IF EXISTS corpus_proc();
CREATE TABLE canary (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL DEFAULT 0);
INSERT INTO canary SELECT g, 'canary ' || g, g FROM generate_series(1, 60) g;
CREATE TABLE scratch (id int PRIMARY KEY, note text);
CREATE SEQUENCE canary_seq;
CREATE VIEW canary_view AS SELECT * FROM canary;
CREATE FUNCTION canary_touch() RETURNS bigint LANGUAGE sql
  AS $$ WITH u AS (UPDATE canary SET n = n + 1 RETURNING 1) SELECT count(*) FROM u $$;
CREATE PROCEDURE corpus_proc() LANGUAGE sql AS $$ DELETE FROM canary $$;
RESET ROLE;
";

/// The fingerprint: for every relation outside the system schemas its kind, owner, privileges,
/// columns, row count and an md5 of its rows (sequences included); temporary relations by
/// name; then roles, role and database settings, schemas, functions, extensions, large
/// objects, prepared transactions and `ALTER SYSTEM` settings. One line.
const FINGERPRINT_FUNCTION: &str = r"
CREATE SCHEMA IF NOT EXISTS sluice_fp AUTHORIZATION sluice_admin;
REVOKE ALL ON SCHEMA sluice_fp FROM PUBLIC;
CREATE OR REPLACE FUNCTION sluice_fp.take() RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
  r record;
  acc text := '';
  h text;
BEGIN
  FOR r IN
    SELECT c.oid, n.nspname, c.oid::regclass::text AS name, c.relkind,
           pg_get_userbyid(c.relowner) AS owner, coalesce(c.relacl::text, '') AS acl,
           (SELECT string_agg(a.attname || ':' || format_type(a.atttypid, a.atttypmod), ','
                              ORDER BY a.attnum)
              FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS cols
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'sluice_fp')
       AND n.nspname !~ '^pg_toast'
     ORDER BY n.nspname, c.relname
  LOOP
    h := '';
    IF r.nspname ~ '^pg_temp' THEN
      h := 'temporary';
    ELSIF r.relkind = 'S' THEN
      EXECUTE format('SELECT last_value || '':'' || is_called FROM %s', r.oid::regclass)
        INTO h;
    ELSIF r.relkind IN ('r', 'p', 'm') THEN
      EXECUTE format('SELECT count(*) || '':'' || md5(coalesce(string_agg(t::text, '','' '
                     'ORDER BY t::text), '''')) FROM %s t', r.oid::regclass) INTO h;
    END IF;
    acc := acc || format('%s[%s %s %s](%s)=%s; ', r.name, r.relkind, r.owner, r.acl,
                         r.cols, h);
  END LOOP;
  acc := acc || 'roles=' || (SELECT string_agg(format('%s:%s%s%s%s', rolname, rolsuper,
      rolcreaterole, rolcreatedb, rolcanlogin), ',' ORDER BY rolname) FROM pg_roles) || '; ';
  acc := acc || 'members=' || coalesce((SELECT string_agg(roleid::regrole || '>' ||
      member::regrole, ',' ORDER BY 1) FROM pg_auth_members), '') || '; ';
  acc := acc || 'settings=' || coalesce((SELECT string_agg(setdatabase || '/' || setrole ||
      '/' || array_to_string(setconfig, '|'), ',' ORDER BY 1) FROM pg_db_role_setting), '')
      || '; ';
  acc := acc || 'databases=' || (SELECT string_agg(datname || ':' || coalesce(datacl::text,
      ''), ',' ORDER BY datname) FROM pg_database) || '; ';
  acc := acc || 'schemas=' || (SELECT string_agg(nspname || ':' || coalesce(nspacl::text,
      ''), ',' ORDER BY nspname) FROM pg_namespace WHERE nspname !~ '^pg_(toast|temp)')
      || '; ';
  acc := acc || 'functions=' || coalesce((SELECT string_agg(p.oid::regprocedure::text, ','
      ORDER BY 1) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'sluice_fp')), '') || '; ';
  acc := acc || 'extensions=' || (SELECT string_agg(extname, ',' ORDER BY extname)
      FROM pg_extension) || '; ';
  acc := acc || 'policies=' || (SELECT count(*) FROM pg_policy) || '; ';
  acc := acc || 'large_objects=' || (SELECT count(*) FROM pg_largeobject_metadata) || '; ';
  acc := acc || 'prepared_xacts=' || (SELECT count(*) FROM pg_prepared_xacts) || '; ';
  acc := acc || 'alter_system=' || coalesce((SELECT string_agg(name || '=' || setting, ','
      ORDER BY name) FROM pg_file_settings WHERE sourcefile LIKE '%auto.conf'), '');
  RETURN acc;
END
$f$;
";

/// What each entry is followed by, run in the corpus session: end any transaction the entry
/// left open (so its effect, if any, becomes visible), probe the session state, and take the
/// database fingerprint over the superuser's private socket.
const SESSION_PROBE: &str = r"select concat_ws(' | ', current_user, session_user,
  current_setting('default_transaction_read_only'), current_setting('client_encoding'),
  current_setting('standard_conforming_strings'),
  coalesce((select string_agg(name, ',' order by name) from pg_prepared_statements), '-'),
  coalesce((select string_agg(c, ',' order by c) from pg_listening_channels() c), '-'))
  as sluice_probe \gset";

/// The canary fixture, the fingerprint function and the files the corpus session uses.
///
/// Fingerprints are served by a thread holding one superuser psql session (starting a psql
/// per fingerprint costs more than the statement under test): the corpus session's `\!`
/// runs a bash script that connects to the thread's loopback port and copies the line it gets
/// (`@@fp ...`) to psql's stderr.
#[derive(Debug)]
pub struct Canary {
    dir: tempfile::TempDir,
    server: Child,
}

impl Canary {
    /// Creates the fixture and the fingerprint function in `pg`'s application database (the
    /// `dblink` extension too, so its functions exist), writes the helper files and starts the
    /// fingerprint server.
    pub fn install(pg: &Postgres) -> Canary {
        let dir = tempfile::Builder::new()
            .prefix("sluice-corpus-")
            .tempdir()
            .expect("tempdir");
        pg.admin_sql(&pg.database, "CREATE EXTENSION IF NOT EXISTS dblink");
        pg.admin_sql(&pg.database, FINGERPRINT_FUNCTION);
        pg.admin_sql(&pg.database, FIXTURE);
        std::fs::write(
            dir.path().join("canary.csv"),
            "1001,copied in,1\n1002,copied in,2\n",
        )
        .expect("write canary.csv");
        let (port, server) = serve_fingerprints(pg);
        let script = format!(
            "#!/bin/bash\nexec 3<>/dev/tcp/127.0.0.1/{port} || {{ echo '@@fp unreachable' >&2; exit 1; }}\ncat <&3 >&2\n"
        );
        std::fs::write(dir.path().join("fingerprint.sh"), script).expect("write fingerprint.sh");
        let canary = Canary { dir, server };
        let probe = format!(
            "commit;\n\\unset sluice_probe\n{SESSION_PROBE}\n\\warn @@session :sluice_probe\n\\! bash '{}'\n",
            canary.dir.path().join("fingerprint.sh").display()
        );
        std::fs::write(canary.after_file(true), probe).expect("write after.sql");
        std::fs::write(canary.after_file(false), "commit;\n").expect("write commit.sql");
        canary
    }

    /// Puts the fixture back as it was (between profiles).
    pub fn reset(&self, pg: &Postgres) {
        pg.admin_sql(&pg.database, FIXTURE);
    }

    /// The directory `{dir}` in the corpus stands for.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The database fingerprint, taken now through the superuser's socket.
    pub fn fingerprint(&self, pg: &Postgres) -> String {
        pg.admin_sql(&pg.database, "select sluice_fp.take()")
            .trim()
            .to_owned()
    }

    fn after_file(&self, probe: bool) -> PathBuf {
        self.dir
            .path()
            .join(if probe { "after.sql" } else { "commit.sql" })
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// One superuser psql session answering `select sluice_fp.take()` for every connection to the
/// returned loopback port, with one line: `@@fp FINGERPRINT`.
fn serve_fingerprints(pg: &Postgres) -> (u16, Child) {
    let mut child = Command::new(psql())
        .args(["-X", "-q", "-A", "-t", "-h"])
        .arg(pg.socket_dir())
        .args(["-p", &pg.port.to_string(), "-U", ADMIN, "-d", &pg.database])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the fingerprint psql");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind fingerprint port");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut text = String::new();
            if writeln!(stdin, "select sluice_fp.take();\n\\echo @@done")
                .and_then(|()| stdin.flush())
                .is_err()
            {
                text.push_str("fingerprint session gone");
            }
            loop {
                let mut line = String::new();
                match stdout.read_line(&mut line) {
                    Ok(0) | Err(_) => {
                        text.push_str("fingerprint session gone");
                        break;
                    }
                    Ok(_) if line.trim() == "@@done" => break,
                    Ok(_) => text.push_str(line.trim()),
                }
            }
            let _ = writeln!(conn, "@@fp {text}");
        }
    });
    (port, child)
}

/// What happened to one entry in a profile's session.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Refused by sluice or not.
    pub decision: Decision,
    /// The ERROR/FATAL lines psql printed for the entry (sluice's or PostgreSQL's).
    pub errors: Vec<String>,
    /// Every line psql wrote to stderr for the entry (errors with DETAIL/HINT, notices).
    pub lines: Vec<String>,
    /// Lines mentioning `sluice:` that are not a 42501 refusal (a FATAL, a lost grant...).
    pub other_sluice: Vec<String>,
    /// How the database fingerprint changed across the entry, when it did.
    pub db_change: Option<String>,
    /// How the session probe changed across the entry, when it did.
    pub session_change: Option<String>,
}

/// One psql session of `role` running every entry, in order. With `probe`, each entry is
/// followed by the session probe and a fingerprint (needed to prove "no effect"). Returns one
/// outcome per entry; `None` for an entry whose end marker never came (psql died).
pub fn run_session(
    cli: &Cli,
    role: &str,
    entries: &[Entry],
    canary: &Canary,
    probe: bool,
) -> (Vec<Option<Outcome>>, String) {
    let after = canary.after_file(probe).display().to_string();
    let mut args: Vec<String> = [
        "connect",
        "pg",
        "--role",
        role,
        "--exec",
        "psql",
        "-X",
        "-q",
        "-v",
        "VERBOSITY=verbose",
        "-v",
        "ON_ERROR_STOP=0",
        "-f",
        &after,
    ]
    .map(str::to_owned)
    .to_vec();
    for (i, entry) in entries.iter().enumerate() {
        args.push("-c".into());
        args.push(format!("\\warn @@entry {i}"));
        let text = entry.text(canary.dir());
        if entry.script {
            let file = canary.dir().join(format!("entry-{}.sql", entry.line));
            std::fs::write(&file, format!("{text}\n")).expect("write script entry");
            args.push("-f".into());
            args.push(file.display().to_string());
        } else {
            args.push("-c".into());
            args.push(text);
        }
        args.push("-c".into());
        args.push(format!("\\warn @@end {i}"));
        args.push("-f".into());
        args.push(after.clone());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cli.run(&refs);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (parse_session(&stderr, entries.len(), probe), stderr)
}

/// Splits a session's stderr into per-entry outcomes (see the module documentation).
fn parse_session(stderr: &str, count: usize, probe: bool) -> Vec<Option<Outcome>> {
    let mut segments: Vec<Option<Vec<String>>> = vec![None; count];
    // Slot 0: after the prologue; slot i + 1: after entry i.
    let mut sessions: Vec<Option<String>> = vec![None; count + 1];
    let mut prints: Vec<Option<String>> = vec![None; count + 1];
    let mut open: Option<usize> = None;
    let mut slot = 0;
    for line in stderr.lines() {
        if let Some(i) = marker(line, "@@entry ") {
            open = Some(i);
            if i < count {
                segments[i] = Some(Vec::new());
            }
        } else if let Some(i) = marker(line, "@@end ") {
            open = None;
            slot = i + 1;
        } else if let Some(rest) = line.strip_prefix("@@session ") {
            if slot <= count {
                sessions[slot] = Some(rest.to_owned());
            }
        } else if let Some(rest) = line.strip_prefix("@@fp ") {
            if slot <= count {
                prints[slot] = Some(rest.trim().to_owned());
            }
        } else if let Some(i) = open
            && let Some(Some(lines)) = segments.get_mut(i)
        {
            lines.push(line.to_owned());
        }
    }
    let mut ended = vec![false; count];
    for line in stderr.lines() {
        if let Some(i) = marker(line, "@@end ")
            && i < count
        {
            ended[i] = true;
        }
    }
    (0..count)
        .map(|i| {
            if !ended[i] {
                return None;
            }
            let lines = segments[i].take().unwrap_or_default();
            let refused = |l: &&String| l.contains("ERROR:  42501: sluice:");
            let decision = if lines.iter().any(|l| refused(&l)) {
                Decision::Block
            } else {
                Decision::Allow
            };
            let errors = lines
                .iter()
                .filter(|l| l.contains("ERROR:") || l.contains("FATAL:"))
                .cloned()
                .collect();
            let other_sluice = lines
                .iter()
                .filter(|l| l.contains("sluice:") && !refused(l))
                .filter(|l| !l.trim_start().starts_with("HINT:") && !l.contains("DETAIL:"))
                .cloned()
                .collect();
            let (db_change, session_change) = if probe {
                (
                    change(prints[i].as_deref(), prints[i + 1].as_deref()),
                    change(sessions[i].as_deref(), sessions[i + 1].as_deref()),
                )
            } else {
                (None, None)
            };
            Some(Outcome {
                decision,
                errors,
                lines,
                other_sluice,
                db_change,
                session_change,
            })
        })
        .collect()
}

fn marker(line: &str, prefix: &str) -> Option<usize> {
    line.strip_prefix(prefix)?.trim().parse().ok()
}

/// `None` when two fingerprints are equal; otherwise what differs, item by item.
pub fn fingerprint_change(before: &str, after: &str) -> Option<String> {
    change(Some(before), Some(after))
}

/// `None` when both states are known and equal; otherwise what differs, item by item.
fn change(before: Option<&str>, after: Option<&str>) -> Option<String> {
    let (Some(before), Some(after)) = (before, after) else {
        return Some(format!(
            "state not captured (before: {}, after: {})",
            before.is_some(),
            after.is_some()
        ));
    };
    if before == after {
        return None;
    }
    let split = |s: &str| -> Vec<String> {
        s.split("; ")
            .flat_map(|part| part.split(" | "))
            .map(str::to_owned)
            .collect()
    };
    let (b, a) = (split(before), split(after));
    let gone: Vec<&String> = b.iter().filter(|x| !a.contains(x)).collect();
    let new: Vec<&String> = a.iter().filter(|x| !b.contains(x)).collect();
    Some(format!("before: {gone:?} -> after: {new:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_is_attributed_to_entries() {
        let stderr = "@@session u | on\n@@fp t=1\n@@entry 0\nERROR:  42501: sluice: no\nHINT:  Nothing was sent to the database; the session is still usable.\n@@end 0\nWARNING:  25P01: there is no transaction in progress\n@@session u | on\n@@fp t=1\n@@entry 1\nERROR:  42501: permission denied for table t\n@@end 1\n@@session u | off\n@@fp t=2\n@@entry 2\n";
        let out = parse_session(stderr, 3, true);
        let first = out[0].as_ref().expect("entry 0 ended");
        assert_eq!(first.decision, Decision::Block);
        assert!(first.db_change.is_none() && first.session_change.is_none());
        assert!(first.other_sluice.is_empty(), "{:?}", first.other_sluice);
        let second = out[1].as_ref().expect("entry 1 ended");
        assert_eq!(second.decision, Decision::Allow);
        assert!(second.db_change.is_some() && second.session_change.is_some());
        assert!(out[2].is_none());
    }
}
