"""Device binding: exclusive node-local leases that die with their process, or YARN's own."""

from __future__ import annotations

import fcntl
import gc
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gpu_plugin.binding import (
    DEFAULT_LOCK_DIR,
    LOCK_DIR_ENV,
    Lease,
    bind,
    default_lock_dir,
    holders,
)
from gpu_plugin.errors import BindingError
from gpu_plugin.nvml import TOPOLOGY_ENV

REPO = Path(__file__).resolve().parents[2]


def _bind(lock_dir: Path, count: int, **kwargs: object) -> Lease:
    options: dict[str, object] = {"all_indices": [0, 1], "timeout_s": 0}
    options.update(kwargs)
    return bind(count, lock_dir=str(lock_dir), **options)  # type: ignore[arg-type]


class _FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_two_leases_in_one_process_never_share(tmp_path: Path) -> None:
    first = _bind(tmp_path, 1, container_id="container_A")
    second = _bind(tmp_path, 1, container_id="container_B")
    assert {first.visible_devices(), second.visible_devices()} == {"0", "1"}
    with pytest.raises(BindingError) as info:
        _bind(tmp_path, 1, container_id="container_C")
    message = str(info.value)
    assert f"GPU 0 held by container_A (pid {os.getpid()})" in message
    assert f"GPU 1 held by container_B (pid {os.getpid()})" in message
    assert "only 0 of 2 were free" in message
    first.release()
    third = _bind(tmp_path, 1, container_id="container_C")
    assert third.indices == first.indices
    second.release()
    third.release()


def test_leases_are_all_or_nothing(tmp_path: Path) -> None:
    holder = _bind(tmp_path, 1)
    with pytest.raises(BindingError, match="needs 2 GPUs but only 1 of 2"):
        _bind(tmp_path, 2)
    # The failed request must not keep the free device.
    other = _bind(tmp_path, 1)
    assert other.indices == (1,)
    holder.release()
    other.release()
    with _bind(tmp_path, 2) as both:
        assert both.visible_devices() == "0,1"
        assert both.environment() == {
            "CUDA_VISIBLE_DEVICES": "0,1",
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        }
    assert not both.held
    _bind(tmp_path, 2).release()


def test_lock_files_name_their_holder_and_are_close_on_exec(tmp_path: Path) -> None:
    lease = _bind(tmp_path, 1, container_id="container_1_0001_01_000002")
    text = (tmp_path / "0.lock").read_text()
    assert f"pid={os.getpid()} container=container_1_0001_01_000002 " in text
    for fd in lease._fds:
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert not os.get_inheritable(fd)
    assert holders(str(tmp_path), [0, 1]) == {0: f"container_1_0001_01_000002 (pid {os.getpid()})"}
    lease.release()
    lease.release()  # idempotent
    assert holders(str(tmp_path), [0, 1]) == {}


def test_a_child_process_does_not_inherit_the_lease(tmp_path: Path) -> None:
    lease = _bind(tmp_path, 2)
    child = subprocess.Popen(["sleep", "30"], close_fds=False)
    try:
        lease.release()
        again = _bind(tmp_path, 2)  # the still-running child holds nothing
        again.release()
    finally:
        child.kill()
        child.wait()


def test_dropping_the_lease_object_does_not_release_it(tmp_path: Path) -> None:
    lease = _bind(tmp_path, 2)
    fds = list(lease._fds)
    del lease
    gc.collect()
    with pytest.raises(BindingError):
        _bind(tmp_path, 1)
    for fd in fds:
        os.close(fd)


def test_a_sigkilled_holder_releases_its_devices(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from gpu_plugin.binding import bind
        lease = bind(2, lock_dir={str(tmp_path)!r}, all_indices=[0, 1], timeout_s=0,
                     container_id="container_victim")
        print(lease.visible_devices(), flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "0,1"
        with pytest.raises(BindingError, match=rf"container_victim \(pid {child.pid}\)"):
            _bind(tmp_path, 1)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    with _bind(tmp_path, 2) as lease:
        assert lease.visible_devices() == "0,1"


def test_zero_gpus_is_an_empty_lease_without_locks(tmp_path: Path) -> None:
    lock_dir = tmp_path / "never-created"
    lease = _bind(lock_dir, 0)
    assert (lease.indices, lease.source, lease.visible_devices()) == ((), "none", "")
    assert lease.environment() == {"CUDA_VISIBLE_DEVICES": ""}
    assert not lock_dir.exists()


def test_the_nodemanager_assignment_is_used_exactly(tmp_path: Path) -> None:
    lease = _bind(tmp_path / "unused", 2, node_assignment=[3, 1])
    assert (lease.visible_devices(), lease.source, lease.held) == ("1,3", "nodemanager", False)
    # A mismatch with the request is YARN's word against the spec's: YARN wins.
    assert _bind(tmp_path, 1, node_assignment=[2, 5]).indices == (2, 5)
    assert not (tmp_path / "unused").exists()


def test_more_gpus_than_the_node_has_fails_at_once(tmp_path: Path) -> None:
    fake = _FakeTime()
    with pytest.raises(BindingError, match=r"needs 3 GPUs but this node has 2 usable \(\[0, 1\]\)"):
        _bind(tmp_path, 3, timeout_s=60, clock=fake.clock, sleep=fake.sleep)
    assert fake.sleeps == []


def test_negative_count_is_a_bug(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="count must be >= 0"):
        _bind(tmp_path, -1)


def test_waits_until_timeout_then_names_the_holders(tmp_path: Path) -> None:
    holder = _bind(tmp_path, 2, container_id="container_busy")
    fake = _FakeTime()
    with pytest.raises(BindingError) as info:
        _bind(tmp_path, 1, timeout_s=10, poll_interval_s=0.5, clock=fake.clock, sleep=fake.sleep)
    assert fake.now == pytest.approx(10)
    assert len(fake.sleeps) == 20
    message = str(info.value)
    assert "after waiting 10 s" in message
    assert "GPU 0 held by container_busy" in message and "GPU 1 held by container_busy" in message
    assert str(tmp_path) in message
    holder.release()


def test_a_device_freed_while_waiting_is_taken(tmp_path: Path) -> None:
    holder = _bind(tmp_path, 2)
    fake = _FakeTime()

    def sleep(seconds: float) -> None:
        fake.sleep(seconds)
        if len(fake.sleeps) == 3:
            holder.release()

    lease = _bind(tmp_path, 2, timeout_s=30, clock=fake.clock, sleep=sleep)
    assert lease.visible_devices() == "0,1" and len(fake.sleeps) == 3
    lease.release()


def test_only_the_given_indices_are_leased(tmp_path: Path) -> None:
    lease = _bind(tmp_path, 1, all_indices=[5, 2, 2])
    assert lease.indices == (2,)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".allocate.lock", "2.lock"]
    assert oct(tmp_path.stat().st_mode & 0o7777) == oct(0o1777)
    lease.release()


def test_default_lock_dir() -> None:
    assert default_lock_dir({}) == DEFAULT_LOCK_DIR == "/tmp/dlsubmit-gpu-locks"
    assert default_lock_dir({TOPOLOGY_ENV: "/x/nm1/gpu.json"}) == "/x/nm1/gpu.json.locks"
    assert default_lock_dir({TOPOLOGY_ENV: "/x/t.json", LOCK_DIR_ENV: "/locks"}) == "/locks"
