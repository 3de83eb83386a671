//! Splitting a stream of encoded items into payloads that each respect the
//! intake's limits.
//!
//! Every payload kind here is "a header, items joined by a separator, a
//! footer": protobuf payloads are a run of the same repeated field (no
//! header, separator or footer: concatenated fields *are* the message), the
//! service-check JSON is `[` + items joined by `,` + `]`. [`Splitter`] appends
//! each item to the payload under construction if the result still fits
//! every limit (uncompressed size, worst-case compressed size, item points),
//! otherwise closes that payload and starts a new one. An item that does not
//! fit even an empty payload is dropped and reported to the caller, which
//! counts and logs it: the Agent does the same ("item too big").
//!
//! Items are never split across payloads, so a series and its points always
//! arrive together.

use std::io;

use adp_wire::{CompressionKind, StreamCompressor};

/// The limits one payload must respect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Largest compressed body, in bytes.
    pub max_compressed: u64,
    /// Largest uncompressed body, in bytes.
    pub max_uncompressed: u64,
    /// Most points (or other items of weight) per payload; `u64::MAX` for none.
    pub max_points: u64,
    /// Most items per payload; `u64::MAX` for none.
    pub max_items: u64,
}

/// The framing of a payload kind.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Framing {
    pub header: &'static [u8],
    pub separator: &'static [u8],
    pub footer: &'static [u8],
}

impl Framing {
    /// Protobuf: a payload is its items' repeated-field entries back to back.
    pub(crate) const PROTOBUF: Self = Self {
        header: b"",
        separator: b"",
        footer: b"",
    };
    /// A JSON array.
    pub(crate) const JSON_ARRAY: Self = Self {
        header: b"[",
        separator: b",",
        footer: b"]",
    };
}

/// One finished body.
#[derive(Debug)]
pub(crate) struct Body {
    pub bytes: Vec<u8>,
    pub uncompressed_len: u64,
    pub items: u64,
    pub points: u64,
}

/// What happened to a pushed item.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// It is in a payload.
    Added,
    /// It cannot fit any payload and was dropped.
    TooBig,
}

struct Open {
    compressor: StreamCompressor,
    items: u64,
    points: u64,
}

