//! Message generation: a fixed pool of contexts drawn once from the seed, then
//! messages that pick a context, a type and values from the same PRNG.

/// A load profile (see benchmarks.md for the published shapes).
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    /// Default send rate in bytes/s (0 = unpaced).
    pub rate_bytes: u64,
    /// Default number of distinct contexts (0 = idle: send nothing).
    pub contexts: u32,
    /// Plain StatsD: no tags, only c/g/ms, short names.
    pub plain: bool,
    /// Every message a context never sent before (`churn.<n>:1|c` with two
    /// fixed tags): the load that must end in counted drops at the agent's
    /// context limits, not in unbounded memory. No pool; `contexts` is ignored.
    pub churn: bool,
}

impl Profile {
    /// The profile of that name.
    pub fn named(name: &str) -> Option<Self> {
        const MIB: u64 = 1024 * 1024;
        let (rate_bytes, contexts, plain, churn) = match name {
            "idle" => (0, 0, false, false),
            "low" => (MIB, 3_000, false, false),
            "medium" => (10 * MIB, 10_000, false, false),
            "heavy" => (50 * MIB, 100_000, false, false),
            "ultraheavy" => (100 * MIB, 250_000, false, false),
            "plain" => (0, 1_000, true, false),
            "churn" => (0, 0, false, true),
            _ => return None,
        };
        Some(Self {
            rate_bytes,
            contexts,
            plain,
            churn,
        })
    }

    /// Whether the profile sends anything.
    pub fn sends(&self) -> bool {
        self.contexts > 0 || self.churn
    }
}

/// SplitMix64: tiny, fast, and identical on every platform for a given seed.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in lo..=hi (u32 arithmetic: the same on 32- and 64-bit hosts).
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        let span = u64::from(hi - lo) + 1;
        lo + (self.next_u64() % span) as u32
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// The share of a context's tags that are new rather than reused from other contexts.
const UNIQUE_TAG_RATIO: f64 = 0.11;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_.";

struct Ctx {
    name: String,
    tags: String,
    /// The StatsD type, fixed per context as a real client's metric is (an agent
    /// keys aggregation by name, tags and type, so a type per message would
    /// multiply the contexts).
    kind: &'static str,
}

/// Generates messages for one profile from one seed.
pub struct Generator {
    rng: Rng,
    plain: bool,
    /// Churn: the number of the next new context.
    churn: Option<u64>,
    contexts: Vec<Ctx>,
    /// Which contexts of the pool were drawn at least once.
    sent: Vec<bool>,
    pending: Option<(Vec<u8>, u64)>,
}

/// What the contexts sent so far need at the least: each distinct string
/// once (names and tags) and one 4-byte reference per tag of each context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Floor {
    /// Contexts of the pool sent at least once.
    pub contexts: u64,
    /// Bytes of the distinct names sent.
    pub name_bytes: u64,
    /// Bytes of the distinct tags sent.
    pub tag_bytes: u64,
    /// Distinct tags of each context sent, summed over the contexts.
    pub tag_refs: u64,
}

impl Floor {
    /// Bytes a reference to a stored string takes at the least (a `u32` id).
    pub const BYTES_PER_REF: u64 = 4;

    /// The floor in bytes: every distinct string once plus a reference per tag.
    pub fn bytes(&self) -> u64 {
        self.name_bytes + self.tag_bytes + Self::BYTES_PER_REF * self.tag_refs
    }
}

