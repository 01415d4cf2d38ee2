"""Put real work on a GPU for a few seconds: ~1 GiB allocated and kernels running.

Uses torch or cupy when importable; otherwise the CUDA driver API through ctypes with a tiny
PTX kernel, so the check runs on any machine with an NVIDIA driver (no toolkit needed).
"""

from __future__ import annotations

import ctypes
import threading
from types import TracebackType
from typing import Any

# A busy loop of dependent FMAs per thread; each thread stores its result so nothing is
# optimised away.
_PTX = b"""
.version 6.0
.target sm_50
.address_size 64

.visible .entry spin(.param .u64 buf, .param .u32 iters)
{
    .reg .pred %p<2>;
    .reg .b32 %r<7>;
    .reg .f32 %f<2>;
    .reg .b64 %rd<5>;

    ld.param.u64 %rd1, [buf];
    ld.param.u32 %r1, [iters];
    cvta.to.global.u64 %rd2, %rd1;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mov.u32 %r4, %tid.x;
    mad.lo.s32 %r5, %r2, %r3, %r4;
    mov.f32 %f1, 0f3F800000;
    mov.u32 %r6, 0;
LOOP:
    fma.rn.f32 %f1, %f1, 0f3F7FFFFE, 0f3C23D70A;
    add.u32 %r6, %r6, 1;
    setp.lt.u32 %p1, %r6, %r1;
    @%p1 bra LOOP;
    mul.wide.u32 %rd3, %r5, 4;
    add.s64 %rd4, %rd2, %rd3;
    st.global.f32 [%rd4], %f1;
    ret;
}
"""


def available_engine() -> str:
    """Return "torch", "cupy" or "driver" (ctypes on libcuda); raise if none works."""
    for name in ("torch", "cupy"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        if name == "torch" and not module.cuda.is_available():
            continue
        return name
    ctypes.CDLL("libcuda.so.1")  # OSError when there is no driver
    return "driver"


class GpuLoad:
    """Context manager: allocate ``mib`` MiB on device 0 and keep it busy until exit."""

    def __init__(self, mib: int = 1024) -> None:
        self.mib = mib
        self.engine = available_engine()
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GpuLoad:
        self._thread.start()
        if not self.ready.wait(60):
            raise TimeoutError("GPU load did not start within 60 s")
        if self.error is not None:
            raise self.error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        try:
            getattr(self, f"_run_{self.engine}")()
        except BaseException as exc:  # reported to the test thread
            self.error = exc
            self.ready.set()

    def _run_torch(self) -> None:
        import torch

        side = 4096
        hold = torch.empty(self.mib * 1024 * 1024 // 4, dtype=torch.float32, device="cuda:0")
        a = torch.randn(side, side, device="cuda:0")
        b = torch.randn(side, side, device="cuda:0")
        hold.fill_(1.0)
        torch.cuda.synchronize()
        self.ready.set()
        while not self._stop.is_set():
            for _ in range(10):
                a = (a @ b).clamp_(-1, 1)
            torch.cuda.synchronize()

    def _run_cupy(self) -> None:
        import cupy

        with cupy.cuda.Device(0):
            hold = cupy.ones(self.mib * 1024 * 1024 // 4, dtype=cupy.float32)
            a = cupy.random.rand(4096, 4096, dtype=cupy.float32)
            b = cupy.random.rand(4096, 4096, dtype=cupy.float32)
            cupy.cuda.Device(0).synchronize()
            self.ready.set()
            while not self._stop.is_set():
                for _ in range(10):
                    a = cupy.clip(a @ b, -1, 1)
                cupy.cuda.Device(0).synchronize()
            del hold

    def _run_driver(self) -> None:
        cuda = ctypes.CDLL("libcuda.so.1")

        def check(rc: int, what: str) -> None:
            if rc != 0:
                raise RuntimeError(f"{what} failed with CUDA error {rc}")

        check(cuda.cuInit(ctypes.c_uint(0)), "cuInit")
        device = ctypes.c_int()
        check(cuda.cuDeviceGet(ctypes.byref(device), ctypes.c_int(0)), "cuDeviceGet")
        context = ctypes.c_void_p()
        check(
            cuda.cuDevicePrimaryCtxRetain(ctypes.byref(context), device), "cuDevicePrimaryCtxRetain"
        )
        check(cuda.cuCtxSetCurrent(context), "cuCtxSetCurrent")
        size = ctypes.c_size_t(self.mib * 1024 * 1024)
        buffer = ctypes.c_uint64()
        check(cuda.cuMemAlloc_v2(ctypes.byref(buffer), size), "cuMemAlloc")
        # Touch every byte so the allocation is backed by real memory.
        check(cuda.cuMemsetD8_v2(buffer, ctypes.c_ubyte(1), size), "cuMemsetD8")
        module = ctypes.c_void_p()
        check(
            cuda.cuModuleLoadData(ctypes.byref(module), ctypes.c_char_p(_PTX)), "cuModuleLoadData"
        )
        function = ctypes.c_void_p()
        check(
            cuda.cuModuleGetFunction(ctypes.byref(function), module, b"spin"), "cuModuleGetFunction"
        )
        iters = ctypes.c_uint32(2_000_000)
        args: Any = (ctypes.c_void_p * 2)(
            ctypes.cast(ctypes.byref(buffer), ctypes.c_void_p),
            ctypes.cast(ctypes.byref(iters), ctypes.c_void_p),
        )
        check(cuda.cuCtxSynchronize(), "cuCtxSynchronize")
        self.ready.set()
        u = ctypes.c_uint
        while not self._stop.is_set():
            check(
                cuda.cuLaunchKernel(function, u(1024), u(1), u(1), u(256), u(1), u(1), u(0),
                                    None, args, None),
                "cuLaunchKernel",
            )  # fmt: skip
            check(cuda.cuCtxSynchronize(), "cuCtxSynchronize")
        cuda.cuMemFree_v2(buffer)
        cuda.cuModuleUnload(module)
        cuda.cuDevicePrimaryCtxRelease(device)