pub(crate) struct Splitter {
    kind: CompressionKind,
    zstd_level: i32,
    limits: Limits,
    framing: Framing,
    open: Option<Open>,
    done: Vec<Body>,
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Splitter {
    pub(crate) fn new(kind: CompressionKind, zstd_level: i32, limits: Limits, framing: Framing) -> Self {
        Self {
            kind,
            zstd_level,
            limits,
            framing,
            open: None,
            done: Vec::new(),
        }
    }

    fn start(&self) -> io::Result<Open> {
        let mut compressor = StreamCompressor::new(self.kind, self.zstd_level)?;
        compressor.write(self.framing.header)?;
        Ok(Open {
            compressor,
            items: 0,
            points: 0,
        })
    }

    /// Whether `item` fits `open` by the counts and the uncompressed size, and
    /// by the worst-case compressed size after flushing if that helps.
    fn fits(&self, open: &mut Open, item_len: usize, points: u64) -> io::Result<bool> {
        if open.items.saturating_add(1) > self.limits.max_items
            || open.points.saturating_add(points) > self.limits.max_points
        {
            return Ok(false);
        }
        let separator = if open.items > 0 {
            self.framing.separator.len()
        } else {
            0
        };
        let added = separator
            .saturating_add(item_len)
            .saturating_add(self.framing.footer.len());
        if to_u64(open.compressor.written().saturating_add(added)) > self.limits.max_uncompressed {
            return Ok(false);
        }
        if to_u64(open.compressor.worst_case_with(added)) <= self.limits.max_compressed {
            return Ok(true);
        }
        if open.compressor.has_unflushed() {
            open.compressor.flush()?;
            return Ok(to_u64(open.compressor.worst_case_with(added)) <= self.limits.max_compressed);
        }
        Ok(false)
    }

    fn append(&self, open: &mut Open, item: &[u8], points: u64) -> io::Result<()> {
        if open.items > 0 {
            open.compressor.write(self.framing.separator)?;
        }
        open.compressor.write(item)?;
        open.items += 1;
        open.points = open.points.saturating_add(points);
        Ok(())
    }

    fn close(&mut self, open: Open) -> io::Result<()> {
        let mut compressor = open.compressor;
        compressor.write(self.framing.footer)?;
        let uncompressed_len = to_u64(compressor.written());
        let bytes = compressor.finish()?;
        debug_assert!(
            to_u64(bytes.len()) <= self.limits.max_compressed,
            "worst-case bound violated"
        );
        self.done.push(Body {
            bytes,
            uncompressed_len,
            items: open.items,
            points: open.points,
        });
        Ok(())
    }

    /// Adds one encoded item carrying `points` points.
    pub(crate) fn push(&mut self, item: &[u8], points: u64) -> io::Result<Pushed> {
        let mut open = match self.open.take() {
            Some(open) => open,
            None => self.start()?,
        };
        if self.fits(&mut open, item.len(), points)? {
            self.append(&mut open, item, points)?;
            self.open = Some(open);
            return Ok(Pushed::Added);
        }
        if open.items > 0 {
            self.close(open)?;
            open = self.start()?;
            if self.fits(&mut open, item.len(), points)? {
                self.append(&mut open, item, points)?;
                self.open = Some(open);
                return Ok(Pushed::Added);
            }
        }
        // Alone in an empty payload and still too big by the limits we can
        // check up front: drop it. If only the (pessimistic) compressed bound
        // said no, compress it for real and measure before giving up.
        let framed = to_u64(
            item.len()
                .saturating_add(self.framing.header.len())
                .saturating_add(self.framing.footer.len()),
        );
        if points > self.limits.max_points || framed > self.limits.max_uncompressed || self.limits.max_items == 0 {
            self.open = Some(open);
            return Ok(Pushed::TooBig);
        }
        self.append(&mut open, item, points)?;
        open.compressor.write(self.framing.footer)?;
        open.compressor.flush()?;
        if to_u64(open.compressor.worst_case_with(0)) <= self.limits.max_compressed {
            // Fits for real; take the footer back out of the count by closing
            // this payload now (it holds the single oversized-looking item).
            let uncompressed_len = to_u64(open.compressor.written());
            let bytes = open.compressor.finish()?;
            self.done.push(Body {
                bytes,
                uncompressed_len,
                items: 1,
                points,
            });
            Ok(Pushed::Added)
        } else {
            Ok(Pushed::TooBig)
        }
    }

    /// The bodies completed so far (the open one stays open).
    pub(crate) fn take_done(&mut self) -> Vec<Body> {
        std::mem::take(&mut self.done)
    }

    /// Closes the open payload, if any, and returns every body.
    pub(crate) fn finish(mut self) -> io::Result<Vec<Body>> {
        if let Some(open) = self.open.take() {
            if open.items > 0 {
                self.close(open)?;
            }
        }
        Ok(self.done)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use adp_wire::decompress;

    use super::*;

    fn limits(max_compressed: u64, max_uncompressed: u64, max_points: u64) -> Limits {
        Limits {
            max_compressed,
            max_uncompressed,
            max_points,
            max_items: u64::MAX,
        }
    }

    fn noise(seed: u32, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x.to_le_bytes()[0]
            })
            .collect()
    }

