//! [`LocalDir`]: recordings as files in a local directory.
//!
//! Layout: `<root>/<YYYY-MM-DD>/<session>.jsonl.gz`, the date being the session's start (UTC).
//! Directories are created with mode 0700 and files with 0600 (further narrowed by the umask):
//! recordings hold SQL text and result rows.
//!
//! Every [`Sink::append`] opens the file (`O_APPEND`), writes the chunk, `fsync`s it and closes
//! it again. Keeping no handle open is deliberate: a recordings directory that disappears or
//! becomes unwritable mid-session must show up as an error at the next flush, not be hidden by
//! a handle to a deleted file. For the same reason the root directory is created only once per
//! [`LocalDir`] (at its first append): if it vanishes later, appends fail instead of quietly
//! starting recordings without their beginning in a fresh directory. Date directories are
//! created as needed.
//!
//! An append that fails after writing some bytes cuts the file back to its previous length, so
//! a failed (and later retried) chunk does not leave a torn gzip member in the middle of a
//! recording. When a file or a date directory is created, its directory is `fsync`ed too, so
//! the new name survives a crash along with the data.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::read;
use crate::sink::{Sink, check_session_id};

/// File name suffix of a recording.
const SUFFIX: &str = ".jsonl.gz";
/// Milliseconds in a day.
pub(crate) const DAY_MS: u64 = 86_400_000;

/// Recordings stored as files under a local directory. See the [module documentation](self).
#[derive(Debug)]
pub struct LocalDir {
    /// The recordings directory.
    root: PathBuf,
    /// Whether this sink has made sure the root exists. After that, a missing root is an error
    /// rather than something to recreate (see the module documentation).
    root_ready: AtomicBool,
}

impl LocalDir {
    /// A sink writing under `root`. Does no I/O: the directory is created at the first append.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            root_ready: AtomicBool::new(false),
        }
    }

    /// The recordings directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the recording of `session`, started at `started_at_ms`, is written.
    pub fn path_of(&self, session: &str, started_at_ms: u64) -> io::Result<PathBuf> {
        check_session_id(session)?;
        Ok(self
            .root
            .join(date_name(started_at_ms / DAY_MS))
            .join(format!("{session}{SUFFIX}")))
    }

    /// The file holding the recording of `session`, if there is one, found without knowing its
    /// date (the date directories are searched, newest first).
    pub fn find(&self, session: &str) -> io::Result<Option<PathBuf>> {
        check_session_id(session)?;
        let file_name = format!("{session}{SUFFIX}");
        for (_, day) in self.days()?.into_iter().rev() {
            let path = day.join(&file_name);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_file() => return Ok(Some(path)),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(context(err, "cannot look at", &path)),
            }
        }
        Ok(None)
    }

    /// The date directories under the root, oldest first, with their day number. Other entries
    /// are ignored. An absent root has none.
    fn days(&self) -> io::Result<Vec<(u64, PathBuf)>> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(context(err, "cannot list", &self.root)),
        };
        let mut days = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|err| context(err, "cannot list", &self.root))?;
            let Some(day) = entry.file_name().to_str().and_then(parse_date_name) else {
                continue;
            };
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                days.push((day, entry.path()));
            }
        }
        days.sort();
        Ok(days)
    }

    /// Makes sure `day_dir` exists; returns whether it had to be created.
    fn ensure_day_dir(&self, day_dir: &Path) -> io::Result<bool> {
        if !self.root_ready.load(Ordering::Acquire) {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.root)
                .map_err(|err| context(err, "cannot create directory", &self.root))?;
            self.root_ready.store(true, Ordering::Release);
        }
        match DirBuilder::new().mode(0o700).create(day_dir) {
            Ok(()) => {
                sync_dir(&self.root)?;
                Ok(true)
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(err) => Err(context(err, "cannot create directory", day_dir)),
        }
    }

    /// Opens `path` for appending, creating it (and its date directory) if needed; returns the
    /// file and whether it was created.
    fn open_for_append(&self, path: &Path, day_dir: &Path) -> io::Result<(File, bool)> {
        match OpenOptions::new().append(true).open(path) {
            Ok(file) => return Ok((file, false)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(context(err, "cannot open", path)),
        }
        // A concurrent retention sweep may remove a date directory it saw empty between our
        // mkdir and our open: one more round settles it.
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.ensure_day_dir(day_dir)?;
            match OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(path)
            {
                Ok(file) => return Ok((file, true)),
                Err(err) if err.kind() == io::ErrorKind::NotFound && attempts < 2 => {}
                Err(err) => return Err(context(err, "cannot create", path)),
            }
        }
    }
}

