//! Who may use which resource: the rules from the `policy` section and their evaluation.
//!
//! Evaluation is pure and deny-by-default: [`Policy::allowing`] returns the first rule that lets a
//! principal use a resource, or `None`. The returned rule is what audit records name as the reason
//! access was granted. Rules only grant "may use" for now; roles and approvals will extend [`Rule`].

use crate::location::Location;

/// The ordered rule list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Rules in file order; the first match wins, so order is meaningful once rules carry more
    /// than "may use".
    pub rules: Vec<Rule>,
}

impl Policy {
    /// The first rule that names `subject` or one of `groups` and covers `resource`; `None` means
    /// access is denied.
    pub fn allowing(&self, subject: &str, groups: &[String], resource: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|rule| rule.applies_to(subject, groups) && rule.covers(resource))
    }
}

/// One grant of access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Unique name, recorded in audit events as the reason for a decision.
    pub name: String,
    /// Exact subjects (users or workloads) the rule applies to.
    pub subjects: Vec<String>,
    /// Groups the rule applies to; a principal in any of them matches.
    pub groups: Vec<String>,
    /// Resource names or globs (`*` any run of characters, `?` one character).
    pub resources: Vec<String>,
    /// Where the rule is written, for messages about it.
    pub location: Location,
}

impl Rule {
    /// True when the rule names the subject or shares a group with it.
    pub fn applies_to(&self, subject: &str, groups: &[String]) -> bool {
        self.subjects.iter().any(|s| s == subject) || self.groups.iter().any(|g| groups.contains(g))
    }

    /// True when one of the rule's resource patterns matches `resource`.
    pub fn covers(&self, resource: &str) -> bool {
        self.resources
            .iter()
            .any(|pattern| glob_match(pattern, resource))
    }
}

/// True when a pattern contains glob characters (otherwise it must name an existing resource).
pub(crate) fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// Matches `text` against a pattern where `*` is any run of characters and `?` exactly one.
///
/// Greedy with a single backtrack point, so it runs in O(pattern × text) worst case and cannot
/// be made to explode by a hostile pattern.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Position of the last `*` seen and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character and retry.
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}
