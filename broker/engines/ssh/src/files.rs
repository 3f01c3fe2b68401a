//! A role's file rules: which host paths SFTP, `scp`, `rsync` and `git` may read or write.
//!
//! Paths are judged after the host resolved them (symlinks followed, `..` applied; see
//! [`crate::resolve`]), never as the client wrote them. Patterns are absolute globs: `*` and `?`
//! stay inside one path segment, `**` spans any number of them. A pattern covers the paths it
//! matches and everything below them, so `deny: [/etc/ssh]` also denies `/etc/ssh/sshd_config`
//! and `allow: [/srv/app]` allows the whole tree.
//!
//! ```text
//!  read  /srv/app/logs/a.log ──▶ deny? ──▶ allow (if any)? ──▶ ok
//!  write /srv/app/x          ──▶ deny? ──▶ allow (if any)? ──▶ read_only? ──▶ ok
//!  a whole tree (scp -r, rsync -r, a git repository): the root as above, and no deny
//!  pattern may reach below it (a transfer of the tree could not skip the denied part)
//! ```

use std::fmt;

/// What an operation does to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads a file, lists a directory or reads attributes.
    Read,
    /// Creates, changes, renames or removes.
    Write,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::Write => "write",
        })
    }
}

/// A role's file rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileRules {
    /// Nothing may be written.
    pub read_only: bool,
    /// When not empty, only paths these cover.
    pub allow: Vec<String>,
    /// Paths never read or written.
    pub deny: Vec<String>,
}

/// Why an operation on a path is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The rule: `files:deny`, `files:not-allowed`, `files:read-only`, `files:none`.
    pub rule: String,
    /// One line for the audit trail and the client.
    pub reason: String,
}

impl FileRules {
    /// Whether `access` to the resolved absolute `path` is allowed.
    pub fn judge(&self, access: Access, path: &str) -> Result<(), Refusal> {
        if let Some(pattern) = self.deny.iter().find(|p| covers(p, path)) {
            return Err(Refusal {
                rule: "files:deny".into(),
                reason: format!("{path} is denied by the role's file rule `{pattern}`"),
            });
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|p| covers(p, path)) {
            return Err(Refusal {
                rule: "files:not-allowed".into(),
                reason: format!("{path} is outside the paths this role may use"),
            });
        }
        if self.read_only && access == Access::Write {
            return Err(Refusal {
                rule: "files:read-only".into(),
                reason: format!("this role may only read files ({path} would be changed)"),
            });
        }
        Ok(())
    }

    /// Whether `access` to the whole tree under `root` is allowed: the root itself, and no
    /// deny pattern may match anything below it.
    pub fn judge_tree(&self, access: Access, root: &str) -> Result<(), Refusal> {
        self.judge(access, root)?;
        if let Some(pattern) = self.deny.iter().find(|p| may_match_below(p, root)) {
            return Err(Refusal {
                rule: "files:deny".into(),
                reason: format!(
                    "{root} holds paths the role's file rule `{pattern}` denies; transfer the \
                     allowed files one by one (sftp)"
                ),
            });
        }
        Ok(())
    }
}

/// `pattern` matches `path` or one of its ancestors.
fn covers(pattern: &str, path: &str) -> bool {
    let mut at = path;
    loop {
        if glob(pattern, at) {
            return true;
        }
        match at.rfind('/') {
            Some(0) if at.len() > 1 => at = "/",
            Some(i) if i > 0 => at = &at[..i],
            _ => return false,
        }
    }
}

/// Some path strictly below `root` could match `pattern` (judged by the pattern's literal
/// prefix, so it errs towards yes).
fn may_match_below(pattern: &str, root: &str) -> bool {
    let literal = pattern
        .find(['*', '?'])
        .map_or(pattern, |wild| &pattern[..wild]);
    let below = if root.ends_with('/') {
        root.to_owned()
    } else {
        format!("{root}/")
    };
    if literal.len() == pattern.len() {
        // No wildcard: the pattern names one path.
        return pattern.starts_with(&below);
    }
    below.starts_with(literal) || literal.starts_with(&below)
}

