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
