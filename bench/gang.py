"""Figure 2b: gang placement — CapacityScheduler off-switch assignments per heartbeat, 1 vs 16.

dlsubmit's containers ask for no locality, so every one of them is an *off-switch* assignment.
Hadoop's default lets a NodeManager heartbeat (1 s) place one; the dev cluster ships
``yarn.scheduler.capacity.per-node-heartbeat.maximum-offswitch-assignments`` = 16 (conf/,
rendered from DLSUBMIT_OFFSWITCH_ASSIGNMENTS). This measures the largest gang the cluster holds
under both values, alternated: the value is rewritten in the running cluster's
capacity-scheduler.xml and the RM reloads it (``yarn rmadmin -refreshQueues``, no restart);
the file is restored (and reloaded) afterwards, whatever happens.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import time
from pathlib import Path

from bench.common import (
    Row,
    Section,
    another_rep,
    bench_env,
    daemon_logs,
    fmt_ratio,
    fmt_s,
    fmt_spread,
    median,
    pair_ratios,
    say,
    tool,
)
from bench.submit import Run, run_dlsubmit, sizes

PROPERTY = "yarn.scheduler.capacity.per-node-heartbeat.maximum-offswitch-assignments"


def _conf_file() -> Path:
    return Path(os.environ["HADOOP_CONF_DIR"]) / "capacity-scheduler.xml"


def _with_value(text: str, value: int) -> str:
    pattern = re.compile(
        r"(<name>" + re.escape(PROPERTY) + r"</name>\s*<value>)[^<]*(</value>)", re.S
    )
    if not pattern.search(text):
        raise RuntimeError(f"{PROPERTY} is not in capacity-scheduler.xml")
    return pattern.sub(lambda m: f"{m.group(1)}{value}{m.group(2)}", text)


def current_value(text: str) -> str:
    m = re.search(r"<name>" + re.escape(PROPERTY) + r"</name>\s*<value>([^<]*)</value>", text)
    return m.group(1) if m else "?"


def refresh(env: dict[str, str]) -> None:
    res = subprocess.run(
        [tool("yarn"), "rmadmin", "-refreshQueues"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if res.returncode != 0:
        raise RuntimeError(f"yarn rmadmin -refreshQueues failed: {res.stderr[-1000:]}")


def batch(r: Run) -> int:
    """The most containers one node got within 0.1 s: what one of its heartbeats placed."""
    best = 0
    for first, node in r.placements:
        same = [t for t, n in r.placements if n == node and 0 <= t - first <= 0.1]
        best = max(best, len(same))
    return best


STALL_S = 1.5  # a NodeManager heartbeats every second: a longer gap means no room


def placing(r: Run) -> tuple[float, int]:
    """(seconds of allocation gaps up to STALL_S, number of longer gaps)."""
    times = sorted(r.alloc)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return sum(g for g in gaps if g <= STALL_S), sum(1 for g in gaps if g > STALL_S)


_RM_ASSIGNED = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) .*Assigned container \S+ .* on host "
    r"(\S+), .* available"
)


def nodes_full_at_stalls(r: Run) -> tuple[int, int]:
    """(stalls, stalls at which the RM's log shows every node with 0 vCores available).

    The RM logs each assignment with what the node has left; the last line per node before
    a stall says whether the gang waited for room (another job held it) or for the scheduler.
    """
    times = sorted(r.alloc)
    stalls = [a for a, b in itertools.pairwise(times) if b - a > STALL_S]
    if not stalls:
        return 0, 0
    lines: list[tuple[float, str, bool]] = []
    for log in daemon_logs("org.apache.hadoop.yarn.server.resourcemanager.ResourceManager"):
        with open(log, errors="replace") as f:
            for line in f:
                m = _RM_ASSIGNED.match(line)
                if m:
                    when = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S"))
                    full = "vCores:0" in line.rsplit("used and", 1)[-1]
                    lines.append((when + int(m.group(2)) / 1000, m.group(3), full))
    full_count = 0
    for stall in stalls:
        last: dict[str, bool] = {}
        for when, node, full in lines:
            if when <= stall + 0.05:
                last[node] = full
        if last and all(last.values()) and len(last) >= len(r.nodes):
            full_count += 1
    return len(stalls), full_count


def _ratio(baseline: list[float], ours: list[float]) -> str:
    if not baseline or not ours:
        return "n/a"
    if min(ours) <= 0.05:
        return f"{fmt_s(median(baseline) - median(ours))} saved"
    return fmt_ratio(median(pair_ratios(baseline, ours)))


def run(quick: bool) -> Section:
    reps = 1 if quick else 2
    env = bench_env()
    ns, size_note = sizes()
    n = ns[-1]
    path = _conf_file()
    original = path.read_text()
    shipped = current_value(original)
    say(f"gang placement: {n} tasks, offswitch 1 vs {shipped}, {reps} rep(s) each, alternated")
    runs: dict[str, list[Run]] = {"1": [], shipped: []}
    try:
        for rep in range(reps):
            if not another_rep(rep, need_s=90):
                reps = rep
                break
            order = ["1", shipped] if rep % 2 == 0 else [shipped, "1"]
            for value in order:
                path.write_text(_with_value(original, int(value)))
                refresh(env)
                r = run_dlsubmit(n, env, name=f"bench-gang-{value}")
                say(f"  offswitch={value}: " + (f"{r.total:.1f} s" if r.ok else r.note))
                runs[value].append(r)
    finally:
        path.write_text(original)
        refresh(env)
        say(f"capacity-scheduler.xml restored ({PROPERTY} = {shipped}) and reloaded")

    sec = Section("gang", f"2b. Gang placement: {n} tasks, off-switch assignments 1 vs {shipped}")
    one = [r for r in runs["1"] if r.ok]
    many = [r for r in runs[shipped] if r.ok]
    nodes = sorted({len(r.nodes) for r in one + many})
    batch_one, batch_many = [batch(r) for r in one], [batch(r) for r in many]
    free_one, free_many = [placing(r)[0] for r in one], [placing(r)[0] for r in many]
    stall_info = [nodes_full_at_stalls(r) for r in one + many]
    stalls = sum(s for s, _ in stall_info)
    stalls_full = sum(f for _, f in stall_info)
    spread_one = [r.steps()["gang"] for r in one]
    spread_many = [r.steps()["gang"] for r in many]
    total_one = [r.total for r in one]
    total_many = [r.total for r in many]
    sec.rows.append(
        Row(
            "containers placed by one NodeManager heartbeat (largest batch, median of runs)",
            f"{shipped} allowed: {median(batch_many):.0f}" if many else "n/a",
            f"1 allowed (Hadoop default): {median(batch_one):.0f}" if one else "n/a",
            f"{median(batch_many) / median(batch_one):.0f}× per heartbeat"
            if one and many
            else "n/a",
            "a node takes what fits on it in one heartbeat (4 vcores per NodeManager here, "
            "one of them used by the AppMaster)",
        )
    )
    sec.rows.append(
        Row(
            f"{n} containers: placement time while the cluster had room "
            "(first → last allocation, gaps over 1.5 s left out)",
            f"{shipped}: {fmt_spread(free_many)}",
            f"1: {fmt_spread(free_one)}",
            _ratio(free_one, free_many),
            f"NodeManager heartbeats (1 s each, {nodes or '?'} node(s)): with 1 per heartbeat "
            f"{n} containers need ≈ {n}/nodes heartbeats, with {shipped} one per node",
        )
    )
    sec.rows.append(
        Row(
            f"{n} containers: first → last allocation, as measured",
            f"{shipped}: {fmt_spread(spread_many)}",
            f"1: {fmt_spread(spread_one)}",
            _ratio(spread_one, spread_many),
            f"includes waits for room: {stalls} gap(s) over 1.5 s in these runs, "
            f"{stalls_full} of them with every node at 0 vCores available in the RM's log "
            "(other developers' jobs held them)",
        )
    )
    sec.rows.append(
        Row(
            f"{n} tasks: submit → all started",
            f"{shipped}: {fmt_spread(total_many)}",
            f"1: {fmt_spread(total_one)}",
            _ratio(total_one, total_many),
            "the placement saving, diluted by AM start and launch (section 2)",
        )
    )
    if one and many:
        gain = median(free_one) - median(free_many)
        verdict = "wins" if gain > 0.5 else "ties" if gain > -0.5 else "loses"
        sec.notes.append(
            f"Verdict: **{shipped} {verdict}**: it placed {median(batch_many):.0f} containers "
            f"per heartbeat against 1, and the gang in {fmt_s(median(free_many))} against "
            f"{fmt_s(median(free_one))} while there was room. "
            + (
                f"conf/capacity-scheduler.xml keeps {PROPERTY} = {shipped}."
                if verdict != "loses"
                else "Rerun before changing conf/: the shipped value lost on these samples."
            )
        )
    else:
        sec.notes.append("Verdict: no complete pair of runs (the cluster was busy); rerun.")
    if size_note:
        sec.notes.append(size_note)
    sec.notes.append(
        f"How measured: the value of {PROPERTY} in the running cluster's "
        "capacity-scheduler.xml is rewritten and reloaded with `yarn rmadmin -refreshQueues` "
        "(the RM re-reads it in CapacityScheduler.reinitialize; no daemon restart) before each "
        f"run, the order swapped each repetition; {reps} run(s) per value; allocation times are "
        "the containers' `startedTime` in the RM REST API. The file is restored afterwards. "
        "`multiple-assignments-enabled` stays true in both."
    )
    sec.raw = {k: [r.to_dict() for r in v] for k, v in runs.items()}
    return sec