impl Sink for LocalDir {
    fn check(&self) -> io::Result<()> {
        // Until the first recording the root may not exist yet: its parent must, to create it.
        // Once made, a missing root is a failure (it is not recreated).
        let ready = self.root_ready.load(Ordering::Acquire) || self.root.exists();
        let dir = match self.root.parent() {
            Some(parent) if !ready => parent,
            _ => self.root.as_path(),
        };
        let meta = std::fs::metadata(dir).map_err(|err| context(err, "cannot look at", dir))?;
        if !meta.is_dir() {
            return Err(io::Error::other(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        if meta.permissions().readonly() {
            return Err(io::Error::other(format!("{} is read-only", dir.display())));
        }
        Ok(())
    }

    fn append(&self, session: &str, started_at_ms: u64, chunk: &[u8]) -> io::Result<()> {
        let path = self.path_of(session, started_at_ms)?;
        let day_dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let (mut file, created) = self.open_for_append(&path, &day_dir)?;
        let before = file
            .metadata()
            .map_err(|err| context(err, "cannot look at", &path))?
            .len();
        let written = file
            .write_all(chunk)
            .and_then(|()| file.sync_data())
            .map_err(|err| context(err, "cannot write", &path))
            .and_then(|()| if created { sync_dir(&day_dir) } else { Ok(()) });
        if let Err(err) = written {
            // Leave no torn member behind for the retry to append after; best effort, the
            // reader copes if this fails too.
            let _ = file.set_len(before);
            return Err(err);
        }
        Ok(())
    }

    fn read(&self, session: &str) -> io::Result<Option<Vec<u8>>> {
        match self.find(session)? {
            Some(path) => fs::read(&path)
                .map(Some)
                .map_err(|err| context(err, "cannot read", &path)),
            None => Ok(None),
        }
    }

    fn remove_older_than(&self, cutoff_ms: u64) -> io::Result<usize> {
        let mut removed = 0;
        let mut failed = 0;
        let mut first_error = None;
        for (day, dir) in self.days()? {
            let day_start = day.saturating_mul(DAY_MS);
            if day_start >= cutoff_ms {
                break;
            }
            // Every session of a day that ended before the cutoff is old; on the day the
            // cutoff falls in, each recording's header says when its session started.
            let whole_day = day_start.saturating_add(DAY_MS) <= cutoff_ms;
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(err) => {
                    failed += 1;
                    first_error.get_or_insert(context(err, "cannot list", &dir));
                    continue;
                }
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let is_recording = name
                    .strip_suffix(SUFFIX)
                    .is_some_and(|session| check_session_id(session).is_ok());
                if !is_recording || !entry.file_type().is_ok_and(|kind| kind.is_file()) {
                    continue;
                }
                let path = entry.path();
                if !whole_day && !started_before(&path, cutoff_ms) {
                    continue;
                }
                match fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => {
                        failed += 1;
                        first_error.get_or_insert(context(err, "cannot remove", &path));
                    }
                }
            }
            // Fails, harmlessly, while the directory still holds something.
            let _ = fs::remove_dir(&dir);
        }
        match first_error {
            None => Ok(removed),
            Some(err) => Err(io::Error::new(
                err.kind(),
                format!("removed {removed} old recordings but failed {failed} times, first: {err}"),
            )),
        }
    }

    fn describe(&self) -> String {
        format!("directory {}", self.root.display())
    }
}

/// Whether the recording at `path` belongs to a session that started before `cutoff_ms`,
/// according to its header. An unreadable header keeps the file (it goes with its whole day).
fn started_before(path: &Path, cutoff_ms: u64) -> bool {
    File::open(path)
        .ok()
        .and_then(|file| read::first_header(io::BufReader::new(file)))
        .is_some_and(|header| header.started_at_ms < cutoff_ms)
}

/// `fsync`s a directory, so that names created in it survive a crash.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|err| context(err, "cannot sync directory", dir))
}

/// `err` with what was being done and to which path, keeping its kind.
fn context(err: io::Error, doing: &str, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{doing} {}: {err}", path.display()))
}

/// `YYYY-MM-DD` for a day number (days since 1970-01-01).
pub(crate) fn date_name(day: u64) -> String {
    let (year, month, day) = civil_from_days(day);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The day number of a `YYYY-MM-DD` name, if it is one (and a real date).
pub(crate) fn parse_date_name(name: &str) -> Option<u64> {
    let bytes = name.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let part = name.get(range)?;
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let days = days_from_civil(year, month, day)?;
    (civil_from_days(days) == (year, month, day)).then_some(days)
}

/// Year, month (1-12) and day (1-31) of a day number, proleptic Gregorian calendar.
///
/// Howard Hinnant's `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>),
/// restricted to days on or after 1970-01-01, which is all a `u64` of epoch milliseconds holds.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`]; `None` before 1970 or for out-of-range fields.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || year < 1970 {
        return None;
    }
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let yoe = year - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

#[cfg(test)]
mod tests;
