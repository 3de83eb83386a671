//! The on-disk retry storage across kill -9, damaged files and size caps.
//!
//! Every test sends timestamped gauges (`name:<i>|g|T<t0 + i>`), one at a
//! time: a timestamped gauge is not aggregated and leaves at the next flush,
//! so each becomes exactly one series payload holding one point whose value
//! says which payload it is. Stored files are read back with the format
//! documented in `adp-forwarder`'s `storage` module, so a test knows exactly
//! which values are on disk and which only in memory.

use std::collections::BTreeSet;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use adp_test_intake::{Behaviour, Decoded, Received, TestIntake};
use adp_wire::Endpoint;
use tempfile::TempDir;

use crate::harness::*;

const SERIES_RECEIVED: &str = "adp_forwarder_payloads_received_total{endpoint=\"series\"}";
const SERIES_RETRIES: &str = "adp_forwarder_retries_total{endpoint=\"series\"}";
const PERSISTED: &str = "adp_forwarder_payloads_persisted_total";
const REPLAYED: &str = "adp_forwarder_payloads_replayed_total";

/// A storage test's agent, started during an outage (the intake answers 503
/// to everything) with disk storage under `storage`.
struct StorageRun {
    intake: TestIntake,
    /// The agent's files; removed when the run is dropped.
    dir: TempDir,
    storage: PathBuf,
    env: Env,
    adp: Running,
    /// The unprivileged API of the current agent.
    api: String,
}

impl StorageRun {
    /// Starts the outage and an agent with a memory retry queue of
    /// `queue_bytes` and disk storage bounded at `disk_bytes`.
    async fn start(queue_bytes: u64, disk_bytes: u64) -> Self {
        let intake = TestIntake::start(loopback(), Behaviour::status(503)).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("retry");
        let env = Env::standalone(&intake.url(), dir.path())
            .set("DD_FORWARDER_STORAGE_PATH", storage.to_str().unwrap())
            .set("DD_FORWARDER_STORAGE_MAX_SIZE_IN_BYTES", disk_bytes.to_string())
            .set("DD_FORWARDER_RETRY_QUEUE_PAYLOADS_MAX_SIZE", queue_bytes.to_string())
            // Fast and flat: the tests wait on retries, not on a growing backoff.
            .set("DD_FORWARDER_BACKOFF_BASE", "50ms")
            .set("DD_FORWARDER_BACKOFF_MAX", "100ms");
        let (adp, api) = start_healthy(&env, dir.path()).await;
        Self {
            intake,
            dir,
            storage,
            env,
            adp,
            api,
        }
    }

    /// Starts a new agent with the same environment and storage, once the
    /// previous one has exited.
    async fn restart(&mut self) {
        (self.adp, self.api) = start_healthy(&self.env, self.dir.path()).await;
    }

    /// SIGKILL: no shutdown path runs, nothing more is persisted.
    async fn kill_9(&mut self) {
        self.adp.child.kill().unwrap();
        self.adp.wait_exit().await;
    }

    /// SIGTERM; asserts a zero exit and no crash in the log, and returns the log.
    async fn stop(&mut self) -> String {
        let log = self.adp.stop().await;
        assert_clean_log(&log, &[]);
        log
    }

    /// Sends `values` as timestamped gauges named `metric`, one payload each
    /// (the next is sent once the forwarder has received the previous one's
    /// payload), then waits until the forwarder has settled them ([`Self::wait_settled`]).
    async fn send_payloads_and_settle(&mut self, metric: &str, values: impl Iterator<Item = u32>) {
        let client = UnixDatagram::unbound().unwrap();
        let socket = self.dir.path().join("dsd.socket");
        let t0 = t0();
        let already = metric_or_zero(&self.api, SERIES_RECEIVED);
        for (n, v) in values.enumerate() {
            let msg = format!("{metric}:{v}|g|T{}", t0 + i64::from(v));
            client.send_to(msg.as_bytes(), &socket).unwrap();
            let want = already + n as f64 + 1.0;
            wait_metric(&mut self.adp, &self.api, SERIES_RECEIVED, |r| r >= want).await;
            let got = metric_or_zero(&self.api, SERIES_RECEIVED);
            assert_eq!(got, want, "one payload per timestamped gauge:\n{}", self.adp.log());
        }
        self.wait_settled().await;
    }

    /// Waits until the forwarder's worker has settled two more failed
    /// attempts, which it only does with its input channel drained: from then
    /// on, during an outage with no new input, what is on disk and in memory
    /// stays put.
    async fn wait_settled(&mut self) {
        let retries = metric_or_zero(&self.api, SERIES_RETRIES);
        wait_metric(&mut self.adp, &self.api, SERIES_RETRIES, |r| r >= retries + 2.0).await;
    }
}

