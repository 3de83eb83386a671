#!/usr/bin/env python3
"""The benchmark report: bench/results.json → the generated section of docs/benchmarks.md
(between its `<!-- BEGIN bench.py` and `<!-- END bench.py -->` markers; the rest of the
file, the "## DogStatsD codec" section included, is kept as it is) and the RSS chart
docs/benchmarks-rss.png (bench/chart.py, which needs matplotlib).

bench.py calls this after a run; `bench/render.py` alone (or `bench/bench.py
--render-only`) re-renders from the JSON without measuring, e.g. after a wording change.
"""

import argparse
import json
import os
import subprocess
import sys

from gates import ADP_OBSERVED, GOAL, MIB, PEAK_GOAL, PROFILES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fmt(v, nd=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}"


def mib(b):
    return f"{b / MIB:,.2f} MiB/s" if b else "0"


def la(v):
    return "/".join(f"{x:.1f}" for x in v)


def error_cell(r, width=120):
    """A part's error on one table row: whitespace collapsed, `|` escaped, cut at `width`."""
    return " ".join(r["error"].split())[:width].replace("|", "\\|")


def failed_row(name, r, columns):
    """The row of a run that failed: its name, then its error, the row's other cells empty."""
    return f"| {name} | failed: {error_cell(r)} |" + "|" * (columns - 2)


def head(header):
    """A Markdown table's first two lines: `header` (its Markdown line) and the rule under it."""
    return [header, "|" + "---|" * (header.count("|") - 1)]


def plain_table(header, items, row):
    """A Markdown table: `header`, the rule, then the line `row(x)` for each of `items`."""
    return head(header) + [row(x) for x in items]


def table(header, results, row):
    """A Markdown table of per-profile results: `header` (its Markdown line), the rule, then
    the line `row(r)` for each result, or the failed row of one that failed."""
    columns = header.count("|") - 1
    return plain_table(header, results, lambda r: failed_row(r["profile"], r, columns) if "error" in r else row(r))


def offered_achieved(r):
    return f"{mib(r['offered_bytes_per_sec'])} → {mib(r['achieved_bytes_per_sec'])}"


def floor_mib(r):
    """The data floor of a profile's run in MiB (adp-loadgen's `floor.bytes`), or None."""
    f = r.get("floor") or {}
    return f["bytes"] / MIB if f.get("bytes") else None


def lost(r):
    """Values sent but not aggregated, as a share of those sent."""
    if not r.get("sent_values"):
        return "–"
    pct = r.get("lost_percent")
    if pct is None:
        pct = 100 * (r["sent_values"] - r["ingested_metrics"]) / r["sent_values"]
    return f"**{pct:.1f} %**" if pct > 0.05 else f"{pct:.0f} %"


def host_row(r, nproc):
    """A profile's row in the host table: ⚠ where the load average exceeded the `nproc` cores."""
    p = r["profile"]
    steady, peak = r["rss_steady_mib"], r["rss_peak_mib"]
    ratio = steady / ADP_OBSERVED[p] if steady else None
    goal_ok = "✓" if steady is not None and steady <= GOAL[p] else "✗"
    peak_ok = "✓" if steady and peak is not None and peak <= PEAK_GOAL * steady else "✗"
    floor = floor_mib(r)
    over_floor = f"{steady / floor:.2f}×" if floor and steady else "–"
    warn = " ⚠" if r["loadavg_before"][0] > nproc else ""
    return (
        f"| {p} | {offered_achieved(r)} | {fmt(r.get('sent_values'))} | {fmt(r['ingested_metrics'])} | {lost(r)} | "
        f"**{fmt(steady)} MiB** | {fmt(peak)} MiB {peak_ok} | {GOAL[p]} MiB {goal_ok} | {fmt(floor, 2) + ' MiB' if floor else '–'} | {over_floor} | "
        f"{ADP_OBSERVED[p]} MiB | {fmt(ratio, 2)}× | {fmt(r['cpu_percent'])} | "
        f"{drops_detail(r['agent_drops'])}; {fmt(r['uds_would_block_retries'])} UDS retries | {la(r['loadavg_before'])}{warn} |"
    )


