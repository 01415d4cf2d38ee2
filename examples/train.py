#!/usr/bin/env python3
"""Data-parallel logistic regression: the example job that ``make demo`` runs on YARN.

Every task trains the same model on its own shard of the data. Each step computes the local
gradient, sums it across ranks with an all-reduce, and applies the same update everywhere, so all
ranks hold identical weights after every step. Needs only the standard library and numpy;
``--backend torch`` (or ``auto`` when torch is importable) uses ``torch.distributed`` with gloo.

Environment read (what dlsubmit gives a pytorch task; see JOBSPEC "What a task sees"):
    MASTER_ADDR, MASTER_PORT   rank 0's host and the port it listens on (default 127.0.0.1:29500)
    RANK, WORLD_SIZE           this task's rank and the number of tasks (fall back to
                               DLSUBMIT_RANK / DLSUBMIT_WORLD_SIZE, then to 0 / 1)
    LOCAL_RANK                 rank on this node (reported only)
    DLSUBMIT_ATTEMPT           1-based attempt number (for ``--fail-on-attempt``)
    DLSUBMIT_RESUME            "1" when the checkpoint mount holds an earlier attempt's content

Output (stdout, one line each, fixed format so that tests and users can grep it):
    rank R world W master ADDR:PORT                      every rank, at start
    backend B local_rank L attempt A                      every rank, at start
    resumed from step S                                   every rank, when a checkpoint was loaded
    step S/N loss X.XXXXXX                                rank 0, after each step
    checkpoint step S path P                              rank 0, after writing a checkpoint
    rank R world W master ADDR:PORT final_loss X first_loss Y   every rank, at the end

Errors go to stderr as one line, ``train.py: error: rank R: ...``.

Exit codes:
    0  success
    1  communication or checkpoint failure (peer lost, connect timeout, unreadable checkpoint)
    2  bad usage: arguments, environment variables or data files
    3  ``--fail-at-step`` fired (change with ``--fail-exit-code``; 200 asks dlsubmit to retry)
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import socket
import struct
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

CHECKPOINT_NAME = "ckpt.npz"
DEFAULT_MASTER_ADDR = "127.0.0.1"
DEFAULT_MASTER_PORT = 29500


class TrainError(Exception):
    """A failure reported as one line on stderr; ``exit_code`` is the process exit status."""

    exit_code = 1


class UsageError(TrainError):
    """Bad arguments, environment variables or data files: rerunning will not help."""

    exit_code = 2


class CommError(TrainError):
    """Rendezvous or collective failed: a peer is gone, unreachable or too slow."""


# --------------------------------------------------------------------------------------------
# Task environment


@dataclass(frozen=True)
class TaskEnv:
    """What this process learns about its place in the job from the environment."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    attempt: int
    resume: bool

    @property
    def master(self) -> str:
        """``ADDR:PORT`` of rank 0, as printed and as named in errors."""
        return f"{self.master_addr}:{self.master_port}"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> TaskEnv:
        """Read the task environment; missing variables mean a single local process.

        Raises:
            UsageError: a variable is set but malformed, naming the variable and its value.
        """
        world_size = _env_int(environ, ("WORLD_SIZE", "DLSUBMIT_WORLD_SIZE"), 1, minimum=1)
        rank = _env_int(environ, ("RANK", "DLSUBMIT_RANK"), 0, minimum=0)
        if rank >= world_size:
            raise UsageError(f"RANK: must be below WORLD_SIZE={world_size}, got {rank}")
        port = _env_int(environ, ("MASTER_PORT",), DEFAULT_MASTER_PORT, minimum=1)
        if port > 65535:
            raise UsageError(f"MASTER_PORT: must be a TCP port 1..65535, got {port}")
        return cls(
            rank=rank,
            world_size=world_size,
            local_rank=_env_int(environ, ("LOCAL_RANK",), 0, minimum=0),
            master_addr=environ.get("MASTER_ADDR") or DEFAULT_MASTER_ADDR,
            master_port=port,
            attempt=_env_int(environ, ("DLSUBMIT_ATTEMPT",), 1, minimum=1),
            resume=environ.get("DLSUBMIT_RESUME", "") == "1",
        )


