//! A configuration key as the component that reads it declares it: its name,
//! the names it is also read under, how it is redacted, and which crate owns it.

use crate::source::env_var_name;

/// How a key's value is shown to a person (the `config` command, `/config`,
/// error messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redact {
    /// Shown as is, except that a URL's credentials are always hidden.
    No,
    /// Every non-empty string in the value is shown as `********`.
    Secret,
    /// A map of URL to secrets (`additional_endpoints`): the URLs are shown
    /// (without credentials), every secret is hidden.
    MapValues,
}

/// One configuration key. Declare it where it is read, with [`key!`](crate::key),
/// which records the reading crate as its owner.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    /// The Agent's key name, dotted for nested keys (`data_plane.enabled`).
    pub name: &'static str,
    /// The package that reads the key (its one owner).
    pub owner: &'static str,
    /// Older or alternative key names, read after the name itself
    /// (`dogstatsd_expiry_seconds` for `counter_expiry_seconds`).
    pub aliases: &'static [&'static str],
    /// Environment variables read after the `DD_` ones (`HTTPS_PROXY`).
    pub extra_env: &'static [&'static str],
    /// How the value is shown.
    pub redact: Redact,
}

impl Key {
    /// A key owned by `owner`, with no alias, no extra variable, not secret.
    pub const fn new(name: &'static str, owner: &'static str) -> Self {
        Self {
            name,
            owner,
            aliases: &[],
            extra_env: &[],
            redact: Redact::No,
        }
    }

    /// Also read under these key names.
    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }

    /// Also read from these environment variables (after the `DD_` ones).
    pub const fn extra_env(mut self, vars: &'static [&'static str]) -> Self {
        self.extra_env = vars;
        self
    }

    /// The value is a secret.
    pub const fn secret(mut self) -> Self {
        self.redact = Redact::Secret;
        self
    }

    /// The value maps URLs to secrets.
    pub const fn secret_map_values(mut self) -> Self {
        self.redact = Redact::MapValues;
        self
    }

    /// The environment variables the key is read from, in order of precedence.
    pub fn env_vars(&self) -> Vec<String> {
        std::iter::once(self.name)
            .chain(self.aliases.iter().copied())
            .map(env_var_name)
            .chain(self.extra_env.iter().map(|v| (*v).to_owned()))
            .collect()
    }

    /// How the value is shown: as declared, and never less than a secret when
    /// the name says it is one (a guard against a forgotten declaration).
    pub(crate) fn effective_redact(&self) -> Redact {
        match self.redact {
            Redact::No if crate::redact::is_secret_key(self.name) => Redact::Secret,
            declared => declared,
        }
    }
}

/// Declares a [`Key`] owned by the crate that invokes the macro:
/// `key!("dogstatsd_port")`, then optionally `.aliases(&[..])`,
/// `.extra_env(&[..])`, `.secret()`.
#[macro_export]
macro_rules! key {
    ($name:expr) => {
        $crate::Key::new($name, env!("CARGO_PKG_NAME"))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_read_from_its_own_variable_then_its_aliases_then_the_extra_ones() {
        let k = key!("counter_expiry_seconds")
            .aliases(&["dogstatsd_expiry_seconds"])
            .extra_env(&["EXPIRY"]);
        assert_eq!(
            k.env_vars(),
            ["DD_COUNTER_EXPIRY_SECONDS", "DD_DOGSTATSD_EXPIRY_SECONDS", "EXPIRY"]
        );
        assert_eq!(k.owner, "adp-config", "the invoking crate owns the key");
    }

    #[test]
    fn a_key_named_like_a_secret_is_redacted_even_if_not_declared_one() {
        assert_eq!(key!("api_key").effective_redact(), Redact::Secret);
        assert_eq!(key!("hostname").effective_redact(), Redact::No);
        assert_eq!(key!("hostname").secret().effective_redact(), Redact::Secret);
    }
}
