"""examples/train.py, the demo job, run locally as real processes over the numpy TCP backend."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("numpy")

TRAIN = Path(__file__).resolve().parents[2] / "examples" / "train.py"
TIMEOUT_S = 60

START_RE = re.compile(r"^rank (\d+) world (\d+) master (\S+)$", re.MULTILINE)
STEP_RE = re.compile(r"^step (\d+)/(\d+) loss (\d+\.\d+)$", re.MULTILINE)
FINAL_RE = re.compile(
    r"^rank (\d+) world (\d+) master (\S+) final_loss (\d+\.\d+) first_loss (\d+\.\d+)$",
    re.MULTILINE,
)
RESUMED_RE = re.compile(r"^resumed from step (\d+)$", re.MULTILINE)


@dataclass(frozen=True)
class Result:
    """One finished train.py process."""

    rank: int
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"rank {self.rank} exited {self.returncode}\n--- stdout\n{self.stdout}"
            f"--- stderr\n{self.stderr}"
        )

    def losses(self) -> tuple[float, float]:
        """(first_loss, final_loss) from the final line."""
        match = FINAL_RE.search(self.stdout)
        assert match, self.describe()
        return float(match.group(5)), float(match.group(4))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def task_env(rank: int, world_size: int, port: int, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DLSUBMIT_") and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    }
    env.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        OMP_NUM_THREADS="1",
        **extra,
    )
    return env


def run_job(
    world_size: int,
    args: list[str],
    per_rank_args: dict[int, list[str]] | None = None,
    **extra_env: str,
) -> list[Result]:
    """Start ``world_size`` ranks as separate processes and wait for all of them."""
    port = free_port()
    procs = []
    for rank in range(world_size):
        cmd = [
            sys.executable,
            str(TRAIN),
            "--backend",
            "numpy",
            *args,
            *(per_rank_args or {}).get(rank, []),
        ]
        procs.append(
            subprocess.Popen(
                cmd,
                env=task_env(rank, world_size, port, **extra_env),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    try:
        for rank, proc in enumerate(procs):
            stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
            results.append(Result(rank, proc.returncode, stdout, stderr))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def test_two_ranks_train_and_agree() -> None:
    results = run_job(2, ["--steps", "20"])

    for result in results:
        assert result.returncode == 0, result.describe()
    starts = [START_RE.search(r.stdout) for r in results]
    assert all(starts), [r.describe() for r in results]
    assert {int(m.group(1)) for m in starts if m} == {0, 1}
    assert {m.group(2) for m in starts if m} == {"2"}
    assert len({m.group(3) for m in starts if m}) == 1
    assert starts[0] and starts[0].group(3).startswith("127.0.0.1:")

    steps = STEP_RE.findall(results[0].stdout)
    assert [int(s) for s, _, _ in steps] == list(range(1, 21))
    assert STEP_RE.search(results[1].stdout) is None  # only rank 0 reports steps

    first, final = results[0].losses()
    assert first == pytest.approx(0.693147, abs=1e-6)  # zero weights: ln 2
    assert final < first * 0.6
    # The all-reduce leaves identical weights on every rank.
    assert results[1].losses() == (first, final)


def test_two_ranks_match_one_process() -> None:
    """Sharding + summed all-reduce computes the same full-data gradient as one process."""
    (single,) = run_job(1, ["--steps", "10"])
    pair = run_job(2, ["--steps", "10"])

    assert single.returncode == 0, single.describe()
    assert pair[0].returncode == 0, pair[0].describe()
    assert pair[0].losses() == pytest.approx(single.losses(), abs=2e-6)


def test_resume_from_checkpoint_after_failure(tmp_path: Path) -> None:
    # Per-rank dirs: on YARN every task has its own checkpoint mount, so rank 0 must broadcast.
    dirs = {rank: ["--checkpoint-dir", str(tmp_path / f"rank{rank}")] for rank in range(2)}
    args = [
        "--steps",
        "12",
        "--checkpoint-every",
        "3",
        "--fail-at-step",
        "8",
        "--fail-on-attempt",
        "1",
    ]

    failed = run_job(2, args, dirs, DLSUBMIT_ATTEMPT="1")

    assert failed[0].returncode == 3, failed[0].describe()
    assert "failing on purpose at step 8" in failed[0].stderr
    assert "step 7/12" in failed[0].stdout and "step 8/12" not in failed[0].stdout
    assert failed[1].returncode == 1, failed[1].describe()
    error_lines = failed[1].stderr.strip().splitlines()
    assert len(error_lines) == 1, failed[1].describe()
    assert error_lines[0].startswith("train.py: error: rank 1: lost connection to rank 0")
    assert (tmp_path / "rank0" / "ckpt.npz").exists()
    assert not (tmp_path / "rank1").exists()

    resumed = run_job(2, args, dirs, DLSUBMIT_ATTEMPT="2", DLSUBMIT_RESUME="1")

    for result in resumed:
        assert result.returncode == 0, result.describe()
        match = RESUMED_RE.search(result.stdout)
        assert match and int(match.group(1)) == 6, result.describe()
    steps = [int(s) for s, _, _ in STEP_RE.findall(resumed[0].stdout)]
    assert steps == list(range(7, 13))
    first, final = resumed[0].losses()
    assert first == pytest.approx(0.693147, abs=1e-6)  # carried over from attempt 1
    assert final < first * 0.6
    assert "checkpoint step 12 path" in resumed[0].stdout


def test_connect_timeout_names_master() -> None:
    port = free_port()
    proc = subprocess.run(
        [sys.executable, str(TRAIN), "--backend", "numpy", "--connect-timeout-s", "1"],
        env=task_env(1, 2, port),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )

    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        f"train.py: error: rank 1: could not connect to master 127.0.0.1:{port} "
    )
    assert "within 1 s" in lines[0]


def test_bad_environment_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, str(TRAIN), "--backend", "numpy"],
        env=task_env(2, 2, free_port()),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )

    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "train.py: error: rank 2: RANK: must be below WORLD_SIZE=2, got 2"
    )


def test_reads_npz_shards(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    for i in range(3):
        x = rng.standard_normal((100, 4))
        y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
        np.savez(tmp_path / f"part-{i}.npz", x=x, y=y)

    results = run_job(2, ["--steps", "15", "--data", str(tmp_path)])

    for result in results:
        assert result.returncode == 0, result.describe()
    first, final = results[0].losses()
    assert final < first * 0.6
