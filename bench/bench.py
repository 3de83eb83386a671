#!/usr/bin/env python3
"""Side-by-side benchmarks of agent-data-plane, Etsy statsd and collectd's statsd plugin,
the agent alone under endless new contexts (`--only churn`), and the idle agent with its
system checks and host payload on vs off (`--only checks`).

Run by checks/bench.sh (`make bench`), which builds the binaries and installs the
peers first. Every process under test is started here, sampled from /proc every
250 ms (VmRSS; utime+stime), fed by adp-loadgen, and stopped again; the results go
to bench/results.json, from which bench/render.py writes the tables in
docs/benchmarks.md and the chart docs/benchmarks-rss.png. The profiles and ADP's
published numbers are in bench/gates.py.

Only loopback sockets and Unix sockets in a temporary directory are used.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import dhat
import render
from gates import ADP_BOUND, ADP_OBSERVED, GOAL, MIB, PROFILES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDALONE_ENV = os.path.join(ROOT, "checks", "lib", "standalone.env")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The parts of a full run, in order; `--only` picks some.
PARTS = ("profiles", "armv7", "plain", "heavy_udp", "churn", "alloc", "checks")

AGENT_CPU = "0"  # every process under test is pinned here ...
LOAD_CPU = "1"  # ... and the load generator here (when the machine has two cores)


def log(*a):
    print("bench:", *a, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_tcp_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def udp_drops(port):
    """Kernel drop counter summed over the UDP sockets bound to `port` (v4 and v6)."""
    total, found = 0, False
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if int(cols[1].rsplit(":", 1)[1], 16) == port:
                total += int(cols[-1])
                found = True
    return total if found else None


class Sampler(threading.Thread):
    """Samples RSS and CPU ticks of one pid (and its threads) every `period` seconds."""

    def __init__(self, pid, period=0.25):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.samples = []  # (monotonic, rss_bytes, cpu_ticks)
        self.stop_ev = threading.Event()

    def read(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                rss = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return time.monotonic(), rss, int(fields[11]) + int(fields[12])
        except (OSError, StopIteration, IndexError):
            return None

    def run(self):
        while not self.stop_ev.is_set():
            s = self.read()
            if s:
                self.samples.append(s)
            self.stop_ev.wait(self.period)

    def stop(self):
        self.stop_ev.set()
        self.join()

    def window(self, t0, t1):
        return [s for s in self.samples if t0 <= s[0] <= t1]


def summarize(samples):
    """Steady RSS (median of the last half), peak RSS, CPU % over the samples."""
    if len(samples) < 2:
        return dict(rss_steady_mib=None, rss_peak_mib=None, cpu_percent=None, samples=len(samples))
    last = [s[1] for s in samples[len(samples) // 2 :]]
    dt = samples[-1][0] - samples[0][0]
    cpu = (samples[-1][2] - samples[0][2]) / CLK_TCK / dt * 100 if dt > 0 else None
    return dict(
        rss_steady_mib=round(statistics.median(last) / MIB, 2),
        rss_peak_mib=round(max(s[1] for s in samples) / MIB, 2),
        cpu_percent=round(cpu, 1) if cpu is not None else None,
        samples=len(samples),
    )


def pin(cpu):
    return ["taskset", "-c", cpu] if shutil.which("taskset") and os.cpu_count() >= 2 else []


def loadgen(args, target, profile, duration, rate=None, contexts=None, max_datagram=None, max_messages=None):
    cmd = pin(LOAD_CPU) + [args.loadgen, "--target", target, "--profile", profile, "--duration", str(duration)]
    if rate is not None:
        cmd += ["--rate-bytes", str(int(rate))]
    if contexts is not None:
        cmd += ["--contexts", str(contexts)]
    if max_datagram is not None:
        cmd += ["--max-datagram", str(max_datagram)]
    if max_messages is not None:
        cmd += ["--max-messages", str(max_messages)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=duration + 60)
    return json.loads(out.stdout.strip().splitlines()[-1])


def scrape(api):
    """Counters from the agent's OpenMetrics endpoint: {name{labels}: value}."""
    out = {}
    try:
        with urllib.request.urlopen(f"http://{api}/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"^(\S+?)(\{[^}]*\})?\s+(\S+)", line)
        if m:
            try:
                out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
            except ValueError:
                pass
    return out


def agent_drops(before, after):
    """Deltas of every counter that counts lost input: decode errors, drops, truncation."""
    d = {}
    for k, v in after.items():
        name = k.split("{", 1)[0]
        if name.endswith("_total") and re.search(r"drop|error|truncated", name):
            delta = v - before.get(k, 0.0)
            if delta:
                d[k] = delta
    return d


def metric_sum(snapshot, name):
    return sum(v for k, v in snapshot.items() if k == name or k.startswith(name + "{"))


def ingested_values(before, after):
    """Metric values that reached the aggregator's state between two snapshots: those
    decoded less those the aggregator refused (context limit, memory limit, bad values)."""

    def kept(snap):
        return metric_sum(snap, "adp_dogstatsd_metrics_total") - metric_sum(snap, "adp_aggregate_dropped_samples_total")

    return kept(after) - kept(before)


STORE_PARTS = ("strings", "string_index", "tag_lists", "slots", "index")


