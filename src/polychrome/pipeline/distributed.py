"""Colourising an archive with many worker processes on torch.distributed (torchrun, or SLURM's srun).

Every worker runs the same command. Each plans the same inputs (streamed: :func:`~polychrome.pipeline.batch.
iter_plan`) and keeps the jobs it owns: a job belongs to rank ``crc32(output path below the output folder) %
world size``, so the split is decided by the planned outputs alone, the same in every worker, and two jobs
that would write one output always meet in the same worker (which refuses the second, as a single process
does). Each worker colourises its share with :func:`~polychrome.pipeline.batch.colorize_batch` (skip finished,
never overwrite an input, atomic writes), appends a manifest row per photo, and at the end the counts are
summed over a gloo process group so that rank 0 prints one summary and merges the manifest.

Without a launcher (no ``WORLD_SIZE``/``RANK`` from torchrun, no srun step) this is one plain process and
no process group is made.

Fault tolerance comes from the batch rules, not from bookkeeping: a worker killed mid-run loses only the photo
it was writing (its temporary ``.NAME.*.part`` file is never taken for an output), and re-running the same
command skips every finished output and does exactly what is missing; torchrun's ``--max-restarts`` does that
re-run by itself.
"""

from __future__ import annotations

import os
import signal
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from polychrome.io import is_inside
from polychrome.pipeline.batch import Failure, Job, colorize_batch, iter_plan
from polychrome.pipeline.manifest import ManifestWriter, Row, merge, now, part_path

#: Test hook, for the fault-tolerance tests only: ``"R:N"`` makes the worker of rank R kill itself with
#: SIGKILL right after its N-th written photo, in the first attempt only (not after a torchrun restart).
TEST_KILL_ENV = "POLYCHROME_TEST_KILL_AFTER"

#: How long a finished worker waits in the closing collective for the slowest one (shares differ in size
#: and in photo sizes). A worker that dies ends the wait sooner: torchrun stops the others, gloo sees the
#: connection close.
FINISH_TIMEOUT = timedelta(days=7)


class LaunchError(Exception):
    """The launcher's environment is incomplete (one line, for the command line)."""


@dataclass(frozen=True)
class World:
    """Where this process stands: its rank among ``size`` workers, its rank on this node, and who started it."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    launcher: str = ""  # "torchrun", "slurm", or "" for a plain process

    @property
    def main(self) -> bool:
        return self.rank == 0


def world_from_env(env: dict[str, str] | None = None) -> World:
    """The world as torchrun (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) or srun (``SLURM_PROCID``,
    ``SLURM_NTASKS``, ``SLURM_LOCALID``, inside a job step) describe it; else one plain process."""
    env = os.environ if env is None else env
    try:
        if "WORLD_SIZE" in env and "RANK" in env:
            return World(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "0")), "torchrun")
        if "SLURM_PROCID" in env and "SLURM_STEP_ID" in env:  # a task of an srun step, not the batch script
            size = int(env.get("SLURM_STEP_NUM_TASKS", env.get("SLURM_NTASKS", "1")))
            return World(int(env["SLURM_PROCID"]), size, int(env.get("SLURM_LOCALID", "0")), "slurm")
    except ValueError as e:
        raise LaunchError(f"the launcher's rank variables are not numbers ({e})") from None
    return World()


def join(world: World) -> None:
    """Join the gloo process group of a launched run (nothing for one process). gloo works on every machine
    and carries the few numbers the summary needs; the model itself never needs a collective."""
    import torch.distributed as dist

    if world.size <= 1 or dist.is_initialized():
        return
    if world.launcher == "slurm":
        missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
        if missing:
            raise LaunchError(
                f"under srun set {' and '.join(missing)} (the first node's host name and a free port) so the "
                "workers can find each other; see README 'Colourise an archive'"
            )
    store = None
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if restart is not None and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        # torchrun's agent keeps one store across restarts: without a prefix per attempt a restarted worker
        # can read the address a killed worker of the last attempt published, and never connect.
        agent = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world.size,
                              is_master=False, timeout=FINISH_TIMEOUT)  # fmt: skip
        store = dist.PrefixStore(f"polychrome/attempt{restart}/", agent)
    if store is None:
        dist.init_process_group("gloo", rank=world.rank, world_size=world.size, timeout=FINISH_TIMEOUT)
    else:
        dist.init_process_group("gloo", store=store, rank=world.rank, world_size=world.size, timeout=FINISH_TIMEOUT)


def leave(world: World) -> None:
    import torch.distributed as dist

    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def owner(job: Job, out_dir: str | os.PathLike, size: int) -> int:
    """The rank that does ``job``: a stable hash of its output path below ``out_dir``, modulo ``size``."""
    rel = Path(os.path.relpath(job.dst, out_dir)).as_posix()
    return zlib.crc32(rel.encode("utf-8", "surrogateescape")) % size


@dataclass
class Share:
    """This worker's part of a planned run."""

    jobs: list[Job] = field(default_factory=list)  # the jobs this rank owns, in plan order
    problems: list[str] = field(default_factory=list)  # inputs that gave no jobs (the same in every rank)
    notes: list[str] = field(default_factory=list)  # files left alone on purpose (the same in every rank)
    total: int = 0  # jobs in the whole run
    other_inputs: list[Path] = field(default_factory=list)  # other ranks' inputs inside the output folder