BYTES_PARTS = (
    ("strings", "strings (arena, with headers)"),
    ("string_index", "string index"),
    ("tag_lists", "id lists"),
    ("slots", "context slots"),
    ("index", "context index"),
    ("values", "window values"),
)


def where_the_bytes_go(profiles):
    """The steady RSS of each profile split by the agent's own accounting of its context
    store; the rest is the process without it (binary, runtime, buffers in flight)."""
    rows = [r for r in profiles if "error" not in r and r.get("store") and r.get("rss_steady_mib")]
    if not rows:
        return []
    idle = next((r for r in rows if r["profile"] == "idle"), None)
    L = [
        "### Where the steady RSS goes",
        "",
        "The agent's own accounting of its context store at the end of each run "
        "(`adp_context_resident_bytes{part}`: memory written, which stays once written, as freed strings, lists and "
        "slots are reused; `adp_context_value_bytes`: sketches, histogram samples and set members at the start of "
        "the latest flush), in MiB. *Rest* is the steady RSS less the store: the binary, the runtime, the receive "
        "buffers and batches in flight, the payloads being encoded, and allocator slack"
        + (f"; the idle agent's is {idle['rss_steady_mib']:.1f} MiB" if idle else "")
        + ". *Over goal* is what a profile must shed to meet its goal.",
        "",
        "| profile | steady RSS | data floor | " + " | ".join(label for _, label in BYTES_PARTS) + " | store ÷ floor | rest | over goal |",
        "|" + "---|" * (len(BYTES_PARTS) + 6),
    ]
    for r in rows:
        st = r["store"]
        store = sum(st.get(k, 0) for k, _ in BYTES_PARTS) / MIB
        floor = floor_mib(r)
        steady = r["rss_steady_mib"]
        over = steady - GOAL[r["profile"]]
        L.append(
            f"| {r['profile']} | {steady:.1f} | {fmt(floor, 1) if floor else '–'} | "
            + " | ".join(f"{st.get(k, 0) / MIB:.1f}" for k, _ in BYTES_PARTS)
            + f" | {f'{store / floor:.2f}×' if floor else '–'} | {steady - store:.1f} | {f'**+{over:.1f}**' if over > 0 else '–'} |"
        )
    L.append("")
    return L


def arm_row(r):
    """A profile's row in the armv7 table."""
    return (
        f"| {r['profile']} | {offered_achieved(r)} | {fmt(r['rss_steady_mib'])} MiB | {fmt(r['rss_peak_mib'])} MiB | "
        f"{fmt(r['ingested_metrics_per_sec'])} | {drops_detail(r['agent_drops'])} | {la(r['loadavg_before'])} |"
    )


def drops_detail(d):
    """`86 adp_forwarder_payloads_dropped_total{reason="evicted"}`-style cell text."""
    if not d:
        return "0"
    return ", ".join(f"{int(v):,} `{k}`" for k, v in d.items())


def size(b):
    return "–" if b is None else f"{b / MIB:,.2f} MiB" if b >= MIB else f"{b / 1024:,.1f} KiB" if b >= 1024 else f"{b:,} B"


def alloc_row(r):
    """A profile's row in the DHAT summary table."""
    per = f"{fmt(r['allocations_per_metric'], 2)} / {fmt(round(r['bytes_per_metric']))} B" if r["ingested_metrics"] else "–"
    return (
        f"| {r['profile']} | {fmt(r['sent_messages'])} | {fmt(r['ingested_metrics'])} | {fmt(r['aggregator_contexts'])} | {fmt(r['total_blocks'])} | {size(r['total_bytes'])} | {per} | "
        f"**{size(r['peak_bytes'])}** ({fmt(r['peak_blocks'])}) | {r['peak_at_fraction']:.0%} | {size(r['exit_bytes'])} | {r['wall_secs']:.0f} s |"
    )


