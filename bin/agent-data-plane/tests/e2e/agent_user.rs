//! What a user coming from the Datadog Agent (or the IoT Agent) has in
//! `datadog.yaml`, end to end with the official PyPI `datadog` client and the
//! test intake (issue #17):
//!
//! - mapper profiles, the namespace and its blacklist, `dogstatsd_tags` (on
//!   metrics, events and service checks), the blocklist (samples counted and
//!   absent, a `.max` entry dropping that histogram aggregate), histogram
//!   copies as distribution sketches, tags with invalid UTF-8 repaired;
//! - `api_key: ENC[...]` from `secret_backend_command` reaching the intake and
//!   no log line; a backend others can write refused, naming the file;
//! - an API key the intake refuses, reported as the Agent reports it;
//! - `forwarder_num_workers: 4` against a slow intake: four requests at once,
//!   nothing lost or duplicated;
//! - `agent-data-plane dogstatsd stats` and `top` against a known load, and
//!   their refusal without the auth token.
//!
//! Needs `python3` with the `datadog` module (declared for the test checks in
//! checks/tools.json); `ADP_SKIP_PYTHON_TESTS=1` skips the tests that send
//! with it.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use adp_test_intake::{Behaviour, Received, TestIntake};

use crate::harness::*;

/// The `datadog` client's calls, run as `python3 -c SCRIPT SOCKET`: `c` is a
/// client on the agent's Unix datagram socket (which blocks rather than drops
/// when the agent lags, so every message counts).
fn python(socket: &Path, calls: &str) -> bool {
    if python_skipped() {
        return false;
    }
    let script = format!(
        "import sys, time\n\
         from datadog.dogstatsd import DogStatsd\n\
         c = DogStatsd(socket_path=sys.argv[1], disable_telemetry=True, origin_detection_enabled=False, socket_timeout=10)\n\
         {calls}\n\
         c.flush()\n\
         c.close_socket()\n"
    );
    let mut cmd = Command::new("python3");
    cmd.args(["-c", &script, socket.to_str().unwrap()]);
    // The client adds tags from DD_ENV, DD_SERVICE, DD_ENTITY_ID, ...
    for (k, _) in std::env::vars() {
        if k.starts_with("DD_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .output()
        .expect("python3 runs (with the `datadog` module: `make setup`, or ADP_SKIP_PYTHON_TESTS=1)");
    assert!(
        out.status.success(),
        "the Python client failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    true
}

fn python_skipped() -> bool {
    let skipped = std::env::var("ADP_SKIP_PYTHON_TESTS").as_deref() == Ok("1");
    if skipped {
        eprintln!("ADP_SKIP_PYTHON_TESTS=1: skipping a test that sends with the Python client");
    }
    skipped
}

fn write_config(dir: &Path, yaml: &str) -> String {
    let path = dir.join("datadog.yaml");
    std::fs::write(&path, yaml).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The series named `name`, exactly one.
fn one<'a>(r: &'a Received, name: &str) -> &'a adp_test_intake::ReceivedSeries {
    let found = r.series_named(name);
    assert_eq!(found.len(), 1, "{name}: {found:#?}\nall: {:#?}", names(r));
    found[0]
}

fn names(r: &Received) -> BTreeSet<String> {
    r.series.iter().map(|s| s.metric.clone()).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapper_namespace_blocklist_dogstatsd_tags_and_histogram_copies_apply_as_in_the_agent() {
    let (intake, dir) = intake_and_dir().await;
    let config = write_config(
        dir.path(),
        r#"
statsd_metric_namespace: board
dogstatsd_tags: [site:lab, rack:3]
statsd_metric_blocklist: [board.noisy.metric, board.app.latency.max]
histogram_copy_to_distribution: true
histogram_copy_to_distribution_prefix: dist.
dogstatsd_mapper_profiles:
  - name: collectd
    prefix: "collectd."
    mappings:
      - match: "collectd.cpu.*.*"
        name: "cpu.time"
        tags:
          cpu: "$1"
          state: "$2"
"#,
    );
    // One window for the whole test: every sample lands in it, the final flush sends it.
    let env = Env::standalone(&intake.url(), dir.path()).set("DD_AGGREGATE_WINDOW_DURATION_SECONDS", "3600");
    let (mut adp, api) = start_healthy_with_args(&env, &["-c", &config], dir.path()).await;
    let sent = python(
        &dir.path().join("dsd.socket"),
        r#"
c.gauge("collectd.cpu.0.user", 12.5, tags=["env:test"])
c.increment("app.requests", 3, tags=["env:test"])
c.gauge("kafka.consumer.lag", 7)
for _ in range(4):
    c.increment("noisy.metric")
for v in (1, 2, 3, 4):
    c.histogram("app.latency", v)
c.event("Deploy", "done", tags=["env:test"])
c.service_check("app.up", 0, tags=["env:test"])
# A client whose strings are Latin-1: "köln" arrives with a byte that is not UTF-8.
c.flush()
c.encoding = "latin-1"
c.gauge("app.city", 1, tags=["city:k\u00f6ln"])
"#,
    );
    if !sent {
        return;
    }
    let blocked = r#"adp_dogstatsd_filtered_points_total{reason="blocklist"}"#;
    assert_eq!(wait_metric(&mut adp, &api, blocked, |v| v >= 4.0).await, 4.0);
    assert_eq!(
        wait_metric(&mut adp, &api, "adp_dogstatsd_utf8_repaired_total", |v| v >= 1.0).await,
        1.0
    );
    intake
        .wait_for(TIMEOUT, |r| !r.events.is_empty() && !r.service_checks.is_empty())
        .await
        .expect("the event and the service check");
    let log = adp.stop().await;
    assert!(!log.contains("Could not create metric mapper"), "{log}");
    let r = intake.received();

    let site = ["rack:3", "site:lab"];
    let tagged = |own: &[&str]| {
        let mut t = strings(own);
        t.extend(strings(&site));
        t.sort();
        t
    };
    // Mapped (name and tags from the profile), then namespaced.
    let cpu = one(&r, "board.cpu.time");
    assert_eq!(cpu.tags, tagged(&["cpu:0", "env:test", "state:user"]));
    assert_eq!(cpu.points[0].1, 12.5);
    let requests = one(&r, "board.app.requests");
    assert_eq!(requests.tags, tagged(&["env:test"]));
    assert!((requests.points[0].1 * 3600.0 - 3.0).abs() < 1e-9, "{requests:?}");
    // `kafka` is in the Agent's default namespace blacklist.
    assert_eq!(one(&r, "kafka.consumer.lag").tags, tagged(&[]));
    // Blocked, counted above, and absent.
    assert!(!names(&r).iter().any(|n| n.contains("noisy")), "{:?}", names(&r));
    // The histogram: its `.max` is blocked, the other aggregates are sent...
    assert!(r.series_named("board.app.latency.max").is_empty());
    assert_eq!(one(&r, "board.app.latency.avg").points[0].1, 2.5);
    assert_eq!(one(&r, "board.app.latency.median").points[0].1, 2.0);
    assert!((one(&r, "board.app.latency.count").points[0].1 * 3600.0 - 4.0).abs() < 1e-9);
    // ...and the same samples arrive as a distribution sketch.
    let sketches = r.sketches_named("dist.board.app.latency");
    assert_eq!(sketches.len(), 1, "{:#?}", r.sketches);
    assert_eq!(sketches[0].tags, tagged(&[]));
    let d = &sketches[0].dogsketches[0];
    assert_eq!((d.cnt, d.min, d.max, d.sum), (4, 1.0, 4.0, 10.0));
    // Events and service checks get `dogstatsd_tags` only.
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.events[0].tags, tagged(&["env:test"]));
    assert_eq!(r.service_checks[0].check, "app.up");
    assert_eq!(r.service_checks[0].tags, tagged(&["env:test"]));
    // The tag that was not UTF-8, repaired.
    assert_eq!(one(&r, "board.app.city").tags, tagged(&["city:k\u{FFFD}ln"]));
    intake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_mapper_profile_is_reported_as_the_agent_does_and_the_rest_applies() {
    let (intake, dir) = intake_and_dir().await;
    let env = Env::standalone(&intake.url(), dir.path())
        .set("DD_STATSD_METRIC_NAMESPACE", "board")
        .set(
            "DD_DOGSTATSD_MAPPER_PROFILES",
            r#"[{"name":"bad","prefix":"a.","mappings":[{"match":"a.*","match_type":"glob","name":"b"}]}]"#,
        );
    let (mut adp, _) = start_healthy(&env, dir.path()).await;
    let line = adp.wait_for_line("Could not create metric mapper: ").await;
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("profile: bad, mapping num 0: invalid match type, must be `wildcard` or `regex`"),
        "{line}"
    );
    if python(&dir.path().join("dsd.socket"), r#"c.gauge("a.x", 1)"#) {
        let r = intake
            .wait_for(TIMEOUT, |r| !r.series.is_empty())
            .await
            .expect("the metric, unmapped but namespaced");
        assert_eq!(r.series[0].metric, "board.a.x");
    }
    adp.stop().await;
    intake.shutdown().await;
}

/// The backend: reads the request, answers `handle` with `value` (shell
/// built-ins only, so it runs in a builder's sandbox too).
fn write_backend(dir: &Path, value: &str, mode: u32) -> std::path::PathBuf {
    let path = dir.join("secret-backend.sh");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nwhile read -r _; do :; done\nprintf '{{\"dd_api_key\": {{\"value\": \"{value}\", \"error\": null}}}}'\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_comes_from_the_secret_backend_and_appears_in_no_log_line() {
    const SECRET_KEY: &str = "from-the-backend-5ec7e7abcdef";
    // The intake accepts that key only: a payload with another is refused.
    let intake = TestIntake::start(loopback(), Behaviour::only_api_key(SECRET_KEY))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backend = write_backend(dir.path(), SECRET_KEY, 0o700);
    let config = write_config(
        dir.path(),
        &format!(
            "api_key: ENC[dd_api_key]\nsecret_backend_command: {}\n",
            backend.display()
        ),
    );
    let env = Env::standalone(&intake.url(), dir.path())
        .unset("DD_API_KEY")
        .set("DD_LOG_LEVEL", "debug");

    let shown = command()
        .args(["-c", &config, "config"])
        .envs(env.vars().iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let shown = text(&shown.stdout);
    assert!(shown.contains("api_key: \"********\""), "{shown}");
    assert!(!shown.contains(SECRET_KEY), "{shown}");

    let (mut adp, _) = start_healthy_with_args(&env, &["-c", &config], dir.path()).await;
    // The key check at start used the resolved key: the intake said 200.
    adp.wait_for_line("' for domain http://127.0.0.1").await;
    if python(&dir.path().join("dsd.socket"), r#"c.increment("secret.ok")"#) {
        intake
            .wait_for(TIMEOUT, |r| !r.series_named("secret.ok").is_empty())
            .await
            .expect("a series accepted with the backend's key");
    }
    let log = adp.stop().await;
    let r = intake.received();
    let validate: Vec<_> = r.request_log.iter().filter(|q| q.endpoint == "validate").collect();
    assert!(
        !validate.is_empty() && validate.iter().all(|q| q.status == 200),
        "{validate:?}"
    );
    assert!(r.payload_requests().all(|q| q.status == 202), "{:?}", r.request_log);
    assert!(
        log.contains("secret_backend_command"),
        "the resolution is logged:\n{log}"
    );
    assert!(log.contains("is valid"), "{log}");
    assert!(!log.contains(SECRET_KEY), "the key is in the log:\n{log}");
    intake.shutdown().await;
}

#[test]
fn a_secret_backend_others_can_write_is_refused_with_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let backend = write_backend(dir.path(), "never-read", 0o777);
    let config = write_config(
        dir.path(),
        &format!(
            "api_key: ENC[dd_api_key]\nsecret_backend_command: {}\ndata_plane: {{enabled: true, standalone_mode: true}}\n",
            backend.display()
        ),
    );
    for args in [["-c", config.as_str(), "run"], ["-c", config.as_str(), "config"]] {
        let out = run(&args, &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "agent-data-plane: unable to decrypt secret from datadog.yaml: invalid executable '{}', 'group' or \
                 'others' have rights on it (mode 777)",
                backend.display()
            )),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("never-read"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_the_intake_refuses_is_reported_as_the_agent_reports_it() {
    let intake = TestIntake::start(loopback(), Behaviour::only_api_key("the-organisations-real-key"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = Env::standalone(&intake.url(), dir.path());
    let mut adp = Running::start(env.vars(), &dir.path().join("adp.pid"));
    let api = address_in(&adp.wait_for_line("Serving unprivileged API on").await);
    let invalid = adp.wait_for_line("is invalid").await;
    let shown = format!("{}{}", "*".repeat(API_KEY.len() - 3), &API_KEY[API_KEY.len() - 3..]);
    assert!(
        invalid.contains("WARN")
            && invalid.contains(&format!("api_key '{shown}' for domain {} is invalid", intake.url())),
        "{invalid}"
    );
    let unhealthy = adp
        .wait_for_line("No valid api key found, reporting the forwarder as unhealthy.")
        .await;
    assert!(unhealthy.contains("ERROR"), "{unhealthy}");
    // The key is checked while the listeners start: wait for DogStatsD to be
    // ready, then only the forwarder keeps the agent unready.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (status, health, body) = loop {
        let (status, body) = http_get(&api, "/health/ready");
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        if health["components"]["dogstatsd"]["ready"] == true || std::time::Instant::now() > deadline {
            break (status, health, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(health["components"]["dogstatsd"]["ready"], true, "{body}");
    assert_eq!(status, 503, "{body}");
    assert_eq!(health["components"]["forwarder"]["ready"], false, "{body}");
    let log = adp.stop().await;
    assert!(!log.contains(API_KEY), "{log}");
    intake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_forwarder_workers_keep_four_requests_at_a_slow_intake_and_lose_or_repeat_nothing() {
    const ROUNDS: usize = 30;
    // A second per request: the ~4 payloads of each second (series, sketches,
    // events, service checks) only keep up with 4 requests at once.
    let intake = TestIntake::start(loopback(), Behaviour::delay(Duration::from_secs(1)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = Env::standalone(&intake.url(), dir.path()).set("DD_FORWARDER_NUM_WORKERS", "4");
    let (mut adp, _) = start_healthy(&env, dir.path()).await;
    let sent = python(
        &dir.path().join("dsd.socket"),
        &format!(
            r#"
for i in range({ROUNDS}):
    c.increment("burst.count", 2)
    c.distribution("burst.dist", i)
    c.event("burst-%d" % i, "text")
    c.service_check("burst.check", 0, message="sc-%d" % i)
    c.flush()
    time.sleep(0.1)
"#
        ),
    );
    if !sent {
        return;
    }
    intake
        .wait_for(TIMEOUT, |r| {
            r.events.len() >= ROUNDS && r.service_checks.len() >= ROUNDS
        })
        .await
        .expect("every event and service check");
    adp.stop().await;
    let r = intake.received();
    assert_eq!(r.max_in_flight, 4, "as many requests at once as workers, no more");
    assert!(r.payload_requests().all(|q| q.status == 202), "{:?}", r.request_log);

    let mut titles: Vec<&str> = r.events.iter().map(|e| e.title.as_str()).collect();
    titles.sort_unstable();
    let mut expected: Vec<String> = (0..ROUNDS).map(|i| format!("burst-{i}")).collect();
    expected.sort_unstable();
    assert_eq!(titles, expected, "every event once");
    let mut messages: Vec<&str> = r.service_checks.iter().map(|c| c.message.as_str()).collect();
    messages.sort_unstable();
    let mut expected: Vec<String> = (0..ROUNDS).map(|i| format!("sc-{i}")).collect();
    expected.sort_unstable();
    assert_eq!(messages, expected, "every service check once");
    let mut seen = BTreeMap::new();
    for s in r.series_named("burst.count") {
        for p in &s.points {
            assert!(seen.insert(p.0, p.1).is_none(), "point at {} twice", p.0);
        }
    }
    // A rate over 1 s windows: each point is that second's count.
    assert_eq!(seen.values().sum::<f64>(), (2 * ROUNDS) as f64, "{seen:?}");
    let samples: i64 = r
        .sketches_named("burst.dist")
        .iter()
        .flat_map(|s| s.dogsketches.iter())
        .map(|d| d.cnt)
        .sum();
    assert_eq!(samples, ROUNDS as i64);
    intake.shutdown().await;
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind(loopback())
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dogstatsd_stats_and_top_print_the_load_they_saw_and_refuse_a_wrong_token() {
    if python_skipped() {
        return;
    }
    let (intake, dir) = intake_and_dir().await;
    let token = "70c3e70c".repeat(8);
    write_credentials(dir.path(), &token);
    // The commands read the API's address from the configuration: a fixed port.
    let env = Env::standalone(&intake.url(), dir.path())
        .set(
            "DD_DATA_PLANE_SECURE_API_LISTEN_ADDRESS",
            format!("tcp://127.0.0.1:{}", free_tcp_port()),
        )
        .set("DD_LOG_LEVEL", "debug");
    let (mut adp, _) = start_healthy(&env, dir.path()).await;
    let cli = |args: &[&str], env: &Env| {
        command()
            .args(args)
            .envs(env.vars().iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };

    let stats = cli(&["dogstatsd", "stats", "-d", "5"], &env);
    adp.wait_for_line("DogStatsD statistics collection started.").await;
    let load = r#"
for _ in range(5):
    c.increment("load.a", tags=["t:1"])
for _ in range(3):
    c.increment("load.a", tags=["t:2"])
for _ in range(2):
    c.increment("load.b")
"#;
    assert!(python(&dir.path().join("dsd.socket"), load));
    let out = stats.wait_with_output().unwrap();
    let table = text(&out.stdout);
    assert!(out.status.success(), "{table}{}", text(&out.stderr));
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(2)
        .map(|l| l.split(" | ").map(str::trim).collect())
        .collect();
    let counts: Vec<(&str, &str, &str)> = rows.iter().map(|r| (r[0], r[1], r[2])).collect();
    assert_eq!(
        counts,
        [("load.a", "t:1", "5"), ("load.a", "t:2", "3"), ("load.b", "", "2")],
        "{table}"
    );
    assert!(table.starts_with("Metric | Tags | Count | Last Seen\n"), "{table}");
    assert!(rows.iter().all(|r| r[3].ends_with(" UTC")), "{table}");

    let out = cli(&["dogstatsd", "top"], &env).wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "   Contexts\tMetric name\t(number of unique values for each tag)\n          2\tload.a\t(2 t)\n          1\tload.b\t()\n"
    );
    let out = cli(&["dogstatsd", "top", "-m", "0"], &env).wait_with_output().unwrap();
    assert!(
        text(&out.stdout).ends_with("          3\t(other 2 metrics)\n"),
        "{}",
        text(&out.stdout)
    );

    // Without the right token: refused by the API, or before anything is sent.
    let wrong = dir.path().join("wrong_token");
    std::fs::write(&wrong, "0".repeat(64)).unwrap();
    let wrong_env = Env::standalone(&intake.url(), dir.path())
        .set(
            "DD_DATA_PLANE_SECURE_API_LISTEN_ADDRESS",
            env.vars()
                .iter()
                .find(|(k, _)| *k == "DD_DATA_PLANE_SECURE_API_LISTEN_ADDRESS")
                .unwrap()
                .1
                .clone(),
        )
        .set("DD_AUTH_TOKEN_FILE_PATH", wrong.to_string_lossy().into_owned());
    for args in [&["dogstatsd", "top"][..], &["dogstatsd", "stats", "-d", "1"]] {
        let out = cli(args, &wrong_env).wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("the privileged API refused the auth token (403: invalid session token)"),
            "{stderr}"
        );
        assert!(text(&out.stdout).is_empty());
    }
    adp.wait_for_line("invalid auth token for GET request to /dogstatsd/contexts: invalid session token")
        .await;
    let missing = wrong_env.set(
        "DD_AUTH_TOKEN_FILE_PATH",
        dir.path().join("nope").to_string_lossy().into_owned(),
    );
    let out = cli(&["dogstatsd", "top"], &missing).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot read the auth token") && text(&out.stderr).contains("auth_token_file_path"),
        "{}",
        text(&out.stderr)
    );
    let log = adp.stop().await;
    assert!(!log.contains(&token), "{log}");
    intake.shutdown().await;
}
