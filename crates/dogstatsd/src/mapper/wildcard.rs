//! The `wildcard` match type without a regex engine.
//!
//! The Agent turns a wildcard pattern into the regex `^…$` with `.` escaped
//! and each `*` replaced by `([^.]*)`, then runs Go's RE2 on it. Such a regex
//! is a sequence of literals and non-dot runs, so this module matches it
//! directly, with the same captures as RE2's leftmost-first (Perl) rule: the
//! first `*` takes the longest text that still lets the rest match, then the
//! second, and so on. A table of "can the rest match from here" per star and
//! position makes that O(stars × length), whatever the pattern (no
//! backtracking blow-up on names an attacker chooses).
//!
//! `property_test_wildcard_agrees_with_the_regex_translation` checks the
//! captures against regex-lite running the Agent's translated regex.

/// A validated wildcard pattern: literals around each `*`.
#[derive(Clone, Debug)]
pub(crate) struct Wildcard {
    /// `literals[0]` precedes the first star, `literals[i]` follows star `i`;
    /// there is one more literal than stars (possibly empty ones at the ends).
    literals: Vec<Box<str>>,
}

/// Why a wildcard pattern was refused (the caller words the Agent's message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WildcardError {
    /// A character outside `[a-zA-Z0-9\-_*.]`.
    Characters,
    /// `**`.
    ConsecutiveStars,
}

/// The Agent's `allowedWildcardMatchPattern`, `^[a-zA-Z0-9\-_*.]+$`.
pub(crate) const ALLOWED_WILDCARD_PATTERN: &str = r"^[a-zA-Z0-9\-_*.]+$";