def store_parts(snap):
    """Where the context store's bytes go, from the agent's own accounting: its written
    memory by part (`adp_context_resident_bytes{part}`, which only grows: freed memory is
    kept for reuse) and the window values outside the slots at the start of the latest
    flush (`adp_context_value_bytes`)."""
    parts = {p: int(snap.get(f'adp_context_resident_bytes{{part="{p}"}}', 0)) for p in STORE_PARTS}
    return dict(parts, values=int(snap.get("adp_context_value_bytes", 0)), strings_count=int(snap.get("adp_context_strings", 0)))


def drained(api, before, datagrams, timeout=30.0):
    """The agent's counters once it has read the `datagrams` sent since `before` (and a
    moment more, for the aggregator to take the last batches), or at the timeout."""
    target = metric_sum(before, "adp_dogstatsd_packets_total") + datagrams
    deadline = time.monotonic() + timeout
    snap = scrape(api)
    while metric_sum(snap, "adp_dogstatsd_packets_total") < target and time.monotonic() < deadline:
        time.sleep(0.25)
        snap = scrape(api)
    time.sleep(1.0)
    return scrape(api)


class Proc:
    """A process under test with its log file; stopped with SIGTERM then SIGKILL."""

    def __init__(self, cmd, env, logpath, cwd=None):
        self.logpath = logpath
        self.logf = open(logpath, "wb")
        self.p = subprocess.Popen(cmd, env=env, stdout=self.logf, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)

    def log_text(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_for(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log_text())
            if m:
                return m
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.logpath}: exited ({self.p.returncode}) before {pattern!r}:\n{self.log_text()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.logpath}: no {pattern!r} within {timeout}s:\n{self.log_text()[-2000:]}")

    def stop(self, grace=15):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.logf.close()


class Intake:
    def __init__(self, args, work):
        self.proc = Proc([args.intake, "--listen", "127.0.0.1:0", "--blackhole"], dict(os.environ), os.path.join(work, "intake.log"))
        self.addr = self.proc.wait_for(r"listening on (\S+)", 30).group(1)


def standalone_env(intake_url, work):
    """checks/lib/standalone.env (the environment the e2e tests and the smoke checks
    start from too), its placeholders filled."""
    env = {}
    with open(STANDALONE_ENV) as f:
        for line in f.read().splitlines():
            if not line or line.startswith("#"):
                continue
            key, value = line.split("=", 1)
            if "{" in value.replace("{intake_url}", "").replace("{dir}", ""):
                raise ValueError(f"{STANDALONE_ENV}: a placeholder other than {{intake_url}} and {{dir}} in {line!r}")
            env[key] = value.replace("{intake_url}", intake_url).replace("{dir}", work)
    return env


def start_agent(args, work, intake, binary, runner, profile_cfg, udp_port=0, socket_path=None, timeout=120, extra_env=None):
    """The agent in the standalone environment with the profile's limits, DogStatsD on
    `udp_port` and `socket_path` (none: UDP only); returns it once healthy, with the
    address of its unprivileged API."""
    env = dict(PATH=os.environ["PATH"], **standalone_env(f"http://{intake.addr}", work))
    env["DD_DOGSTATSD_PORT"] = str(udp_port)
    env["DD_DOGSTATSD_SOCKET"] = socket_path or ""
    env.update(dict(kv.split("=", 1) for kv in args.agent_env))
    env.update(extra_env or {})
    if profile_cfg.get("limit"):
        env["DD_AGGREGATE_CONTEXT_LIMIT"] = str(profile_cfg["limit"])
    if profile_cfg.get("interner"):
        env["DD_DOGSTATSD_STRING_INTERNER_SIZE"] = str(profile_cfg["interner"])
    cmd = pin(AGENT_CPU) + runner + [binary, "run"]
    proc = Proc(cmd, env, os.path.join(work, "agent.log"))
    api = proc.wait_for(r"(?m)Serving unprivileged API on (\S+)\.$", timeout).group(1)
    proc.wait_for(r"Topology healthy", timeout)
    return proc, api


# --- the profile runs --------------------------------------------------------


def run_profile(args, work, intake, name, binary, runner, duration, rate=None, startup_timeout=120):
    cfg = PROFILES[name]
    sock = os.path.join(work, f"dsd-{name}.sock")
    agent, api = start_agent(args, work, intake, binary, runner, cfg, socket_path=sock, timeout=startup_timeout)
    sampler = Sampler(agent.p.pid)
    sampler.start()
    try:
        time.sleep(1.0)
        before = scrape(api)
        la0 = loadavg()
        t0 = time.monotonic()
        lg = loadgen(args, f"unix://{sock}", name, duration, rate=rate if rate is not None else cfg["rate"])
        if name == "idle":
            lg = dict(lg, bytes_per_sec=0.0, values_per_sec=0.0)
        t1 = time.monotonic()
        after = drained(api, before, lg["datagrams"])
        la1 = loadavg()
    finally:
        sampler.stop()
        agent.stop()
    wall = t1 - t0
    ingested = ingested_values(before, after)
    res = dict(
        profile=name,
        offered_bytes_per_sec=cfg["rate"] if rate is None else rate,
        achieved_bytes_per_sec=round(lg["bytes_per_sec"]),
        sent_values=lg["values"],
        sent_values_per_sec=round(lg["values_per_sec"]),
        ingested_metrics=int(ingested),
        lost_percent=round(100 * (lg["values"] - ingested) / lg["values"], 2) if lg["values"] else 0.0,
        # What the contexts sent need at the least (adp-loadgen): distinct strings + 4 B a tag reference.
        floor=lg.get("floor"),
        # Over the sender's own send loop (building a 250,000-context pool takes a while).
        ingested_metrics_per_sec=round(ingested / lg["elapsed_secs"]) if lg["elapsed_secs"] > 0 else 0,
        agent_drops=agent_drops(before, after),
        store=store_parts(after),
        uds_would_block_retries=lg.get("would_block_retries", 0),
        send_errors=lg["send_errors"],
        duration_secs=round(wall, 1),
        loadavg_before=la0,
        loadavg_after=la1,
        **summarize(sampler.window(t0, t1)),
    )
    log(json.dumps(res))
    return res


