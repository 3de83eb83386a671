//! Framing of Unix stream connections.
//!
//! Stream clients frame DogStatsD in one of two ways, and a connection is
//! classified once, from its first four bytes:
//!
//! - **Length-prefixed** (what the official clients send on `unixstream://`
//!   sockets): each frame is a 4-byte little-endian length followed by that
//!   many bytes of newline-separated messages. Chosen when the fourth byte is
//!   `0`, i.e. a length below 16 MiB.
//! - **Newline-delimited** otherwise: messages end with `\n`.
//!
//! The rule is unambiguous for valid input: a text message starts with a
//! metric name (printable ASCII), `_e{` or `_sc|`, so its fourth byte is never
//! NUL, while every accepted length prefix has a NUL fourth byte (frames are at
//! most `dogstatsd_buffer_size` bytes, far below 16 MiB).
//!
//! A frame (or line) longer than `dogstatsd_buffer_size` is dropped and
//! reported as [`Frame::Truncated`]; its bytes are skipped without buffering,
//! so a connection never holds more than about two buffers of data.

/// What the framer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete payload (one or more newline-separated messages).
    Payload(&'a [u8]),
    /// A frame over the size limit was dropped.
    Truncated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Undecided,
    Newline,
    LengthPrefixed,
}

/// Incremental framer for one connection.
#[derive(Debug)]
pub struct StreamFramer {
    buf: Vec<u8>,
    mode: Mode,
    max_frame: usize,
    /// Newline mode: dropping an over-long line up to its newline.
    discarding_line: bool,
    /// Length-prefixed mode: bytes of an over-long frame still to skip.
    skip: u64,
}