def render_alloc(al):
    """The DHAT part: a summary row per profile, then per profile the sites holding the
    heap at its peak and the sites allocating most often."""
    L = ["### Where the memory goes (DHAT, `--only alloc`)", ""]
    if "error" in al:
        return L + [f"Not measured: {al['error']}", ""]
    counts = ", ".join(f"{p} {fmt(n)}" for p, n in al["messages"].items())
    L.append(
        f"The release agent under `valgrind --tool=dhat` ({al['valgrind']}) with each profile's configuration above "
        f"(plain: the defaults, as in the plain part, {al['plain_datagram']}-byte datagrams). `adp-loadgen` sends a fixed number of "
        f"messages ({counts}) unpaced over the Unix datagram socket — it retries while the socket is full, so none "
        "is lost however slowly the agent runs under valgrind — then the script waits for an aggregator flush of "
        "windows that closed after the last datagram and for its payloads to reach the intake, and stops the agent "
        "with SIGTERM (final flush, forwarder drain); DHAT writes its profile at exit."
    )
    L.append("")
    L.append(
        "- Allocations and bytes are what the program asked of `malloc` over the whole run, not RSS: glibc's free "
        "lists and arenas, thread stacks and the binary are not in them. *Heap at peak* is what was live at DHAT's "
        "global peak (t-gmax); *peak at* says when it came, as a share of the run (in instructions). "
        "*Per metric* is (the profile's allocations − idle's) ÷ ingested metrics (`adp_dogstatsd_metrics_total`), "
        "so starting and stopping are not counted; encoding allocates per context at every flush, not per metric, "
        "so where contexts are many the figure depends on how many flushes the run saw. "
        "*Contexts*: `adp_aggregate_contexts` once every datagram was received."
    )
    L.append(
        "- A site is a function of this workspace (`crates/`, `bin/`) and the lines in it that allocate: the first "
        "stack frame of ours, frames of the allocator, `std`, `alloc`, `core` and `hashbrown` skipped. Inlined frames valgrind cannot name (`UnknownInlinedFun`) "
        "are named by the `fn` around their line in the source; a stack with no frame of ours is named by its "
        "first dependency frame, `[crate] function`."
    )
    L.append(
        "- Full profiles: `bench/.dhat/<profile>.json` (not committed); open them in "
        "`/usr/libexec/valgrind/dh_view.html` for whole stacks, lifetimes and access counts."
    )
    L.append("")
    L.extend(table("| profile | messages sent | metrics ingested | contexts | allocations | allocated | per metric (allocations / bytes) | heap at peak (blocks) | peak at | heap at exit | wall |", al["profiles"], alloc_row))
    L.append("")
    lost = [f"{r['profile']}: {drops_detail(r['agent_drops'])}" for r in al["profiles"] if r.get("agent_drops")]
    if lost:
        evicted = any('reason="evicted"' in k for r in al["profiles"] for k in r.get("agent_drops", {}))
        why = (
            " Payloads the forwarder has not sent yet wait in its buffer and queue (one request in flight per "
            "destination; the oldest are evicted only while the destination backs off after failures, e.g. "
            "requests timing out) and are part of the heap at the peak; valgrind slows sending as much as "
            "everything else, so more of them wait than in a native run."
        )
        L.append(f"Dropped under valgrind — {'; '.join(lost)}.{why if evicted else ''}")
        L.append("")
    for r in al["profiles"]:
        if "error" in r or not r["ingested_metrics"]:
            continue
        L.append(f"#### {r['profile']}: the heap at its peak ({size(r['peak_bytes'])}), by site")
        L.append("")
        L += plain_table("| site | where | live at peak | share | blocks |", r["top_by_peak_bytes"], lambda s: f"| `{s['site']}` | `{s['location']}` | {size(s['peak_bytes'])} | {s['peak_bytes'] / r['peak_bytes']:.0%} | {fmt(s['peak_blocks'])} |")
        L.append("")
        L.append(f"#### {r['profile']}: allocations ({fmt(r['total_blocks'])}), by site")
        L.append("")
        L += plain_table(
            "| site | where | allocations | per metric | share | bytes |",
            r["top_by_blocks"],
            lambda s: (
            f"| `{s['site']}` | `{s['location']}` | {fmt(s['blocks'])} | {fmt(s['blocks'] / r['ingested_metrics'], 2)} | "
            f"{s['blocks'] / r['total_blocks']:.0%} | {size(s['bytes'])} |"
            ),
        )
        L.append("")
    return L


