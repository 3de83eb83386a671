//! Go's `regexp.(*Regexp).ExpandString`, which the Agent's mapper uses for the
//! mapped name and every tag value: `$1`, `${1}`, `$name`, `${name}`, `$$`.
//!
//! The rules (Go `regexp/regexp.go`, `expand` and `extract`):
//!
//! - `$$` is a literal `$`;
//! - a name is the longest run of letters, digits and `_` after `$` (or inside
//!   `${…}`): `$1x` is the group named `1x`, not group 1 then `x`;
//! - an all-digit name without a leading zero and under 10⁸ is a group index,
//!   anything else a group name;
//! - a group that does not exist or did not take part in the match expands to
//!   nothing;
//! - a `$` not followed by a valid name (or a `${` without its `}`) is kept as
//!   a literal `$`.
//!
//! Go's letters and digits are Unicode categories L and Nd; Rust has no
//! general-category API, so non-ASCII characters use `char::is_alphabetic` /
//! `char::is_numeric` (a superset: it also takes letter-like numbers and
//! combining marks). ASCII, which mapper templates are in practice, is exact.

/// The groups of one match.
pub(crate) trait Groups {
    /// The text of group `index` (0 = whole match), if it took part.
    fn group(&self, index: usize) -> Option<&str>;
    /// The text of the group named `name`, if it exists and took part.
    fn named(&self, name: &str) -> Option<&str>;
}

/// A parsed reference after a `$`.
#[derive(Debug, PartialEq)]
enum Reference<'t> {
    Index(usize),
    Name(&'t str),
}

/// Go's `extract`: the reference at the start of `s` (the `$` already
/// removed) and the rest of the template, or `None` when malformed.
fn extract(s: &str) -> Option<(Reference<'_>, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let end = body
        .char_indices()
        .find(|&(_, c)| {
            !(c == '_' || c.is_ascii_alphanumeric() || (!c.is_ascii() && (c.is_alphabetic() || c.is_numeric())))
        })
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = body.get(..end)?;
    let rest = if braced {
        body.get(end..)?.strip_prefix('}')?
    } else {
        body.get(end..)?
    };
    Some((parse_reference(name), rest))
}

/// Go: digits only, each added while the running value is below 1e8, and no
/// leading zero; otherwise a name.
fn parse_reference(name: &str) -> Reference<'_> {
    let mut num: usize = 0;
    for b in name.bytes() {
        if !b.is_ascii_digit() || num >= 100_000_000 {
            return Reference::Name(name);
        }
        num = num * 10 + usize::from(b - b'0');
    }
    if name.len() > 1 && name.starts_with('0') {
        return Reference::Name(name);
    }
    Reference::Index(num)
}

/// Appends `template` expanded with `groups` to `out`.
pub(crate) fn expand(template: &str, groups: &dyn Groups, out: &mut String) {
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        match extract(after) {
            Some((reference, tail)) => {
                let text = match reference {
                    Reference::Index(i) => groups.group(i),
                    Reference::Name(n) => groups.named(n),
                };
                out.push_str(text.unwrap_or(""));
                rest = tail;
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Groups from a list: index i is `groups[i]`; names map to indices.
    struct Fixed<'a> {
        groups: Vec<Option<&'a str>>,
        names: Vec<(&'a str, usize)>,
    }

    impl Groups for Fixed<'_> {
        fn group(&self, index: usize) -> Option<&str> {
            self.groups.get(index).copied().flatten()
        }
        fn named(&self, name: &str) -> Option<&str> {
            self.names
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|&(_, i)| self.group(i))
        }
    }

    fn run(template: &str) -> String {
        let groups = Fixed {
            groups: vec![Some("whole"), Some("one"), Some("two"), None, Some("four")],
            names: vec![("word", 2), ("absent", 3), ("x_1", 1)],
        };
        let mut out = String::new();
        expand(template, &groups, &mut out);
        out
    }

    /// Each template and its expansion against the groups of [`run`].
    #[test]
    fn references_expand_as_go_expands_them() {
        for (template, expected) in [
            // Numbered and braced references expand.
            ("$1.$2", "one.two"),
            ("${1}_x", "one_x"),
            ("a${0}b", "awholeb"),
            // `$0b` is the group named "0b".
            ("a$0b", "a"),
            // A name is as long as possible.
            // `$1x` is the (absent) group named "1x"; `${1}x` is group 1 then x.
            ("$1x", ""),
            ("${1}x", "onex"),
            // `$10` is group 10 (absent), not group 1 then 0.
            ("$10", ""),
            // Named references expand.
            ("$word-${word}", "two-two"),
            ("${x_1}", "one"),
            ("[$absent]", "[]"),
            ("[$nosuch]", "[]"),
            // Groups outside the match expand to nothing.
            ("<$3><$9><$99999999>", "<><><>"),
            // Dollar dollar is a literal dollar.
            ("$$1", "$1"),
            ("a$$$1", "a$one"),
            // Malformed references keep the dollar.
            ("$", "$"),
            ("a$", "a$"),
            ("$-", "$-"),
            ("${1", "${1"),
            ("${}", "${}"),
            ("${-}", "${-}"),
            // After a malformed `$`, the rest is still expanded.
            ("${$1", "${one"),
            // Leading zeros make a name not an index.
            // Go: "$01" looks up a group *named* "01".
            ("$01", ""),
            ("$0", "whole"),
            // Non-ASCII letters extend a name.
            ("$1é", ""),
            ("${1}é", "oneé"),
            // A non-letter ends the name.
            ("$1→", "one→"),
            // Templates without references are copied.
            ("plain.name", "plain.name"),
            ("", ""),
        ] {
            assert_eq!(run(template), expected, "{template}");
        }
    }

    #[test]
    fn huge_numbers_are_names() {
        // Go stops treating digits as an index once the value reaches 1e8.
        assert_eq!(parse_reference("99999999"), Reference::Index(99_999_999));
        assert_eq!(parse_reference("999999999"), Reference::Index(999_999_999));
        assert_eq!(parse_reference("1000000000"), Reference::Name("1000000000"));
        assert_eq!(run("$123456789012345678901234567890"), "");
    }
}