# --- zero-drop rate search (UDP) ---------------------------------------------


def zero_drop_search(args, label, port, step_secs, profile, start_rate, max_rate, on_step=None, max_datagram=None, pid=None):
    """Doubles the offered rate until the kernel drops (or the loadgen cannot keep up),
    halves instead when the first rate already fails, then bisects twice. Returns the highest rate with zero drops and every step."""
    steps = []
    sampler = Sampler(pid) if pid else None
    if sampler:
        sampler.start()

    def step(rate):
        d0 = udp_drops(port) or 0
        extra0 = on_step() if on_step else None
        la = loadavg()
        t0 = time.monotonic()
        lg = loadgen(args, f"udp://127.0.0.1:{port}", profile, step_secs, rate=rate, max_datagram=max_datagram)
        t1 = time.monotonic()
        time.sleep(1.0)
        d1 = udp_drops(port) or 0
        extra1 = on_step() if on_step else None
        drops = d1 - d0
        agent = agent_drops(extra0, extra1) if on_step else {}
        kept_up = lg["bytes_per_sec"] >= 0.97 * rate
        s = dict(
            offered_bytes_per_sec=int(rate),
            achieved_bytes_per_sec=round(lg["bytes_per_sec"]),
            values_per_sec=round(lg["values_per_sec"]),
            kernel_drops=drops,
            agent_drops=agent,
            loadgen_kept_up=kept_up,
            loadavg=la,
            **(summarize(sampler.window(t0, t1)) if sampler else {}),
        )
        if on_step:
            ing = metric_sum(extra1, "adp_dogstatsd_metrics_total") - metric_sum(extra0, "adp_dogstatsd_metrics_total")
            s["ingested_metrics"] = int(ing)
            s["ingested_metrics_per_sec"] = round(ing / lg["elapsed_secs"]) if lg["elapsed_secs"] > 0 else 0
        s["zero_drops"] = drops == 0 and not agent and kept_up
        log(label, json.dumps(s))
        steps.append(s)
        return s

    good, bad = None, None

    def probe(rate):
        """One step, kept as the best zero-drop step or as the latest failing one."""
        nonlocal good, bad
        s = step(rate)
        if s["zero_drops"]:
            good = s
        else:
            bad = s
        return s["zero_drops"]

    rate = start_rate
    try:
        while rate <= max_rate and probe(rate):
            rate *= 2
        # The first step already lost something: halve (at most four times) to find a floor.
        rate = start_rate / 2
        while good is None and rate >= start_rate / 16 and not probe(rate):
            rate /= 2
        for _ in range(2):
            if good is None or bad is None:
                break
            probe((good["offered_bytes_per_sec"] + bad["offered_bytes_per_sec"]) / 2)
    finally:
        if sampler:
            sampler.stop()
    return dict(
        label=label,
        profile=profile,
        best=good,
        first_failure=bad,
        capped_at_max=bad is None,
        steps=steps,
    )


def rcvbuf_bytes():
    """The UDP receive buffer the tuned runs ask for: 4 MiB, capped at net.core.rmem_max."""
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            return min(4 * MIB, int(f.read()))
    except OSError:
        return 4 * MIB


def plain_agent(args, work, intake, rates, extra_env=None):
    port = free_udp_port()
    agent, api = start_agent(args, work, intake, args.agent, [], dict(limit=None, interner=None), udp_port=port, extra_env=extra_env)
    try:
        return zero_drop_search(
            args, "agent", port, args.step_secs, "plain", rates[0], rates[1],
            on_step=lambda: scrape(api), max_datagram=args.plain_datagram, pid=agent.p.pid,
        )
    finally:
        agent.stop()


def heavy_udp_one_core(args, work, intake):
    """The dogstatsd heavy shape over UDP, agent on one core: the 50 MiB/s goal."""
    port = free_udp_port()
    cfg = PROFILES["heavy"]
    rcvbuf = rcvbuf_bytes()
    agent, api = start_agent(args, work, intake, args.agent, [], cfg, udp_port=port, extra_env={"DD_DOGSTATSD_SO_RCVBUF": str(rcvbuf)})
    try:
        return dict(so_rcvbuf=rcvbuf, **zero_drop_search(
            args, "agent-heavy-udp", port, args.step_secs, "heavy", 6.25 * MIB, 100 * MIB,
            on_step=lambda: scrape(api), pid=agent.p.pid,
        ))
    finally:
        agent.stop()