def plan_share(
    inputs: list[str | os.PathLike], out_dir: str | os.PathLike, world: World, compare: bool = False,
    confidence: bool = False,
) -> Share:  # fmt: skip
    """Stream the plan and keep this rank's jobs. Other ranks' inputs that sit inside the output folder are
    kept too (only they could be an output of ours), so no worker writes over another's input photo."""
    share = Share()
    for job in iter_plan(inputs, out_dir, share.problems, compare=compare, confidence=confidence,
                         notes=share.notes):  # fmt: skip
        share.total += 1
        if world.size <= 1 or owner(job, out_dir, world.size) == world.rank:
            share.jobs.append(job)
        elif is_inside(job.src, out_dir):
            share.other_inputs.append(job.src)
    return share


@dataclass
class Summary:
    """What the whole run did, summed over workers."""

    written: int = 0
    skipped: int = 0
    failed: int = 0  # photos that failed plus inputs that gave no jobs
    seconds: float = 0.0  # wall time of the colourising, the slowest worker's
    workers: int = 1

    @property
    def photos_per_second(self) -> float:
        """Written photos per second of wall time, over all workers."""
        return self.written / self.seconds if self.seconds > 0 else 0.0


def _kill_hook(world: World) -> Callable[[], None]:
    """The test hook of :data:`TEST_KILL_ENV`: a function to call after each written photo."""
    spec = os.environ.get(TEST_KILL_ENV, "")
    if not spec or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
        return lambda: None
    rank, after = (int(x) for x in spec.split(":"))
    if rank != world.rank:
        return lambda: None
    count = [0]

    def hook() -> None:
        count[0] += 1
        if count[0] >= after:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def colorize_share(
    colorizer,
    share: Share,
    world: World,
    manifest: str | os.PathLike | None = None,
    model_name: str | None = None,
    on_job: Callable[[Job, str, Failure | None], None] | None = None,
    **batch_kwargs,
) -> Summary:
    """Colourise this rank's share (``batch_kwargs`` go to :func:`colorize_batch`), write its manifest rows,
    and return the run's :class:`Summary` summed over all ranks (a collective: every rank calls it). Rank 0
    then merges the manifest. ``on_job`` is called after every job, as by :func:`colorize_batch`."""
    model_name = model_name or (colorizer.name if colorizer is not None else "")
    writer = None
    if manifest is not None:
        writer = ManifestWriter(part_path(manifest, world.rank) if world.size > 1 else manifest)
    killed_after = _kill_hook(world)
    start = last = time.perf_counter()

    def record(job: Job, outcome: str, failure: Failure | None) -> None:
        nonlocal last
        t = time.perf_counter()
        if writer is not None and outcome != "duplicate":  # a photo named twice has its row already
            writer.write(Row(
                source=os.fspath(job.src), output=os.fspath(job.dst), status=outcome,
                error=failure.message if failure is not None else None, model=model_name,
                seconds=round(t - last, 4), rank=world.rank, time=now(),
            ))  # fmt: skip
        last = t
        if on_job is not None:
            on_job(job, outcome, failure)
        if outcome == "written":
            killed_after()

    try:
        report = colorize_batch(colorizer, share.jobs, on_job=record, other_inputs=share.other_inputs, **batch_kwargs)
    finally:
        if writer is not None:
            writer.close()
    mine = Summary(
        written=len(report.written), skipped=len(report.skipped),
        failed=len(report.failed) + (len(share.problems) if world.main else 0),
        seconds=time.perf_counter() - start, workers=world.size,
    )  # fmt: skip
    summary = _sum_over_ranks(mine, world)
    if manifest is not None and world.main:
        merge(manifest)  # every rank's rows are flushed: the sum above waited for all of them
    return summary


def _sum_over_ranks(mine: Summary, world: World) -> Summary:
    if world.size <= 1:
        return mine
    import torch
    import torch.distributed as dist

    counts = torch.tensor([mine.written, mine.skipped, mine.failed], dtype=torch.float64)
    slowest = torch.tensor([mine.seconds], dtype=torch.float64)
    dist.all_reduce(counts, op=dist.ReduceOp.SUM)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    written, skipped, failed = (int(v) for v in counts.tolist())
    return Summary(written, skipped, failed, float(slowest.item()), world.size)