def render_churn_run(title, ch):
    """One churn run: its milestones and its memory against the bound it was given."""
    L = [f"#### {title}", ""]
    if "error" in ch:
        return L + [f"Not measured: {ch['error']}", ""]
    L += head("| offered contexts | at | RSS | aggregator contexts | context store | refused (by reason) |")
    seen, rows = set(), []
    for r in [ch["start"]] + ch["milestones"] + [ch["final"]]:
        if r["t"] not in seen:
            seen.add(r["t"])
            rows.append(r)
    for r in rows:
        refused = ", ".join(f"{fmt(v)} `{k}`" for k, v in r["refused"].items() if v) or "0"
        L.append(
            f"| {fmt(r['offered_contexts'])} | {r['t']:.0f} s | {fmt(r['rss_mib'])} MiB | {fmt(r['aggregator_contexts'])} | "
            f"{fmt(r.get('context_memory_mib'))} MiB | {refused} |"
        )
    L.append("")
    lq = ch.get("rss_last_quarter_mib") or [None, None]
    firm = ch.get("firm_bound_bytes")
    bound = ""
    if ch["env"].get("DD_MEMORY_LIMIT"):
        bound = f" `memory_limit` {ch['env']['DD_MEMORY_LIMIT']}: peak {'within' if ch['rss_peak_mib'] is not None and ch['rss_peak_mib'] <= parse_size(ch['env']['DD_MEMORY_LIMIT']) / MIB else '**over**'} it."
    elif firm:
        bound = f" The firm bound the agent logged at start: {firm / MIB:,.1f} MiB; peak {'within' if ch['rss_peak_mib'] is not None and ch['rss_peak_mib'] <= firm / MIB else '**over**'} it."
    refused = sum(ch["final"]["refused"].values())
    L.append(
        f"RSS: {fmt(ch['rss_start_mib'])} MiB before the load, peak {fmt(ch['rss_peak_mib'])} MiB, "
        f"{fmt(lq[0])}–{fmt(lq[1])} MiB over the last quarter of the run.{bound} "
        f"{fmt(ch['sent_messages'])} messages sent ({fmt(ch['uds_would_block_retries'])} UDS would-block retries), "
        f"{fmt(ch['final']['offered_contexts'])} decoded, {fmt(refused)} refused and counted "
        f"({ch.get('refusal_warnings', 0)} warnings logged, one per flush with refusals); load average {la(ch['loadavg_before'])}."
    )
    L.append("")
    return L


def parse_size(text):
    """`64MiB` and the like, in bytes."""
    units = {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "b": 1}
    t = text.strip().lower()
    for u, f in units.items():
        if t.endswith(u):
            return float(t[: -len(u)]) * f
    return float(t)