def plain_peer(args, work, name, label, cmd, port, rates):
    """Starts a peer receiver pinned as the agent is, waits until it has bound UDP `port`
    and runs the plain zero-drop search against it (its log: `label`.log)."""
    proc = Proc(pin(AGENT_CPU) + cmd, dict(os.environ), os.path.join(work, f"{label}.log"))
    try:
        deadline = time.monotonic() + 30
        while udp_drops(port) is None:
            if time.monotonic() > deadline or proc.p.poll() is not None:
                raise RuntimeError(f"{name} did not bind its UDP port:\n" + proc.log_text())
            time.sleep(0.1)
        return zero_drop_search(args, label, port, args.step_secs, "plain", rates[0], rates[1], max_datagram=args.plain_datagram, pid=proc.p.pid)
    finally:
        proc.stop()


def plain_receive_only(args, work, rates):
    """The smallest receiver there is (`adp-loadgen --receive`: a blocking `recv` loop that
    discards), on the agent's default socket setup and core: what one core can receive."""
    port = free_udp_port()
    cmd = [args.loadgen, "--receive", f"udp://127.0.0.1:{port}", "--duration", "100000", "--max-datagram", "8192"]
    return plain_peer(args, work, "the receive-only receiver", "receive-only", cmd, port, rates)


def plain_etsy(args, work, rates):
    port, mgmt = free_udp_port(), free_tcp_port()
    cfg = os.path.join(work, "statsd-config.js")
    with open(cfg, "w") as f:
        f.write(
            "{\n  address: \"127.0.0.1\", port: %d, mgmt_address: \"127.0.0.1\", mgmt_port: %d,\n"
            "  flushInterval: 10000, backends: [], deleteIdleStats: false\n}\n" % (port, mgmt)
        )
    stats_js = os.path.join(args.peers, "node_modules", "statsd", "stats.js")
    r = plain_peer(args, work, "Etsy statsd", "etsy-statsd", ["node", stats_js, cfg], port, rates)
    r["version"] = json.load(open(os.path.join(args.peers, "node_modules", "statsd", "package.json")))["version"]
    r["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return r


def plain_collectd(args, work, rates):
    port = free_udp_port()
    base = os.path.join(work, "collectd")
    os.makedirs(base, exist_ok=True)
    cfg = os.path.join(base, "collectd.conf")
    with open(cfg, "w") as f:
        f.write(
            f'Hostname "bench"\nFQDNLookup false\nInterval 10\nBaseDir "{base}"\nPIDFile "{base}/collectd.pid"\n'
            'PluginDir "/usr/lib/collectd"\nTypesDB "/usr/share/collectd/types.db"\nAutoLoadPlugin false\n'
            "LoadPlugin statsd\n"
            f'<Plugin statsd>\n  Host "127.0.0.1"\n  Port "{port}"\n</Plugin>\n'
        )
    r = plain_peer(args, work, "collectd", "collectd", [args.collectd, "-f", "-C", cfg], port, rates)
    r["version"] = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "collectd-core"], capture_output=True, text=True).stdout.strip() or None
    return r


# --- endless new contexts ----------------------------------------------------

CHURN_MILESTONES = [100_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000, 50_000_000, 100_000_000, 200_000_000, 400_000_000]


def churn_line(p):
    return " ".join(
        str(v)
        for v in (p["t"], p["offered_contexts"], p["kept_samples"], p["aggregator_contexts"], sum(p["refused"].values()), p["rss_mib"])
    )


