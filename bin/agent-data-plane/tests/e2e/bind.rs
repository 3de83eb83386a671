//! Listener addresses that are taken: the start fails with one error line that
//! names the address, the key to change and the cause (once), and exit code 1.
//!
//! For a Unix socket path the agent tells three cases apart:
//!
//! - a socket some process still listens on is left alone (the start fails);
//! - a socket file nobody listens on any more (a crashed agent's) is removed
//!   and bound again;
//! - a file that is not a socket is left alone (the start fails).

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc;

use crate::harness::*;

/// Nothing listens here; the agents in these tests fail before sending or
/// send nothing.
const NO_INTAKE: &str = "http://127.0.0.1:9";

/// Runs `agent-data-plane run` with `env` to its exit (killed after
/// [`TIMEOUT`]) and returns its status, standard output and standard error.
fn run_to_exit(env: &Env) -> (ExitStatus, String, String) {
    let child = command()
        .arg("run")
        .envs(env.vars().iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let pid = child.id();
    let (done, exited) = mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    let out = match exited.recv_timeout(TIMEOUT) {
        Ok(out) => out.expect("the binary's output is read"),
        Err(_) => {
            // SAFETY: kill(2) on the child's pid with a valid signal number.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("still running after {TIMEOUT:?}");
        }
    };
    (out.status, text(&out.stdout), text(&out.stderr))
}

/// A log line without its timestamp: `ERROR message`, `INFO message fields`.
fn without_timestamp(line: &str) -> &str {
    line.split_once(' ').map_or(line, |(_, rest)| rest.trim_start())
}

/// The log's ERROR lines, without their timestamps.
fn error_lines(log: &str) -> Vec<&str> {
    log.lines()
        .map(without_timestamp)
        .filter(|l| l.starts_with("ERROR "))
        .collect()
}

#[test]
fn a_taken_udp_port_fails_the_start_with_one_error_line_naming_port_key_and_cause() {
    let dir = tempfile::tempdir().unwrap();
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let env = Env::standalone(NO_INTAKE, dir.path()).set("DD_DOGSTATSD_PORT", port.to_string());

    let (status, stdout, log) = run_to_exit(&env);

    assert_eq!(status.code(), Some(1), "{log}");
    assert_eq!(stdout, "", "logs go to standard error");
    assert_eq!(
        error_lines(&log),
        [format!(
            "ERROR cannot start the DogStatsD listeners: cannot bind the DogStatsD listener to \
             udp://127.0.0.1:{port} (check `dogstatsd_port`): Address already in use (os error 98)"
        )],
        "{log}"
    );
    assert_eq!(
        log.matches("Address already in use").count(),
        1,
        "the cause is said once:\n{log}"
    );
    assert_clean_log(&log, &[]);
}

#[test]
fn a_socket_path_another_process_listens_on_is_left_alone_and_the_start_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dsd.socket");
    let other = UnixDatagram::bind(&path).unwrap();
    let env = Env::standalone(NO_INTAKE, dir.path());

    let (status, stdout, log) = run_to_exit(&env);

    assert_eq!(status.code(), Some(1), "{log}");
    assert_eq!(stdout, "");
    assert_eq!(
        error_lines(&log),
        [format!(
            "ERROR cannot start the DogStatsD listeners: cannot bind the DogStatsD listener to {}: \
             another process is listening on it (stop that process, or set `dogstatsd_socket` to another path)",
            path.display()
        )],
        "{log}"
    );
    // The other process still owns its socket: datagrams sent to the path reach it.
    UnixDatagram::unbound().unwrap().send_to(b"still mine", &path).unwrap();
    let mut buf = [0u8; 16];
    other.set_nonblocking(true).unwrap();
    let n = other.recv(&mut buf).expect("the other process's socket still receives");
    assert_eq!(&buf[..n], b"still mine");
    assert_clean_log(&log, &[]);
}

#[test]
fn a_file_that_is_not_a_socket_is_left_alone_and_the_start_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dsd.socket");
    std::fs::write(&path, b"not a socket").unwrap();
    let env = Env::standalone(NO_INTAKE, dir.path());

    let (status, _, log) = run_to_exit(&env);

    assert_eq!(status.code(), Some(1), "{log}");
    assert_eq!(
        error_lines(&log),
        [format!(
            "ERROR cannot start the DogStatsD listeners: cannot bind the DogStatsD listener to {}: \
             the file exists and is not a socket (remove it, or set `dogstatsd_socket` to another path)",
            path.display()
        )],
        "{log}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_socket_file_is_replaced_and_the_agent_receives_on_it() {
    let (intake, dir) = intake_and_dir().await;
    let path = dir.path().join("dsd.socket");
    // What a killed agent leaves: the file of a socket nobody listens on.
    drop(UnixDatagram::bind(&path).unwrap());
    assert!(path.exists());
    let env = Env::standalone(&intake.url(), dir.path());

    let (mut adp, _) = start_healthy(&env, dir.path()).await;

    let line = adp.wait_for_line("Removing stale DogStatsD socket file.").await;
    assert_eq!(
        without_timestamp(&line),
        format!("INFO Removing stale DogStatsD socket file. path={}", path.display())
    );
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"e2e.stale:7|g", &path)
        .expect("the agent listens on the path again");
    let received = intake
        .wait_for(TIMEOUT, |r| !r.series_named("e2e.stale").is_empty())
        .await
        .expect("the gauge at the intake");
    assert_eq!(received.series_named("e2e.stale")[0].points[0].1, 7.0);
    let log = adp.stop().await;
    assert!(error_lines(&log).is_empty(), "{log}");
    assert_clean_log(&log, &[]);
}
