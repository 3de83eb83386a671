//! Payload compression: a streaming compressor whose worst-case output size is
//! known before each write, and the matching decompressor.
//!
//! The intake limits apply to the *compressed* body, but the size of a
//! compressed stream is only known once it is flushed. Like the Datadog
//! Agent's stream compressor, [`StreamCompressor`] therefore answers "could
//! `n` more bytes still fit?" pessimistically: the bytes already flushed out,
//! plus the codec's documented worst-case bound for everything written since
//! the last flush plus `n`. When that says no, the caller flushes (making the
//! output size exact) and asks again, and only then starts a new payload. The
//! uncompressed bytes are never kept around: memory stays at one compressed
//! body per payload under construction.
//!
//! Kinds follow the Agent's `serializer_compressor_kind`: `zstd` (the default,
//! `Content-Encoding: zstd`), `zlib` (alias `deflate`, `Content-Encoding:
//! deflate`, which in HTTP means the zlib format) and `none` (`identity`).

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

/// Bytes added after the last flush by finishing a stream: a zstd frame's
/// last empty block (and epilogue), or zlib's final block and Adler-32
/// trailer. Both are well under this.
const FINISH_SLACK: usize = 32;

/// Per-flush overhead not covered by the bounds: zlib's sync-flush marker
/// (an empty stored block, 5 bytes) and zstd's frame header (up to 18 bytes,
/// written once).
const FLUSH_SLACK: usize = 24;

/// The payload compression algorithm (`serializer_compressor_kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CompressionKind {
    /// zstd, `Content-Encoding: zstd`. The Agent's default.
    #[default]
    Zstd,
    /// zlib-wrapped deflate, `Content-Encoding: deflate`.
    Zlib,
    /// No compression, `Content-Encoding: identity`.
    None,
}

impl CompressionKind {
    /// The `Content-Encoding` header value for bodies of this kind.
    pub fn content_encoding(self) -> &'static str {
        match self {
            Self::Zstd => "zstd",
            Self::Zlib => "deflate",
            Self::None => "identity",
        }
    }

    /// The configuration spelling (`serializer_compressor_kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zstd => "zstd",
            Self::Zlib => "zlib",
            Self::None => "none",
        }
    }

    /// The kind a `Content-Encoding` header names, for decoders. A missing
    /// header is `identity`.
    pub fn from_content_encoding(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "zstd" => Some(Self::Zstd),
            "deflate" => Some(Self::Zlib),
            "" | "identity" => Some(Self::None),
            _ => None,
        }
    }

    /// The worst-case compressed size of `n` input bytes in one flush.
    fn bound(self, n: usize) -> usize {
        match self {
            Self::Zstd => zstd::zstd_safe::compress_bound(n),
            // zlib's deflateBound for the default settings, without the wrapper
            // (accounted in FINISH_SLACK): stored blocks cost 5 bytes per 16 KiB.
            Self::Zlib => n
                .saturating_add(n >> 12)
                .saturating_add(n >> 14)
                .saturating_add(n >> 25)
                .saturating_add(13),
            Self::None => n,
        }
    }
}

impl fmt::Display for CompressionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `serializer_compressor_kind` value that names no supported algorithm.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown compression kind {0:?} in `serializer_compressor_kind`: expected \"zstd\", \"zlib\" (or \"deflate\") or \"none\"")]
pub struct UnknownCompressionKind(pub String);

impl FromStr for CompressionKind {
    type Err = UnknownCompressionKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "zstd" => Ok(Self::Zstd),
            "zlib" | "deflate" => Ok(Self::Zlib),
            "none" | "identity" | "" => Ok(Self::None),
            _ => Err(UnknownCompressionKind(s.to_owned())),
        }
    }
}

enum Inner {
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    Zlib(flate2::write::ZlibEncoder<Vec<u8>>),
    None(Vec<u8>),
}

/// A streaming compressor that can say, before a write, whether the result
/// would still fit a compressed-size limit.
pub struct StreamCompressor {
    kind: CompressionKind,
    inner: Inner,
    /// Input bytes written since the last flush.
    unflushed: usize,
    /// Input bytes written in total.
    written: usize,
}

