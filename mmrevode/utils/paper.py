"""The experiments of the paper's tables, and the commands that run them.

Chang et al. (AAAI 2018) report the three schemes on CIFAR-10, CIFAR-100
and STL-10 against ResNet and RevNet baselines, and the test accuracy of the
Hamiltonian network trained on fewer data. :data:`PAPER_EXPERIMENTS` lists
the configs of ``configs/revode`` that reproduce them, by group;
:func:`plan_runs` turns a selection into one training command per run,
through ``tools/dist_train.sh`` (torchrun), ``tools/slurm_train.sh`` or
plain ``tools/train.py``.
"""
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence

from mmengine.config import Config

SCHEMES = ('hamiltonian', 'midpoint', 'leapfrog')
FRACTIONS = (5, 10, 20, 40, 60, 80)

#: Config names (relative to ``configs/revode``, without ``.py``) by group.
PAPER_EXPERIMENTS: Dict[str, List[str]] = {
    # Hamiltonian-74, Midpoint-62, Leapfrog-62 on the three data sets
    'main': [
        f'{scheme}_{data}' for scheme in SCHEMES
        for data in ('cifar10', 'cifar100', 'stl10')
    ],
    # ResNet-32/56/110 and RevNet-38/110/164 on CIFAR-10 and CIFAR-100
    'baselines': [
        f'{model}_{data}'
        for model in ('resnet32', 'resnet56', 'resnet110', 'revnet38',
                      'revnet110', 'revnet164')
        for data in ('cifar10', 'cifar100')
    ],
    # Hamiltonian-74 on 5 to 80% of the training sets
    'fewer_data': [
        f'fewer_data/hamiltonian_{data}_{pct}pct'
        for data in ('cifar10', 'stl10') for pct in FRACTIONS
    ],
    # deeper networks on CIFAR-10 (not part of the default selection)
    'depth': [
        'hamiltonian38_cifar10', 'hamiltonian110_cifar10',
        'hamiltonian218_cifar10', 'hamiltonian1202_cifar10',
        'midpoint92_cifar10', 'midpoint182_cifar10', 'leapfrog92_cifar10',
        'leapfrog182_cifar10'
    ],
}
DEFAULT_GROUPS = ('main', 'baselines', 'fewer_data')
LAUNCHERS = ('pytorch', 'slurm', 'none')


def select_experiments(groups: Sequence[str] = DEFAULT_GROUPS,
                       only: Optional[Sequence[str]] = None) -> List[str]:
    """Config names of the chosen groups, optionally only those matching
    one of the regular expressions ``only``.

    Raises:
        ValueError: For an unknown group, or when nothing is selected.
    """
    unknown = [g for g in groups if g not in PAPER_EXPERIMENTS]
    if unknown:
        raise ValueError(f'unknown groups {unknown}; the groups are '
                         f'{sorted(PAPER_EXPERIMENTS)}.')
    names = [n for g in groups for n in PAPER_EXPERIMENTS[g]]
    if only:
        names = [n for n in names if any(re.search(p, n) for p in only)]
    if not names:
        raise ValueError(f'no experiment of the groups {list(groups)} '
                         f'matches {list(only or [])}.')
    return list(dict.fromkeys(names))


def batch_arguments(cfg: Config, gpus: int) -> List[str]:
    """Keep the config's total batch on ``gpus`` processes.

    The configs give the batch of one process; on ``gpus`` processes each
    gets ``batch / gpus`` when that divides, so the total batch and the
    learning rate stay the paper's. Otherwise every process keeps the
    config's batch and ``--auto-scale-lr`` scales the learning rate with the
    total.
    """
    if gpus == 1:
        return []
    batch = cfg.train_dataloader.batch_size
    if batch % gpus == 0:
        return [f'train_dataloader.batch_size={batch // gpus}']
    return ['--auto-scale-lr']


