"""Share a pass over an evaluation set among the processes of ``accelerate launch``.

Commands run unchanged under 🤗 ``accelerate launch --num_processes N -m
bertology_widgets.cli ...``: :func:`current_processes` sees the launch and
returns an :class:`AcceleratedProcesses`; without a launch (or without
``accelerate``, an optional extra) it returns :data:`ONE_PROCESS`, and
everything runs as in one process.

On CPUs, ``accelerate launch --cpu --num_processes N`` starts one process
unless MPI is configured (its simple launcher); the ``bertology`` entry point
then starts the N processes itself with ``torch.distributed.run``, the tool
accelerate's own GPU launcher uses (:func:`requested_cpu_processes`).

What is sharded is the list of batches, not the examples: every process
tokenizes the whole set, cuts the same length-sorted batches and takes every
``N``-th one. A batch is therefore computed exactly as in one process (same
examples, same padding), and the per-batch results are gathered and combined
in batch order on every process, so sums are added in the same order too:
the outputs equal the single-process ones bit for bit, given the same
kernels (same device type and thread count).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt
    import torch
    from accelerate import PartialState


class Processes:
    """One process doing all the work: the base every launch-aware caller can use.

    Attributes
    ----------
    num_processes, process_index : int
    is_main : bool
        Whether this process writes files and shows progress.
    """

    num_processes = 1
    process_index = 0

    @property
    def is_main(self) -> bool:
        return self.process_index == 0

    def take(self, batches: list) -> list[tuple[int, np.ndarray]]:
        """``(batch number, example indices)`` of this process's share of ``batches`` (every N-th)."""
        numbered = list(enumerate(batches))
        return numbered[self.process_index::self.num_processes]

    def gather_rows(self, indices: npt.ArrayLike, rows: npt.ArrayLike, n: int) -> np.ndarray:
        """Rows from every process, placed at their indices.

        Parameters
        ----------
        indices : array-like of int, shape ``(m,)``
            Where this process's rows go (each index owned by one process).
        rows : array-like, shape ``(m, ...)``
        n : int
            Rows in the result.

        Returns
        -------
        np.ndarray, shape ``(n, ...)``
            Rows that no process sent stay zero.
        """
        indices, rows = np.asarray(indices, dtype=np.int64), np.asarray(rows)
        indices, rows = self._all_rows(indices, rows)
        real = indices >= 0  # drop the padding (index -1) that evened out the shards for the gather
        out = np.zeros((n, *rows.shape[1:]), dtype=rows.dtype)
        out[indices[real]] = rows[real]
        return out

    def _all_rows(self, indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every process's ``(indices, rows)``, concatenated; padding rows carry index -1."""
        return indices, rows

    def device(self, requested: str | torch.device | None = None) -> str | torch.device | None:
        """The device this process should use: ``requested`` as given (``None``: GPU when available)."""
        return requested

    @contextlib.contextmanager
    def main_process_first(self) -> Iterator[None]:
        """Run the block on the main process before the others (building the default model, downloads)."""
        yield


class AcceleratedProcesses(Processes):
    """The processes of an ``accelerate launch``, over accelerate's collectives."""

    def __init__(self, state: PartialState | None = None) -> None:
        import torch
        from accelerate import PartialState

        if state is None:  # without cpu=True, a CPU-only launch would be taken for a single process
            on_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true" or not torch.cuda.is_available()
            state = PartialState(cpu=on_cpu)
        self.state = state
        self.num_processes = self.state.num_processes
        self.process_index = self.state.process_index

    def _all_rows(self, indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch
        from accelerate.utils import gather, pad_across_processes

        device = self.state.device
        index_t = pad_across_processes(torch.as_tensor(indices, device=device), dim=0, pad_index=-1)
        rows_t = pad_across_processes(torch.as_tensor(rows, device=device), dim=0, pad_index=0)
        return gather(index_t).cpu().numpy(), gather(rows_t).cpu().numpy()

    def device(self, requested: str | torch.device | None = None) -> str | torch.device | None:
        """This process's GPU under a GPU launch (``cuda:<local rank>``); the CPU under ``--cpu``."""
        own = self.state.device
        if requested in (None, "auto") or str(requested) == own.type:
            return str(own)
        return requested

    def main_process_first(self) -> contextlib._GeneratorContextManager[None]:
        return self.state.main_process_first()


ONE_PROCESS = Processes()


def launched_processes() -> int:
    """How many processes the launcher started (``WORLD_SIZE``; 1 outside a launch)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def is_first_process() -> bool:
    """True outside a launch, and in the launch's first process (``RANK`` 0): the one that talks to the user."""
    return os.environ.get("RANK", "0") in ("0", "")


def requested_cpu_processes() -> int:
    """N when ``accelerate launch --cpu --num_processes N`` started only this process, else 1.

    Without MPI, accelerate's simple launcher runs one process for ``--cpu``
    whatever ``--num_processes`` says; it sets ``MASTER_PORT`` only when more
    than one was asked for, and N is on its command line (our parent's).
    """
    if "WORLD_SIZE" in os.environ or os.environ.get("ACCELERATE_USE_CPU", "").lower() != "true" \
            or "MASTER_PORT" not in os.environ:
        return 1
    try:
        argv = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().decode().split("\0")
    except (OSError, UnicodeDecodeError):
        return 1
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--num_processes=") else (
            argv[i + 1] if arg == "--num_processes" and i + 1 < len(argv) else None)
        if value is not None:
            return int(value) if value.isdigit() else 1
    return 1


def start_cpu_processes(num_processes: int, argv: list[str]) -> int:
    """Run ``bertology <argv>`` in ``num_processes`` CPU processes (``torch.distributed.run``); their exit code."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(num_processes),
               "--master_addr", os.environ.get("MASTER_ADDR", "127.0.0.1"),
               "--master_port", os.environ["MASTER_PORT"], "-m", "bertology_widgets.cli", *argv]
    return subprocess.call(command)


def current_processes() -> Processes:
    """:class:`AcceleratedProcesses` inside a multi-process launch, else :data:`ONE_PROCESS`."""
    if launched_processes() <= 1:
        return ONE_PROCESS
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise ValueError(
            f"started as one of {launched_processes()} processes, but accelerate is not installed: "
            "pip install 'bertology-widgets[distributed]'"
        ) from None
    return AcceleratedProcesses()


def launch_command(args: Sequence[str], num_processes: int = 1, cpu: bool = True, port: int | None = None) -> list[str]:
    """The command line running ``bertology <args>`` in one process, or under ``accelerate launch``.

    ``["python", "-m", "bertology_widgets.cli", *args]`` for one process; for
    more, ``accelerate launch [--cpu] --num_processes N ... -m bertology_widgets.cli *args``
    (``port``: the main process's rendezvous port, to run several launches side by side).
    """
    if num_processes == 1:
        return [sys.executable, "-m", "bertology_widgets.cli", *args]
    command = [sys.executable, "-m", "accelerate.commands.launch", *(["--cpu"] if cpu else []),
               "--num_processes", str(num_processes), "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no"]
    if port is not None:
        command += ["--main_process_port", str(port)]
    return [*command, "-m", "bertology_widgets.cli", *args]


def ordered_sum(parts: np.ndarray) -> np.ndarray:
    """``(batches, ...)`` per-batch partial sums -> their total, added in batch order.

    One process and many add the same numbers in the same order, so the sum is
    the same to the last bit.
    """
    import torch

    stacked = torch.as_tensor(np.asarray(parts))
    total = torch.zeros(stacked.shape[1:], dtype=stacked.dtype)
    for part in stacked:
        total += part
    return total.numpy()


__all__ = ["AcceleratedProcesses", "ONE_PROCESS", "Processes", "current_processes", "launch_command",
           "ordered_sum", "requested_cpu_processes", "start_cpu_processes"]