/// Glob over a path: `*`/`?` within one segment, `**` across segments. Dynamic programming
/// over (pattern, text) positions: linear in their product, whatever the pattern.
fn glob(pattern: &str, text: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Token {
        Char(u8),
        /// `?`
        One,
        /// `*`
        Star,
        /// `**`
        Any,
        /// `**/` after a `/`: no segment or any number of whole ones.
        Dirs,
    }
    let p = pattern.as_bytes();
    let mut tokens = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        let token = match p[i] {
            b'*' if p.get(i + 1) == Some(&b'*') => {
                let after_slash = i == 0 || p[i - 1] == b'/';
                if after_slash && p.get(i + 2) == Some(&b'/') {
                    i += 3;
                    Token::Dirs
                } else {
                    i += 2;
                    Token::Any
                }
            }
            b'*' => {
                i += 1;
                Token::Star
            }
            b'?' => {
                i += 1;
                Token::One
            }
            c => {
                i += 1;
                Token::Char(c)
            }
        };
        tokens.push(token);
    }
    let t = text.as_bytes();
    // reach[j]: the tokens so far can match t[..j].
    let mut reach = vec![false; t.len() + 1];
    reach[0] = true;
    for token in &tokens {
        let mut next = vec![false; t.len() + 1];
        match token {
            Token::Char(c) => {
                for j in 0..t.len() {
                    next[j + 1] = reach[j] && t[j] == *c;
                }
            }
            Token::One => {
                for j in 0..t.len() {
                    next[j + 1] = reach[j] && t[j] != b'/';
                }
            }
            Token::Star | Token::Any => {
                let crosses = *token == Token::Any;
                let mut live = false;
                for j in 0..=t.len() {
                    live = reach[j] || (live && j > 0 && (crosses || t[j - 1] != b'/'));
                    next[j] = live;
                }
            }
            Token::Dirs => {
                let mut started = false;
                for j in 0..=t.len() {
                    next[j] = reach[j] || (started && j > 0 && t[j - 1] == b'/');
                    started |= reach[j];
                }
            }
        }
        reach = next;
    }
    reach[t.len()]
}

/// `a/b/../c` → `a/c`, `//x/./y` → `/x/y`: for paths the host resolved (which need no change)
/// and for showing paths. Never used to decide where a path the host has not resolved points.
pub fn lexical(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_keep_single_stars_inside_a_segment() {
        assert!(glob("/srv/*.log", "/srv/a.log"));
        assert!(!glob("/srv/*.log", "/srv/x/a.log"));
        assert!(glob("/srv/**.log", "/srv/x/a.log"));
        assert!(glob("/srv/**/a.log", "/srv/a.log"));
        assert!(glob("/srv/**/a.log", "/srv/x/y/a.log"));
        assert!(glob("/home/?ob", "/home/bob"));
        assert!(!glob("/home/?ob", "/home//ob"));
        assert!(glob("/srv/app", "/srv/app"));
        assert!(!glob("/srv/app", "/srv/apps"));
        assert!(glob("**", "/anything/at/all"));
    }

    #[test]
    fn a_pattern_covers_the_tree_below_what_it_matches() {
        let rules = FileRules {
            read_only: false,
            allow: vec!["/srv/app".into(), "/tmp/*".into()],
            deny: vec!["/srv/app/secrets".into(), "**/.ssh".into()],
        };
        assert_eq!(rules.judge(Access::Read, "/srv/app/x/y"), Ok(()));
        assert_eq!(rules.judge(Access::Write, "/tmp/upload/part"), Ok(()));
        let refused = |access, path| rules.judge(access, path).unwrap_err().rule;
        assert_eq!(refused(Access::Read, "/srv/app/secrets/k"), "files:deny");
        assert_eq!(refused(Access::Read, "/srv/app/secrets"), "files:deny");
        assert_eq!(refused(Access::Read, "/srv/app/.ssh/id"), "files:deny");
        assert_eq!(refused(Access::Read, "/srv/apps"), "files:not-allowed");
        assert_eq!(refused(Access::Read, "/etc/passwd"), "files:not-allowed");
        assert_eq!(refused(Access::Read, "/tmp"), "files:not-allowed");
        let read_only = FileRules {
            read_only: true,
            ..Default::default()
        };
        assert_eq!(read_only.judge(Access::Read, "/etc/hosts"), Ok(()));
        assert_eq!(
            read_only.judge(Access::Write, "/tmp/x").unwrap_err().rule,
            "files:read-only"
        );
    }

    #[test]
    fn a_tree_is_refused_when_a_deny_pattern_reaches_below_its_root() {
        let rules = FileRules {
            deny: vec!["/srv/app/secrets".into(), "/data/*/private".into()],
            ..Default::default()
        };
        assert!(rules.judge_tree(Access::Read, "/srv/app").is_err());
        assert!(rules.judge_tree(Access::Read, "/srv").is_err());
        assert!(rules.judge_tree(Access::Read, "/").is_err());
        assert!(rules.judge_tree(Access::Read, "/srv/app/public").is_ok());
        assert!(rules.judge_tree(Access::Read, "/srv/application").is_ok());
        assert!(rules.judge_tree(Access::Read, "/data/x").is_err());
        assert!(rules.judge_tree(Access::Read, "/data").is_err());
        assert!(rules.judge_tree(Access::Read, "/home").is_ok());
        assert!(
            rules
                .judge_tree(Access::Read, "/srv/app/secrets/x")
                .is_err()
        );
    }

    #[test]
    fn lexical_normalisation() {
        assert_eq!(lexical("/a/b/../c/./d//"), "/a/c/d");
        assert_eq!(lexical("/../.."), "/");
        assert_eq!(lexical("a/../.."), "..");
        assert_eq!(lexical(""), ".");
    }
}