    #[test]
    fn json_items_are_framed_as_an_array_and_split_by_size() {
        let mut s = Splitter::new(CompressionKind::None, 1, limits(25, 25, u64::MAX), Framing::JSON_ARRAY);
        for item in ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}", "{\"d\":4}"] {
            assert_eq!(s.push(item.as_bytes(), 1).unwrap(), Pushed::Added);
        }
        let bodies = s.finish().unwrap();
        let texts: Vec<_> = bodies
            .iter()
            .map(|b| String::from_utf8(b.bytes.clone()).unwrap())
            .collect();
        assert_eq!(texts, ["[{\"a\":1},{\"b\":2},{\"c\":3}]", "[{\"d\":4}]"]);
        assert_eq!(bodies.iter().map(|b| b.items).collect::<Vec<_>>(), [3, 1]);
    }

    #[test]
    fn points_limit_splits_and_an_item_over_it_is_dropped() {
        let mut s = Splitter::new(
            CompressionKind::Zstd,
            1,
            limits(1 << 20, 1 << 20, 10),
            Framing::PROTOBUF,
        );
        assert_eq!(s.push(b"aaaa", 6).unwrap(), Pushed::Added);
        assert_eq!(s.push(b"bbbb", 11).unwrap(), Pushed::TooBig);
        assert_eq!(s.push(b"cccc", 5).unwrap(), Pushed::Added);
        assert_eq!(s.push(b"dddd", 4).unwrap(), Pushed::Added);
        let bodies = s.finish().unwrap();
        assert_eq!(bodies.iter().map(|b| b.points).collect::<Vec<_>>(), [6, 9]);
        let first = decompress("zstd", &bodies[0].bytes, 1 << 20).unwrap();
        assert_eq!(first, b"aaaa");
    }

    #[test]
    fn an_item_that_only_looks_too_big_is_measured_for_real() {
        // 3000 zero bytes compress to a few dozen, but their bound is > 3000.
        let mut s = Splitter::new(
            CompressionKind::Zstd,
            1,
            limits(1000, 1 << 20, u64::MAX),
            Framing::PROTOBUF,
        );
        assert_eq!(s.push(&[0u8; 3000], 1).unwrap(), Pushed::Added);
        // Incompressible bytes over the limit are dropped.
        assert_eq!(s.push(&noise(7, 3000), 1).unwrap(), Pushed::TooBig);
        let bodies = s.finish().unwrap();
        assert_eq!(bodies.len(), 1);
        assert_eq!(decompress("zstd", &bodies[0].bytes, 1 << 20).unwrap(), vec![0u8; 3000]);
    }

    #[test]
    fn no_items_means_no_payloads() {
        let s = Splitter::new(CompressionKind::Zlib, 1, limits(100, 100, 10), Framing::JSON_ARRAY);
        assert!(s.finish().unwrap().is_empty());
    }

    proptest! {
        #[test]
        fn property_test_bodies_respect_limits_and_keep_every_fitting_item(
            sizes in proptest::collection::vec((1usize..3000, 0u64..40), 1..60),
            kind in prop_oneof![Just(CompressionKind::Zstd), Just(CompressionKind::Zlib), Just(CompressionKind::None)],
            compressible in any::<bool>(),
        ) {
            let lim = limits(4_000, 9_000, 100);
            let mut s = Splitter::new(kind, 1, lim, Framing::JSON_ARRAY);
            let mut kept = Vec::new();
            for (i, (len, points)) in sizes.iter().enumerate() {
                let item = if compressible { vec![b'x'; *len] } else { noise(u32::try_from(i).unwrap() + 1, *len) };
                if s.push(&item, *points).unwrap() == Pushed::Added {
                    kept.push(item);
                } else {
                    // Only an item that cannot fit alone may be dropped.
                    prop_assert!(*points > lim.max_points || !compressible);
                }
            }
            let bodies = s.finish().unwrap();
            let mut joined = Vec::new();
            for b in &bodies {
                prop_assert!(b.bytes.len() as u64 <= lim.max_compressed);
                prop_assert!(b.uncompressed_len <= lim.max_uncompressed);
                prop_assert!(b.points <= lim.max_points);
                let plain = decompress(kind.content_encoding(), &b.bytes, 1 << 20).unwrap();
                prop_assert_eq!(plain.len() as u64, b.uncompressed_len);
                prop_assert_eq!(plain.first(), Some(&b'['));
                prop_assert_eq!(plain.last(), Some(&b']'));
                joined.extend_from_slice(&plain[1..plain.len() - 1]);
                joined.push(b',');
            }
            let expected: Vec<u8> = kept.iter().flat_map(|k| k.iter().copied().chain([b','])).collect();
            prop_assert_eq!(joined, expected);
        }
    }
}
