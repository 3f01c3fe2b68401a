//! The directory layout, permissions, session-id refusal, lookup without the date, the
//! vanished-directory rule, and retention.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::{DAY_MS, LocalDir, civil_from_days, date_name, days_from_civil, parse_date_name};
use crate::event::{FORMAT_VERSION, Header, write_line};
use crate::sink::Sink;

/// 2026-11-03T10:00:00Z.
const NOV_3_2026: u64 = 1_793_700_000_000;

fn header_chunk(session: &str, started_at_ms: u64) -> Vec<u8> {
    let header = Header {
        v: FORMAT_VERSION,
        session: session.into(),
        started_at_ms,
        subject: "alice".into(),
        auth: "oidc".into(),
        ci: BTreeMap::new(),
        resource: "db".into(),
        kind: "postgres".into(),
        role: "read".into(),
        grant: "g".into(),
        client: "c".into(),
    };
    let mut line = Vec::new();
    write_line(&mut line, &header).expect("serializes");
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(&line).expect("compresses");
    encoder.finish().expect("compresses")
}

#[test]
fn dates() {
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    assert_eq!(date_name(NOV_3_2026 / DAY_MS), "2026-11-03");
    for day in (0..200_000).step_by(7).chain(0..800) {
        let (y, m, d) = civil_from_days(day);
        assert_eq!(days_from_civil(y, m, d), Some(day), "{y}-{m}-{d}");
        assert_eq!(parse_date_name(&date_name(day)), Some(day));
    }
    for bad in [
        "2024-02-30",
        "2023-02-29",
        "2024-1-01",
        "2024-13-01",
        "abcd-ef-gh",
        "1969-12-31",
        "2024-01-01x",
        "+024-01-01",
    ] {
        assert_eq!(parse_date_name(bad), None, "{bad}");
    }
}

#[test]
fn layout_and_permissions() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("recordings");
    let sink = LocalDir::new(&root);
    assert!(!root.exists(), "no I/O before the first append");
    let chunk = header_chunk("abc_1-X", NOV_3_2026);
    sink.append("abc_1-X", NOV_3_2026, &chunk).expect("appends");
    sink.append("abc_1-X", NOV_3_2026, &chunk).expect("appends");
    let path = root.join("2026-11-03").join("abc_1-X.jsonl.gz");
    assert_eq!(
        fs::read(&path).expect("file"),
        [chunk.clone(), chunk].concat()
    );
    let mode =
        |p: &std::path::Path| fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(
        mode(&path) & 0o077,
        0,
        "file readable by others: {:o}",
        mode(&path)
    );
    assert_eq!(mode(&root) & 0o077, 0);
    assert_eq!(mode(&root.join("2026-11-03")) & 0o077, 0);
    assert_eq!(sink.describe(), format!("directory {}", root.display()));
    assert_eq!(sink.path_of("abc_1-X", NOV_3_2026).expect("valid"), path);
}

#[test]
fn read_finds_a_session_without_its_date() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = LocalDir::new(tmp.path());
    sink.append("old", NOV_3_2026 - 400 * DAY_MS, b"one")
        .expect("appends");
    sink.append("new", NOV_3_2026, b"two").expect("appends");
    fs::create_dir(tmp.path().join("not-a-date")).expect("mkdir");
    assert_eq!(sink.read("old").expect("reads"), Some(b"one".to_vec()));
    assert_eq!(sink.read("new").expect("reads"), Some(b"two".to_vec()));
    assert_eq!(sink.read("missing").expect("reads"), None);
    let empty = LocalDir::new(tmp.path().join("absent"));
    assert_eq!(empty.read("new").expect("reads"), None);
    assert_eq!(empty.remove_older_than(u64::MAX).expect("sweeps"), 0);
}

#[test]
fn session_ids_that_could_escape_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = LocalDir::new(tmp.path().join("r"));
    let long = "a".repeat(65);
    for bad in [
        "",
        "../x",
        "..",
        "a/b",
        "/etc/passwd",
        "a.b",
        "a\0b",
        "é",
        " a",
        long.as_str(),
    ] {
        let err = sink.append(bad, NOV_3_2026, b"x").expect_err(bad);
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{bad}");
        assert!(err.to_string().contains("invalid session id"), "{err}");
        assert!(sink.read(bad).is_err(), "{bad}");
    }
    assert!(!tmp.path().join("r").exists(), "nothing written");
    sink.append(&"a".repeat(64), NOV_3_2026, b"x")
        .expect("64 characters are fine");
}

#[test]
fn root_that_is_a_file_fails_with_its_path() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("plain-file");
    fs::write(&file, b"x").expect("write");
    let sink = LocalDir::new(&file);
    let err = sink
        .append("s", NOV_3_2026, b"x")
        .expect_err("cannot write under a file");
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
}

#[test]
fn vanished_directory_is_an_error_not_a_fresh_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("recordings");
    let sink = LocalDir::new(&root);
    sink.append("s", NOV_3_2026, b"first").expect("appends");
    fs::remove_dir_all(&root).expect("rm -r");
    let err = sink
        .append("s", NOV_3_2026, b"second")
        .expect_err("directory gone");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert!(!root.exists(), "not recreated behind the operator's back");
    // Once the directory is back, appends work again.
    fs::create_dir(&root).expect("mkdir");
    sink.append("s", NOV_3_2026, b"third").expect("appends");
    assert_eq!(sink.read("s").expect("reads"), Some(b"third".to_vec()));
}

#[test]
fn retention_removes_old_recordings_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = LocalDir::new(tmp.path());
    let day_start = NOV_3_2026 / DAY_MS * DAY_MS;
    let cutoff = day_start + 12 * 3_600_000; // noon on Nov 3
    let sessions = [
        ("long-ago", NOV_3_2026 - 100 * DAY_MS, true),
        ("yesterday", NOV_3_2026 - DAY_MS, true),
        ("this-morning", day_start + 3_600_000, true),
        ("this-afternoon", day_start + 13 * 3_600_000, false),
        ("tomorrow", NOV_3_2026 + DAY_MS, false),
    ];
    for (session, started, _) in sessions {
        sink.append(session, started, &header_chunk(session, started))
            .expect("appends");
    }
    // Something that is not a recording stays, and keeps its directory.
    let foreign = tmp
        .path()
        .join(date_name((NOV_3_2026 - DAY_MS) / DAY_MS))
        .join("README");
    fs::write(&foreign, b"keep me").expect("write");
    // A recording with an unreadable header on the cutoff day is kept until its day passes.
    sink.append("garbled", day_start, b"not gzip")
        .expect("appends");

    assert_eq!(sink.remove_older_than(cutoff).expect("sweeps"), 3);
    for (session, _, old) in sessions {
        assert_eq!(
            sink.read(session).expect("reads").is_none(),
            old,
            "{session}"
        );
    }
    assert!(foreign.exists());
    assert!(sink.read("garbled").expect("reads").is_some());
    let old_day = tmp
        .path()
        .join(date_name((NOV_3_2026 - 100 * DAY_MS) / DAY_MS));
    assert!(!old_day.exists(), "empty date directories are removed");

    assert_eq!(
        sink.remove_older_than(day_start + DAY_MS).expect("sweeps"),
        2
    );
    assert!(sink.read("garbled").expect("reads").is_none());
    assert!(sink.read("tomorrow").expect("reads").is_some());
}
