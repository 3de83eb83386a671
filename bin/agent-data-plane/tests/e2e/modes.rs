//! Disabled and remote-agent modes, JSON logs.

use crate::harness::*;

#[test]
fn disabled_mode_logs_and_exits_zero() {
    let out = run(&["run"], &[("DD_DATA_PLANE_ENABLED", "false")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = text(&out.stderr);
    assert!(log.contains("Agent Data Plane starting..."), "{log}");
    assert!(log.contains("Agent Data Plane is not enabled. Exiting."), "{log}");
}

#[test]
fn remote_agent_mode_fails_naming_standalone_mode() {
    let out = run(
        &["run"],
        &[
            ("DD_DATA_PLANE_ENABLED", "true"),
            ("DD_DATA_PLANE_STANDALONE_MODE", "false"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("data_plane.standalone_mode"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let out = run(&["run"], &[("DD_LOG_FORMAT_JSON", "true")]);
    assert!(out.status.success());
    let log = text(&out.stderr);
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).expect(l)).collect();
    assert_eq!(lines[0]["message"], "Agent Data Plane starting...");
    assert_eq!(lines[0]["version"], env!("CARGO_PKG_VERSION"));
    assert!(lines[0]["pid"].is_u64());
    assert_eq!(
        lines.last().unwrap()["message"],
        "Agent Data Plane is not enabled. Exiting."
    );
}

/// A key nobody reads is named at start, once, in one line.
#[tokio::test]
async fn keys_set_that_no_component_reads_are_named_in_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("datadog.yaml");
    std::fs::write(&file, "apm_config:\n  enabled: true\nlogs_enabled: true\n").unwrap();
    let env = Env::standalone("http://127.0.0.1:9", dir.path())
        .set("DD_PROCESS_CONFIG_ENABLED", "true")
        .set("DD_DOGSTATSD_PORT", "0");
    let mut adp = Running::start_with_args(env.vars(), &["-c", file.to_str().unwrap()], &dir.path().join("adp.pid"));
    let line = adp.wait_for_line("Ignoring configuration keys").await;
    assert!(
        line.ends_with(
            "WARN Ignoring configuration keys that Agent Data Plane does not use: apm_config, logs_enabled, \
             DD_PROCESS_CONFIG_ENABLED. Run `agent-data-plane config` to see every key it reads."
        ),
        "{line}"
    );
    adp.wait_for_line("Topology healthy").await;
    let log = adp.stop().await;
    assert_eq!(log.matches("Ignoring configuration keys").count(), 1, "{log}");
}

/// One supervision mechanism: a pipeline task that ends before shutdown is
/// logged with its name and the agent exits 1 (debug builds honour
/// `ADP_TEST_PANIC_TASK`, see src/supervisor.rs).
#[tokio::test]
async fn a_pipeline_task_that_ends_early_stops_the_agent_with_its_name_and_exit_1() {
    for task in ["aggregator", "encoder", "forwarder", "dogstatsd"] {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::standalone("http://127.0.0.1:9", dir.path()).set("DD_DOGSTATSD_PORT", "0");
        let log = assert_task_end_stops_the_agent(env, dir.path(), task).await;
        assert!(!log.contains("Agent Data Plane stopped."), "{task}:\n{log}");
    }
}
