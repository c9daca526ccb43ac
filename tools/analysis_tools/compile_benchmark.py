"""Time a training step with and without ``torch.compile``.

    python tools/analysis_tools/compile_benchmark.py \
        configs/revode/hamiltonian110_cifar10.py --batch-size 64 --steps 5 \
        --threads 1 --json work_dirs/compile.json

Builds the config's classifier and runs, on random images, training steps
(forward, loss, backward, SGD update) in each mode:

- ``eager``: no compilation;
- ``compiled``: ``mmrevode.engine.compile_model`` with its defaults, as
  ``ModelCompileHook`` does: the backbone, neck and head compiled; the
  reversible units' autograd Functions stay opaque to dynamo and eager;
- ``compiled+steps``: the same, and the step functions of the reversible
  units compiled too (``compile_steps=True``), so that they run compiled
  inside the Functions.

Prints, per mode, the time of the first step (which includes compiling),
the median wall and CPU time of the following steps (one step of each mode
per round, in alternating order:
:func:`mmrevode.analysis.timing.paired_step_times`) and the median ratio of
the CPU time to eager's (with one thread the CPU time is the step's own
work, which a busy machine inflates far less than the wall time), the
number of graphs dynamo built and its
graph breaks, and the largest relative difference of a parameter gradient
of the first step from eager's.
"""
import argparse
import copy
import functools
import json
import statistics
import sys
import time
import warnings

with warnings.catch_warnings():  # MMCV-lite's note on its missing ops
    warnings.filterwarnings('ignore', 'Fail to import ``MultiScaleDeformable')
    import mmrevode  # noqa: F401

import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmrevode.analysis.cli import Progress
from mmrevode.analysis.timing import paired_step_times, timed
from mmrevode.engine.compile import compile_model
from mmrevode.utils.tools import add_cfg_options_argument

MODES = ('eager', 'compiled', 'compiled+steps')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Time training steps with and without torch.compile')
    parser.add_argument('config', help='config file of the classifier')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--shape', type=int, nargs=2, default=[32, 32],
                        metavar=('H', 'W'), help='input size')
    parser.add_argument('--steps', type=int, default=5,
                        help='timed steps after the first (compiling) one')
    parser.add_argument('--modes', nargs='+', choices=MODES,
                        default=list(MODES))
    parser.add_argument('--backend', default='inductor',
                        help='torch.compile backend (default inductor)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch threads (torch.set_num_threads)')
    parser.add_argument('--json', help='write the results to this file')
    parser.add_argument(
        '--no-progress',
        action='store_true',
        help='no progress bar (it goes to stderr: a task per compilation '
        'and per timed step)')
    add_cfg_options_argument(parser)
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.steps < 1:
        parser.error('--batch-size and --steps must be positive.')
    return args


def train_step(model, optimizer, images, samples, keep_grads=False):
    """One step; with ``keep_grads``, return copies of the gradients."""
    optimizer.zero_grad(set_to_none=True)
    losses = model(images, samples, mode='loss')
    sum(losses.values()).backward()
    grads = [p.grad.clone() for p in model.parameters()] if keep_grads \
        else None
    optimizer.step()
    return grads


def prepare(model, mode, images, samples, backend='inductor'):
    """Compile ``model`` for ``mode`` and run its first training step.

    Returns the optimizer, the first step's time with dynamo's statistics,
    and the first step's parameter gradients.
    """
    import torch._dynamo as dynamo
    from torch._dynamo.utils import counters
    dynamo.reset()
    counters.clear()
    if mode != 'eager':
        compile_model(
            model, compile_steps=mode == 'compiled+steps', backend=backend)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    start = time.perf_counter()
    grads = train_step(model, optimizer, images, samples, keep_grads=True)
    first = time.perf_counter() - start
    return optimizer, dict(
        first_step_s=first,
        graphs=counters['stats'].get('unique_graphs', 0),
        graph_breaks=sum(counters['graph_break'].values()),
        break_reasons=sorted(counters['graph_break'])), grads


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    torch.manual_seed(0)
    reference = MODELS.build(cfg.model)
    reference.init_weights()
    reference.train()
    num_classes = cfg.model.head.num_classes
    images = torch.randn(args.batch_size, 3, *args.shape)
    samples = [
        DataSample().set_gt_label(i % num_classes)
        for i in range(args.batch_size)
    ]
    # a task per compilation (the first step of a mode) and per timed step
    progress = Progress(len(args.modes) * (1 + args.steps),
                        not args.no_progress)
    models, optimizers, results, eager_grads = {}, {}, {}, None
    for mode in args.modes:
        models[mode] = copy.deepcopy(reference)
        optimizers[mode], results[mode], grads = prepare(
            models[mode], mode, images, samples, args.backend)
        progress.update()
        if mode == 'eager':
            eager_grads = grads
        elif eager_grads is not None:
            results[mode]['grad_rel_diff'] = max(
                ((g - e).norm() / e.norm().clamp_min(1e-30)).item()
                for g, e in zip(grads, eager_grads))
    # one step of each mode per round (in alternating order), so that a
    # change of the machine's load affects all modes alike
    runs = {
        mode: functools.partial(
            timed,
            functools.partial(train_step, models[mode], optimizers[mode],
                              images, samples))
        for mode in args.modes
    }
    times, cpu_times = paired_step_times(
        runs, args.steps, progress=progress.update)
    progress.close()
    for mode in args.modes:
        result = results[mode]
        result['step_s'] = statistics.median(times[mode])
        result['step_times_s'] = times[mode]
        result['step_cpu_s'] = statistics.median(cpu_times[mode])
        result['step_cpu_times_s'] = cpu_times[mode]
        if 'eager' in times:
            result['step_ratio_to_eager'] = statistics.median(
                t / e for t, e in zip(times[mode], times['eager']))
            result['step_cpu_ratio_to_eager'] = statistics.median(
                t / e for t, e in zip(cpu_times[mode], cpu_times['eager']))
        print(f'{mode:>15}: first step {result["first_step_s"]:.1f} s, '
              f'then {result["step_s"]:.3f} s/step, CPU time '
              f'{result["step_cpu_s"]:.3f} s/step'
              + (f' ({result["step_cpu_ratio_to_eager"]:.3f} x eager)'
                 if 'step_cpu_ratio_to_eager' in result else '')
              + f'; {result["graphs"]} graphs, {result["graph_breaks"]} '
              'graph breaks'
              + (f'; gradients vs eager {result["grad_rel_diff"]:.1e}'
                 if 'grad_rel_diff' in result else ''),
              flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(
                dict(config=args.config, batch_size=args.batch_size,
                     shape=args.shape, backend=args.backend,
                     threads=torch.get_num_threads(),
                     torch=torch.__version__, results=results), f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
