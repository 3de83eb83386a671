//! What the message kinds share: `|`-separated fields, tag lists, the origin
//! fields (`c:`, `e:`, `card:`), timestamps and `\\n` escapes.

use std::borrow::Cow;

use super::DecodeError;

/// Origin tag cardinality requested by the client (`|card:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cardinality {
    /// `none`
    None,
    /// `low`
    Low,
    /// `orchestrator`
    Orchestrator,
    /// `high`
    High,
}

impl Cardinality {
    /// Parses a level case-insensitively; unknown levels are `None` (ignored,
    /// like the Agent does) rather than an error.
    fn parse(s: &str) -> Option<Self> {
        [
            ("none", Self::None),
            ("low", Self::Low),
            ("orchestrator", Self::Orchestrator),
            ("high", Self::High),
        ]
        .into_iter()
        .find(|(name, _)| s.eq_ignore_ascii_case(name))
        .map(|(_, c)| c)
    }
}

/// Origin fields shared by all message kinds (`c:`, `e:`, `card:`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Origin<'a> {
    /// `|c:` local data: `ci-<container id>` or `in-<cgroup inode>`.
    pub local_data: Option<&'a str>,
    /// `|e:` external data.
    pub external_data: Option<&'a str>,
    /// `|card:` cardinality (unknown levels are `None`).
    pub cardinality: Option<Cardinality>,
}

impl<'a> Origin<'a> {
    /// Consumes `field` if it is an origin field.
    pub(super) fn try_field(&mut self, field: &'a str) -> bool {
        if let Some(v) = field.strip_prefix("card:") {
            self.cardinality = Cardinality::parse(v);
        } else if let Some(v) = field.strip_prefix("c:") {
            self.local_data = Some(v);
        } else if let Some(v) = field.strip_prefix("e:") {
            self.external_data = Some(v);
        } else {
            return false;
        }
        true
    }
}

/// A `|#` tag list, borrowed; [`iter`](Self::iter) skips empty tags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tags<'a>(&'a str);

impl<'a> Tags<'a> {
    /// Wraps a raw comma-separated tag list.
    pub fn new(raw: &'a str) -> Self {
        Self(raw)
    }

    /// The raw text after `#`.
    pub fn as_raw(&self) -> &'a str {
        self.0
    }

    /// The tags in wire order, empty ones skipped, duplicates kept.
    pub fn iter(&self) -> TagIter<'a> {
        TagIter {
            rest: self.0.as_bytes(),
            src: self.0,
        }
    }

    /// The tags sorted and deduplicated, as owned strings.
    pub fn to_sorted_vec(&self) -> Vec<String> {
        let mut v: Vec<&str> = self.iter().collect();
        v.sort_unstable();
        v.dedup();
        v.into_iter().map(str::to_owned).collect()
    }
}

/// Iterator over the tags of a [`Tags`] list.
#[derive(Clone, Debug)]
pub struct TagIter<'a> {
    rest: &'a [u8],
    src: &'a str,
}

impl<'a> Iterator for TagIter<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let start = self.src.len() - self.rest.len();
            let len = memchr::memchr(b',', self.rest).unwrap_or(self.rest.len());
            self.rest = self.rest.get(len + 1..).unwrap_or(&[]);
            // `,` is ASCII, so both ends are char boundaries; `get` keeps it panic-free.
            if let Some(tag) = self.src.get(start..start + len) {
                if !tag.is_empty() {
                    return Some(tag);
                }
            }
        }
    }
}

/// Splits `s` at the first `delim`, the delimiter excluded.
#[inline]
pub(super) fn split_once_byte(s: &str, delim: u8) -> Option<(&str, &str)> {
    let i = memchr::memchr(delim, s.as_bytes())?;
    // `delim` is ASCII so `i` and `i + 1` are char boundaries.
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// Iterates the `|`-separated fields of `s` (memchr-based).
#[inline]
pub(super) fn fields(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let (field, tail) = first_field(rest?);
        rest = tail;
        Some(field)
    })
}

/// The first `|`-separated field of `s` and what follows the `|`, if any.
#[inline]
pub(super) fn first_field(s: &str) -> (&str, Option<&str>) {
    match split_once_byte(s, b'|') {
        Some((field, tail)) => (field, Some(tail)),
        None => (s, None),
    }
}

/// Fills in the field events and service checks share that `field` is (`d:`,
/// `h:`, `#` or an origin field); any other field is ignored, like the Agent does.
pub(super) fn shared_field<'a>(
    field: &'a str,
    timestamp: &mut Option<i64>,
    hostname: &mut Option<&'a str>,
    tags: &mut Tags<'a>,
    origin: &mut Origin<'a>,
) -> Result<(), DecodeError> {
    if let Some(v) = field.strip_prefix("d:") {
        *timestamp = Some(parse_timestamp(v)?);
    } else if let Some(v) = field.strip_prefix("h:") {
        *hostname = Some(v).filter(|v| !v.is_empty());
    } else if let Some(v) = field.strip_prefix('#') {
        *tags = Tags::new(v);
    } else {
        origin.try_field(field);
    }
    Ok(())
}

/// Parses a `T`/`d:` timestamp: ASCII digits fitting an `i64`.
pub(super) fn parse_timestamp(s: &str) -> Result<i64, DecodeError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecodeError::InvalidTimestamp);
    }
    s.parse::<i64>().map_err(|_| DecodeError::InvalidTimestamp)
}

/// `s` with the clients' `\\n` escapes turned into newlines.
pub(super) fn unescape_newlines(s: &str) -> Cow<'_, str> {
    if s.contains("\\n") {
        Cow::Owned(s.replace("\\n", "\n"))
    } else {
        Cow::Borrowed(s)
    }
}
