//! Metric samples as the DogStatsD decoder hands them to the aggregator:
//! parsed, keyed, but not resolved to a context. A [`MetricBatch`] copies
//! each message's name and tags into one text buffer and records their
//! [`context_key`]; the aggregator finds the context's state with that key in
//! one hash probe, and reads the strings only for a context it has not seen.
//!
//! Nothing here allocates per sample or per tag: a batch is three vectors
//! (text, contexts, samples) that grow with the packets decoded into it.

use crate::{context_key, MetricKind};

/// A byte range of a batch's text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

/// One metric message's identity: its name and tags in the batch's text and
/// their key. Several samples (a multi-value message, a histogram's
/// distribution copy) may share one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextRef {
    /// [`context_key`] of the name and every tag (order and duplicates ignored).
    pub key: u64,
    name: Span,
    /// The client's tags as on the wire: comma-separated, empty ones skipped.
    tags: Span,
    /// Tags added after the client's (mapper tags, `dogstatsd_tags`), each
    /// prefixed by its length (four ASCII bytes, see [`push_len`]). Usually
    /// empty.
    extra: Span,
}

/// `timestamp` when there is none.
const NO_TIMESTAMP: i64 = i64::MIN;

/// One metric value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// The number; for a set member, its span in the text (as two `u32`s).
    value: f64,
    /// Client-side sample rate in (0, 1], already clamped; 1.0 for
    /// timestamped counts.
    pub sample_rate: f64,
    timestamp: i64,
    /// The index of its [`ContextRef`] in the batch.
    pub context: u32,
    /// The metric type.
    pub kind: MetricKind,
    member: bool,
}

impl Sample {
    /// `|T<unix seconds>`: a timestamped metric, passed through unaggregated.
    pub fn timestamp(&self) -> Option<i64> {
        (self.timestamp != NO_TIMESTAMP).then_some(self.timestamp)
    }

    /// The number (meaningless for a set member: see [`MetricBatch::member`]).
    pub fn number(&self) -> f64 {
        self.value
    }

    /// Whether the value is a set member rather than a number.
    pub fn is_member(&self) -> bool {
        self.member
    }

    fn member_span(&self) -> Span {
        let bits = self.value.to_bits();
        Span {
            start: (bits >> 32) as u32,
            len: bits as u32,
        }
    }
}

/// A position in a [`MetricBatch`] ([`MetricBatch::mark`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMark {
    text: usize,
    contexts: usize,
    samples: usize,
}

/// Decoded metric samples with their contexts' names and tags.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricBatch {
    text: String,
    contexts: Vec<ContextRef>,
    samples: Vec<Sample>,
}

/// The tags of a wire tag list, empty ones skipped.
fn wire_tags(raw: &str) -> impl Iterator<Item = &str> + Clone {
    raw.split(',').filter(|t| !t.is_empty())
}

/// The tags of a length-prefixed list (see [`push_len`]).
fn prefixed_tags(mut raw: &str) -> impl Iterator<Item = &str> + Clone {
    std::iter::from_fn(move || {
        let (prefix, _) = raw.as_bytes().split_first_chunk::<4>()?;
        let len = prefix.iter().fold(0usize, |acc, &b| (acc << 7) | usize::from(b & 0x7f));
        let tag = raw.get(4..4 + len)?;
        // The next prefix is ASCII, so `4 + len` is a char boundary.
        raw = raw.get(4 + len..).unwrap_or("");
        Some(tag)
    })
}

