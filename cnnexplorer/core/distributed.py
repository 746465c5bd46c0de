"""Running one job on several processes with torch.distributed (launched by torchrun), and merging exactly.

Every piece here also works in a plain single process (no process group): ``world()`` is then rank 0
of 1, the reductions return their input, ``gather_in_order`` returns the array, so a job written with
them has ONE code path. A job sharded with ``shard_range`` (contiguous, deterministic) and merged with
``gather_in_order`` sees the items in dataset order, so its result equals a single-process run's.

- ``world()``: this process's ``World`` (rank, size, local rank) in the joined process group (one
  process before or without one); ``is_main()``: rank 0, the one that writes and prints;
  ``launched()`` says whether torchrun started us; ``local_device(requested)``: this rank's GPU.
- ``process_group(backend, device)``: init_process_group from torchrun's environment (gloo on the
  CPU, nccl on CUDA), destroy_process_group in ``finally``.
- ``all_reduce_sum(values)``: a float64 vector summed over ranks (counts, loss sums, confusion cells).
- ``any_rank(flag)``, ``flags_by_rank(code)``: one rank's problem seen by all, and which rank it was.
- ``shard_range(n, rank, size)``: this rank's contiguous part of ``n`` items.
- ``gather_in_order(array)``: every rank's array (same trailing shape, any length) joined in rank order;
  ``gather_objects(value)``: every rank's picklable value, in rank order.
- ``barrier()``: wait for every rank (e.g. before reading a file rank 0 wrote).
- ``Launch`` (torchrun's settings, checked), ``launch_command(argv, settings)``/``launch(argv, settings)``:
  ``python -m torch.distributed.run … -m cnnexplorer ARGV``.
- ``free_port()``: a TCP port free on 127.0.0.1 now (for a local run's rendezvous).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from cnnexplorer.core.errors import UserError

BACKENDS = ("auto", "gloo", "nccl")


USER_ERROR_FILE = "CNNEXPLORER_USER_ERROR_FILE"  # where the ranks of a launch write a user error for the launcher


@dataclass(frozen=True)
class World:
    """Where this process stands: ``rank`` of ``size`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def launched() -> bool:
    """Whether torchrun (or an equivalent launcher) started this process: its environment names a world."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def world() -> World:
    """This process's world: the initialised process group's (``process_group``), else one process, even under
    torchrun before the group is joined, so nothing waits for ranks it is not connected to."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return World()


def is_main() -> bool:
    """Rank 0 (the only rank of a single process): the one that writes files and prints."""
    return world().main


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def local_device(requested: str) -> str:
    """The device of this rank: its own GPU, ``cuda:LOCAL_RANK``, when CUDA is asked for (or ``auto`` finds it),
    else as asked. More ranks than GPUs share them round-robin (gloo only: nccl needs one GPU per rank)."""
    if requested in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count()}"
    return requested


@contextmanager
def process_group(backend: str = "auto", device: str = "cpu"):
    """Join the process group torchrun's environment describes for the run's ``device``; leave it at the end.

    ``auto`` is nccl for CUDA and gloo otherwise. Outside torchrun it does nothing (one process).
    """
    from cnnexplorer.core.checks import check_choice

    check_choice("backend", backend, BACKENDS)
    if not launched():
        yield world()
        return
    chosen = ("nccl" if str(device).startswith("cuda") else "gloo") if backend == "auto" else backend
    if chosen == "nccl" and not str(device).startswith("cuda"):
        raise UserError("the nccl backend needs CUDA devices; use --backend gloo for CPU processes")
    if str(device).startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(chosen)
    try:
        yield world()
    finally:
        dist.destroy_process_group()


def _reduce_device() -> torch.device:
    """nccl reduces tensors on this rank's GPU; gloo on the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values) -> np.ndarray:
    """``values`` (numbers or an array) summed over every rank, as float64; the values themselves in one process."""
    array = np.asarray(values, dtype=np.float64)
    if not _active():
        return array.copy()
    tensor = torch.from_numpy(array.copy()).to(_reduce_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy()


def flags_by_rank(code: int) -> np.ndarray:
    """Every rank's ``code`` (0: all is well), indexed by rank: one reduction tells all ranks who failed and how."""
    mine = np.zeros(world().size)
    mine[world().rank] = code
    return all_reduce_sum(mine).astype(np.int64)


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on any rank (a stop request, a failure), the same answer on every rank."""
    return bool(all_reduce_sum([float(bool(flag))])[0] > 0)


def shard_range(n: int, rank: int | None = None, size: int | None = None) -> range:
    """Rank ``rank``'s contiguous part of ``n`` items (the first ``n % size`` ranks get one more): deterministic,
    and the parts in rank order are the items in order, which ``gather_in_order`` relies on."""
    here = world()
    rank = here.rank if rank is None else rank
    size = here.size if size is None else size
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def gather_in_order(array: np.ndarray) -> np.ndarray:
    """Every rank's ``array`` (any length, the same trailing shape and dtype) joined in rank order on every rank.

    With contiguous shards (``shard_range``) the result is in dataset order. Objects are exchanged
    (``all_gather_object``), so any numpy dtype travels, strings included.
    """
    array = np.asarray(array)
    if not _active():
        return array
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, array)
    return np.concatenate(parts)


def gather_objects(value) -> list:
    """Every rank's picklable ``value`` (a dict of skipped files, a small report), in rank order; ``[value]`` alone."""
    if not _active():
        return [value]
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, value)
    return parts


def barrier() -> None:
    if _active():
        dist.barrier()


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 now (another process could take it before torchrun does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Launch:
    """torchrun's settings: processes per machine, machines, this machine's rank, the rendezvous address."""

    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int | None = None  # None: a free local port (one machine only)

    def __post_init__(self):
        from cnnexplorer.core.checks import check_number

        check_number("nproc-per-node", self.nproc_per_node, 1, 1024, whole=True)
        check_number("nnodes", self.nnodes, 1, 65536, whole=True)
        check_number("node-rank", self.node_rank, 0, self.nnodes - 1, whole=True)
        if self.master_port is not None:
            check_number("master-port", self.master_port, 1, 65535, whole=True)
        elif self.nnodes > 1:
            raise UserError("a run on several machines needs --master-addr HOST --master-port PORT (the same on "
                            "every machine)")

    @property
    def processes(self) -> int:
        return self.nproc_per_node * self.nnodes


def launch_command(argv: list[str], settings: Launch) -> list[str]:
    """The command that runs ``cnnexplorer ARGV`` in ``settings.processes`` processes under torchrun."""
    port = settings.master_port or free_port()
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={settings.nproc_per_node}",
            f"--nnodes={settings.nnodes}", f"--node-rank={settings.node_rank}",
            f"--master-addr={settings.master_addr}", f"--master-port={port}", "-m", "cnnexplorer", *argv]


def launch(argv: list[str], settings: Launch) -> int:
    """Run ``cnnexplorer ARGV`` under torchrun and wait; its exit status (torchrun stops every rank when one fails),
    or 2 when a user error stopped the ranks: they hand its one line over (``hand_over_user_error``) and end
    quietly, so the line is said once and no report of failed processes follows it."""
    import tempfile
    from pathlib import Path

    handle, path = tempfile.mkstemp(prefix="cnnexplorer-error-", suffix=".txt")
    os.close(handle)
    env = {**os.environ, USER_ERROR_FILE: path}
    env.setdefault("OMP_NUM_THREADS", "1")  # torchrun's own default, without its banner
    try:
        code = subprocess.run(launch_command(argv, settings), check=False, env=env).returncode
        said = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    finally:
        Path(path).unlink(missing_ok=True)
    if said:
        print(said[0], file=sys.stderr, flush=True)
        return 2
    return code


def hand_over_user_error(message: str) -> bool:
    """In a rank that ``launch`` started: write ``message`` (a user error's line) for the launcher to say, and return
    True (the rank then ends with status 0, so torchrun reports no failure); False elsewhere."""
    path = os.environ.get(USER_ERROR_FILE)
    if not path or not launched():
        return False
    with open(path, "a", encoding="utf-8") as file:
        file.write(message.replace("\n", " ") + "\n")
    return True