/// A base timestamp a minute in the past (points are within the intake's window).
fn t0() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap() - 60
}

/// Stored payload files under `storage`, oldest first (names sort by age).
fn retry_files(storage: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(dirs) = std::fs::read_dir(storage) else {
        return files;
    };
    for dir in dirs {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "retry") {
                files.push(p);
            }
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    files
}

/// Every file under `storage` (stored, temporary or foreign) with its size.
fn all_files(storage: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(storage) else {
        return out;
    };
    for dir in dirs.flatten() {
        let Ok(entries) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        for e in entries.flatten() {
            // A file can be renamed or removed between the listing and the stat.
            if let Ok(m) = e.metadata() {
                out.push((e.path(), m.len()));
            }
        }
    }
    out
}

/// The `(metric, value)` points of one stored series payload, parsed with the
/// version 1 layout: magic, version, endpoint, key index, created, items,
/// content type, content encoding, body, CRC-32.
fn stored_points(path: &Path) -> Vec<(String, f64)> {
    let data = std::fs::read(path).unwrap();
    assert_eq!(&data[..5], b"ADPR\x01", "{}", path.display());
    assert_eq!(data[5], 0, "a series payload: {}", path.display());
    let mut pos = 4 + 1 + 1 + 2 + 8 + 8;
    let mut field = |len_bytes: usize| {
        let mut len = [0u8; 8];
        len[..len_bytes].copy_from_slice(&data[pos..pos + len_bytes]);
        let len = usize::try_from(u64::from_le_bytes(len)).unwrap();
        let v = &data[pos + len_bytes..pos + len_bytes + len];
        pos += len_bytes + len;
        v
    };
    let _content_type = field(2);
    let encoding = std::str::from_utf8(field(2)).unwrap().to_owned();
    let body = field(8);
    match adp_test_intake::decode(Endpoint::Series, &encoding, body).unwrap() {
        Decoded::Series { series } => series
            .into_iter()
            .flat_map(|s| s.points.into_iter().map(move |p| (s.metric.clone(), p.1)))
            .collect(),
        other => panic!("{}: not series: {other:?}", path.display()),
    }
}

/// Values of `metric` in the stored files, as integers.
fn stored_values(files: &[PathBuf], metric: &str) -> Vec<u32> {
    let mut values = Vec::new();
    for f in files {
        let points = stored_points(f);
        assert_eq!(points.len(), 1, "one point per payload in {}: {points:?}", f.display());
        assert_eq!(points[0].0, metric);
        values.push(as_u32(points[0].1));
    }
    values
}

/// Values of `metric` received by the intake, as integers in arrival order.
fn received_values(r: &Received, metric: &str) -> Vec<u32> {
    r.series_named(metric)
        .iter()
        .flat_map(|s| s.points.iter().map(|p| as_u32(p.1)))
        .collect()
}

fn as_u32(v: f64) -> u32 {
    assert!(v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v), "{v}");
    v as u32
}

fn sorted(mut v: Vec<u32>) -> Vec<u32> {
    v.sort_unstable();
    v
}

