//! On-disk retry storage: payloads that do not fit in the memory queue, or are
//! still queued at shutdown, survive a restart.
//!
//! # Layout
//! `<forwarder_storage_path>/<endpoint dir>/<created ns, 20 digits>-<seq, 10 digits>.retry`,
//! one payload per file, where the endpoint directory is the base URL with
//! every character outside `[A-Za-z0-9.-]` replaced by `_`
//! (`https___app.datadoghq.com`). Names sort oldest first. A file is written to
//! `.<name>.tmp`, fsynced, renamed into place and the directory fsynced, so a
//! crash leaves either the whole file or a temporary file that the next start
//! removes.
//!
//! # File format (version 1, integers little-endian)
//! | bytes | field |
//! |---|---|
//! | 4 | magic `ADPR` |
//! | 1 | format version, `1` |
//! | 1 | endpoint: 0 series, 1 sketches, 2 check_run, 3 events |
//! | 2 | API key index in the endpoint's configured key list |
//! | 8 | creation time, milliseconds since the Unix epoch |
//! | 8 | items in the payload |
//! | 2 + n | `Content-Type` length and bytes |
//! | 2 + n | `Content-Encoding` length and bytes |
//! | 8 + n | body length and body |
//! | 4 | CRC-32 (IEEE) of every preceding byte |
//!
//! API keys are never written: a replayed payload uses the key configured at
//! the same index (dropped if that index no longer exists). A file that is
//! truncated, has a bad magic/version/checksum or an unknown endpoint is
//! removed with a warning naming it, and counted as `corrupted`.
//!
//! Storage I/O is synchronous: it happens only when memory overflows, when the
//! queue runs dry and stored payloads are replayed, and at shutdown.
//!
//! # Missing
//! - `forwarder_storage_max_disk_ratio` (free-space check) is not honoured.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adp_wire::Endpoint;
use bytes::Bytes;
use http::HeaderValue;

use crate::transaction::{endpoint_index, Transaction};

const MAGIC: &[u8; 4] = b"ADPR";
const VERSION: u8 = 1;
const EXTENSION: &str = "retry";

/// The numeric code of an endpoint in stored files.
/// It is the endpoint's dense index (`Intake`, 4, is never written
/// (`Endpoint::storable_on_disk`); a file naming it is refused as corrupted).
fn endpoint_code(e: Endpoint) -> u8 {
    // Five endpoints: the index fits a byte.
    endpoint_index(e) as u8
}

fn endpoint_from_code(code: u8) -> Option<Endpoint> {
    Endpoint::ALL
        .into_iter()
        .find(|e| e.storable_on_disk() && endpoint_code(*e) == code)
}

/// Serialises a transaction in the version 1 format.
pub(crate) fn encode(t: &Transaction) -> Vec<u8> {
    let ct = t.content_type.as_bytes();
    let ce = t.content_encoding.as_bytes();
    let mut out = Vec::with_capacity(4 + 1 + 1 + 2 + 8 + 8 + 2 + ct.len() + 2 + ce.len() + 8 + t.body.len() + 4);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(endpoint_code(t.endpoint));
    out.extend_from_slice(&t.key_index.to_le_bytes());
    out.extend_from_slice(&t.created_unix_ms.to_le_bytes());
    out.extend_from_slice(&t.items.to_le_bytes());
    for field in [ct, ce] {
        // Header values are short; longer ones cannot be produced by the encoders.
        let len = u16::try_from(field.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&field[..usize::from(len)]);
    }
    out.extend_from_slice(&(t.body.len() as u64).to_le_bytes());
    out.extend_from_slice(&t.body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Parses a version 1 file; the error says what is wrong.
pub(crate) fn decode(data: &[u8]) -> Result<Transaction, String> {
    if data.len() < 4 + 1 + 1 + 2 + 8 + 8 + 2 + 2 + 8 + 4 {
        return Err(format!("truncated ({} bytes)", data.len()));
    }
    let (content, crc) = data.split_at(data.len() - 4);
    let stored = u32::from_le_bytes(crc.try_into().map_err(|_| "truncated")?);
    if &content[..4] != MAGIC {
        return Err("not a retry file (bad magic)".to_owned());
    }
    if content[4] != VERSION {
        return Err(format!("unsupported format version {}", content[4]));
    }
    if crc32fast::hash(content) != stored {
        return Err("checksum mismatch (truncated or corrupted)".to_owned());
    }
    let mut r = Reader { data: content, pos: 5 };
    let endpoint = endpoint_from_code(r.u8()?).ok_or("unknown endpoint code")?;
    let key_index = u16::from_le_bytes(r.array()?);
    let created_unix_ms = u64::from_le_bytes(r.array()?);
    let items = u64::from_le_bytes(r.array()?);
    let mut header = || -> Result<HeaderValue, String> {
        let len = u16::from_le_bytes(r.array()?);
        HeaderValue::from_bytes(r.take(u64::from(len))?).map_err(|_| "invalid header value".to_owned())
    };
    let content_type = header()?;
    let content_encoding = header()?;
    let body_len = u64::from_le_bytes(r.array()?);
    let body = Bytes::copy_from_slice(r.take(body_len)?);
    if r.pos != content.len() {
        return Err("trailing bytes after the body".to_owned());
    }
    Ok(Transaction {
        endpoint,
        key_index,
        body,
        content_type,
        content_encoding,
        items,
        created_unix_ms,
        attempts: 0,
    })
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let n = usize::try_from(n).map_err(|_| "length does not fit in memory".to_owned())?;
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or("truncated")?;
        let slice = &self.data[self.pos..end];
        self.pos = end;
        Ok(slice)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        self.take(N as u64)?.try_into().map_err(|_| "truncated".to_owned())
    }
}

/// What a storage operation did, for the caller's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreOutcome {
    /// Older files removed to make room.
    pub evicted: u64,
}

