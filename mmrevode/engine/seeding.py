"""Seeding by epoch, so that a resumed run draws what an uninterrupted one
draws: the main process's generators (:class:`EpochSeedHook`) and the
data-loader workers' (:func:`seed_worker_by_epoch`)."""
import random

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import FUNCTIONS, HOOKS


@FUNCTIONS.register_module()
def seed_worker_by_epoch(worker_id: int) -> None:
    """Seed a data-loader worker from (seed, epoch, worker, rank).

    The ``worker_init_fn`` of the configs' data loaders, in place of
    MMEngine's, which seeds every worker with ``seed + worker_id`` (plus the
    rank) whatever the epoch. Torch has already seeded the worker with
    ``base_seed + worker_id``, where ``base_seed`` is drawn from the main
    process's generator when the epoch's iterator starts; with
    :class:`EpochSeedHook` that generator is seeded from (seed, epoch). This
    function seeds Python's, NumPy's and torch's generators of the worker
    from that and the rank, so the augmentations a worker draws are a
    function of (seed, epoch, worker, rank), the same in a resumed run.
    Needs ``persistent_workers=False`` (persistent workers keep their state
    across epochs).

    Args:
        worker_id (int): The worker's index (unused: part of torch's seed).
    """
    state = np.random.SeedSequence([torch.initial_seed(),
                                    get_rank()]).generate_state(2)
    seed = int(state[0]) << 32 | int(state[1])
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Seed the random generators at the start of every training epoch.

    Before epoch ``e`` the generators of Python, NumPy and torch in the main
    process are seeded with ``runner.seed + e``; with
    ``randomness.diff_rank_seed`` MMEngine's ``runner.seed`` already holds
    the rank (``seed + rank``), so ranks draw apart. The random
    augmentations of an epoch then depend only on the seed and the epoch
    number, so a run that is stopped and resumed (``--resume``) draws the
    same crops and flips as an uninterrupted one, and ends with the same
    weights.

    Data-loader workers draw their seeds from the generator seeded here
    when the epoch's iterator starts; with ``worker_init_fn=dict(
    type='seed_worker_by_epoch')`` and ``persistent_workers=False`` (as in the
    configs) their augmentations depend only on (seed, epoch, worker, rank)
    too.

    Example:
        >>> custom_hooks = [dict(type='EpochSeedHook')]
    """
    priority = 'VERY_HIGH'

    def before_train_epoch(self, runner) -> None:
        seed = (runner.seed + runner.epoch) % 2**32
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