impl StreamCompressor {
    /// A new, empty stream. `zstd_level` is only used for zstd.
    pub fn new(kind: CompressionKind, zstd_level: i32) -> io::Result<Self> {
        let inner = match kind {
            CompressionKind::Zstd => Inner::Zstd(zstd::stream::write::Encoder::new(Vec::new(), zstd_level)?),
            CompressionKind::Zlib => Inner::Zlib(flate2::write::ZlibEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            )),
            CompressionKind::None => Inner::None(Vec::new()),
        };
        Ok(Self {
            kind,
            inner,
            unflushed: 0,
            written: 0,
        })
    }

    /// Compressed bytes emitted so far (exact after [`Self::flush`]).
    fn output_len(&self) -> usize {
        match &self.inner {
            Inner::Zstd(e) => e.get_ref().len(),
            Inner::Zlib(e) => e.get_ref().len(),
            Inner::None(v) => v.len(),
        }
    }

    /// Uncompressed bytes written so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// The worst-case size of the finished body if `extra` more bytes were
    /// written now and the stream then finished.
    pub fn worst_case_with(&self, extra: usize) -> usize {
        let slack = if self.kind == CompressionKind::None {
            0
        } else {
            FLUSH_SLACK + FINISH_SLACK
        };
        self.output_len()
            .saturating_add(self.kind.bound(self.unflushed.saturating_add(extra)))
            .saturating_add(slack)
    }

    /// Whether anything was written since the last flush (so flushing would
    /// tighten [`Self::worst_case_with`]).
    pub fn has_unflushed(&self) -> bool {
        self.unflushed > 0
    }

    /// Writes uncompressed bytes.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            Inner::Zstd(e) => e.write_all(bytes)?,
            Inner::Zlib(e) => e.write_all(bytes)?,
            Inner::None(v) => v.extend_from_slice(bytes),
        }
        self.unflushed = self.unflushed.saturating_add(bytes.len());
        self.written = self.written.saturating_add(bytes.len());
        Ok(())
    }

    /// Flushes everything written so far to the output, so its size is exact.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Zstd(e) => e.flush()?,
            Inner::Zlib(e) => e.flush()?,
            Inner::None(_) => {}
        }
        self.unflushed = 0;
        Ok(())
    }

    /// Finishes the stream and returns the body.
    pub fn finish(self) -> io::Result<Vec<u8>> {
        match self.inner {
            Inner::Zstd(e) => e.finish(),
            Inner::Zlib(e) => e.finish(),
            Inner::None(v) => Ok(v),
        }
    }
}

/// Why a body could not be decompressed.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    /// The `Content-Encoding` is not one this crate produces.
    #[error("unsupported Content-Encoding {0:?}: expected zstd, deflate or identity")]
    UnsupportedEncoding(String),
    /// The body is not valid data of its declared encoding.
    #[error("cannot decompress a {encoding} body")]
    Corrupt {
        /// The declared encoding.
        encoding: &'static str,
        /// The decoder's error.
        source: io::Error,
    },
    /// The body inflates past the caller's limit.
    #[error("{encoding} body inflates past the {limit}-byte limit")]
    TooLarge {
        /// The declared encoding.
        encoding: &'static str,
        /// The limit that was hit.
        limit: u64,
    },
}