/// Why a payload could not be stored.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// Larger than `forwarder_storage_max_size_in_bytes` on its own.
    TooLarge,
    /// The write failed.
    Io(PathBuf, io::Error),
}

#[derive(Debug)]
struct StoredFile {
    domain: usize,
    path: PathBuf,
    size: u64,
}

/// Files on disk for every endpoint, bounded in total bytes.
#[derive(Debug)]
pub(crate) struct DiskStorage {
    root: PathBuf,
    dirs: Vec<PathBuf>,
    max_bytes: u64,
    files: VecDeque<StoredFile>,
    bytes: u64,
    seq: u32,
}

/// What opening the storage found, for logs and counters.
#[derive(Debug, Default)]
pub(crate) struct OpenReport {
    pub outdated: u64,
    pub temporaries: u64,
}

impl DiskStorage {
    /// Opens (creating) the directories for `bases`, removes leftovers of
    /// interrupted writes and files older than `outdated_after`, and indexes
    /// the rest oldest first.
    pub(crate) fn open(
        root: &Path,
        bases: &[String],
        max_bytes: u64,
        outdated_after: Duration,
    ) -> io::Result<(Self, OpenReport)> {
        let mut report = OpenReport::default();
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        let now = SystemTime::now();
        for (domain, base) in bases.iter().enumerate() {
            let dir = root.join(dir_name(base));
            fs::create_dir_all(&dir)?;
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                let path = entry.path();
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') && name.ends_with(".tmp") {
                    let _ = fs::remove_file(&path);
                    report.temporaries += 1;
                    continue;
                }
                if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
                    continue;
                }
                let meta = entry.metadata()?;
                let age = meta
                    .modified()
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .unwrap_or_default();
                if age > outdated_after {
                    tracing::warn!(file = %path.display(), "Removing stored payload older than forwarder_outdated_file_in_days.");
                    let _ = fs::remove_file(&path);
                    report.outdated += 1;
                    continue;
                }
                files.push((
                    name.into_owned(),
                    StoredFile {
                        domain,
                        path,
                        size: meta.len(),
                    },
                ));
            }
            dirs.push(dir);
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let files: VecDeque<StoredFile> = files.into_iter().map(|(_, f)| f).collect();
        let bytes = files.iter().map(|f| f.size).sum();
        Ok((
            Self {
                root: root.to_owned(),
                dirs,
                max_bytes,
                files,
                bytes,
                seq: 0,
            },
            report,
        ))
    }

    /// Bytes currently stored.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether `domain` has stored payloads.
    pub(crate) fn has(&self, domain: usize) -> bool {
        self.files.iter().any(|f| f.domain == domain)
    }

    /// Writes one payload atomically, removing the oldest files (of any
    /// endpoint) while the total would exceed the bound.
    pub(crate) fn store(&mut self, domain: usize, t: &Transaction) -> Result<StoreOutcome, StoreError> {
        let data = encode(t);
        let size = data.len() as u64;
        if size > self.max_bytes {
            return Err(StoreError::TooLarge);
        }
        let mut outcome = StoreOutcome::default();
        while self.bytes + size > self.max_bytes {
            let Some(oldest) = self.files.pop_front() else { break };
            self.bytes -= oldest.size;
            let _ = fs::remove_file(&oldest.path);
            outcome.evicted += 1;
        }
        let created_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        self.seq = self.seq.wrapping_add(1);
        let name = format!("{created_ns:020}-{:010}.{EXTENSION}", self.seq);
        let dir = &self.dirs[domain];
        let path = dir.join(&name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let write = || -> io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &path)?;
            // Make the rename itself durable.
            fs::File::open(dir)?.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::Io(path, e));
        }
        self.bytes += size;
        self.files.push_back(StoredFile { domain, path, size });
        Ok(outcome)
    }

    /// Removes and returns the oldest readable payload of `domain`; unreadable
    /// files are removed, reported through `on_corrupt` with their path and reason.
    pub(crate) fn take_oldest(
        &mut self,
        domain: usize,
        mut on_corrupt: impl FnMut(&Path, &str),
    ) -> Option<Transaction> {
        while let Some(i) = self.files.iter().position(|f| f.domain == domain) {
            let file = self.files.remove(i)?;
            self.bytes -= file.size;
            let result = fs::read(&file.path).map_err(|e| e.to_string()).and_then(|d| decode(&d));
            let _ = fs::remove_file(&file.path);
            match result {
                Ok(t) => return Some(t),
                Err(reason) => on_corrupt(&file.path, &reason),
            }
        }
        None
    }

    /// The storage root, for logs.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }
}