def render_churn(ch):
    """The churn part: the default limits, then a memory limit."""
    L = ["### Endless new contexts (`--only churn`)", ""]
    if "error" in ch:
        return L + [f"Not measured: {ch['error']}", ""]
    if "defaults" not in ch:  # a results file from before the memory-limited run
        return L + ["(re-run `--only churn`: this results file predates the current churn part)", ""]
    L.append(
        "`adp-loadgen --profile churn` sends counters whose every message is a context never seen before "
        "(`churn.<n>:1|c|#env:bench,load:churn`), unpaced over the Unix datagram socket, first to the agent with its "
        "default limits (`aggregate_context_limit` 1,000,000 contexts; idle counters stay `counter_expiry_seconds` "
        "300 s; no `memory_limit`), then with `memory_limit` alone set, whose limiter refuses new contexts once the "
        "projected RSS reaches 90 % of the usable limit (`memory_limit` less `memory_slop_factor` 0.25), unless "
        "they fit memory freed by expired ones. Refused samples are counted in `adp_aggregate_dropped_samples_total` "
        "by reason. *Context store*: `adp_context_memory_bytes` (strings, tag lists, context slots, index)."
    )
    L.append("")
    L.append(
        "Each row is the first once-a-second sample past 0.1 / 0.5 / 1 / 2 / 5 / 10 / 20 / 50 / 100 / 200 / 400 million "
        "offered contexts, then the last (after the load, the agent drained)."
    )
    L.append("")
    d, m = ch["defaults"], ch["memory_limit"]
    L.extend(render_churn_run(f"Default limits, {d.get('duration_secs', 0):g} s", d))
    L.extend(render_churn_run(f"`memory_limit: {m.get('env', {}).get('DD_MEMORY_LIMIT', '?')}`, {m.get('duration_secs', 0):g} s", m))
    return L


def render_checks(ck):
    """The system checks on vs off (`--only checks`): a row per run, then the difference."""
    L = ["### System checks and host payload, on vs off (`--only checks`)", ""]
    L.append(
        "The idle agent (no DogStatsD traffic), release build pinned to one core, started from the standalone "
        "environment: **off** is that environment as it is (no `conf.d`, `enable_metadata_collection: false`); "
        "**on** adds `DD_CONFD_PATH` at the shipped `crates/checks/conf.d` (cpu, disk, io, load, memory, network, "
        "uptime every 15 s, ntp every 900 s; on the bench machine ntp's pool is unreachable, so its run at start "
        "fails and counts one error) and `DD_ENABLE_METADATA_COLLECTION=true`. Off and on alternate; each row is "
        "CPU time over wall time (utime + stime from /proc) and the median RSS of the window's second half, measured "
        "after a warm-up past the checks' first runs. Targets on the host: on − off ≤ 0.5 % of one core and ≤ 1 MiB."
    )
    L.append("")
    for platform, title in (("host", "host"), ("armv7", "armv7 under qemu-arm (the emulator's own cost included)")):
        r = ck.get(platform)
        if not r:
            continue
        if "error" in r:
            L.append(f"{title}: failed: {error_cell(r)}")
            L.append("")
            continue
        L.append(f"**{title}** (warm-up {r['warmup_secs']:g} s)")
        L.append("")
        L += plain_table(
            "| checks | window | CPU % of one core | RSS steady | RSS peak | check runs (errors) | load average |",
            r["rows"],
            lambda row: (
            f"| {row['mode']} | {row['duration_secs']:g} s | {fmt(row['cpu_percent'], 2)} | {fmt(row['rss_steady_mib'], 2)} MiB | "
            f"{fmt(row['rss_peak_mib'], 2)} MiB | {row['check_runs']} ({row['check_errors']}) | {la(row['loadavg_before'])} |"
            ),
        )
        d = r["delta"]
        verdict = ""
        if platform == "host":
            ok = d["cpu_percent"] <= 0.5 and d["rss_steady_mib"] <= 1.0
            verdict = " — within the targets ✓" if ok else " — over a target ✗"
        L.append("")
        L.append(f"On − off (means): **{d['cpu_percent']:+.2f} % CPU**, **{d['rss_steady_mib']:+.2f} MiB RSS**{verdict}.")
        L.append("")
    return L