/// kill -9 during an outage: what the memory retry queue held (and the one
/// request in flight) is lost; what had overflowed to disk is delivered by the
/// next start, exactly once, and nothing else is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_on_disk_survive_kill_9_and_are_delivered_after_a_restart() {
    const PAYLOADS: u32 = 12;
    // Memory holds about two payloads (each ~120 body bytes); the rest overflows to disk.
    let mut run = StorageRun::start(300, 1 << 20).await;
    run.send_payloads_and_settle("kill9.g", 1..=PAYLOADS).await;
    let persisted = metric_or_zero(&run.api, PERSISTED);
    let in_memory = metric_or_zero(&run.api, "adp_forwarder_retry_queue_bytes");
    run.kill_9().await;
    assert!(run.intake.received().series.is_empty(), "the outage accepted nothing");

    let files = retry_files(&run.storage);
    let on_disk = stored_values(&files, "kill9.g");
    assert_eq!(
        files.len() as f64,
        persisted,
        "every persisted payload is a file: {files:?}"
    );
    let distinct: BTreeSet<u32> = on_disk.iter().copied().collect();
    assert_eq!(distinct.len(), on_disk.len(), "no payload stored twice: {on_disk:?}");
    let lost: Vec<u32> = (1..=PAYLOADS).filter(|v| !distinct.contains(v)).collect();
    assert!(
        !on_disk.is_empty() && !lost.is_empty(),
        "some payloads on disk, some only in memory: disk {on_disk:?}, memory {in_memory} bytes"
    );
    // The memory queue keeps the newest: the oldest payload overflowed first.
    assert!(distinct.contains(&1), "{on_disk:?}");
    assert!(lost.contains(&PAYLOADS), "{lost:?}");

    // Restart against a healthy intake: the stored payloads, and only they, arrive.
    run.intake.set_behaviour(Behaviour::normal());
    run.restart().await;
    run.adp.wait_for_line("Forwarder disk storage enabled.").await;
    let r = run
        .intake
        .wait_for(TIMEOUT, |r| received_values(r, "kill9.g").len() >= on_disk.len())
        .await
        .expect("stored payloads delivered after the restart");
    wait_metric(&mut run.adp, &run.api, REPLAYED, |n| n >= on_disk.len() as f64).await;
    assert_eq!(metric(&run.api, REPLAYED), Some(on_disk.len() as f64));
    run.stop().await;
    let r = Received {
        series: run.intake.received().series,
        ..r
    };
    assert_eq!(
        sorted(received_values(&r, "kill9.g")),
        sorted(on_disk.clone()),
        "delivered = stored; lost with the memory queue: {lost:?}"
    );
    assert!(retry_files(&run.storage).is_empty(), "replayed files are removed");
    eprintln!(
        "kill -9: {PAYLOADS} payloads sent, {} on disk and delivered after restart {:?}, {} lost in memory {:?} ({in_memory} bytes queued at the kill)",
        on_disk.len(),
        sorted(on_disk),
        lost.len(),
        lost
    );
}

/// Damaged files in the storage directory (a real stored file cut in half,
/// one overwritten with garbage, one with a flipped body byte, an empty file
/// and a foreign garbage file) are each skipped with a warning naming the
/// file and counted as `corrupted`; the intact ones are delivered with their
/// exact values; a leftover temporary file is removed; the agent stays healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_stored_files_are_skipped_by_name_and_the_intact_ones_delivered() {
    const PAYLOADS: u32 = 10;
    let mut run = StorageRun::start(300, 1 << 20).await;
    run.send_payloads_and_settle("damaged.g", 1..=PAYLOADS).await;
    run.kill_9().await;

    let files = retry_files(&run.storage);
    assert!(files.len() >= 5, "enough stored files to damage: {files:?}");
    let values = stored_values(&files, "damaged.g");
    let endpoint_dir = files[0].parent().unwrap().to_owned();
    let mut damaged = Vec::new();
    // Cut a real file in half.
    let data = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &data[..data.len() / 2]).unwrap();
    damaged.push((files[0].clone(), values[0]));
    // Overwrite one with garbage of the same length.
    let len = std::fs::metadata(&files[2]).unwrap().len() as usize;
    std::fs::write(&files[2], (0..len).map(|i| (i * 7 + 13) as u8).collect::<Vec<u8>>()).unwrap();
    damaged.push((files[2].clone(), values[2]));
    // Flip one byte of the compressed body (the CRC no longer matches).
    let mut data = std::fs::read(&files[3]).unwrap();
    let at = data.len() - 10;
    data[at] ^= 0x01;
    std::fs::write(&files[3], &data).unwrap();
    damaged.push((files[3].clone(), values[3]));
    // Files that were never stored payloads, named like ones (sorting first).
    let empty = endpoint_dir.join("00000000000000000000-0000000001.retry");
    std::fs::write(&empty, b"").unwrap();
    let garbage = endpoint_dir.join("00000000000000000000-0000000002.retry");
    std::fs::write(&garbage, b"\xff\xfegarbage, not a retry file\n").unwrap();
    let leftover = endpoint_dir.join(".00000000000000000000-0000000003.retry.tmp");
    std::fs::write(&leftover, b"half-written").unwrap();
    let intact: Vec<u32> = values
        .iter()
        .enumerate()
        .filter(|(i, _)| ![0, 2, 3].contains(i))
        .map(|(_, v)| *v)
        .collect();

    run.intake.set_behaviour(Behaviour::normal());
    run.restart().await;
    run.intake
        .wait_for(TIMEOUT, |r| received_values(r, "damaged.g").len() >= intact.len())
        .await
        .expect("intact stored payloads delivered");
    let corrupted = "adp_forwarder_payloads_dropped_total{reason=\"corrupted\"}";
    wait_metric(&mut run.adp, &run.api, corrupted, |n| n >= 5.0).await;
    wait_metric(&mut run.adp, &run.api, REPLAYED, |n| n >= intact.len() as f64).await;
    let (status, body) = http_get(&run.api, "/health/ready");
    assert_eq!(status, 200, "healthy after skipping damaged files: {body}");
    let body = http_get(&run.api, "/metrics").1;
    assert_eq!(metric_in(&body, corrupted), Some(5.0));
    assert_eq!(metric_in(&body, REPLAYED), Some(intact.len() as f64));
    let log = run.stop().await;
    assert_eq!(
        sorted(received_values(&run.intake.received(), "damaged.g")),
        sorted(intact.clone())
    );
    // One warning per damaged file, naming it.
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("Skipping unreadable stored payload."))
        .collect();
    assert_eq!(warnings.len(), 5, "{log}");
    for path in damaged.iter().map(|(p, _)| p).chain([&empty, &garbage]) {
        let name = path.display().to_string();
        assert_eq!(
            warnings.iter().filter(|l| l.contains(&name)).count(),
            1,
            "one warning naming {name}:\n{log}"
        );
    }
    assert!(
        !leftover.exists(),
        "the temporary file of an interrupted write is removed"
    );
    assert!(all_files(&run.storage).is_empty(), "{:?}", all_files(&run.storage));
    eprintln!(
        "damaged files: stored {values:?}; damaged {:?} + 2 foreign; delivered {intact:?}",
        damaged.iter().map(|(_, v)| v).collect::<Vec<_>>()
    );
}

