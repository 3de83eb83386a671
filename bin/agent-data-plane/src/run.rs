//! `agent-data-plane run`: configuration → mode → APIs → pipeline → wait for a
//! signal → orderly shutdown.
//!
//! # Modes
//!
//! | `data_plane.enabled` | `data_plane.standalone_mode` | result |
//! | --- | --- | --- |
//! | false | false | "Agent Data Plane is not enabled. Exiting.", exit 0 |
//! | any | true | the DogStatsD pipeline with local configuration |
//! | true | false | remote-agent mode: not implemented, exit 1 naming `data_plane.standalone_mode` |
//!
//! With `data_plane.dogstatsd.enabled: false` nothing is left to run: "No data
//! pipelines are enabled. Exiting." (error level) and exit 0, so a supervisor
//! does not restart it in a loop, as for the disabled mode.
//!
//! # Shutdown
//!
//! On SIGINT or SIGTERM: the listeners stop, the aggregator flushes every open
//! window and the encoder hands the last payloads to the forwarder, which keeps
//! sending for at most `data_plane.shutdown_drain_timeout`; then the APIs stop,
//! the pidfile is removed and "Agent Data Plane stopped." is logged (exit 0).
//! A second signal during shutdown exits at once (exit 1).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adp_config::Environment;
use adp_telemetry::Registry;
use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::api::{self, privileged::Privileged, unprivileged::Unprivileged};
use crate::health::Health;
use crate::logging::{self, LogControl};
use crate::memory::{self, MemoryLimiter};
use crate::pipeline;
use crate::settings::Settings;
use crate::supervisor::Supervisor;

/// Loads the settings from `--config` (or the default file) and the process environment.
pub fn load_settings(path: Option<&Path>) -> anyhow::Result<Settings> {
    Ok(Settings::load(path, Environment::from_process())?)
}

/// Runs the data plane; the exit code follows the mode and the outcome.
pub fn run(config_path: Option<&Path>, pidfile: Option<&Path>) -> ExitCode {
    let settings = match load_settings(config_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("agent-data-plane: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let agent = &settings.agent;
    let logging = match logging::init(agent.log_level, agent.log_format_json) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("agent-data-plane: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        version = crate::VERSION,
        git_hash = crate::GIT_HASH,
        target_arch = std::env::consts::ARCH,
        build_time = crate::BUILD_TIME,
        pid = std::process::id(),
        "Agent Data Plane starting..."
    );
    if let Some(file) = settings.effective.source_file() {
        tracing::info!(path = %file.display(), "Loaded configuration file.");
    }
    for line in &settings.effective.secrets().log {
        match line.level {
            adp_config::secrets::LogLevel::Debug => tracing::debug!("{}", line.message),
            adp_config::secrets::LogLevel::Info => tracing::info!("{}", line.message),
            adp_config::secrets::LogLevel::Warn => tracing::warn!("{}", line.message),
        }
    }
    let unread = settings.effective.unread();
    if !unread.is_empty() {
        // One line for all of them: a full Agent datadog.yaml has many keys this agent has no use for.
        tracing::warn!(
            "Ignoring configuration keys that Agent Data Plane does not use: {}. \
             Run `agent-data-plane config` to see every key it reads.",
            unread.join(", ")
        );
    }

    let data_plane = &agent.data_plane;
    if !data_plane.standalone_mode {
        if !data_plane.enabled {
            tracing::info!("Agent Data Plane is not enabled. Exiting.");
            return ExitCode::SUCCESS;
        }
        tracing::error!(
            "Remote-agent mode (registering with the core Agent) is not supported by this build. Set \
             `data_plane.standalone_mode: true` (DD_DATA_PLANE_STANDALONE_MODE=true) to run with local configuration."
        );
        return ExitCode::FAILURE;
    }
    if !data_plane.dogstatsd_enabled {
        tracing::error!("No data pipelines are enabled. Exiting.");
        return ExitCode::SUCCESS;
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads())
        .thread_name("adp-worker")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "Cannot start the async runtime.");
            return ExitCode::FAILURE;
        }
    };
    let pidfile = pidfile.map(Pidfile::write).transpose();
    let pidfile = match pidfile {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run_standalone(Arc::new(settings), logging));
    drop(pidfile);
    // Connections still open on the APIs are cut here; nothing else is left running.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(code) => {
            if code == ExitCode::SUCCESS {
                tracing::info!("Agent Data Plane stopped.");
            }
            code
        }
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn worker_threads() -> usize {
    // Two to four workers: the pipeline has a handful of tasks, and each worker
    // costs a stack and scheduler state on a small board.
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 4)
}

