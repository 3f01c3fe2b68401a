//! [`MaskCounts`]: how often each rule masked something, for the audit trail ("masking applied:
//! rule and count, never the value").

use std::sync::Arc;

/// Per rule name, how many times it masked: a column rule counts values, a detector rule counts
/// matches (a note with two card numbers counts two). Holds names and numbers only, never a
/// value. One per session (or per statement); the engine reports and resets it as it likes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MaskCounts {
    /// In order of first use. Rules are few, so a vector beats a map, and the names are shared
    /// with the policy, so counting never allocates after a rule's first use.
    entries: Vec<(Arc<str>, u64)>,
}

impl MaskCounts {
    /// No counts yet.
    pub fn new() -> MaskCounts {
        MaskCounts::default()
    }

    /// The count of one rule (0 if it never masked).
    pub fn get(&self, rule: &str) -> u64 {
        self.entries
            .iter()
            .find(|(name, _)| &**name == rule)
            .map_or(0, |(_, count)| *count)
    }

    /// Sum over all rules.
    pub fn total(&self) -> u64 {
        self.entries.iter().map(|(_, count)| count).sum()
    }

    /// True when nothing was masked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `(rule name, count)` in order of first use.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.entries.iter().map(|(name, count)| (&**name, *count))
    }

    /// Adds another set of counts into this one.
    pub fn merge(&mut self, other: &MaskCounts) {
        for (name, count) in &other.entries {
            self.add(name, *count);
        }
    }

    /// Returns the counts so far and starts again from zero.
    pub fn take(&mut self) -> MaskCounts {
        std::mem::take(self)
    }

    pub(crate) fn add(&mut self, rule: &Arc<str>, count: u64) {
        match self
            .entries
            .iter_mut()
            .find(|(name, _)| Arc::ptr_eq(name, rule) || name == rule)
        {
            Some((_, total)) => *total += count,
            None => self.entries.push((Arc::clone(rule), count)),
        }
    }
}