/// A long outage with a small disk cap: the storage directory, sampled
/// continuously, never holds more than `forwarder_storage_max_size_in_bytes`;
/// the oldest files are removed for the newest (counted as `disk_evicted`), and
/// what is left is delivered when the intake recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_cap_holds_through_a_long_outage() {
    const PAYLOADS: u32 = 40;
    const CAP: u64 = 1_000;
    let mut run = StorageRun::start(200, CAP).await;

    // Sample the directory every millisecond for the whole outage.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (stop, storage) = (stop.clone(), run.storage.clone());
        std::thread::spawn(move || {
            let (mut samples, mut max, mut over) = (0u64, 0u64, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let files = all_files(&storage);
                let total: u64 = files.iter().map(|f| f.1).sum();
                if total > CAP {
                    over.push(files);
                }
                max = max.max(total);
                samples += 1;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            (samples, max, over)
        })
    };
    run.send_payloads_and_settle("cap.g", 1..=PAYLOADS).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (samples, max, over) = sampler.join().unwrap();
    assert!(over.is_empty(), "storage over {CAP} bytes: {over:?}");

    let body = http_get(&run.api, "/metrics").1;
    let persisted = metric_in(&body, PERSISTED).unwrap();
    let evicted = metric_in(&body, "adp_forwarder_payloads_dropped_total{reason=\"disk_evicted\"}").unwrap();
    let files = retry_files(&run.storage);
    let on_disk: u64 = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    assert!(on_disk <= CAP);
    assert_eq!(metric_in(&body, "adp_forwarder_disk_bytes"), Some(on_disk as f64));
    assert_eq!(persisted - evicted, files.len() as f64, "files = persisted - evicted");
    assert!(evicted >= 10.0, "a long outage evicts from disk: {evicted}");
    let stored = stored_values(&files, "cap.g");

    // Recovery: what is on disk and in memory arrives; the evicted never do.
    run.intake.set_behaviour(Behaviour::normal());
    let expected = PAYLOADS as usize - evicted as usize;
    let r = run
        .intake
        .wait_for(TIMEOUT, |r| received_values(r, "cap.g").len() >= expected)
        .await
        .expect("what survived the outage is delivered");
    let got = received_values(&r, "cap.g");
    run.stop().await;
    assert_eq!(
        received_values(&run.intake.received(), "cap.g"),
        got,
        "nothing more arrives"
    );
    let distinct: BTreeSet<u32> = got.iter().copied().collect();
    assert_eq!(distinct.len(), expected, "no duplicates: {got:?}");
    assert!(stored.iter().all(|v| distinct.contains(v)), "{stored:?} ⊂ {got:?}");
    assert!(
        !distinct.contains(&1) && distinct.contains(&PAYLOADS),
        "oldest evicted: {got:?}"
    );
    eprintln!(
        "disk cap {CAP} B: {samples} samples, max {max} B; {persisted} persisted, {evicted} evicted, \
         {} files ({on_disk} B) at the end of the outage; delivered {:?}",
        files.len(),
        sorted(got)
    );
}