impl StreamFramer {
    /// A framer accepting frames of at most `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: Vec::new(),
            mode: Mode::Undecided,
            max_frame,
            discarding_line: false,
            skip: 0,
        }
    }

    /// Whether the connection was classified as length-prefixed.
    pub fn is_length_prefixed(&self) -> bool {
        self.mode == Mode::LengthPrefixed
    }

    /// Bytes buffered waiting for the rest of a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds bytes read from the connection, calling `on_frame` for every
    /// complete frame.
    pub fn feed(&mut self, mut data: &[u8], on_frame: &mut dyn FnMut(Frame<'_>)) {
        if self.skip > 0 {
            let n = usize::try_from(self.skip).unwrap_or(usize::MAX).min(data.len());
            data = data.get(n..).unwrap_or(&[]);
            self.skip -= n as u64;
        }
        self.buf.extend_from_slice(data);
        if self.mode == Mode::Undecided {
            match self.buf.get(3) {
                Some(0) => self.mode = Mode::LengthPrefixed,
                Some(_) => self.mode = Mode::Newline,
                // Wait for four bytes even if a `\n` came first: it may be a
                // length byte (10), and no valid text message is that short.
                None => return,
            }
        }
        match self.mode {
            Mode::LengthPrefixed => self.length_prefixed(on_frame),
            Mode::Newline | Mode::Undecided => self.newline(on_frame),
        }
    }

    fn length_prefixed(&mut self, on_frame: &mut dyn FnMut(Frame<'_>)) {
        let mut pos = 0usize;
        loop {
            let rest = self.buf.get(pos..).unwrap_or(&[]);
            let Some(header) = rest.get(..4) else { break };
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let body = &rest[4..];
            match usize::try_from(len) {
                Ok(len) if len <= self.max_frame => {
                    let Some(payload) = body.get(..len) else { break };
                    if !payload.is_empty() {
                        on_frame(Frame::Payload(payload));
                    }
                    pos += 4 + len;
                }
                _ => {
                    on_frame(Frame::Truncated);
                    let available = body.len() as u64;
                    let len = u64::from(len);
                    if available >= len {
                        // `len <= available`, which is a usize.
                        pos += 4 + usize::try_from(len).unwrap_or(body.len());
                    } else {
                        self.skip = len - available;
                        pos = self.buf.len();
                        break;
                    }
                }
            }
        }
        self.buf.drain(..pos.min(self.buf.len()));
    }

    fn newline(&mut self, on_frame: &mut dyn FnMut(Frame<'_>)) {
        let mut pos = 0usize;
        while let Some(i) = self.buf.get(pos..).and_then(|r| memchr::memchr(b'\n', r)) {
            let line = &self.buf[pos..pos + i];
            if self.discarding_line {
                self.discarding_line = false;
            } else if line.len() > self.max_frame {
                on_frame(Frame::Truncated);
            } else if !line.is_empty() {
                on_frame(Frame::Payload(line));
            }
            pos += i + 1;
        }
        self.buf.drain(..pos);
        if self.buf.len() > self.max_frame {
            // An over-long partial line: report it once and drop it up to its newline.
            if !self.discarding_line {
                on_frame(Frame::Truncated);
            }
            self.discarding_line = true;
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn run(framer: &mut StreamFramer, chunks: &[&[u8]]) -> Vec<Result<Vec<u8>, ()>> {
        let mut out = Vec::new();
        for c in chunks {
            framer.feed(c, &mut |f| {
                out.push(match f {
                    Frame::Payload(p) => Ok(p.to_vec()),
                    Frame::Truncated => Err(()),
                })
            });
        }
        out
    }

    fn lp(payload: &[u8]) -> Vec<u8> {
        let mut v = u32::try_from(payload.len()).unwrap().to_le_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn newline_frames_split_across_reads() {
        let mut f = StreamFramer::new(100);
        let out = run(&mut f, &[b"a:1|c\nb:", b"2|g\n", b"c:3|c"]);
        assert_eq!(out, vec![Ok(b"a:1|c".to_vec()), Ok(b"b:2|g".to_vec())]);
        assert!(!f.is_length_prefixed());
        assert_eq!(f.buffered(), 5);
    }

    #[test]
    fn length_prefixed_frames_split_across_reads() {
        let mut f = StreamFramer::new(100);
        let mut wire = lp(b"a:1|c\nb:2|g");
        wire.extend(lp(b"c:3|d"));
        let (x, y) = wire.split_at(7);
        let out = run(&mut f, &[&x[..2], &x[2..], y]);
        assert!(f.is_length_prefixed());
        assert_eq!(out, vec![Ok(b"a:1|c\nb:2|g".to_vec()), Ok(b"c:3|d".to_vec())]);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn an_over_long_length_prefixed_frame_is_skipped() {
        let mut f = StreamFramer::new(8);
        let mut wire = lp(&[b'x'; 20]);
        wire.extend(lp(b"ok:1|c"));
        let out = run(&mut f, &[&wire[..10], &wire[10..]]);
        assert_eq!(out, vec![Err(()), Ok(b"ok:1|c".to_vec())]);
    }

    #[test]
    fn an_over_long_line_is_dropped_once() {
        let mut f = StreamFramer::new(8);
        let out = run(&mut f, &[b"aaaaaaaaaaaa", b"aaaaaaaaaaaa", b"aa\nok:1|c\n"]);
        assert_eq!(out, vec![Err(()), Ok(b"ok:1|c".to_vec())]);
        let mut f = StreamFramer::new(8);
        let out = run(&mut f, &[b"x:123456789|c\nok:1|c\n"]);
        assert_eq!(out, vec![Err(()), Ok(b"ok:1|c".to_vec())]);
    }

    proptest! {
        #[test]
        fn property_test_any_chunking_yields_the_same_frames(
            payloads in proptest::collection::vec("[a-z]{1,5}:[0-9]{1,3}\\|c", 1..10),
            cut in 1usize..16,
            prefixed in any::<bool>(),
        ) {
            let wire: Vec<u8> = if prefixed {
                payloads.iter().flat_map(|p| lp(p.as_bytes())).collect()
            } else {
                payloads.iter().flat_map(|p| format!("{p}\n").into_bytes()).collect()
            };
            let chunks: Vec<&[u8]> = wire.chunks(cut).collect();
            let mut f = StreamFramer::new(64);
            let out = run(&mut f, &chunks);
            let expected: Vec<Result<Vec<u8>, ()>> = payloads.iter().map(|p| Ok(p.clone().into_bytes())).collect();
            prop_assert_eq!(out, expected);
        }

        #[test]
        fn property_test_arbitrary_stream_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut f = StreamFramer::new(32);
            for c in &chunks {
                f.feed(c, &mut |_| {});
                prop_assert!(f.buffered() <= 32 + 64 + 4);
            }
        }
    }
}
