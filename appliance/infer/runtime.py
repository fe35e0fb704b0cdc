"""The one place that opens a .tflite model: LiteRT on the CPU, or on the Edge TPU through its delegate."""

from __future__ import annotations

import ctypes
import functools
import logging
from pathlib import Path

import numpy as np

from ..models import ModelError, ModelSpec, verified_path

try:
    from ai_edge_litert.interpreter import Interpreter, load_delegate

    RUNTIME = "ai-edge-litert"
except ImportError:  # older Coral images ship only the frozen tflite_runtime
    from tflite_runtime.interpreter import Interpreter, load_delegate

    RUNTIME = "tflite-runtime"

log = logging.getLogger(__name__)

EDGETPU_LIBRARY = "libedgetpu.so.1"
ACCELERATORS = ("auto", "cpu", "edgetpu")


class CpuBackend:
    """One interpreter with its own tensors: give it to one thread only."""

    accelerator = "cpu"

    def __init__(self, path: Path, threads: int):
        self.path = path
        self.interpreter = self._open(path, threads)
        self.interpreter.allocate_tensors()
        self.inputs = self.interpreter.get_input_details()
        self.outputs = self.interpreter.get_output_details()

    def _open(self, path: Path, threads: int) -> Interpreter:
        return Interpreter(model_path=str(path), num_threads=threads)

    def run(self, *tensors: np.ndarray) -> list[np.ndarray]:
        for detail, tensor in zip(self.inputs, tensors, strict=True):
            self.interpreter.set_tensor(detail["index"], tensor)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(detail["index"]) for detail in self.outputs]


class EdgeTpuBackend(CpuBackend):
    accelerator = "edgetpu"

    def _open(self, path: Path, threads: int) -> Interpreter:
        return Interpreter(model_path=str(path), experimental_delegates=[edgetpu_delegate()])


BACKENDS = {"cpu": CpuBackend, "edgetpu": EdgeTpuBackend}


@functools.cache
def edgetpu_delegate():
    """Loaded once per process; raises OSError without libedgetpu, ValueError without a device."""
    ctypes.CDLL(EDGETPU_LIBRARY)  # a plain "not installed" before LiteRT's noisier failure
    return load_delegate(EDGETPU_LIBRARY)


def edgetpu_problem() -> str | None:
    """None when the Edge TPU delegate loads, else why it does not."""
    try:
        edgetpu_delegate()
    except (ValueError, OSError, RuntimeError) as error:
        return str(error) or type(error).__name__
    return None


@functools.cache
def _log_cpu_fallback(reason: str) -> None:
    log.warning("no Edge TPU (%s): models run on the CPU", reason)


class ModelLoader:
    """Decides, once at start-up, which file and backend each model uses; then opens interpreters on demand."""

    def __init__(self, models_dir: Path, accelerator: str, threads: int):
        if accelerator not in ACCELERATORS:
            raise ModelError(f"unknown accelerator {accelerator!r}", f"use one of {', '.join(ACCELERATORS)}")
        self.models_dir = models_dir
        self.threads = threads
        problem = edgetpu_problem() if accelerator != "cpu" else "accelerator = cpu"
        if accelerator == "edgetpu" and problem:
            raise ModelError(f"no Edge TPU found ({problem})", "set accelerator = cpu or plug one in")
        if accelerator == "auto" and problem:
            _log_cpu_fallback(problem)
        self.edgetpu_available = problem is None
        self._chosen: dict[str, tuple[Path, str]] = {}

    def prepare(self, spec: ModelSpec) -> str:
        """Verify the model's file (sha256) and choose its backend; returns the accelerator it will use."""
        backend = "edgetpu" if self.edgetpu_available and spec.edgetpu_file else "cpu"
        self._chosen[spec.name] = (verified_path(spec, self.models_dir, edgetpu=backend == "edgetpu"), backend)
        return backend

    def open(self, spec: ModelSpec) -> CpuBackend:
        if spec.name not in self._chosen:
            self.prepare(spec)
        path, backend = self._chosen[spec.name]
        return BACKENDS[backend](path, self.threads)

    def accelerators(self) -> dict[str, str]:
        return {name: backend for name, (_, backend) in self._chosen.items()}