def is_finished(work_dir: str, cfg: Config) -> bool:
    """Whether the run in ``work_dir`` saved its final checkpoint."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return False
    with open(pointer) as f:
        last = osp.basename(f.read().strip())
    train_cfg = cfg.get('train_cfg', {})
    if 'max_iters' in train_cfg:
        return last == f'iter_{train_cfg["max_iters"]}.pth'
    return last == f'epoch_{train_cfg.get("max_epochs")}.pth'


def plan_runs(names: Sequence[str],
              gpus: int,
              launcher: str = 'pytorch',
              work_root: str = 'work_dirs/paper',
              config_root: str = 'configs/revode',
              tools_dir: str = 'tools',
              seeds: Optional[Sequence[int]] = None,
              partition: Optional[str] = None,
              gpus_per_node: int = 8,
              train_args: Sequence[str] = (),
              cfg_options: Sequence[str] = ()) -> List[dict]:
    """One training command per experiment (and seed).

    Args:
        names (Sequence[str]): Config names, see :func:`select_experiments`.
        gpus (int): Processes (GPUs) per run.
        launcher (str): ``'pytorch'`` (``tools/dist_train.sh``, runs one
            after the other on this machine), ``'slurm'``
            (``tools/slurm_train.sh``, needs ``partition``) or ``'none'``
            (``tools/train.py``, one process). Defaults to ``'pytorch'``.
        work_root (str): Each run writes to ``work_root/<name>`` (with
            ``_seed<S>`` appended when seeds are given).
            Defaults to ``'work_dirs/paper'``.
        config_root (str): Folder of the configs.
            Defaults to ``'configs/revode'``.
        tools_dir (str): Folder of the launch scripts. Defaults to
            ``'tools'``.
        seeds (Sequence[int], optional): Train each experiment once per
            seed (``randomness.seed``). Defaults to None (once, with the
            config's seed).
        partition (str, optional): Slurm partition.
        gpus_per_node (int): Slurm GPUs per node. Defaults to 8.
        train_args (Sequence[str]): More arguments of ``tools/train.py``.
        cfg_options (Sequence[str]): ``--cfg-options`` of every run.

    Returns:
        list[dict]: Per run: ``name``, ``config``, ``work_dir``, ``argv``,
        ``env`` (variables to set) and ``finished`` (the final checkpoint
        exists: nothing to run).
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS}, got '
                         f'{launcher!r}.')
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise ValueError(f'gpus must be a positive int, got {gpus!r}.')
    if launcher == 'none' and gpus != 1:
        raise ValueError('launcher "none" runs one process: use gpus=1, or '
                         'the pytorch or slurm launcher.')
    if launcher == 'slurm' and not partition:
        raise ValueError('the slurm launcher needs a partition.')
    runs = []
    for name in names:
        config = osp.join(config_root, name + '.py')
        if not osp.isfile(config):
            raise FileNotFoundError(f'{config} does not exist.')
        cfg = Config.fromfile(config)
        options = list(cfg_options)
        extra = list(train_args)
        for arg in batch_arguments(cfg, gpus):
            (extra if arg.startswith('--') else options).append(arg)
        for seed in (seeds if seeds else [None]):
            work_dir = osp.join(work_root, name)
            run_options = list(options)
            if seed is not None:
                work_dir += f'_seed{seed}'
                run_options.append(f'randomness.seed={seed}')
            args = ['--resume'] + extra
            if run_options:
                args += ['--cfg-options'] + run_options
            env = {}
            if launcher == 'pytorch':
                argv = ['bash', osp.join(tools_dir, 'dist_train.sh'), config,
                        str(gpus), '--work-dir', work_dir] + args
            elif launcher == 'slurm':
                job = osp.basename(work_dir)
                argv = ['bash', osp.join(tools_dir, 'slurm_train.sh'),
                        partition, job, config, work_dir] + args
                env = dict(GPUS=str(gpus),
                           GPUS_PER_NODE=str(min(gpus, gpus_per_node)))
            else:
                argv = ['python', osp.join(tools_dir, 'train.py'), config,
                        '--work-dir', work_dir] + args
            runs.append(dict(name=name, config=config, work_dir=work_dir,
                             seed=seed, argv=argv, env=env,
                             finished=is_finished(work_dir, cfg)))
    return runs


def shell_command(run: dict) -> str:
    """A run's command as one line of shell."""
    import shlex
    env = ' '.join(f'{k}={shlex.quote(v)}' for k, v in run['env'].items())
    command = ' '.join(shlex.quote(a) for a in run['argv'])
    return f'{env} {command}' if env else command