impl Generator {
    /// Draws the context pool.
    pub fn new(profile: Profile, contexts: u32, seed: u64) -> Self {
        let mut rng = Rng(seed);
        let contexts = if profile.churn { 0 } else { contexts };
        let mut pool = Vec::with_capacity(contexts as usize);
        let mut tag_pool: Vec<String> = Vec::new();
        for i in 0..contexts {
            let name = if profile.plain {
                format!("bench.metric.{i}")
            } else {
                // Prefix with the index so that names are unique even when short.
                let len = rng.range(1, 200) as usize;
                let mut n = format!("m{i}.");
                while n.len() < len {
                    n.push(ALPHABET[rng.range(0, 25) as usize] as char);
                }
                n
            };
            let mut tags = String::new();
            if !profile.plain {
                let count = rng.range(2, 50);
                for t in 0..count {
                    if t > 0 {
                        tags.push(',');
                    }
                    // Like lading's generator, most tags repeat across contexts (as
                    // `env:prod` does in real fleets): a new tag with probability
                    // UNIQUE_TAG_RATIO, else one drawn from those made so far. This is
                    // what lets ADP's gates hold 100,000 contexts in a 32 MiB interner.
                    if tag_pool.is_empty() || rng.chance(UNIQUE_TAG_RATIO) {
                        let len = rng.range(3, 150) as usize;
                        let mut tag = String::with_capacity(len);
                        tag.push('k');
                        tag.push((b'a' + (t % 26) as u8) as char);
                        tag.push(':');
                        while tag.len() < len {
                            tag.push(ALPHABET[rng.range(0, ALPHABET.len() as u32 - 1) as usize] as char);
                        }
                        tag_pool.push(tag);
                        tags.push_str(tag_pool.last().map_or("", String::as_str));
                    } else {
                        let pick = rng.range(0, u32::try_from(tag_pool.len() - 1).unwrap_or(u32::MAX)) as usize;
                        tags.push_str(&tag_pool[pick]);
                    }
                }
            }
            let kind = if profile.plain {
                ["c", "g", "ms"][rng.range(0, 2) as usize]
            } else {
                // count 208, gauge 66, distribution 72, set 9, histogram 1 (total 356)
                match rng.range(0, 355) {
                    0..=207 => "c",
                    208..=273 => "g",
                    274..=345 => "d",
                    346..=354 => "s",
                    _ => "h",
                }
            };
            pool.push(Ctx { name, tags, kind });
        }
        Self {
            rng,
            plain: profile.plain,
            churn: profile.churn.then_some(0),
            sent: vec![false; pool.len()],
            contexts: pool,
            pending: None,
        }
    }

    /// The data floor of the contexts sent so far (the pool's, not churn's,
    /// whose every context is new: its floor grows without bound).
    pub fn floor(&self) -> Floor {
        let mut floor = Floor::default();
        let mut names = std::collections::HashSet::new();
        let mut tags = std::collections::HashSet::new();
        let mut mine = std::collections::HashSet::new();
        for (ctx, _) in self.contexts.iter().zip(&self.sent).filter(|(_, sent)| **sent) {
            floor.contexts += 1;
            if names.insert(ctx.name.as_str()) {
                floor.name_bytes += ctx.name.len() as u64;
            }
            mine.clear();
            for tag in ctx.tags.split(',').filter(|t| !t.is_empty()) {
                // A tag repeated within one context is one tag of it.
                if mine.insert(tag) {
                    floor.tag_refs += 1;
                    if tags.insert(tag) {
                        floor.tag_bytes += tag.len() as u64;
                    }
                }
            }
        }
        floor
    }

    /// A message that did not fit the previous datagram, sent first next time.
    pub fn push_back(&mut self, msg: Vec<u8>, values: u64) {
        self.pending = Some((msg, values));
    }