impl MetricBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `s` to the text; its span.
    fn push_text(&mut self, s: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(s);
        Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            len: u32::try_from(s.len()).unwrap_or(u32::MAX),
        }
    }

    fn text(&self, span: Span) -> &str {
        let start = span.start as usize;
        self.text.get(start..start + span.len as usize).unwrap_or("")
    }

    /// Adds the context of a metric named `name` whose client tags are
    /// `wire_tags` (the raw comma-separated list after `|#`) followed by
    /// `extra` tags; returns its index for [`Self::push_number`] and
    /// [`Self::push_member`].
    pub fn add_context<'a>(&mut self, name: &str, wire: &'a str, extra: impl Iterator<Item = &'a str> + Clone) -> u32 {
        let key = context_key(name, wire_tags(wire).chain(extra.clone()));
        let name = self.push_text(name);
        let tags = self.push_text(wire);
        let start = self.text.len();
        for tag in extra {
            push_len(&mut self.text, tag.len());
            self.text.push_str(tag);
        }
        let extra = Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            len: u32::try_from(self.text.len() - start).unwrap_or(u32::MAX),
        };
        let index = u32::try_from(self.contexts.len()).unwrap_or(u32::MAX);
        self.contexts.push(ContextRef { key, name, tags, extra });
        index
    }

    /// Adds a context under another name with the tags of context `of`
    /// (a histogram's distribution copy); returns its index.
    pub fn add_renamed_context(&mut self, of: u32, name: &str) -> u32 {
        let c = self.contexts[of as usize];
        let key = context_key(name, self.tags_of(&c));
        let name = self.push_text(name);
        let index = u32::try_from(self.contexts.len()).unwrap_or(u32::MAX);
        self.contexts.push(ContextRef { key, name, ..c });
        index
    }

    /// Adds a number sample of context `context` (an index from [`Self::add_context`]).
    pub fn push_number(
        &mut self,
        context: u32,
        kind: MetricKind,
        value: f64,
        sample_rate: f64,
        timestamp: Option<i64>,
    ) {
        self.samples.push(Sample {
            value,
            sample_rate,
            timestamp: timestamp.unwrap_or(NO_TIMESTAMP),
            context,
            kind,
            member: false,
        });
    }

    /// Adds a set member sample of context `context`.
    pub fn push_member(&mut self, context: u32, member: &str, sample_rate: f64, timestamp: Option<i64>) {
        let span = self.push_text(member);
        self.samples.push(Sample {
            value: f64::from_bits((u64::from(span.start) << 32) | u64::from(span.len)),
            sample_rate,
            timestamp: timestamp.unwrap_or(NO_TIMESTAMP),
            context,
            kind: MetricKind::Set,
            member: true,
        });
    }

    /// Appends a copy of every sample from index `from` on as a sample of
    /// `context` of `kind` (a histogram's distribution copy).
    pub fn copy_samples(&mut self, from: usize, context: u32, kind: MetricKind) {
        for i in from..self.samples.len() {
            let sample = self.samples[i];
            self.samples.push(Sample {
                context,
                kind,
                ..sample
            });
        }
    }

    /// Keeps the first `n` samples (to take back those of a rejected message).
    pub fn truncate_samples(&mut self, n: usize) {
        self.samples.truncate(n);
    }

    /// Makes room for a packet of `bytes` holding about `messages` messages
    /// (its names and tags are at most its bytes), so that decoding it grows
    /// each vector at most once.
    pub fn reserve(&mut self, bytes: usize, messages: usize) {
        self.text.reserve(bytes);
        self.contexts.reserve(messages);
        self.samples.reserve(messages);
    }

    /// Empties the batch, keeping its memory for the next packets.
    pub fn clear(&mut self) {
        self.text.clear();
        self.contexts.clear();
        self.samples.clear();
    }

    /// Where the batch ends now, to take back what follows with [`Self::truncate`].
    pub fn mark(&self) -> BatchMark {
        BatchMark {
            text: self.text.len(),
            contexts: self.contexts.len(),
            samples: self.samples.len(),
        }
    }

    /// Takes back everything added since `mark` (a rejected message's context
    /// and samples).
    pub fn truncate(&mut self, mark: BatchMark) {
        self.text.truncate(mark.text);
        self.contexts.truncate(mark.contexts);
        self.samples.truncate(mark.samples);
    }

    /// The samples, in the order they were decoded.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there is no sample.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The context of `sample`.
    pub fn context_of(&self, sample: &Sample) -> &ContextRef {
        &self.contexts[sample.context as usize]
    }

    /// The context at `index`.
    pub fn context(&self, index: u32) -> &ContextRef {
        &self.contexts[index as usize]
    }

    /// A context's metric name.
    pub fn name(&self, context: &ContextRef) -> &str {
        self.text(context.name)
    }

    /// A context's tags: the client's in wire order, then the added ones;
    /// duplicates kept (the key ignores them, the aggregator removes them).
    pub fn tags_of<'s>(&'s self, context: &ContextRef) -> impl Iterator<Item = &'s str> + Clone + 's {
        wire_tags(self.text(context.tags)).chain(prefixed_tags(self.text(context.extra)))
    }

    /// A set sample's member (empty for a number).
    pub fn member(&self, sample: &Sample) -> &str {
        if sample.member {
            self.text(sample.member_span())
        } else {
            ""
        }
    }

    /// Bytes held by the batch (its vectors' capacities), for memory accounting.
    pub fn allocated_bytes(&self) -> usize {
        self.text.capacity()
            + self.contexts.capacity() * std::mem::size_of::<ContextRef>()
            + self.samples.capacity() * std::mem::size_of::<Sample>()
    }
}