def _env_int(environ: Mapping[str, str], names: Sequence[str], default: int, minimum: int) -> int:
    for name in names:
        raw = environ.get(name)
        if raw is None or raw == "":
            continue
        try:
            value = int(raw)
        except ValueError:
            raise UsageError(f"{name}: expected an integer >= {minimum}, got {raw!r}") from None
        if value < minimum:
            raise UsageError(f"{name}: expected an integer >= {minimum}, got {raw!r}")
        return value
    return default


# --------------------------------------------------------------------------------------------
# Data


def synthetic_shard(
    seed: int, samples: int, features: int, rank: int, world_size: int
) -> tuple[FloatArray, FloatArray]:
    """This rank's rows of a fixed, seeded binary classification data set.

    Every rank generates the whole set and keeps rows ``rank::world_size``, so the union of the
    shards is the same data set whatever the world size (and a 1-process run sees the same data
    as a 2-process one).
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, features))
    # Large enough true weights that the loss falls well below ln 2 within ~20 full-batch steps;
    # Bernoulli labels keep the problem non-separable, so the weights stay finite.
    w_true = rng.standard_normal(features) * (8.0 / math.sqrt(features))
    y = (rng.random(samples) < _sigmoid(x @ w_true)).astype(np.float64)
    return x[rank::world_size], y[rank::world_size]


def load_npz_shard(data_dir: Path, rank: int, world_size: int) -> tuple[FloatArray, FloatArray]:
    """This rank's part of the ``*.npz`` shards (arrays ``x``: n×d, ``y``: n of 0/1) in a dir.

    With at least as many files as ranks each rank reads files ``rank::world_size``; with fewer,
    every rank reads them all and keeps rows ``rank::world_size``.

    Raises:
        UsageError: no shards, or a shard without well-formed ``x`` and ``y``.
    """
    files = sorted(data_dir.glob("*.npz"))
    if not files:
        raise UsageError(f"--data: no *.npz files in {data_dir}")
    mine = files[rank::world_size] if len(files) >= world_size else files
    xs: list[FloatArray] = []
    ys: list[FloatArray] = []
    for path in mine:
        x, y = _read_npz(path)
        if xs and x.shape[1] != xs[0].shape[1]:
            raise UsageError(
                f"--data: {path}: x has {x.shape[1]} features, {mine[0]} has {xs[0].shape[1]}"
            )
        xs.append(x)
        ys.append(y)
    x_all, y_all = np.concatenate(xs), np.concatenate(ys)
    if len(files) < world_size:
        return x_all[rank::world_size], y_all[rank::world_size]
    return x_all, y_all


def _read_npz(path: Path) -> tuple[FloatArray, FloatArray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "x" not in npz or "y" not in npz:
                raise UsageError(f"--data: {path}: needs arrays 'x' and 'y', has {npz.files}")
            x = np.asarray(npz["x"], dtype=np.float64)
            y = np.asarray(npz["y"], dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--data: {path}: not a readable .npz file: {exc}") from None
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise UsageError(
            f"--data: {path}: expected x of shape (n, d) and y of shape (n,), "
            f"got {x.shape} and {y.shape}"
        )
    if not np.isin(y, (0.0, 1.0)).all():
        raise UsageError(f"--data: {path}: y must hold only 0 and 1 labels")
    return x, y


# --------------------------------------------------------------------------------------------
# Model: logistic regression, weights ``w[:-1]`` and bias ``w[-1]``


def _sigmoid(z: FloatArray) -> FloatArray:
    # tanh form: no overflow warning for large |z|, unlike 1 / (1 + exp(-z)).
    result: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * z))
    return result


def local_loss_grad(w: FloatArray, x: FloatArray, y: FloatArray) -> tuple[float, FloatArray]:
    """Sum (not mean) of the log loss over this shard and its gradient.

    Sums, so that summing over ranks and dividing by the global row count gives the exact
    full-data mean even when shards differ in size.
    """
    z = x @ w[:-1] + w[-1]
    # log(1 + e^z) - y z, stable for any z.
    loss_sum = float(np.sum(np.logaddexp(0.0, z) - y * z))
    residual = _sigmoid(z) - y
    grad_sum = np.concatenate([x.T @ residual, [residual.sum()]])
    return loss_sum, grad_sum


# --------------------------------------------------------------------------------------------
# Communication


class Comm(Protocol):
    """The two collectives training needs, over whichever transport."""

    def all_reduce_sum(self, values: FloatArray) -> FloatArray:
        """Element-wise sum of ``values`` over all ranks, returned on every rank."""
        ...

    def broadcast(self, values: FloatArray) -> FloatArray:
        """Rank 0's ``values`` on every rank (others pass an array of the same length)."""
        ...

    def close(self) -> None:
        """Release the transport after the last collective."""
        ...


