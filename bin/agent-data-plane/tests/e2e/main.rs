//! End-to-end tests of the `agent-data-plane` binary, run as a separate process
//! (through `$ADP_TEST_RUNNER`, e.g. `qemu-arm -L /usr/arm-linux-gnueabihf`,
//! when set) with a clean environment. One test binary, one module per concern:
//!
//! - `cli`: version output, configuration errors, the `config` command;
//! - `bind`: taken UDP ports and socket paths, stale socket files;
//! - `modes`: disabled and remote-agent modes;
//! - `pipeline`: a standalone run delivering DogStatsD over UDP and a Unix
//!   socket to an in-process test intake, the APIs, and a clean SIGTERM;
//! - `faults`: intake faults under steady load (outages, slow and refused
//!   connections, 403/413, unresolvable hosts) and SIGTERM under load;
//! - `storage`: the on-disk retry storage across kill -9 and damaged files;
//! - `input`: malformed, oversized and hostile DogStatsD input;
//! - `security`: secrets in logs and endpoints, API access, file modes;
//! - `host`: the system checks against /proc and statvfs, ntp against a
//!   loopback responder, the host-metadata payload, host tags on metrics;
//! - `agent_user`: the keys a Datadog Agent user has (mapper, namespace,
//!   blocklist, `dogstatsd_tags`, histogram copies, `ENC[]` secrets, API key
//!   validation, `forwarder_num_workers`) and `dogstatsd stats`/`top`, with
//!   the Python client.

mod harness;

mod agent_user;
mod bind;
mod cli;
mod faults;
mod host;
mod input;
mod modes;
mod pipeline;
mod security;
mod storage;