/// A directory name for a base URL, stable across restarts.
fn dir_name(base: &str) -> String {
    base.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(body: &[u8]) -> Transaction {
        Transaction {
            endpoint: Endpoint::Sketches,
            key_index: 1,
            body: Bytes::copy_from_slice(body),
            content_type: HeaderValue::from_static("application/x-protobuf"),
            content_encoding: HeaderValue::from_static("zstd"),
            items: 7,
            created_unix_ms: 1_700_000_000_123,
            attempts: 3,
        }
    }

    /// Storage of 1 MiB for one domain under `root`.
    fn open_one_domain(root: &Path, outdated_after: Duration) -> (DiskStorage, OpenReport) {
        DiskStorage::open(root, &["http://x".to_owned()], 1 << 20, outdated_after).unwrap()
    }

    #[test]
    fn files_round_trip_and_every_truncation_is_detected() {
        let t = txn(b"some body bytes");
        let data = encode(&t);
        let back = decode(&data).unwrap();
        assert_eq!(
            (back.endpoint, back.key_index, back.items, back.created_unix_ms),
            (Endpoint::Sketches, 1, 7, t.created_unix_ms)
        );
        assert_eq!(
            (back.body, back.content_type, back.content_encoding),
            (t.body, t.content_type, t.content_encoding)
        );
        for len in 0..data.len() {
            assert!(decode(&data[..len]).is_err(), "truncated to {len} bytes was accepted");
        }
        for i in 0..data.len() {
            let mut bad = data.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_err(), "flipped byte {i} was accepted");
        }
    }

    #[test]
    fn storage_is_bounded_replays_oldest_first_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let bases = vec!["https://app.datadoghq.com".to_owned(), "http://127.0.0.1:1".to_owned()];
        let one = encode(&txn(&[0; 100])).len() as u64;
        let (mut s, _) = DiskStorage::open(dir.path(), &bases, one * 3, Duration::from_secs(3600)).unwrap();
        for i in 0..4u8 {
            let outcome = s.store(usize::from(i % 2), &txn(&[i; 100])).unwrap();
            assert_eq!(outcome.evicted, u64::from(i == 3), "store {i}");
        }
        assert_eq!(s.bytes(), one * 3);
        assert!(matches!(s.store(0, &txn(&[0; 1000])), Err(StoreError::TooLarge)));
        drop(s);

        let (mut s, report) = DiskStorage::open(dir.path(), &bases, one * 3, Duration::from_secs(3600)).unwrap();
        assert_eq!((report.outdated, report.temporaries), (0, 0));
        assert_eq!(s.bytes(), one * 3);
        let never = |p: &Path, r: &str| panic!("{} {r}", p.display());
        // Payload 0 was evicted; domain 1 holds 1 and 3, domain 0 holds 2.
        assert_eq!(s.take_oldest(1, never).unwrap().body[0], 1);
        assert_eq!(s.take_oldest(1, never).unwrap().body[0], 3);
        assert!(s.take_oldest(1, never).is_none());
        assert!(s.has(0));
        assert_eq!(s.take_oldest(0, never).unwrap().body[0], 2);
        assert_eq!(s.bytes(), 0);
        assert!(fs::read_dir(dir.path().join("https___app.datadoghq.com"))
            .unwrap()
            .next()
            .is_none());
    }

    #[test]
    fn corrupted_files_are_skipped_and_reported_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = open_one_domain(dir.path(), Duration::from_secs(3600));
        s.store(0, &txn(b"first")).unwrap();
        s.store(0, &txn(b"second")).unwrap();
        let first = s.files[0].path.clone();
        let data = fs::read(&first).unwrap();
        fs::write(&first, &data[..data.len() / 2]).unwrap();
        fs::write(s.dirs[0].join(".leftover.retry.tmp"), b"x").unwrap();
        drop(s);
        let (mut s, report) = open_one_domain(dir.path(), Duration::from_secs(3600));
        assert_eq!(report.temporaries, 1);
        let mut corrupt = Vec::new();
        let t = s
            .take_oldest(0, |p, reason| corrupt.push((p.to_owned(), reason.to_owned())))
            .unwrap();
        assert_eq!(&t.body[..], b"second");
        assert_eq!(corrupt.len(), 1);
        assert_eq!(corrupt[0].0, first);
        assert!(!first.exists());
    }

    #[test]
    fn outdated_files_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = open_one_domain(dir.path(), Duration::from_secs(3600));
        s.store(0, &txn(b"old")).unwrap();
        drop(s);
        std::thread::sleep(Duration::from_millis(20));
        let (s, report) = open_one_domain(dir.path(), Duration::from_millis(1));
        assert_eq!(report.outdated, 1);
        assert_eq!(s.bytes(), 0);
    }
}