def render(results):
    m = results["machine"]
    L = []
    L.append("<!-- BEGIN bench.py: generated by `make bench` (checks/bench.sh → bench/bench.py); edit the script, not this section -->")
    L.append("## Agent memory, CPU and throughput (`make bench`)")
    L.append("")
    L.append(
        f"Measured {results['date']} on {m['cpu']}, {m['nproc']} vCPUs, {m['mem_mib']:,} MiB, Linux {m['kernel']} ({m['arch']}). "
        f"Total wall time {results['wall_secs']:.0f} s. Raw numbers: `bench/results.json`."
    )
    for rr in results.get("partial_reruns", []):
        per_part = {"profiles": rr["profiles"], "armv7": rr["profiles"], "alloc": rr.get("alloc_profiles")}
        parts = (f"{p} for {', '.join(per_part[p])}" if per_part.get(p) else p for p in rr["only"])
        L.append(f"Re-measured {rr['date']}: {'; '.join(parts)}.")
    L.append("")
    L.append(
        "**Noise.** The machine's cores are shared with other work (compilations); the load average "
        "(1/5/15 min) is recorded with every row. Rows taken with a 1-minute load average above the "
        "core count are marked ⚠ and are upper bounds for CPU and lower bounds for throughput."
    )
    L.append("")
    L.append("### Method")
    L.append("")
    L.append(
        "- The agent is the release build, standalone, configured only by `DD_*` variables as ADP's gates are: "
        "DogStatsD over a Unix datagram socket, `DD_DOGSTATSD_PORT=0`, `DD_DD_URL` at `adp-test-intake --blackhole`, "
        "`DD_AGGREGATE_CONTEXT_LIMIT` 3,100 / 10,100 / 100,100 / 250,100 and `DD_DOGSTATSD_STRING_INTERNER_SIZE` "
        "32 / 64 MiB for heavy / ultraheavy (low and medium keep the 2 MiB default). Every process under test is "
        "pinned to CPU 0 (`taskset -c 0`) and `adp-loadgen` to CPU 1, so \"CPU %\" is of one core."
    )
    L.append(
        f"- `adp-loadgen` (seeded; the load shape of benchmarks.md) sends each profile for {results['params']['duration']} s. "
        "RSS is `VmRSS` and CPU `utime+stime` from `/proc/PID`, sampled every 250 ms while the load runs; "
        "*steady* is the median of the last half of the samples, *peak* the maximum (✓: at most "
        f"{PEAK_GOAL:g} × steady). *Values sent* is what `adp-loadgen` sent (one per value of a multi-value message); "
        "*ingested* the values that reached the aggregator's state (`adp_dogstatsd_metrics_total` less "
        "`adp_aggregate_dropped_samples_total`, read once the agent has received every datagram sent); *lost* the "
        "difference, as a share of those sent."
    )
    L.append(
        "- *Data floor*: what the contexts sent need at the least, as `adp-loadgen` computes it from its own context "
        "pool: the bytes of every distinct name and tag once, plus 4 bytes (a `u32` id) for each tag of each context. "
        "No agent that keeps every context can hold less; *RSS ÷ floor* is the steady RSS over it."
    )
    L.append(
        "- Drops: every agent counter named `*drop*`, `*error*` or `*truncated*` (decode errors, context drops, "
        "dropped samples), plus the transport: on the Unix socket the sender never loses a datagram — a full "
        "receive queue makes it retry (`would_block` retries) so the achieved rate falls below the offered one; on "
        "UDP the kernel's `drops` column of `/proc/net/udp` for the receiver's port."
    )
    L.append(
        f"- Zero-drop rate: a UDP search — the offered rate doubles every {results['params']['step_secs']} s step until "
        "a step loses anything (kernel drops, agent drop counters, or the sender could not reach 97 % of the offered "
        "rate) — or halves, when the first step already fails — then bisects twice. The plain-StatsD profile (no tags; `c`/`g`/`ms`; 1,000 contexts; "
        f"{results['params']['plain_datagram']}-byte datagrams, newline-separated, as StatsD clients send) is run "
        "identically against the agent, Etsy statsd (no backends, flushInterval 10 s) and collectd's statsd plugin "
        "(no write plugin, Interval 10)."
    )
    L.append("")

    L.append("### RSS per profile against ADP's gates")
    L.append("")
    L.extend(table("| profile | offered → achieved | values sent | ingested | lost | steady RSS | peak RSS | goal | data floor | RSS ÷ floor | ADP observed | ours / ADP | CPU % (1 core) | drops | load avg |", results["profiles"], lambda r: host_row(r, m["nproc"])))
    L.append("")
    L.append("![RSS per profile](benchmarks-rss.png)")
    L.append("")
    L.extend(where_the_bytes_go(results["profiles"]))

    arm = results.get("armv7")
    if arm:
        L.append("### armv7 (emulated)")
        L.append("")
        L.append(
            f"The armv7 release binary run under `qemu-arm` (user-mode emulation) on this x86_64 host. "
            f"Stripped size: **{arm['stripped_bytes'] / MIB:.2f} MiB** ({arm['stripped_bytes']:,} bytes; goal ≤ 4 MiB). "
            "RSS is that of the `qemu-arm` process, which includes the emulator and its translated-code cache, so it "
            "over-states what the binary uses on a real board; throughput under emulation is far lower, so the load "
            "actually achieved is shown."
        )
        L.append("")

        L.extend(table("| profile | offered → achieved (emulated) | steady RSS | peak RSS | ingested metrics/s | drops | load avg |", arm["profiles"], arm_row))
        L.append("")

    L.append("### Plain StatsD, zero-drop rate over UDP (one core each)")
    L.append("")
    plain = results.get("plain", {})
    ro = (plain.get("receive_only") or {}).get("best")
    L.append(
        "The *receive-only* row is the smallest receiver there is (`adp-loadgen --receive`: a blocking `recv` loop "
        "that discards every datagram), on the agent's default socket setup and the same core, searched the same way "
        "in the same run: what this machine can receive over UDP on one core at all (or what one sender core can "
        "send, when the sender fell short first). *Share* is each receiver's zero-drop rate over it."
    )
    L.append("")
    L += head("| receiver | zero-drop rate | metrics/s at that rate | share of receive-only | first failing step | RSS steady at best | CPU % at best | ours ÷ theirs (defaults / tuned buffer) | load avg |")
    ours = [((plain.get(k) or {}).get("best"), (plain.get(k) or {}).get("capped_at_max")) for k in ("agent", "agent_rcvbuf")]
    for key, name in (
        ("receive_only", "receive-only (read and discard)"),
        ("agent", "agent-data-plane (defaults)"),
        ("agent_rcvbuf", f"agent-data-plane, `dogstatsd_so_rcvbuf` {(plain.get('agent_rcvbuf') or {}).get('so_rcvbuf', 0) / MIB:g} MiB"),
        ("etsy", "Etsy statsd"),
        ("collectd", "collectd statsd plugin"),
    ):
        r = plain.get(key)
        if not r:
            continue
        if "error" in r:
            L.append(failed_row(name, r, 9))
            continue
        b, f = r["best"], r["first_failure"]
        if r.get("version"):
            name += f" ({r['version']})"
        ratio = "–"
        if key in ("etsy", "collectd") and b:
            ratio = " / ".join(
                f"{o['values_per_sec'] / b['values_per_sec']:.1f}×" + (" (capped)" if capped else "") for o, capped in ours if o
            )
        share = f"{b['offered_bytes_per_sec'] / ro['offered_bytes_per_sec']:.0%}" if b and ro else "–"
        fail = "none up to the cap" if f is None else f"{mib(f['offered_bytes_per_sec'])}: {fmt(f['kernel_drops'])} kernel drops" + ("" if f["loadgen_kept_up"] else ", sender fell short")
        L.append(
            f"| {name} | {mib(b['offered_bytes_per_sec']) if b else 'none'} | {fmt(b['values_per_sec']) if b else '–'} | {share} | {fail} | "
            f"{fmt(b.get('rss_steady_mib')) if b else '–'} MiB | {fmt(b.get('cpu_percent')) if b else '–'} | {ratio} | {la(b['loadavg']) if b else '–'} |"
        )
    L.append("")
    hv = results.get("heavy_udp")
    if hv and "error" not in hv:
        b, f = hv["best"], hv["first_failure"]
        L.append("### DogStatsD heavy shape over UDP, agent on one core")
        L.append("")
        L.append(
            "The goal \"zero drops at 50 MiB/s on one core\": the heavy profile's messages (100,000 contexts, limit 100,100, "
            f"interner 32 MiB) over UDP (8 KiB datagrams, `dogstatsd_so_rcvbuf` {hv.get('so_rcvbuf', 0) / MIB:g} MiB: the kernel default "
            "of 208 KiB holds about 25 such datagrams, a few milliseconds of this load), agent pinned to CPU 0."
        )
        L.append("")
        L += plain_table(
            "| offered | achieved | values/s | ingested metrics/s | kernel drops | agent drops | CPU % | RSS steady | load avg |",
            hv["steps"],
            lambda s: (
            f"| {mib(s['offered_bytes_per_sec'])} | {mib(s['achieved_bytes_per_sec'])} | {fmt(s['values_per_sec'])} | {fmt(s.get('ingested_metrics_per_sec'))} | "
            f"{fmt(s['kernel_drops'])} | {drops_detail(s['agent_drops'])} | {fmt(s.get('cpu_percent'))} | {fmt(s.get('rss_steady_mib'))} MiB | {la(s['loadavg'])} |"
            ),
        )
        L.append("")
        L.append(f"Highest zero-drop rate: **{mib(b['offered_bytes_per_sec']) if b else 'none'}**" + (" (the search's cap)" if hv["capped_at_max"] else "") + ".")
        L.append("")
    ch = results.get("churn")
    if ch:
        L.extend(render_churn(ch))
    al = results.get("alloc")
    if al:
        L.extend(render_alloc(al))
    if results.get("checks"):
        L.extend(render_checks(results["checks"]))
    L.append("<!-- END bench.py -->")
    return "\n".join(L) + "\n"