/// Writes an added tag's length as four ASCII characters of 7 bits each
/// (most significant first), so that the text stays UTF-8. 28 bits: a tag of
/// 256 MiB or more is cut short, which no configuration holds.
fn push_len(text: &mut String, len: usize) {
    let len = len.min((1 << 28) - 1);
    for shift in [21, 14, 7, 0] {
        text.push(char::from(((len >> shift) & 0x7f) as u8));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn samples_keep_their_context_value_rate_and_timestamp() {
        let mut b = MetricBatch::new();
        let c = b.add_context("page.views", "env:prod,,zone:a", ["site:lab"].into_iter());
        b.push_number(c, MetricKind::Count, 2.5, 0.5, None);
        b.push_number(c, MetricKind::Count, 3.0, 0.5, Some(1_700_000_000));
        let s = b.add_context("users", "", std::iter::empty());
        b.push_member(s, "bob", 1.0, None);
        assert_eq!(b.len(), 3);
        let [x, y, m] = b.samples() else { panic!() };
        let ctx = b.context_of(x);
        assert_eq!(b.name(ctx), "page.views");
        assert_eq!(b.tags_of(ctx).collect::<Vec<_>>(), ["env:prod", "zone:a", "site:lab"]);
        assert_eq!(ctx.key, context_key("page.views", ["site:lab", "zone:a", "env:prod"]));
        assert_eq!((x.number(), x.sample_rate, x.timestamp()), (2.5, 0.5, None));
        assert_eq!(y.timestamp(), Some(1_700_000_000));
        assert_eq!((m.kind, b.member(m), b.member(x)), (MetricKind::Set, "bob", ""));
        assert_eq!(b.tags_of(b.context_of(m)).count(), 0);
        b.truncate_samples(1);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn a_renamed_context_shares_the_tags_and_gets_its_own_key() {
        let mut b = MetricBatch::new();
        let c = b.add_context("lat", "r:a", ["x:1"].into_iter());
        let d = b.add_renamed_context(c, "dist.lat");
        let (c, d) = (*b.context(c), *b.context(d));
        assert_eq!(b.name(&d), "dist.lat");
        assert_eq!(b.tags_of(&d).collect::<Vec<_>>(), ["r:a", "x:1"]);
        assert_eq!(d.key, context_key("dist.lat", ["r:a", "x:1"]));
        assert_ne!(c.key, d.key);
    }

    proptest! {
        #[test]
        fn property_test_tags_read_back_as_given(
            name in "[a-z.]{1,20}",
            wire in proptest::collection::vec("[a-z:é]{0,8}", 0..10),
            extra in proptest::collection::vec("[a-z:,|é ]{0,300}", 0..5),
        ) {
            let mut b = MetricBatch::new();
            let raw = wire.join(",");
            let c = b.add_context(&name, &raw, extra.iter().map(String::as_str));
            let ctx = *b.context(c);
            let expected: Vec<&str> = wire.iter().map(String::as_str).filter(|t| !t.is_empty())
                .chain(extra.iter().map(String::as_str)).collect();
            prop_assert_eq!(b.tags_of(&ctx).collect::<Vec<_>>(), expected.clone());
            prop_assert_eq!(b.name(&ctx), name.as_str());
            prop_assert_eq!(ctx.key, context_key(&name, expected));
        }
    }
}
