"""Multi-process training plumbing (``torchrun``): joining the process group, gathering and
broadcasting plain objects, and the separate process group that sequence-wise batch norm uses for
its statistics. Nothing here runs in a single process."""
from __future__ import annotations

import os

import torch


def init_distributed() -> tuple[int, int]:
    """(rank, world size). Under ``torchrun`` (WORLD_SIZE > 1) joins the process group first:
    gloo on CPU, nccl when CUDA is available."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather(obj, world: int) -> list:
    if world == 1:
        return [obj]
    import torch.distributed as dist

    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def from_rank0(obj, world: int):
    if world == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def active() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


STATS_GROUPS = {}


def stats_group():
    """A process group of its own for batch-norm statistics, so that their all-reduces (forward
    and backward) never interleave with DistributedDataParallel's gradient all-reduces."""
    key = id(torch.distributed.distributed_c10d._get_default_group())
    if key not in STATS_GROUPS:
        if not STATS_GROUPS:
            import atexit

            atexit.register(release_stats_groups)
        STATS_GROUPS[key] = torch.distributed.new_group()
    return STATS_GROUPS[key]


def release_stats_groups() -> None:
    """Destroy the statistics groups while the interpreter is still whole (a gloo group left to the
    interpreter's own teardown can abort the process as it exits)."""
    groups = list(STATS_GROUPS.values())
    STATS_GROUPS.clear()
    for group in groups:
        try:
            if torch.distributed.is_initialized():
                torch.distributed.destroy_process_group(group)
        except (RuntimeError, ValueError):
            pass  # already gone with the default group