class LocalComm:
    """World size 1: the collectives are identities."""

    def all_reduce_sum(self, values: FloatArray) -> FloatArray:
        """Return ``values`` unchanged."""
        return values

    def broadcast(self, values: FloatArray) -> FloatArray:
        """Return ``values`` unchanged."""
        return values

    def close(self) -> None:
        """Nothing to release."""


_MAGIC = b"DLST1"
_HELLO = struct.Struct("!5sII")  # magic, rank, world size
_LENGTH = struct.Struct("!Q")  # payload bytes that follow
_MAX_PAYLOAD = 1 << 30
_WIRE_DTYPE = np.dtype("<f8")


class TcpComm:
    """Star all-reduce over plain TCP: rank 0 sums the ranks' vectors and sends the sum back.

    Rank 0 adds the vectors in rank order, so the result is bit-for-bit reproducible; a ring
    would scale better, but a demo with a handful of workers and a few dozen floats per step
    gains nothing from it. Every socket operation has a timeout.
    """

    def __init__(self, env: TaskEnv, connect_timeout_s: float, op_timeout_s: float) -> None:
        """Rendezvous: rank 0 accepts every peer, the others connect to rank 0.

        Raises:
            CommError: the rendezvous did not complete within ``connect_timeout_s``.
        """
        self._env = env
        self._op_timeout_s = op_timeout_s
        self._peers: dict[int, socket.socket] = {}
        self._master: socket.socket | None = None
        if env.rank == 0:
            self._accept_peers(connect_timeout_s)
        else:
            self._connect_to_master(connect_timeout_s)

    def _accept_peers(self, timeout_s: float) -> None:
        env = self._env
        # Bind the wildcard address rather than MASTER_ADDR: a host name may resolve to a
        # loopback alias (127.0.1.1) on the node itself, and peers reach us by the real address.
        # create_server sets SO_REUSEADDR, so a port left in TIME_WAIT by an earlier attempt on
        # this node can be bound again at once.
        try:
            if socket.has_dualstack_ipv6():
                server = socket.create_server(
                    ("", env.master_port),
                    family=socket.AF_INET6,
                    dualstack_ipv6=True,
                    backlog=env.world_size,
                )
            else:
                server = socket.create_server(("0.0.0.0", env.master_port), backlog=env.world_size)
        except OSError as exc:
            raise CommError(
                f"cannot listen on port {env.master_port} "
                f"(MASTER_ADDR:MASTER_PORT {env.master}): {exc}"
            ) from None
        deadline = time.monotonic() + timeout_s
        with server:
            while len(self._peers) < env.world_size - 1:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = sorted(set(range(1, env.world_size)) - set(self._peers))
                    raise CommError(
                        f"only {len(self._peers)} of {env.world_size - 1} peers connected to "
                        f"master {env.master} within {timeout_s:g} s; missing ranks {missing}"
                    )
                server.settimeout(remaining)
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                except OSError as exc:
                    raise CommError(f"accept on master {env.master} failed: {exc}") from None
                # A connection that never says hello must not hold up the rendezvous for long.
                self._register_peer(conn, min(remaining, 10.0))

    def _register_peer(self, conn: socket.socket, timeout_s: float) -> None:
        env = self._env
        conn.settimeout(timeout_s)
        try:
            hello = _recv_exact(conn, _HELLO.size, "a connecting peer", timeout_s)
        except CommError:
            conn.close()  # a probe or a stray client, not one of ours: keep waiting
            return
        magic, peer_rank, peer_world = _HELLO.unpack(hello)
        if magic != _MAGIC:
            conn.close()
            return
        if peer_world != env.world_size:
            conn.close()
            raise CommError(
                f"rank {peer_rank} has WORLD_SIZE={peer_world}, rank 0 has {env.world_size}"
            )
        if not 1 <= peer_rank < env.world_size or peer_rank in self._peers:
            conn.close()
            raise CommError(
                f"a peer connected as rank {peer_rank}, which is out of range "
                f"1..{env.world_size - 1} or already taken"
            )
        conn.settimeout(self._op_timeout_s)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._peers[peer_rank] = conn

    def _connect_to_master(self, timeout_s: float) -> None:
        env = self._env
        deadline = time.monotonic() + timeout_s
        delay_s = 0.1
        while True:
            remaining = deadline - time.monotonic()
            try:
                sock = socket.create_connection(
                    (env.master_addr, env.master_port), timeout=max(0.1, min(remaining, 5.0))
                )
                break
            except OSError as exc:  # refused while rank 0 starts, or not resolvable yet
                last_error = exc
            if time.monotonic() + delay_s >= deadline:
                raise CommError(
                    f"could not connect to master {env.master} (MASTER_ADDR:"
                    f"MASTER_PORT) within {timeout_s:g} s: {last_error}"
                )
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 2.0)
        sock.settimeout(self._op_timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._master = sock
        self._send(sock, _HELLO.pack(_MAGIC, env.rank, env.world_size), "rank 0")

    def all_reduce_sum(self, values: FloatArray) -> FloatArray:
        """Sum over ranks: peers send to rank 0, which adds in rank order and sends back."""
        if self._master is not None:
            self._send_array(self._master, values, "rank 0")
            return self._recv_array(self._master, values.size, "rank 0")
        total = values.astype(np.float64, copy=True)
        for peer_rank, conn in sorted(self._peers.items()):
            total += self._recv_array(conn, values.size, f"rank {peer_rank}")
        for peer_rank, conn in sorted(self._peers.items()):
            self._send_array(conn, total, f"rank {peer_rank}")
        return total

    def broadcast(self, values: FloatArray) -> FloatArray:
        """Rank 0 sends ``values`` to every peer."""
        if self._master is not None:
            return self._recv_array(self._master, values.size, "rank 0")
        for peer_rank, conn in sorted(self._peers.items()):
            self._send_array(conn, values, f"rank {peer_rank}")
        return values

    def close(self) -> None:
        """Close every connection."""
        for conn in self._peers.values():
            conn.close()
        self._peers.clear()
        if self._master is not None:
            self._master.close()
            self._master = None

    def _send_array(self, sock: socket.socket, values: FloatArray, who: str) -> None:
        payload = np.ascontiguousarray(values, dtype=_WIRE_DTYPE).tobytes()
        self._send(sock, _LENGTH.pack(len(payload)) + payload, who)

    def _recv_array(self, sock: socket.socket, expected: int, who: str) -> FloatArray:
        (length,) = _LENGTH.unpack(
            _recv_exact(sock, _LENGTH.size, self._who(who), self._op_timeout_s)
        )
        if length != expected * _WIRE_DTYPE.itemsize or length > _MAX_PAYLOAD:
            raise CommError(
                f"{who} sent {length} bytes, expected {expected} float64 values "
                f"({expected * _WIRE_DTYPE.itemsize} bytes): do all ranks use the "
                f"same data and model?"
            )
        payload = _recv_exact(sock, length, self._who(who), self._op_timeout_s)
        return np.frombuffer(payload, dtype=_WIRE_DTYPE).astype(np.float64)

    def _send(self, sock: socket.socket, data: bytes, who: str) -> None:
        try:
            sock.sendall(data)
        except TimeoutError:
            raise CommError(
                f"timed out after {self._op_timeout_s:g} s sending to {self._who(who)}"
            ) from None
        except OSError as exc:
            raise CommError(f"lost connection to {self._who(who)}: {exc}") from None

    def _who(self, who: str) -> str:
        if who == "rank 0":
            return f"rank 0 (master {self._env.master}; see its log for why it stopped)"
        return who


def _recv_exact(sock: socket.socket, size: int, who: str, timeout_s: float) -> bytes:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        try:
            n = sock.recv_into(view[got:])
        except TimeoutError:
            raise CommError(f"timed out after {timeout_s:g} s waiting for {who}") from None
        except OSError as exc:
            raise CommError(f"lost connection to {who}: {exc}") from None
        if n == 0:
            raise CommError(f"lost connection to {who}: connection closed")
        got += n
    return bytes(buf)


class TorchComm:
    """``torch.distributed`` with gloo, rendezvous by ``env://`` (MASTER_ADDR/PORT)."""

    def __init__(self, env: TaskEnv, op_timeout_s: float) -> None:
        """Join the process group.

        Raises:
            CommError: the rendezvous failed or timed out.
        """
        import torch
        import torch.distributed as dist

        self._torch: Any = torch
        self._dist: Any = dist
        # env:// reads these; set them when this process fell back to the defaults.
        os.environ.setdefault("MASTER_ADDR", env.master_addr)
        os.environ.setdefault("MASTER_PORT", str(env.master_port))
        try:
            dist.init_process_group(
                "gloo",
                init_method="env://",
                rank=env.rank,
                world_size=env.world_size,
                timeout=timedelta(seconds=op_timeout_s),
            )
        except Exception as exc:  # torch raises RuntimeError, DistStoreError, ValueError ...
            raise CommError(
                f"torch.distributed rendezvous at master {env.master} failed: {_one_line(exc)}"
            ) from None

    def all_reduce_sum(self, values: FloatArray) -> FloatArray:
        """``dist.all_reduce`` with SUM."""
        tensor = self._torch.from_numpy(np.array(values, dtype=np.float64))
        self._call(self._dist.all_reduce, tensor)
        result: FloatArray = tensor.numpy()
        return result

    def broadcast(self, values: FloatArray) -> FloatArray:
        """``dist.broadcast`` from rank 0."""
        tensor = self._torch.from_numpy(np.array(values, dtype=np.float64))
        self._call(self._dist.broadcast, tensor, src=0)
        result: FloatArray = tensor.numpy()
        return result

    def close(self) -> None:
        """Leave the process group (only after the last collective succeeded)."""
        self._dist.destroy_process_group()

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as exc:  # gloo reports a lost peer as RuntimeError
            raise CommError(f"torch.distributed {fn.__name__} failed: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def resolve_backend(requested: str) -> str:
    """``numpy`` or ``torch``; ``auto`` picks torch when ``torch.distributed`` is usable.

    Raises:
        UsageError: ``torch`` was asked for and cannot be imported.
    """
    if requested == "numpy":
        return "numpy"
    try:
        import torch.distributed as dist

        available = bool(dist.is_available())
    except (ImportError, OSError):  # OSError: a torch whose shared libraries fail to load
        available = False
    if available:
        return "torch"
    if requested == "torch":
        raise UsageError(
            "--backend torch: torch.distributed is not importable here; "
            "use --backend numpy or ship an environment with torch"
        )
    return "numpy"


def open_comm(backend: str, env: TaskEnv, connect_timeout_s: float, op_timeout_s: float) -> Comm:
    """The transport for ``backend``; a single process needs none."""
    if env.world_size == 1:
        return LocalComm()
    if backend == "torch":
        return TorchComm(env, op_timeout_s=max(connect_timeout_s, op_timeout_s))
    return TcpComm(env, connect_timeout_s=connect_timeout_s, op_timeout_s=op_timeout_s)


# --------------------------------------------------------------------------------------------
# Checkpoints (rank 0 only; the directory is per task, so rank 0's copy is the truth)


@dataclass(frozen=True)
class Checkpoint:
    """What is needed to continue: weights, completed steps, the loss of the run's first step."""

    weights: FloatArray
    step: int
    first_loss: float


def save_checkpoint(directory: Path, ckpt: Checkpoint) -> Path:
    """Write ``directory/ckpt.npz`` atomically (temporary file, fsync, rename).

    A task killed mid-write leaves the previous checkpoint intact, never a truncated one.

    Raises:
        TrainError: the directory or file cannot be written.
    """
    path = directory / CHECKPOINT_NAME
    tmp = directory / f".{CHECKPOINT_NAME}.tmp.{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # A file object, because np.savez appends ".npz" to a path that lacks it.
        with tmp.open("wb") as f:
            np.savez(
                f,
                weights=ckpt.weights,
                step=np.int64(ckpt.step),
                first_loss=np.float64(ckpt.first_loss),
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise TrainError(f"cannot write checkpoint {path}: {exc}") from None
    return path


def load_checkpoint(path: Path, n_weights: int) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        TrainError: unreadable, or written for a model of another size.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            weights = np.asarray(npz["weights"], dtype=np.float64)
            step = int(npz["step"])
            first_loss = float(npz["first_loss"])
    except (OSError, ValueError, KeyError) as exc:
        raise TrainError(f"cannot read checkpoint {path}: {exc}") from None
    if weights.shape != (n_weights,) or step < 0:
        raise TrainError(
            f"checkpoint {path} holds {weights.shape[0]} weights at step {step}; "
            f"this model has {n_weights}: delete it or use another --checkpoint-dir"
        )
    return Checkpoint(weights=weights, step=step, first_loss=first_loss)


def initial_state(
    args: argparse.Namespace, env: TaskEnv, comm: Comm, n_weights: int
) -> Checkpoint | None:
    """Rank 0's checkpoint, if any, broadcast so every rank starts from the same weights."""
    # Layout of the broadcast: [has_checkpoint, step, first_loss, weights...].
    state = np.zeros(3 + n_weights)
    if env.rank == 0 and args.checkpoint_dir is not None:
        path = args.checkpoint_dir / CHECKPOINT_NAME
        if path.exists():
            ckpt = load_checkpoint(path, n_weights)
            state[:3] = (1.0, ckpt.step, ckpt.first_loss)
            state[3:] = ckpt.weights
        elif env.resume:
            print(
                f"DLSUBMIT_RESUME=1 but there is no {path}; starting from step 0",
                file=sys.stderr,
                flush=True,
            )
    elif env.rank == 0 and env.resume:
        print(
            "DLSUBMIT_RESUME=1 but no --checkpoint-dir was given; starting from step 0",
            file=sys.stderr,
            flush=True,
        )
    state = comm.broadcast(state)
    if state[0] != 1.0:
        return None
    return Checkpoint(weights=state[3:].copy(), step=int(state[1]), first_loss=float(state[2]))


# --------------------------------------------------------------------------------------------
# Training


def global_loss_grad(
    w: FloatArray, x: FloatArray, y: FloatArray, comm: Comm
) -> tuple[float, FloatArray]:
    """Mean loss and gradient over every rank's rows, identical on every rank (one all-reduce)."""
    loss_sum, grad_sum = local_loss_grad(w, x, y)
    packed = np.concatenate([grad_sum, [loss_sum, float(x.shape[0])]])
    total = comm.all_reduce_sum(packed)
    count = total[-1]
    if count == 0:
        raise UsageError("the data set is empty on every rank")
    return float(total[-2] / count), total[:-2] / count


def train(args: argparse.Namespace, env: TaskEnv) -> int:
    """Run the job on this rank; returns the exit status."""
    backend = resolve_backend(args.backend)
    print(f"rank {env.rank} world {env.world_size} master {env.master}", flush=True)
    print(f"backend {backend} local_rank {env.local_rank} attempt {env.attempt}", flush=True)

    if args.data is not None:
        x, y = load_npz_shard(args.data, env.rank, env.world_size)
    else:
        x, y = synthetic_shard(args.seed, args.samples, args.features, env.rank, env.world_size)
    n_weights = x.shape[1] + 1

    comm = open_comm(backend, env, args.connect_timeout_s, args.op_timeout_s)
    resumed = initial_state(args, env, comm, n_weights)
    if resumed is None:
        w, start_step, first_loss = np.zeros(n_weights), 0, math.nan
    else:
        w, start_step, first_loss = resumed.weights, resumed.step, resumed.first_loss
        print(f"resumed from step {start_step}", flush=True)

    is_chief = env.rank == 0
    last_saved = start_step
    for step in range(start_step + 1, args.steps + 1):
        if is_chief and step == args.fail_at_step and env.attempt == args.fail_on_attempt:
            print(
                f"train.py: failing on purpose at step {step} (attempt {env.attempt}), "
                f"exit {args.fail_exit_code}",
                file=sys.stderr,
                flush=True,
            )
            return int(args.fail_exit_code)
        loss, grad = global_loss_grad(w, x, y, comm)
        w = w - args.lr * grad
        if math.isnan(first_loss):
            first_loss = loss
        if is_chief:
            print(f"step {step}/{args.steps} loss {loss:.6f}", flush=True)
            if args.checkpoint_dir is not None and step % args.checkpoint_every == 0:
                _save(args.checkpoint_dir, w, step, first_loss)
                last_saved = step
        if args.step_sleep > 0:
            time.sleep(args.step_sleep)

    final_step = max(start_step, args.steps)
    if is_chief and args.checkpoint_dir is not None and last_saved != final_step:
        _save(args.checkpoint_dir, w, final_step, first_loss)
    final_loss, _ = global_loss_grad(w, x, y, comm)
    if math.isnan(first_loss):  # --steps 0 on a fresh start
        first_loss = final_loss
    comm.close()
    print(
        f"rank {env.rank} world {env.world_size} master {env.master} "
        f"final_loss {final_loss:.6f} first_loss {first_loss:.6f}",
        flush=True,
    )
    return 0


def _save(directory: Path, w: FloatArray, step: int, first_loss: float) -> None:
    path = save_checkpoint(directory, Checkpoint(weights=w, step=step, first_loss=first_loss))
    print(f"checkpoint step {step} path {path}", flush=True)


# --------------------------------------------------------------------------------------------
# Command line


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (argparse exits 2 with a usage message on bad input)."""
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Data-parallel logistic regression over numpy TCP or torch.distributed.",
    )
    parser.add_argument("--steps", type=int, default=30, help="total training steps (30)")
    parser.add_argument("--lr", type=_positive_float, default=1.0, help="learning rate (1.0)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed (0)")
    parser.add_argument(
        "--samples", type=_positive_int, default=2048, help="synthetic rows over all ranks (2048)"
    )
    parser.add_argument(
        "--features", type=_positive_int, default=16, help="synthetic features (16)"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="read *.npz shards with arrays x (n×d) and y (n, 0/1) from DIR "
        "instead of generating data",
    )
    parser.add_argument(
        "--backend",
        choices=("auto", "numpy", "torch"),
        default="auto",
        help="all-reduce transport; auto = torch (gloo) if importable (auto)",
    )
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="rank 0 writes DIR/ckpt.npz and resumes from it",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        default=10,
        metavar="N",
        help="checkpoint every N steps, and at the end (10)",
    )
    parser.add_argument(
        "--fail-at-step",
        type=int,
        default=None,
        metavar="K",
        help="rank 0 exits before step K (with --fail-on-attempt)",
    )
    parser.add_argument(
        "--fail-on-attempt",
        type=int,
        default=1,
        metavar="A",
        help="only fail when DLSUBMIT_ATTEMPT == A (1)",
    )
    parser.add_argument(
        "--fail-exit-code",
        type=int,
        default=3,
        metavar="CODE",
        help="exit status of the deliberate failure (3; 200 = dlsubmit retries)",
    )
    parser.add_argument(
        "--step-sleep",
        type=_non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="sleep after every step (0)",
    )
    parser.add_argument(
        "--connect-timeout-s",
        type=_positive_float,
        default=120.0,
        help="rendezvous deadline for every rank (120)",
    )
    parser.add_argument(
        "--op-timeout-s",
        type=_positive_float,
        default=300.0,
        help="longest wait for any send or receive (300)",
    )
    args = parser.parse_args(argv)
    if args.steps < 0:
        parser.error(f"--steps: must be an integer >= 0, got {args.steps}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, train, and turn expected failures into one line on stderr."""
    args = parse_args(argv)
    rank = os.environ.get("RANK", os.environ.get("DLSUBMIT_RANK", "0"))
    try:
        env = TaskEnv.from_environ(os.environ)
        rank = str(env.rank)
        return train(args, env)
    except TrainError as exc:
        print(f"train.py: error: rank {rank}: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
