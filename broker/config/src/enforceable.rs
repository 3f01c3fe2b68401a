//! Fail closed at load time: a rule may give a role only on resources whose engine can enforce
//! every setting the role carries. A `read-only` role granted on a `tcp` resource would otherwise
//! run as a plain byte relay, and a DELETE would pass.
//!
//! The crate does not know the engines; the broker passes what each kind enforces.

use sluice_shared::api::ResourceKind;

use crate::location::ConfigError;
use crate::model::Config;
use crate::policy::Need;

impl Config {
    /// Every (rule, role, resource kind) whose role carries a setting the kind's engine cannot
    /// enforce, located at the rule's `roles` and naming the setting's own line.
    /// `enforces(kind, need)` says what each engine can do.
    pub fn unenforceable(
        &self,
        enforces: impl Fn(&ResourceKind, Need) -> bool,
    ) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        for (index, rule) in self.policy.rules.iter().enumerate() {
            for role_name in &rule.roles {
                let Some(role) = self.policy.role(role_name) else {
                    continue;
                };
                let mut reported: Vec<(&ResourceKind, Need)> = Vec::new();
                for resource in self.resources.iter().filter(|r| rule.covers(r)) {
                    let kind = resource.kind_ref();
                    for need in &role.needs {
                        if enforces(kind, need.value)
                            || reported.iter().any(|(k, n)| *k == kind && *n == need.value)
                        {
                            continue;
                        }
                        reported.push((kind, need.value));
                        errors.push(ConfigError {
                            location: rule.location.clone(),
                            key: format!("policy.rules[{index}].roles"),
                            message: format!(
                                "rule \"{}\" gives role \"{role_name}\" on resource \"{}\" (kind \
                                 {kind}), whose engine cannot enforce the role's {} (written at \
                                 {}): {}; give this role on other resources only, or use a role \
                                 without that setting here",
                                rule.name,
                                resource.name,
                                need.key,
                                need.location,
                                need.value.describe(),
                            ),
                        });
                    }
                }
            }
        }
        errors
    }
}