/// Decompresses a body according to its `Content-Encoding` header value,
/// refusing to inflate more than `limit` bytes (a zstd bomb must not take a
/// 512 MiB board down).
pub fn decompress(content_encoding: &str, body: &[u8], limit: u64) -> Result<Vec<u8>, DecompressError> {
    let kind = CompressionKind::from_content_encoding(content_encoding)
        .ok_or_else(|| DecompressError::UnsupportedEncoding(content_encoding.to_owned()))?;
    let encoding = kind.content_encoding();
    let corrupt = |source| DecompressError::Corrupt { encoding, source };
    let mut out = Vec::new();
    // Reading one byte past the limit tells "exactly at the limit" from "over".
    let take = limit.saturating_add(1);
    match kind {
        CompressionKind::None => out.extend_from_slice(body),
        CompressionKind::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(body).map_err(corrupt)?;
            decoder.take(take).read_to_end(&mut out).map_err(corrupt)?;
        }
        CompressionKind::Zlib => {
            flate2::read::ZlibDecoder::new(body)
                .take(take)
                .read_to_end(&mut out)
                .map_err(corrupt)?;
        }
    }
    if u64::try_from(out.len()).unwrap_or(u64::MAX) > limit {
        return Err(DecompressError::TooLarge { encoding, limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<u8> {
        // Compressible but not trivially so: a counter rendered as text.
        (0..n)
            .flat_map(|i| format!("metric.{}:{}|c\n", i % 97, i).into_bytes())
            .collect()
    }

    #[test]
    fn every_kind_round_trips_with_its_content_encoding() {
        for kind in [CompressionKind::Zstd, CompressionKind::Zlib, CompressionKind::None] {
            let input = sample(2000);
            let mut c = StreamCompressor::new(kind, 1).unwrap();
            for chunk in input.chunks(777) {
                c.write(chunk).unwrap();
                c.flush().unwrap();
            }
            let body = c.finish().unwrap();
            if kind != CompressionKind::None {
                assert!(body.len() < input.len() / 2, "{kind} should compress text");
            }
            let back = decompress(kind.content_encoding(), &body, 1 << 24).unwrap();
            assert_eq!(back, input, "{kind}");
        }
    }

    #[test]
    fn worst_case_is_never_below_the_real_size() {
        for kind in [CompressionKind::Zstd, CompressionKind::Zlib, CompressionKind::None] {
            // Incompressible input is where bounds are tight.
            let mut x: u32 = 0x1234_5678;
            let noise: Vec<u8> = (0..300_000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x.to_le_bytes()[0]
                })
                .collect();
            let mut c = StreamCompressor::new(kind, 3).unwrap();
            let mut predicted = c.worst_case_with(0);
            for chunk in noise.chunks(40_000) {
                predicted = c.worst_case_with(chunk.len());
                c.write(chunk).unwrap();
            }
            let body = c.finish().unwrap();
            assert!(body.len() <= predicted, "{kind}: {} > {predicted}", body.len());
        }
    }

    #[test]
    fn decompression_stops_at_the_limit() {
        let input = vec![0u8; 100_000];
        let body = zstd::stream::encode_all(input.as_slice(), 1).unwrap();
        assert!(matches!(
            decompress("zstd", &body, 99_999),
            Err(DecompressError::TooLarge { limit: 99_999, .. })
        ));
        assert_eq!(decompress("zstd", &body, 100_000).unwrap().len(), 100_000);
    }

    #[test]
    fn corrupt_and_unknown_encodings_are_errors() {
        let err = decompress("zstd", b"not zstd", 1024).unwrap_err();
        assert!(matches!(err, DecompressError::Corrupt { .. }));
        // The decoder's error is the source, not repeated in the message.
        assert_eq!(err.to_string(), "cannot decompress a zstd body");
        assert!(std::error::Error::source(&err).is_some());
        assert!(matches!(
            decompress("deflate", b"not zlib", 1024),
            Err(DecompressError::Corrupt { .. })
        ));
        assert!(matches!(
            decompress("br", b"", 1024),
            Err(DecompressError::UnsupportedEncoding(_))
        ));
    }

    #[test]
    fn kinds_parse_from_the_agent_spellings() {
        assert_eq!("zstd".parse(), Ok(CompressionKind::Zstd));
        assert_eq!("ZLIB".parse(), Ok(CompressionKind::Zlib));
        assert_eq!("deflate".parse(), Ok(CompressionKind::Zlib));
        assert_eq!("none".parse(), Ok(CompressionKind::None));
        let err = "gzip".parse::<CompressionKind>().unwrap_err();
        assert!(err.to_string().contains("serializer_compressor_kind"), "{err}");
    }
}
