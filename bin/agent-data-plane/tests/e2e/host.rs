//! The board as a host: the system checks' series (compared with what /proc
//! and statvfs say at the same moment; under qemu-arm the binary reads the
//! host's /proc), the ntp check against an SNTP responder on loopback, the
//! host-metadata payload with the resolved hostname and the host tags, the
//! host tags on metrics while `expected_tags_duration` lasts, and the
//! supervision of the checks and metadata tasks.

use std::net::UdpSocket;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use adp_test_intake::{Received, ReceivedSeries};

use crate::harness::*;

const HOST_TAGS: [&str; 4] = ["env:e2e", "rack:3", "site:lab", "team:iot"];

/// How far ahead of the local clock the SNTP responder's clock runs.
const NTP_SKEW_SECS: f64 = 2.5;

/// Seconds between 1900 (NTP era 0) and 1970.
const NTP_UNIX_OFFSET: f64 = 2_208_988_800.0;

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn ntp_timestamp(unix: f64) -> [u8; 8] {
    let t = unix + NTP_UNIX_OFFSET;
    let secs = t.trunc() as u64 as u32;
    let frac = (t.fract() * 4_294_967_296.0) as u64 as u32;
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&secs.to_be_bytes());
    out[4..].copy_from_slice(&frac.to_be_bytes());
    out
}

/// An SNTP server on loopback whose clock runs [`NTP_SKEW_SECS`] ahead:
/// stratum 2, synchronised 10 s ago, our transmit time echoed. Serves until
/// `stop` is set.
fn ntp_responder(stop: Arc<AtomicBool>) -> u16 {
    let socket = UdpSocket::bind(loopback()).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let port = socket.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                continue;
            };
            if n < 48 {
                continue;
            }
            let now = unix_now() + NTP_SKEW_SECS;
            let mut reply = [0u8; 48];
            reply[0] = (4 << 3) | 4; // no leap warning, version 4, server mode
            reply[1] = 2; // stratum
            reply[2] = 6; // poll
            reply[3] = 0xEC; // precision
            reply[12..16].copy_from_slice(b"LOCL");
            reply[16..24].copy_from_slice(&ntp_timestamp(now - 10.0));
            reply[24..32].copy_from_slice(&buf[40..48]); // origin = the client's transmit time
            reply[32..40].copy_from_slice(&ntp_timestamp(now));
            reply[40..48].copy_from_slice(&ntp_timestamp(now));
            let _ = socket.send_to(&reply, peer);
        }
    });
    port
}

