"""Train every experiment of the paper's tables, then tabulate the results.

    python tools/reproduce_paper.py --gpus 4 --dry-run  # list the commands
    python tools/reproduce_paper.py --gpus 4            # torchrun, in turn
    python tools/reproduce_paper.py --gpus 8 --launcher slurm \
        --partition P --max-parallel 6

The experiments (``--groups``, default ``main baselines fewer_data``; see
``mmrevode.utils.paper.PAPER_EXPERIMENTS``): Hamiltonian-74, Midpoint-62 and
Leapfrog-62 on CIFAR-10, CIFAR-100 and STL-10; ResNet-32/56/110 and
RevNet-38/110/164 on CIFAR-10 and CIFAR-100; Hamiltonian-74 on 5 to 80% of
CIFAR-10 and STL-10 (``depth`` adds the deeper networks). 33 runs.

Each run trains through ``tools/dist_train.sh`` (``--launcher pytorch``),
``tools/slurm_train.sh`` (``--launcher slurm``) or ``tools/train.py``
(``--launcher none``) into ``WORK_ROOT/<config name>``, with ``--resume``,
so that launching again continues interrupted runs and skips finished ones.
On several GPUs each process gets the config's batch divided by the number
of GPUs (the paper's total batch), or ``--auto-scale-lr`` when it does not
divide. Each run's output goes to ``WORK_ROOT/logs/<name>.log``. At the end
``tools/analysis_tools/collect_results.py`` runs on ``WORK_ROOT`` and writes
``WORK_ROOT/results/results.md``, ``results.json`` and ``fewer_data.png``.
Exits with status 1 if a run failed.
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
import time
import warnings

with warnings.catch_warnings():  # MMCV-lite's note on its missing ops
    warnings.filterwarnings('ignore', 'Fail to import ``MultiScaleDeformable')
    import mmrevode  # noqa: F401

from mmrevode.utils.optional import require_packages
from mmrevode.utils.paper import (DEFAULT_GROUPS, LAUNCHERS, PAPER_EXPERIMENTS,
                                  plan_runs, select_experiments,
                                  shell_command)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train the experiments of the paper and collect results')
    parser.add_argument(
        '--gpus', type=int,
        help='GPUs (processes) per run; required with the pytorch and slurm '
        'launchers, 1 with --launcher none')
    parser.add_argument(
        '--launcher', choices=LAUNCHERS, default='pytorch',
        help='pytorch: tools/dist_train.sh; slurm: tools/slurm_train.sh; '
        'none: tools/train.py (one process)')
    parser.add_argument('--partition', help='Slurm partition')
    parser.add_argument(
        '--gpus-per-node', type=int, default=8, help='Slurm GPUs per node')
    parser.add_argument(
        '--max-parallel', type=int, default=1,
        help='runs at the same time (Slurm only; default 1)')
    parser.add_argument(
        '--groups', nargs='+', default=list(DEFAULT_GROUPS),
        choices=sorted(PAPER_EXPERIMENTS), help='experiment groups')
    parser.add_argument(
        '--only', nargs='+',
        help='keep the experiments whose config name matches one of these '
        'regular expressions')
    parser.add_argument(
        '--seeds', type=int, nargs='+',
        help='train each experiment once per seed')
    parser.add_argument(
        '--work-root', default='work_dirs/paper',
        help='the runs write to WORK_ROOT/<config name>')
    parser.add_argument(
        '--config-root', default=osp.join(REPO, 'configs', 'revode'),
        help='folder of the configs')
    parser.add_argument(
        '--cfg-options', nargs='+', default=[],
        help='key=value settings passed to every run')
    parser.add_argument(
        '--dry-run', action='store_true',
        help='list the commands, run nothing')
    parser.add_argument(
        '--no-collect', action='store_true',
        help='do not collect the results at the end')
    args = parser.parse_args(argv)
    if args.max_parallel < 1:
        parser.error('--max-parallel must be positive.')
    if args.gpus is None:
        if args.launcher != 'none':
            parser.error(f'--gpus is required with --launcher '
                         f'{args.launcher}.')
        args.gpus = 1
    if args.max_parallel > 1 and args.launcher != 'slurm':
        parser.error('--max-parallel needs --launcher slurm (the other '
                     'launchers use all GPUs of this machine per run).')
    return args


def launch(run, log_file):
    """Start a run with its output going to ``log_file``; the launch scripts
    call ``python``, which is this interpreter."""
    os.makedirs(osp.dirname(log_file), exist_ok=True)
    log = open(log_file, 'w')
    env = dict(os.environ, **run['env'])
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO] + [p for p in [env.get('PYTHONPATH')] if p])
    env['PATH'] = os.pathsep.join(
        [osp.dirname(sys.executable)] +
        [p for p in [env.get('PATH')] if p])
    argv = run['argv']
    if argv[0] == 'python':
        argv = [sys.executable] + argv[1:]
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                               env=env)
    return process, log


def main(argv=None):
    args = parse_args(argv)
    if not args.no_collect and not args.dry_run:
        # the results are drawn at the end: say so now, not after training
        require_packages('reproduce_paper.py', 'matplotlib')
    try:
        names = select_experiments(args.groups, args.only)
        runs = plan_runs(
            names,
            args.gpus,
            launcher=args.launcher,
            work_root=args.work_root,
            config_root=args.config_root,
            tools_dir=osp.join(REPO, 'tools'),
            seeds=args.seeds,
            partition=args.partition,
            gpus_per_node=args.gpus_per_node,
            cfg_options=args.cfg_options)
    except (ValueError, FileNotFoundError) as e:
        print(f'Error: {e}', file=sys.stderr)
        return 1
    todo = [r for r in runs if not r['finished']]
    print(f'{len(runs)} runs, {len(runs) - len(todo)} finished already, '
          f'{len(todo)} to run:')
    for run in runs:
        print(('# finished: ' if run['finished'] else '') +
              shell_command(run))
    if args.dry_run:
        return 0

    log_dir = osp.join(args.work_root, 'logs')
    failed, active = [], []
    pending = list(todo)
    while pending or active:
        while pending and len(active) < args.max_parallel:
            run = pending.pop(0)
            print(f'[{time.strftime("%H:%M:%S")}] start {run["work_dir"]}',
                  flush=True)
            log_file = osp.join(
                log_dir,
                osp.relpath(run['work_dir'], args.work_root).replace(
                    os.sep, '_') + '.log')
            active.append((run, *launch(run, log_file)))
        for item in list(active):
            run, process, log = item
            if process.poll() is None:
                continue
            log.close()
            active.remove(item)
            status = 'done' if process.returncode == 0 else \
                f'FAILED (exit {process.returncode}, log {log.name})'
            if process.returncode != 0:
                failed.append(run)
            print(f'[{time.strftime("%H:%M:%S")}] {status}: '
                  f'{run["work_dir"]}', flush=True)
        time.sleep(0.2 if active else 0)

    if not args.no_collect:
        from mmrevode.utils.results import collect
        result = collect([args.work_root], osp.join(args.work_root,
                                                     'results'))
        print(f'Results of {len(result["runs"])} runs: '
              + ', '.join(result['files'].values()))
    if failed:
        print(f'\nError: {len(failed)} runs failed: '
              + ', '.join(r['work_dir'] for r in failed), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