    /// Appends one message to `out`; returns how many values it carries.
    pub fn message(&mut self, out: &mut Vec<u8>) -> u64 {
        if let Some((msg, n)) = self.pending.take() {
            out.extend_from_slice(&msg);
            return n;
        }
        if let Some(n) = self.churn.as_mut() {
            // Short enough to be stored inline by the agent on 64-bit (at most 23 bytes below
            // n = 10^17), so the context limit, not the string interner, is what fills.
            out.extend_from_slice(format!("churn.{n}:1|c|#env:bench,load:churn").as_bytes());
            *n += 1;
            return 1;
        }
        if self.contexts.is_empty() {
            return 0;
        }
        let idx = self.rng.range(0, self.contexts.len() as u32 - 1) as usize;
        self.sent[idx] = true;
        let ctx = &self.contexts[idx];
        out.extend_from_slice(ctx.name.as_bytes());
        let kind = ctx.kind;
        let values = if !self.plain && kind != "s" && self.rng.chance(0.08) {
            self.rng.range(2, 32)
        } else {
            1
        };
        for _ in 0..values {
            out.push(b':');
            let v = self.rng.range(0, 1_000_000);
            if kind == "c" || kind == "s" {
                out.extend_from_slice((v % 1000).to_string().as_bytes());
            } else {
                out.extend_from_slice(format!("{}.{}", v / 1000, v % 1000).as_bytes());
            }
        }
        out.push(b'|');
        out.extend_from_slice(kind.as_bytes());
        if !ctx.tags.is_empty() {
            out.extend_from_slice(b"|#");
            out.extend_from_slice(ctx.tags.as_bytes());
        }
        u64::from(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(gen: &mut Generator, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| {
                let mut m = Vec::new();
                gen.message(&mut m);
                m
            })
            .collect()
    }

    /// The first `n` messages of `profile` over `contexts` contexts from `seed`, as text.
    fn texts(profile: &str, contexts: u32, seed: u64, n: usize) -> Vec<String> {
        let mut gen = Generator::new(Profile::named(profile).unwrap(), contexts, seed);
        take(&mut gen, n)
            .into_iter()
            .map(|m| String::from_utf8(m).unwrap())
            .collect()
    }

    #[test]
    fn the_same_seed_generates_the_same_messages() {
        let a = texts("low", 100, 7, 200);
        let b = texts("low", 100, 7, 200);
        let c = texts("low", 100, 8, 200);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn dogstatsd_messages_follow_the_published_shape() {
        for s in texts("medium", 500, 1, 2_000) {
            let (head, tags) = s.split_once("|#").expect("every DogStatsD message has tags");
            let name = head.split(':').next().unwrap();
            assert!((1..=200 + 8).contains(&name.len()), "name length {}", name.len());
            let tags: Vec<&str> = tags.split(',').collect();
            assert!((2..=50).contains(&tags.len()));
            assert!(tags.iter().all(|t| (3..=150).contains(&t.len())), "{tags:?}");
            let kind = head.rsplit('|').next().unwrap();
            assert!(["c", "g", "d", "s", "h"].contains(&kind), "{kind}");
        }
    }

    #[test]
    fn plain_messages_have_no_tags_and_only_peer_types() {
        for s in texts("plain", 10, 3, 500) {
            assert!(!s.contains("|#"));
            let kind = s.rsplit('|').next().unwrap();
            assert!(["c", "g", "ms"].contains(&kind), "{s}");
            assert_eq!(s.matches(':').count(), 1, "{s}");
        }
    }

    #[test]
    fn churn_never_repeats_a_context() {
        let msgs = texts("churn", 5, 1, 1_000);
        let distinct: std::collections::HashSet<&String> = msgs.iter().collect();
        assert_eq!(distinct.len(), 1_000);
        assert_eq!(msgs[0], "churn.0:1|c|#env:bench,load:churn");
        assert_eq!(msgs[999], "churn.999:1|c|#env:bench,load:churn");
    }

    #[test]
    fn the_floor_counts_each_sent_string_once_and_each_tag_of_each_context() {
        let p = Profile::named("low").unwrap();
        let mut gen = Generator::new(p, 50, 9);
        assert_eq!(gen.floor(), Floor::default(), "nothing sent yet");
        take(&mut gen, 2_000);
        let floor = gen.floor();
        assert_eq!(floor.contexts, 50, "2,000 draws of 50 contexts meet every one");
        // The obvious way: every context's distinct tags, and the union of the strings.
        let mut strings = std::collections::HashSet::new();
        let mut refs = 0u64;
        for c in &gen.contexts {
            strings.insert(format!("name:{}", c.name));
            let mine: std::collections::HashSet<&str> = c.tags.split(',').collect();
            refs += mine.len() as u64;
            strings.extend(mine.iter().map(|t| format!("tag:{t}")));
        }
        let bytes: u64 = strings.iter().map(|s| s.split_once(':').unwrap().1.len() as u64).sum();
        assert_eq!(floor.tag_refs, refs);
        assert_eq!(floor.name_bytes + floor.tag_bytes, bytes);
        assert_eq!(floor.bytes(), bytes + 4 * refs);
    }

    #[test]
    fn most_tags_repeat_across_contexts() {
        let gen = Generator::new(Profile::named("heavy").unwrap(), 2_000, 5);
        let all: Vec<&str> = gen.contexts.iter().flat_map(|c| c.tags.split(',')).collect();
        let distinct: std::collections::HashSet<&str> = all.iter().copied().collect();
        let ratio = distinct.len() as f64 / all.len() as f64;
        assert!((0.09..0.13).contains(&ratio), "distinct/total tags = {ratio}");
    }
}