async fn run_standalone(settings: Arc<Settings>, logging: LogControl) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let registry = Registry::new();
    let health = Health::default();
    let mut supervisor = Supervisor::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    // Signal handlers first, so a signal during start-up is not the default (kill).
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;

    memory::verify_bounds(&settings.memory, &settings.memory_bounds())?;
    let limiter = MemoryLimiter::new(settings.memory.effective_limit(), &registry);
    supervisor.spawn("memory limiter", None, limiter.clone().poll(stop_rx.clone()));

    // `dogstatsd stats` and `top`: the privileged API asks, the aggregator task answers.
    let context_limit = usize::try_from(settings.aggregate.aggregate_context_limit).unwrap_or(usize::MAX);
    let (dogstatsd_debug, debug_server) = adp_dogstatsd::debug::channel(context_limit);

    let unprivileged = Unprivileged {
        health: health.clone(),
        registry: registry.clone(),
    };
    let unprivileged_api = api::spawn(
        &supervisor,
        "unprivileged API",
        (
            settings.agent.data_plane.api_listen_address,
            "data_plane.api_listen_address",
        ),
        None,
        move |req| unprivileged.clone().handle(req),
        stop_rx.clone(),
    )
    .await?;
    let token = api::load_or_create_auth_token(&settings.agent.auth_token_file_path)?;
    let tls = api::load_or_generate_tls(&settings.agent.ipc_cert_file_path)?;
    let privileged = Privileged {
        token: token.into(),
        settings: settings.clone(),
        logging,
        dogstatsd: dogstatsd_debug,
    };
    let privileged_api = api::spawn(
        &supervisor,
        "privileged API",
        (
            settings.agent.data_plane.secure_api_listen_address,
            "data_plane.secure_api_listen_address",
        ),
        Some(tls),
        move |req| privileged.clone().handle(req),
        stop_rx.clone(),
    )
    .await?;
    let api_tasks = [unprivileged_api, privileged_api];

    let running = pipeline::start(&settings, &registry, &health, &supervisor, limiter, debug_server).await?;
    tracing::info!("Agent Data Plane running.");

    let ended = async {
        if health.wait_ready().await {
            let topology_ready_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            tracing::info!(topology_ready_ms, "Topology healthy. Waiting for interrupt...");
        }
        // Not ready only because a component failed, which the supervisor reports.
        supervisor.ended().await
    };
    let signal_name = tokio::select! {
        name = ended => {
            let _ = stop_tx.send(true);
            anyhow::bail!(
                "Task `{name}` stopped unexpectedly; exiting so that the service manager restarts the agent."
            );
        }
        _ = sigint.recv() => "SIGINT",
        _ = sigterm.recv() => "SIGTERM",
    };
    tracing::info!("Received {signal_name}, shutting down...");
    supervisor.stopping();

    let shutdown = running.shutdown(settings.forwarder.forwarder_stop_timeout);
    let outcome = tokio::select! {
        report = shutdown => report,
        _ = sigint.recv() => {
            tracing::warn!("Received a second signal during shutdown; exiting without draining.");
            return Ok(ExitCode::FAILURE);
        }
        _ = sigterm.recv() => {
            tracing::warn!("Received a second signal during shutdown; exiting without draining.");
            return Ok(ExitCode::FAILURE);
        }
    };
    let _ = stop_tx.send(true);
    for task in api_tasks {
        let _ = task.await;
    }
    outcome?;
    Ok(ExitCode::SUCCESS)
}

/// The pidfile: written at start, removed when dropped.
struct Pidfile(PathBuf);

impl Pidfile {
    fn write(path: &Path) -> anyhow::Result<Self> {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write the pidfile {} (--pidfile)", path.display()))?;
        Ok(Self(path.to_owned()))
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            tracing::warn!(path = %self.0.display(), error = %e, "Cannot remove the pidfile.");
        }
    }
}