def churn(args, work, intake, duration, extra_env=None):
    """Ever-new contexts (adp-loadgen --profile churn, unpaced, Unix datagram) for `duration`
    seconds against the default limits, plus `extra_env` (e.g. a memory limit): RSS every
    250 ms, the agent's counters every second. Shows where the contexts go (the
    aggregator's aggregate_context_limit, the memory limiter's refusals) and that memory
    stops growing once they are full; records the firm memory bound the agent logs at start."""
    sock = os.path.join(work, "dsd-churn.sock")
    agent, api = start_agent(args, work, intake, args.agent, [], dict(limit=None, interner=None), socket_path=sock, extra_env=extra_env)
    m = re.search(r"Memory bounds computed\..*?firm_bytes=(\d+)", agent.log_text())
    firm = int(m.group(1)) if m else None
    sampler = Sampler(agent.p.pid)
    sampler.start()
    points = []

    def point(t0, snap):
        refused = {
            k.split('reason="', 1)[1].rstrip('"}'): int(v)
            for k, v in snap.items()
            if k.startswith("adp_aggregate_dropped_samples_total{") and 'reason="invalid_value"' not in k
        }
        decoded = metric_sum(snap, "adp_dogstatsd_metrics_total")
        rss = sampler.samples[-1][1] if sampler.samples else None
        return dict(
            t=round(time.monotonic() - t0, 2),
            # Every churn message is a context never seen before.
            offered_contexts=int(decoded),
            kept_samples=int(decoded - sum(refused.values())),
            refused=refused,
            aggregator_contexts=int(snap.get("adp_aggregate_contexts", 0)),
            context_memory_mib=round(snap.get("adp_context_memory_bytes", 0) / MIB, 2),
            rss_mib=round(rss / MIB, 2) if rss else None,
        )

    try:
        time.sleep(2.0)
        t0 = time.monotonic()
        points.append(point(t0, scrape(api)))
        la0 = loadavg()
        cmd = pin(LOAD_CPU) + [args.loadgen, "--target", f"unix://{sock}", "--profile", "churn", "--duration", str(duration)]
        lg = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while lg.poll() is None:
            time.sleep(1.0)
            points.append(point(t0, scrape(api)))
        out, err = lg.communicate()
        if lg.returncode != 0:
            raise RuntimeError(f"adp-loadgen failed ({lg.returncode}): {err}")
        summary = json.loads(out.strip().splitlines()[-1])
        time.sleep(2.0)  # the agent drains its queue
        points.append(point(t0, scrape(api)))
        la1 = loadavg()
        warnings = len(re.findall(r"Refused samples of new contexts", agent.log_text()))
    finally:
        sampler.stop()
        agent.stop()
    rss = [s[1] for s in sampler.samples if s[0] >= t0]
    tail = rss[len(rss) * 3 // 4 :]
    milestones = []
    for m in CHURN_MILESTONES:
        p = next((p for p in points if p["offered_contexts"] >= m), None)
        if p:
            milestones.append(dict(contexts=m, **p))
    res = dict(
        duration_secs=duration,
        env=extra_env or {},
        firm_bound_bytes=firm,
        sent_messages=summary["messages"],
        sent_bytes=summary["bytes"],
        uds_would_block_retries=summary.get("would_block_retries", 0),
        rss_start_mib=points[0]["rss_mib"],
        rss_peak_mib=round(max(rss) / MIB, 2) if rss else None,
        rss_last_quarter_mib=[round(min(tail) / MIB, 2), round(max(tail) / MIB, 2)] if tail else None,
        refusal_warnings=warnings,
        start=points[0],
        final=points[-1],
        milestones=milestones,
        # Every sample, one line each: t s, offered contexts, kept samples, aggregator
        # contexts, refused samples (all reasons), RSS MiB.
        timeline=[churn_line(p) for p in points],
        loadavg_before=la0,
        loadavg_after=la1,
    )
    log("churn", json.dumps({k: v for k, v in res.items() if k != "timeline"}))
    return res


# --- where the memory goes (DHAT) --------------------------------------------

# Messages sent to the agent under DHAT, per profile: enough to meet nearly every
# context of low / medium / plain (3,000 / 10,000 / 1,000 contexts), few enough that
# each profile takes about a minute at most under valgrind (~3,000 messages/s on this machine's
# shared cores). heavy meets about a quarter of its 100,000 contexts: with more, one
# flush alone takes over a minute under valgrind. idle sends nothing: its allocations
# (start, a few idle seconds, shutdown) are subtracted from the others' per metric.
ALLOC_MESSAGES = {"idle": 0, "low": 40_000, "medium": 60_000, "heavy": 30_000, "plain": 100_000}
DHAT_DIR = os.path.join(ROOT, "bench", ".dhat")


def wait_for(what, condition, timeout, period=1.0):
    """Polls `condition()` until it returns a true value, which is returned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(period)
    raise RuntimeError(f"{what} did not happen within {timeout:g} s")


def flushed_points(snap):
    return metric_sum(snap, "adp_aggregate_flushed_series_points_total") + metric_sum(snap, "adp_aggregate_flushed_sketch_points_total")


def wait_for_flush_after(api, datagrams):
    """Waits until the agent has received `datagrams` datagrams, then for a flush of
    windows that closed after that (flushed points grow) and its payloads sent.
    Returns the telemetry snapshots taken when everything was received and after the flush."""

    def received():
        snap = scrape(api)
        return snap if metric_sum(snap, "adp_dogstatsd_packets_total") >= datagrams else None

    loaded = wait_for(f"the agent receiving all {datagrams} datagrams", received, 120)

    def flushed():
        snap = scrape(api)
        grew = flushed_points(snap) > flushed_points(loaded)
        sent = metric_sum(snap, "adp_forwarder_payloads_sent_total") > metric_sum(loaded, "adp_forwarder_payloads_sent_total")
        return snap if grew and sent else None

    # Windows are 10 s and flushed on a 10 s tick: at most 20 s, more under valgrind.
    return loaded, wait_for("an aggregator flush after the last datagram", flushed, 60)


def alloc_profile(args, work, intake, name, baseline):
    """The agent under `valgrind --tool=dhat` with the profile's configuration: a bounded
    number of messages over the Unix datagram socket (the sender retries while the socket
    is full, so nothing is lost however slow the agent runs), one aggregator flush after
    the last datagram, SIGTERM; DHAT writes its profile at exit."""
    cfg = PROFILES.get(name, dict(limit=None, interner=None))  # plain: the defaults, as in the plain part
    sock = os.path.join(work, f"dsd-alloc-{name}.sock")
    os.makedirs(DHAT_DIR, exist_ok=True)
    out = os.path.join(DHAT_DIR, f"{name}.json")
    if os.path.exists(out):
        os.remove(out)
    # --fullpath-after= (empty) keeps absolute source paths, which tell our frames from std's.
    runner = ["valgrind", "--tool=dhat", f"--dhat-out-file={out}", "--read-inline-info=yes", "--fullpath-after="]
    t0 = time.monotonic()
    agent, api = start_agent(args, work, intake, args.agent, runner, cfg, socket_path=sock, timeout=180)
    try:
        time.sleep(1.0)
        lg = dict(messages=0, values=0, datagrams=0, would_block_retries=0)
        if ALLOC_MESSAGES[name]:
            max_datagram = args.plain_datagram if name == "plain" else None
            lg = loadgen(args, f"unix://{sock}", name, 600, rate=0, max_messages=ALLOC_MESSAGES[name], max_datagram=max_datagram)
            if lg["messages"] < ALLOC_MESSAGES[name]:
                raise RuntimeError(f"adp-loadgen sent {lg['messages']} of {ALLOC_MESSAGES[name]} messages in 600 s: {lg}")
            log(f"alloc {name}: sent {lg['messages']:,} messages in {lg['elapsed_secs']:.0f} s; waiting for a flush")
            loaded, final = wait_for_flush_after(api, lg["datagrams"])
        else:
            time.sleep(5.0)
            loaded = final = scrape(api)
    finally:
        # At most a minute: valgrind slows the final flush and the forwarder's drain.
        agent.stop(grace=60)
    if agent.p.returncode != 0 or not os.path.exists(out):
        raise RuntimeError(f"the agent under valgrind exited {agent.p.returncode} with no profile {out}:\n{agent.log_text()[-2000:]}")
    ingested = int(metric_sum(final, "adp_dogstatsd_metrics_total"))
    d = dhat.summarize(out, ROOT)
    # What the load cost: the run's allocations less those of starting, idling and stopping.
    base = baseline or dict(total_blocks=0, total_bytes=0)

    def per_metric(field):
        return round((d[field] - base[field]) / ingested, 2) if ingested else None

    res = dict(
        profile=name,
        sent_messages=lg["messages"],
        sent_values=lg["values"],
        uds_would_block_retries=lg["would_block_retries"],
        ingested_metrics=ingested,
        # Before the flush, which removes gauges, sets and sketches until samples for them arrive again.
        aggregator_contexts=int(metric_sum(loaded, "adp_aggregate_contexts")),
        agent_drops=agent_drops({}, final),
        allocations_per_metric=per_metric("total_blocks"),
        bytes_per_metric=per_metric("total_bytes"),
        per_metric_net_of="idle" if baseline and ingested else None,
        wall_secs=round(time.monotonic() - t0, 1),
        dhat_file=os.path.relpath(out, ROOT),
        **d,
    )
    log("alloc", json.dumps({k: v for k, v in res.items() if not k.startswith("top_")}))
    return res


def alloc(args, work, intake, names):
    """DHAT heap profiles of the agent per profile (`--only alloc`), idle first as the baseline."""
    if not shutil.which("valgrind"):
        raise RuntimeError("valgrind not found: checks/setup-debian.sh (make setup) installs it")
    version = subprocess.run(["valgrind", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    res = dict(valgrind=version, messages={n: ALLOC_MESSAGES[n] for n in names}, plain_datagram=args.plain_datagram, profiles=[])
    baseline = None
    for name in names:
        row = {"profile": name, **run_part(f"alloc {name} (valgrind --tool=dhat)", lambda: alloc_profile(args, work, intake, name, baseline))}
        if name == "idle" and "error" not in row:
            baseline = row
        res["profiles"].append(row)
    return res


def checks_on_off(args, work, intake, binary, runner, startup_timeout):
    """The idle agent (no DogStatsD traffic) with the system checks and the host payload
    off (the standalone environment: no conf.d, no metadata), then on (the shipped
    crates/checks/conf.d, every check at its default interval, host metadata sent), each
    `--checks-rounds` times, alternating: CPU % of one core and steady RSS over
    `--checks-duration` s, after `--checks-warmup` s past the first runs (cpu and io
    report from their second run)."""
    confd = os.path.join(work, "conf.d.shipped")
    if not os.path.isdir(confd):
        shutil.copytree(os.path.join(ROOT, "crates", "checks", "conf.d"), confd)
    rows = []
    for _ in range(args.checks_rounds):
        for mode in ("off", "on"):
            extra = {"DD_CONFD_PATH": confd, "DD_ENABLE_METADATA_COLLECTION": "true"} if mode == "on" else {}
            # An idle agent as deployed: listening (on a Unix socket here), receiving nothing.
            sock = os.path.join(work, "dsd-checks.sock")
            agent, api = start_agent(
                args, work, intake, binary, runner, {}, socket_path=sock, timeout=startup_timeout, extra_env=extra
            )
            sampler = Sampler(agent.p.pid)
            sampler.start()
            try:
                time.sleep(args.checks_warmup)
                la0 = loadavg()
                t0 = time.monotonic()
                time.sleep(args.checks_duration)
                t1 = time.monotonic()
                la1 = loadavg()
                snap = scrape(api)
            finally:
                sampler.stop()
                agent.stop()
            window = sampler.window(t0, t1)
            row = dict(
                mode=mode,
                check_runs=int(metric_sum(snap, "adp_checks_runs_total")),
                check_errors=int(metric_sum(snap, "adp_checks_errors_total")),
                duration_secs=round(t1 - t0, 1),
                loadavg_before=la0,
                loadavg_after=la1,
                **summarize(window),
            )
            # summarize() rounds to 0.1 %; an idle agent needs the hundredths.
            if len(window) >= 2 and window[-1][0] > window[0][0]:
                ticks = window[-1][2] - window[0][2]
                row["cpu_percent"] = round(ticks / CLK_TCK / (window[-1][0] - window[0][0]) * 100, 3)
            log(json.dumps(row))
            rows.append(row)
    mean = lambda mode, key: statistics.mean(r[key] for r in rows if r["mode"] == mode and r[key] is not None)
    delta = dict(
        cpu_percent=round(mean("on", "cpu_percent") - mean("off", "cpu_percent"), 2),
        rss_steady_mib=round(mean("on", "rss_steady_mib") - mean("off", "rss_steady_mib"), 2),
    )
    return dict(rows=rows, delta=delta, warmup_secs=args.checks_warmup)


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for l in f:
            if l.startswith("model name"):
                model = l.split(":", 1)[1].strip()
                break
    mem = next((int(l.split()[1]) // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal:")), None)
    return dict(cpu=model, nproc=os.cpu_count(), kernel=os.uname().release, arch=os.uname().machine, mem_mib=mem)


def merge_by_profile(previous, fresh):
    """A partial re-run's rows: each previous row replaced by the fresh one of its profile,
    then the profiles measured for the first time."""
    new = {r["profile"]: r for r in fresh}
    return [new.pop(r["profile"], r) for r in previous] + list(new.values())


def run_part(name, fn):
    """Runs one part (or one profile of a part). A failure is logged and returned as
    `{"error": ...}` in place of the result, so the other parts still run and the
    report says what failed."""
    log(name)
    try:
        return fn()
    except Exception as e:
        log(f"{name} failed: {e}")
        return dict(error=str(e))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", default=os.path.join(ROOT, "target/release/agent-data-plane"))
    ap.add_argument("--agent-armv7", default=os.path.join(ROOT, "target/armv7-unknown-linux-gnueabihf/release/agent-data-plane"))
    ap.add_argument("--intake", default=os.path.join(ROOT, "target/release/adp-test-intake"))
    ap.add_argument("--loadgen", default=os.path.join(ROOT, "target/release/adp-loadgen"))
    ap.add_argument("--collectd", default="/usr/sbin/collectd")
    ap.add_argument("--peers", default=os.path.join(ROOT, "bench/.peers"))
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of load per profile")
    ap.add_argument("--arm-duration", type=float, default=15.0)
    ap.add_argument("--step-secs", type=float, default=4.0, help="seconds per zero-drop search step")
    ap.add_argument("--plain-datagram", type=int, default=1432)
    ap.add_argument("--churn-duration", type=float, default=120.0, help="seconds of ever-new contexts with the default limits (churn part)")
    ap.add_argument("--churn-limited-duration", type=float, default=480.0, help="seconds of ever-new contexts under --churn-memory-limit (churn part)")
    ap.add_argument("--churn-memory-limit", default="64MiB", help="memory_limit of the second churn run")
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts to run, of {', '.join(PARTS)}")
    ap.add_argument("--profiles", default=",".join(PROFILES))
    ap.add_argument("--alloc-profiles", default=",".join(ALLOC_MESSAGES), help="profiles of the alloc part (DHAT); idle is the baseline")
    ap.add_argument("--checks-duration", type=float, default=120.0, help="seconds measured per run of the checks part")
    ap.add_argument("--checks-warmup", type=float, default=35.0, help="seconds after start before the checks part measures")
    ap.add_argument("--checks-rounds", type=int, default=2, help="off/on pairs of the checks part")
    render.add_output_args(ap)
    ap.add_argument("--render-only", action="store_true", help="rewrite the Markdown and PNG from --json (as bench/render.py does)")
    ap.add_argument("--agent-env", action="append", default=[], metavar="KEY=VALUE", help="extra agent setting (experiments)")
    args = ap.parse_args()
    # SIGTERM/SIGINT unwind through the `finally` blocks, so no process under test outlives the run.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(130))
    if args.render_only:
        with open(args.json) as f:
            render.write_all(json.load(f), args.markdown, args.png, args.chart_python)
        return
    only = set(args.only.split(","))
    names = [p for p in args.profiles.split(",") if p]
    alloc_names = [p for p in args.alloc_profiles.split(",") if p]
    for what, given, known in (("--only", only, PARTS), ("--profiles", names, PROFILES), ("--alloc-profiles", alloc_names, ALLOC_MESSAGES)):
        if set(given) - set(known):
            ap.error(f"{what}: unknown {', '.join(sorted(set(given) - set(known)))}; expected some of {', '.join(known)}")

    started = time.monotonic()
    results = dict(
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine(),
        params=dict(agent_env=args.agent_env, duration=args.duration, arm_duration=args.arm_duration, step_secs=args.step_secs, plain_datagram=args.plain_datagram),
        adp_published=dict(observed_mib=ADP_OBSERVED, bound_mib=ADP_BOUND),
        goal_mib=GOAL,
        profiles=[],
    )
    work = tempfile.mkdtemp(prefix="adp-bench-")
    intake = Intake(args, work)
    try:
        if "profiles" in only:
            for name in names:
                run = lambda: run_profile(args, work, intake, name, args.agent, [], args.duration)
                results["profiles"].append({"profile": name, **run_part(f"profile {name} (host)", run)})
        if "armv7" in only and os.path.exists(args.agent_armv7):
            stripped = os.path.join(work, "agent-data-plane.armv7.stripped")
            subprocess.run(["arm-linux-gnueabihf-strip", "-o", stripped, args.agent_armv7], check=True)
            arm = dict(binary=args.agent_armv7, stripped_bytes=os.path.getsize(stripped), unstripped_bytes=os.path.getsize(args.agent_armv7), profiles=[])
            runner = ["qemu-arm", "-L", "/usr/arm-linux-gnueabihf"]
            for name in names:
                run = lambda: run_profile(args, work, intake, name, args.agent_armv7, runner, args.arm_duration, startup_timeout=180)
                arm["profiles"].append({"profile": name, **run_part(f"profile {name} (armv7, qemu-arm)", run)})
            results["armv7"] = arm
        if "plain" in only:
            results["plain"] = {}
            for key, fn in (
                ("agent", lambda: plain_agent(args, work, intake, (1 * MIB, 256 * MIB))),
                ("agent_rcvbuf", lambda: dict(plain_agent(args, work, intake, (4 * MIB, 256 * MIB), {"DD_DOGSTATSD_SO_RCVBUF": str(rcvbuf_bytes())}), so_rcvbuf=rcvbuf_bytes())),
                ("etsy", lambda: plain_etsy(args, work, (16 * 1024, 256 * MIB))),
                ("collectd", lambda: plain_collectd(args, work, (16 * 1024, 256 * MIB))),
                ("receive_only", lambda: plain_receive_only(args, work, (4 * MIB, 1024 * MIB))),
            ):
                results["plain"][key] = run_part(f"plain StatsD zero-drop search: {key}", fn)
        if "heavy_udp" in only:
            results["heavy_udp"] = run_part("heavy over UDP, one core", lambda: heavy_udp_one_core(args, work, intake))
        if "churn" in only:
            results["churn"] = {
                "defaults": run_part("churn: endless new contexts, default limits", lambda: churn(args, work, intake, args.churn_duration)),
                "memory_limit": run_part(
                    f"churn: endless new contexts, memory_limit {args.churn_memory_limit}",
                    lambda: churn(args, work, intake, args.churn_limited_duration, {"DD_MEMORY_LIMIT": args.churn_memory_limit}),
                ),
            }
        if "alloc" in only:
            results["alloc"] = run_part("alloc: DHAT heap profiles", lambda: alloc(args, work, intake, alloc_names))
        if "checks" in only:
            results["checks"] = dict(host=run_part("checks on vs off (host)", lambda: checks_on_off(args, work, intake, args.agent, [], 120)))
            if os.path.exists(args.agent_armv7):
                runner = ["qemu-arm", "-L", "/usr/arm-linux-gnueabihf"]
                results["checks"]["armv7"] = run_part(
                    "checks on vs off (armv7, qemu-arm)", lambda: checks_on_off(args, work, intake, args.agent_armv7, runner, 240)
                )
    finally:
        intake.proc.stop()
    results["wall_secs"] = time.monotonic() - started
    # A partial run (--only / --profiles) updates its parts of an existing results file.
    if only != set(PARTS) or names != list(PROFILES) or alloc_names != list(ALLOC_MESSAGES):
        try:
            previous = json.load(open(args.json))
        except (OSError, ValueError):
            previous = {}
        if "profiles" in only and "profiles" in previous:
            results["profiles"] = merge_by_profile(previous["profiles"], results["profiles"])
        elif "profiles" in previous:
            results["profiles"] = previous["profiles"]
        for part in ("armv7", "alloc"):
            if part in only and "profiles" in results.get(part, {}) and "profiles" in previous.get(part, {}):
                results[part]["profiles"] = merge_by_profile(previous[part]["profiles"], results[part]["profiles"])
        for part in PARTS[1:]:
            if part not in only and part in previous:
                results[part] = previous[part]
        rerun = dict(date=results["date"], only=sorted(only), profiles=names, wall_secs=round(results["wall_secs"]))
        if "alloc" in only:
            rerun["alloc_profiles"] = alloc_names
        results["partial_reruns"] = previous.get("partial_reruns", []) + [rerun]
        results["date"] = previous.get("date", results["date"])
        results["wall_secs"] = previous.get("wall_secs", results["wall_secs"])
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    render.write_markdown(args.markdown, render.render(results))
    try:
        render.chart(results, args.png, args.chart_python)
    except Exception as e:
        log(f"chart failed: {e}")
    shutil.rmtree(work, ignore_errors=True)
    log(f"wrote {args.json}, {args.markdown}, {args.png} in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