impl Wildcard {
    /// Validates `pattern` as the Agent does (characters first, then `**`).
    pub(crate) fn new(pattern: &str) -> Result<Self, WildcardError> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'*' | b'.');
        if pattern.is_empty() || !pattern.bytes().all(allowed) {
            return Err(WildcardError::Characters);
        }
        if pattern.contains("**") {
            return Err(WildcardError::ConsecutiveStars);
        }
        Ok(Self {
            literals: pattern.split('*').map(Box::from).collect(),
        })
    }

    /// The regex the Agent compiles for this pattern (used by tests to compare).
    #[cfg(test)]
    pub(crate) fn agent_regex(&self) -> String {
        let escaped: Vec<String> = self.literals.iter().map(|l| l.replace('.', "\\.")).collect();
        format!("^{}$", escaped.join("([^.]*)"))
    }

    /// Number of `*` (capture groups).
    #[cfg(test)]
    pub(crate) fn stars(&self) -> usize {
        self.literals.len() - 1
    }

    /// The byte span of each star's capture when `name` matches, else `None`.
    pub(crate) fn captures(&self, name: &str) -> Option<Vec<(usize, usize)>> {
        let text = name.as_bytes();
        let n = text.len();
        let (first, rest) = self.literals.split_first()?;
        // Cheap rejections before the table: the fixed prefix and suffix.
        if !text.starts_with(first.as_bytes()) {
            return None;
        }
        let stars = rest.len();
        if stars == 0 {
            return (n == first.len()).then(Vec::new);
        }
        let last = rest.last()?;
        let fixed: usize = self.literals.iter().map(|l| l.len()).sum();
        if n < fixed || !text.ends_with(last.as_bytes()) {
            return None;
        }

        // ok[i][p]: stars i.. (each followed by its literal) can match text[p..]
        // exactly to the end. Row `stars` is "p == n".
        let width = n + 1;
        let mut ok = vec![false; (stars + 1) * width];
        ok[stars * width + n] = true;
        for i in (0..stars).rev() {
            let lit = rest[i].as_bytes();
            let (row, next) = ok.split_at_mut((i + 1) * width);
            let row = &mut row[i * width..];
            // good(q): the star may stop at q (its literal follows and the rest
            // matches). ok(p) = good(p) || (text[p] != '.' && ok(p + 1)).
            for p in (0..=n).rev() {
                // The table lookup first: it is false almost everywhere, and
                // cheaper than comparing the literal.
                let good = next.get(p + lit.len()) == Some(&true) && text[p..].starts_with(lit);
                row[p] = good || (p < n && text[p] != b'.' && row[p + 1]);
            }
        }
        let mut p = first.len();
        if !ok[p] {
            return None;
        }

        // Walk forward: each star takes the longest run (no dot) after which
        // its literal follows and the remaining stars can still match.
        let mut spans = Vec::with_capacity(stars);
        for (i, lit) in rest.iter().enumerate() {
            let lit = lit.as_bytes();
            let run_end = text[p..].iter().position(|&b| b == b'.').map_or(n, |d| p + d);
            let next = &ok[(i + 1) * width..(i + 2) * width];
            let q = (p..=run_end)
                .rev()
                .find(|&q| next.get(q + lit.len()) == Some(&true) && text[q..].starts_with(lit))?;
            spans.push((p, q));
            p = q + lit.len();
        }
        (p == n).then_some(spans)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn caps<'a>(pattern: &str, name: &'a str) -> Option<Vec<&'a str>> {
        let w = Wildcard::new(pattern).expect("valid pattern");
        w.captures(name)
            .map(|spans| spans.into_iter().map(|(a, b)| &name[a..b]).collect())
    }

    #[test]
    fn stars_capture_one_segment_each() {
        assert_eq!(
            caps("test.job.duration.*.*", "test.job.duration.my_job_type.my_job_name"),
            Some(vec!["my_job_type", "my_job_name"])
        );
        assert_eq!(caps("test.job.size.*.*", "test.job.size.not_match"), None);
    }

    #[test]
    fn a_star_never_crosses_a_dot() {
        assert_eq!(caps("a.*", "a.b.c"), None);
        assert_eq!(caps("a.*", "a.bc"), Some(vec!["bc"]));
    }

    #[test]
    fn a_star_may_be_empty() {
        assert_eq!(caps("a.*.c", "a..c"), Some(vec![""]));
        assert_eq!(caps("a.*", "a."), Some(vec![""]));
        assert_eq!(caps("*", ""), Some(vec![""]));
    }

    #[test]
    fn a_star_inside_a_segment_is_greedy_and_backtracks() {
        assert_eq!(caps("test.*_start", "test.my_job_start"), Some(vec!["my_job"]));
        // The first star takes as much as it can; the second gets the rest.
        assert_eq!(caps("*_*", "a_b_c"), Some(vec!["a_b", "c"]));
        assert_eq!(caps("x*y*z", "xayaybz"), Some(vec!["aya", "b"]));
    }

    #[test]
    fn patterns_without_stars_match_exactly() {
        assert_eq!(caps("test.my-worker.start", "test.my-worker.start"), Some(vec![]));
        assert_eq!(caps("test.my-worker.start", "test.my-worker.start2"), None);
        assert_eq!(caps("test.my-worker.start", "test.my-worker"), None);
    }

    #[test]
    fn non_ascii_names_are_matched_by_character() {
        assert_eq!(caps("a.*.b", "a.héllo.b"), Some(vec!["héllo"]));
        assert_eq!(Wildcard::new("*é*").unwrap_err(), WildcardError::Characters);
    }

    #[test]
    fn the_agents_character_set_is_enforced() {
        assert_eq!(
            Wildcard::new("test.[]duration.*").unwrap_err(),
            WildcardError::Characters
        );
        assert_eq!(Wildcard::new("^test.*").unwrap_err(), WildcardError::Characters);
        assert_eq!(Wildcard::new("a b").unwrap_err(), WildcardError::Characters);
        assert_eq!(Wildcard::new("").unwrap_err(), WildcardError::Characters);
        assert_eq!(Wildcard::new("a.**").unwrap_err(), WildcardError::ConsecutiveStars);
        // Characters are checked before `**`, as the Agent does.
        assert_eq!(Wildcard::new("a$**").unwrap_err(), WildcardError::Characters);
        assert!(Wildcard::new("abcdefghijklmnopqrstuvwxyz_ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789.*").is_ok());
    }

    #[test]
    fn the_agent_regex_is_the_documented_translation() {
        assert_eq!(
            Wildcard::new("a.*.b*").unwrap().agent_regex(),
            r"^a\.([^.]*)\.b([^.]*)$"
        );
        assert_eq!(Wildcard::new("*").unwrap().agent_regex(), r"^([^.]*)$");
    }

    #[test]
    fn many_stars_on_a_long_name_stay_fast() {
        // A backtracking matcher takes exponential time here; the table does not.
        let pattern = "*a*a*a*a*a*a*a*a*a*a*a*a*x*";
        let name = "a".repeat(4000);
        let start = std::time::Instant::now();
        assert_eq!(caps(pattern, &name), None);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    fn pattern_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("_"), Just("."), Just("*")], 1..8)
            .prop_map(|parts| parts.concat())
            .prop_filter("no consecutive stars", |p| !p.contains("**"))
    }

    fn name_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![Just("a"), Just("b"), Just("_"), Just("."), Just("é")],
            0..10,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn property_test_wildcard_agrees_with_the_regex_translation(
            pattern in pattern_strategy(),
            names in proptest::collection::vec(name_strategy(), 1..16),
        ) {
            let w = Wildcard::new(&pattern).unwrap();
            let re = regex_lite::Regex::new(&w.agent_regex()).unwrap();
            for name in &names {
                let ours = w.captures(name);
                let theirs = re.captures(name).map(|c| {
                    (1..c.len()).map(|i| c.get(i).map(|m| (m.start(), m.end())).unwrap()).collect::<Vec<_>>()
                });
                prop_assert_eq!(&ours, &theirs, "pattern {:?} name {:?}", pattern, name);
                if let Some(spans) = ours {
                    prop_assert_eq!(spans.len(), w.stars());
                }
            }
        }

        #[test]
        fn property_test_names_built_from_a_pattern_match_it(
            pattern in pattern_strategy(),
            fills in proptest::collection::vec("[a-z0-9_-]{0,4}", 8),
        ) {
            // Replacing each star by a dot-free text gives a name that matches.
            let w = Wildcard::new(&pattern).unwrap();
            let mut name = String::new();
            for (i, lit) in pattern.split('*').enumerate() {
                if i > 0 {
                    name.push_str(&fills[i - 1]);
                }
                name.push_str(lit);
            }
            prop_assert!(w.captures(&name).is_some(), "pattern {:?} name {:?}", pattern, name);
        }
    }
}