def write_markdown(path, section):
    try:
        text = open(path).read()
    except FileNotFoundError:
        text = "# Benchmarks\n\nMeasured numbers, with how to reproduce them. Benchmarks never run in `make check`.\n"
    begin, end = "<!-- BEGIN bench.py", "<!-- END bench.py -->"
    if begin in text and end in text:
        a = text.index(begin)
        b = text.index(end) + len(end) + 1
        text = text[:a] + section + text[b:]
    else:
        # Place the generated section before the codec section (which is kept as it is).
        i = text.find("## DogStatsD codec")
        text = text[:i] + section + "\n" + text[i:] if i >= 0 else text.rstrip("\n") + "\n\n" + section
    open(path, "w").write(text)


def chart(results, path, python):
    spec = dict(
        profiles=list(PROFILES),
        ours=[next((r.get("rss_steady_mib") for r in results["profiles"] if r["profile"] == p), None) for p in PROFILES],
        arm=[next((r.get("rss_steady_mib") for r in (results.get("armv7") or {}).get("profiles", []) if r["profile"] == p), None) for p in PROFILES],
        adp=[ADP_OBSERVED[p] for p in PROFILES],
        goal=[GOAL[p] for p in PROFILES],
        date=results["date"],
    )
    subprocess.run([python, os.path.join(ROOT, "bench", "chart.py"), path], input=json.dumps(spec), text=True, check=True)


def write_all(results, markdown, png, chart_python):
    """The Markdown, then the chart; a chart failure is raised after the Markdown is written."""
    write_markdown(markdown, render(results))
    chart(results, png, chart_python)


def add_output_args(ap):
    """The report's files, shared with bench.py's command line."""
    ap.add_argument("--json", default=os.path.join(ROOT, "bench/results.json"))
    ap.add_argument("--markdown", default=os.path.join(ROOT, "docs/benchmarks.md"))
    ap.add_argument("--png", default=os.path.join(ROOT, "docs/benchmarks-rss.png"))
    ap.add_argument("--chart-python", default=sys.executable, help="a Python with matplotlib, for bench/chart.py")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_args(ap)
    args = ap.parse_args()
    with open(args.json) as f:
        results = json.load(f)
    write_all(results, args.markdown, args.png, args.chart_python)


if __name__ == "__main__":
    main()