/// `<confd>/<rel>` with `text`, directories created.
fn write(confd: &Path, rel: &str, text: &str) {
    let path = confd.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The shipped defaults (`conf.yaml.default`, the file_handle example), plus a
/// `conf.yaml` for disk, network and ntp, which replaces the default as in the
/// Agent: disk tagged by mount point, network with loopback included and run
/// every second, ntp against the loopback responder.
fn write_confd(confd: &Path, ntp_port: u16) {
    for (rel, text) in adp_checks::DEFAULT_CONFD {
        write(confd, rel, text);
    }
    write(
        confd,
        "disk.d/conf.yaml",
        "init_config:\ninstances:\n  - use_mount: true\n",
    );
    write(
        confd,
        "network.d/conf.yaml",
        "init_config:\ninstances:\n  - excluded_interfaces: []\n    min_collection_interval: 1\n",
    );
    write(
        confd,
        "ntp.d/conf.yaml",
        &format!("init_config:\ninstances:\n  - hosts: [127.0.0.1]\n    port: {ntp_port}\n    timeout: 2\n"),
    );
}

fn meminfo_total_kib() -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with("MemTotal:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn loadavg_1() -> f64 {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

fn uptime_secs() -> f64 {
    let text = std::fs::read_to_string("/proc/uptime").unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

/// `statvfs("/")`: the size in KiB, as `system.disk.total` reports it.
fn root_total_kib() -> f64 {
    // SAFETY: a zeroed statvfs64 is a valid output buffer; the path is NUL-terminated.
    let mut st: libc::statvfs64 = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs64(c"/".as_ptr(), &mut st) }, 0);
    let frsize = if st.f_frsize > 0 { st.f_frsize } else { st.f_bsize };
    (st.f_blocks as f64) * (frsize as f64) / 1024.0
}

/// The `uname -m` this process sees (`armv7l` under qemu-arm).
fn uname_machine() -> String {
    // SAFETY: a zeroed utsname is a valid output buffer; the kernel
    // NUL-terminates each field.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::uname(&mut uts) }, 0);
    unsafe { std::ffi::CStr::from_ptr(uts.machine.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// The last point of the first series named `metric` whose `device` resource
/// is `device` (`None`: any).
fn last_point<'a>(r: &'a Received, metric: &str, device: Option<&str>) -> Option<(&'a ReceivedSeries, (i64, f64))> {
    r.series_named(metric)
        .into_iter()
        .rev()
        .filter(|s| device.is_none_or(|d| s.resources.iter().any(|(t, n)| t == "device" && n == d)))
        .find_map(|s| s.points.last().map(|p| (s, *p)))
}

/// DogStatsD on loopback every 50 ms, so that `lo` carries traffic between
/// two runs of the network check; ends when `stop` is set.
fn keep_sending(port: u16, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let socket = UdpSocket::bind(loopback()).unwrap();
        while !stop.load(Ordering::Relaxed) {
            let _ = socket.send_to(b"e2e.host.traffic:1|c", ("127.0.0.1", port));
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_checks_and_the_host_payload_reach_the_intake_with_the_values_of_proc() {
    let (intake, dir) = intake_and_dir().await;
    let stop = Arc::new(AtomicBool::new(false));
    let ntp_port = ntp_responder(Arc::clone(&stop));
    write_confd(&dir.path().join("conf.d"), ntp_port);
    std::fs::write(dir.path().join("hostname"), "  board-from-file\n").unwrap();
    let port = free_udp_port();
    let env = Env::standalone(&intake.url(), dir.path())
        .set("DD_DOGSTATSD_PORT", port.to_string())
        // The name comes from hostname_file, not from `hostname`.
        .set("DD_HOSTNAME", "")
        .set("DD_HOSTNAME_FILE", dir.path().join("hostname").to_string_lossy())
        .set("DD_TAGS", "team:iot site:lab")
        .set("DD_EXTRA_TAGS", "rack:3")
        .set("DD_ENV", "e2e")
        .set("DD_EXPECTED_TAGS_DURATION", "10m")
        .set("DD_ENABLE_METADATA_COLLECTION", "true");
    let (mut adp, api) = start_healthy(&env, dir.path()).await;
    adp.wait_for_line("Hostname is: board-from-file").await;
    keep_sending(port, Arc::clone(&stop));

    // Every check's first run, the loopback traffic seen by two later network
    // runs, the ntp answer, and the host payload.
    let r = intake
        .wait_for(TIMEOUT, |r| {
            [
                "system.mem.total",
                "system.load.1",
                "system.uptime",
                "system.cpu.num_cores",
                "ntp.offset",
            ]
            .iter()
            .all(|m| !r.series_named(m).is_empty())
                && last_point(r, "system.disk.total", Some("/")).is_some()
                && r.series_named("system.net.bytes_rcvd")
                    .iter()
                    .filter(|s| s.resources.iter().any(|(t, n)| t == "device" && n == "lo"))
                    .filter(|s| s.points.iter().any(|p| p.1 > 0.0))
                    .count()
                    >= 2
                && !r.service_checks.is_empty()
                && !r.host_metadata.is_empty()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", adp.log()));
    // Read right away: the checks ran less than a second or two ago.
    let (mem_kib, load_1, uptime, now, root_kib) = (
        meminfo_total_kib(),
        loadavg_1(),
        uptime_secs(),
        unix_now(),
        root_total_kib(),
    );

    let (mem, (_, mem_mib)) = last_point(&r, "system.mem.total", None).unwrap();
    let want = mem_kib / 1024.0;
    assert!(
        (mem_mib - want).abs() <= want * 0.01,
        "system.mem.total {mem_mib} MiB, /proc/meminfo {want} MiB"
    );
    assert_eq!((mem.kind.as_str(), mem.interval), ("gauge", 0));
    assert_eq!(mem.source_type_name, "System");
    assert_eq!(mem.host, "board-from-file");
    assert_eq!(mem.tags, HOST_TAGS, "only the host tags, for expected_tags_duration");

    let (_, (_, load)) = last_point(&r, "system.load.1", None).unwrap();
    assert!(
        (load - load_1).abs() <= 0.5,
        "system.load.1 {load}, /proc/loadavg {load_1}"
    );

    let (_, (ts, up)) = last_point(&r, "system.uptime", None).unwrap();
    let then = uptime - (now - ts as f64);
    assert!(
        (up - then).abs() <= 5.0,
        "system.uptime {up} at {ts}, /proc/uptime {then} then"
    );
    assert!((now - ts as f64).abs() < 120.0, "the run's own timestamp");

    let (_, (_, root)) = last_point(&r, "system.disk.total", Some("/")).unwrap();
    assert!(
        (root - root_kib).abs() <= root_kib * 0.001,
        "system.disk.total of / {root} KiB, statvfs {root_kib} KiB"
    );

    let rcvd: Vec<f64> = r
        .series_named("system.net.bytes_rcvd")
        .iter()
        .filter(|s| s.resources.iter().any(|(t, n)| t == "device" && n == "lo"))
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .collect();
    assert!(rcvd.iter().filter(|v| **v > 0.0).count() >= 2, "lo bytes/s: {rcvd:?}");

    let (offset, (_, skew)) = last_point(&r, "ntp.offset", None).unwrap();
    assert!((skew - NTP_SKEW_SECS).abs() < 0.5, "ntp.offset {skew}");
    assert_eq!(offset.kind, "gauge");
    let in_sync = r.service_checks.iter().find(|c| c.check == "ntp.in_sync").unwrap();
    assert_eq!((in_sync.status, in_sync.host_name.as_str()), (0, "board-from-file"));

    // DogStatsD series carry the host tags too, and the resolved name.
    let traffic = intake
        .wait_for(TIMEOUT, |r| !r.series_named("e2e.host.traffic").is_empty())
        .await
        .unwrap();
    let traffic = traffic.series_named("e2e.host.traffic")[0];
    assert_eq!(
        (traffic.host.as_str(), traffic.tags.as_slice()),
        ("board-from-file", &HOST_TAGS.map(String::from)[..])
    );

    // The host payload, compressed JSON on /intake/.
    let m = &r.host_metadata[0];
    assert_eq!(m["internalHostname"], "board-from-file");
    assert_eq!(m["meta"]["hostname"], "board-from-file");
    assert_eq!(r.host_tags(), HOST_TAGS);
    assert_eq!(m["apiKey"], API_KEY);
    assert_eq!(m["agentVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        (m["os"].as_str(), m["agent-flavor"].as_str()),
        (Some("linux"), Some("agent-data-plane"))
    );
    let gohai: serde_json::Value = serde_json::from_str(m["gohai"].as_str().unwrap()).unwrap();
    assert_eq!(gohai["platform"]["machine"], uname_machine().as_str());
    let go_arch = if cfg!(target_arch = "arm") { "arm" } else { "amd64" };
    assert_eq!(m["systemStats"]["machine"], go_arch);
    let intake_request = r.request_log.iter().find(|q| q.endpoint == "intake").unwrap();
    assert_eq!(
        (
            intake_request.content_type.as_deref(),
            intake_request.content_encoding.as_deref()
        ),
        (Some("application/json"), Some("zstd"))
    );

    // Runs and errors per check instance in /metrics.
    let (status, metrics) = http_get(&api, "/metrics");
    assert_eq!(status, 200);
    for check in ["cpu", "disk", "io", "load", "memory", "network", "ntp", "uptime"] {
        let runs = metric_in(&metrics, &format!("adp_checks_runs_total{{check=\"{check}\"}}"));
        assert!(runs.is_some_and(|n| n >= 1.0), "{check}: {runs:?}\n{metrics}");
        let errors = metric_in(&metrics, &format!("adp_checks_errors_total{{check=\"{check}\"}}"));
        assert_eq!(errors, Some(0.0), "{check}\n{}", adp.log());
    }
    assert_eq!(
        metric_in(&metrics, "adp_checks_runs_total{check=\"file_handle\"}"),
        None,
        "file_handle is shipped as an example only"
    );
    assert!(metric_in(&metrics, "adp_forwarder_payloads_sent_total{endpoint=\"intake\"}").unwrap() >= 1.0);

    stop.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let log = adp.stop().await;
    assert!(started.elapsed() < Duration::from_secs(30), "a prompt stop");
    assert_clean_log(&log, &[]);
    // No line at level ERROR. The level, not the word: a mount point the test
    // user may not read is a WARN naming "os error 13", as in the Agent.
    let errors: Vec<&str> = log.lines().filter(|line| line.contains(" ERROR ")).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_tags_are_added_to_metrics_only_while_expected_tags_duration_lasts() {
    const WINDOW: Duration = Duration::from_secs(12);
    let (intake, dir) = intake_and_dir().await;
    let port = free_udp_port();
    let env = Env::standalone(&intake.url(), dir.path())
        .set("DD_DOGSTATSD_PORT", port.to_string())
        .set("DD_TAGS", "team:iot")
        .set("DD_EXPECTED_TAGS_DURATION", format!("{}s", WINDOW.as_secs()));
    let (mut adp, _) = start_healthy(&env, dir.path()).await;
    let healthy = Instant::now();
    let sender = UdpSocket::bind(loopback()).unwrap();
    sender.send_to(b"e2e.early:1|g|#own:tag", ("127.0.0.1", port)).unwrap();
    let r = intake
        .wait_for(TIMEOUT, |r| !r.series_named("e2e.early").is_empty())
        .await
        .unwrap();
    assert!(healthy.elapsed() < WINDOW, "the early metric was encoded in the window");
    assert_eq!(r.series_named("e2e.early")[0].tags, ["own:tag", "team:iot"]);

    tokio::time::sleep((WINDOW + Duration::from_secs(1)).saturating_sub(healthy.elapsed())).await;
    sender.send_to(b"e2e.late:1|g|#own:tag", ("127.0.0.1", port)).unwrap();
    let r = intake
        .wait_for(TIMEOUT, |r| !r.series_named("e2e.late").is_empty())
        .await
        .unwrap();
    assert_eq!(r.series_named("e2e.late")[0].tags, ["own:tag"]);
    assert!(
        r.host_metadata.is_empty(),
        "metadata collection stays off in the standalone environment"
    );
    adp.stop().await;
}

/// The checks and the host metadata are supervised like the pipeline: one
/// that ends early stops the agent with its name and exit 1.
#[tokio::test]
async fn a_checks_or_host_metadata_task_that_ends_early_stops_the_agent() {
    for task in ["checks", "host metadata"] {
        let dir = tempfile::tempdir().unwrap();
        let confd = dir.path().join("conf.d");
        write(
            &confd,
            "uptime.d/conf.yaml.default",
            "init_config:\ninstances:\n  - {}\n",
        );
        let env = Env::standalone("http://127.0.0.1:9", dir.path())
            .set("DD_DOGSTATSD_PORT", "0")
            .set("DD_ENABLE_METADATA_COLLECTION", "true");
        assert_task_end_stops_the_agent(env, dir.path(), task).await;
    }
}
