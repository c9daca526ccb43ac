"""Memory and time of a training step: reversible, plain autograd, checkpoint.

For every model (and batch size) the same network is built in three modes,
with the same weights, and one training step on random images is measured
(:mod:`mmrevode.analysis.benchmark` says exactly what each figure is):

==============  =============================================================
mode            backbone arguments
==============  =============================================================
``reversible``  ``mode='reversible'``: one autograd function per unit,
                nothing stored inside a unit (the default of the backbones)
``plain``       ``mode='plain'``: ordinary autograd, every activation stored
``checkpoint``  ``mode='checkpoint'``: ``torch.utils.checkpoint`` around each
                block (stores each block's input, recomputes the block in the
                backward)
==============  =============================================================

The step is a forward, the cross-entropy of a linear classifier on the
globally pooled last output, a backward and an SGD update; with ``--det``,
the backbone as a detector uses it (ImageNet stem, the outputs of all four
units, the loss the sum of their means, no head), for the ``det-*`` presets
at detection-size inputs. ``--by-part`` splits the saved bytes into the
stem, each unit and the rest.

It prints a table and writes ``OUT_DIR/NAME.json`` (the machine, then one
record per model, batch size and mode) and ``OUT_DIR/NAME.png`` (saved
bytes, peak memory, step time and CPU time against depth, one line per
mode). Models are specs ``TYPE[:ARCH]``, or ``TYPE`` with
``--blocks-per-unit`` for a depth sweep.

Examples::

    # the table in docs/performance.md
    python tools/analysis_tools/benchmark.py HamiltonianNet:110 \\
        HamiltonianNet:218 --batch-size 64 --steps 10 --threads 1 \\
        --out-dir docs/figures --name benchmark

    # "arbitrarily deep": 1 to 100 blocks per unit (Hamiltonian-14 to -1202)
    python tools/analysis_tools/benchmark.py HamiltonianNet \\
        --blocks-per-unit 1 4 16 64 100 --widths 32 64 128 --batch-size 64 \\
        --out-dir docs/figures --name depth_sweep

    # one unit in mmrevode, plain autograd, checkpointing, MemCNN and RevLib
    # (pip install -e .[bench]; docs/performance.md)
    python tools/analysis_tools/benchmark.py HamiltonianNet:110 RevNet:110 \\
        --peers --batch-size 64 --steps 5 --threads 1 \\
        --out-dir docs/figures --name peers

    # a detection backbone at 2 x 3 x 512 x 512 (docs/detection.md)
    python tools/analysis_tools/benchmark.py HamiltonianNet:det-38 --det \\
        --by-part --batch-size 2 --input-size 512 --steps 1 \\
        --backbone-options frozen_stages=1
"""
import os
from typing import Dict, List, Optional, Sequence

import torch

from mmrevode.analysis import MODES, machine_info, run_benchmark
from mmrevode.analysis.peers import available_runners, compare_peers
from mmrevode.analysis import cli
from mmrevode.analysis.cli import (add_output_arguments, add_run_arguments,
                                   depth_axis, model_parser, model_specs,
                                   output_path, save_figure, write_json)


def _mb(value) -> str:
    return '-' if value is None else f'{value / 2**20:.1f}'


def _x(value) -> str:
    return '-' if value is None else f'{value:.3f}'


def table(records: Sequence[dict]) -> str:
    """The records as a Markdown table."""
    head = ('| model | batch | mode | saved MiB | held after fwd MiB | '
            'peak MiB | step s | CPU s | saved / plain | peak / plain | '
            'time / plain | CPU time / plain |')
    lines = [head, '|' + '---|' * (head.count('|') - 1)]
    for r in records:
        lines.append(
            f"| {r['name']} | {r['batch_size']} | {r['mode']} | "
            f"{_mb(r['saved_bytes'])} | {_mb(r['forward_held_bytes'])} | "
            f"{_mb(r['peak_bytes'])} | {_x(r['step_time_s'])} | "
            f"{_x(r['cpu_time_s'])} | "
            f"{_x(r['saved_ratio_to_plain'])} | "
            f"{_x(r['peak_ratio_to_plain'])} | "
            f"{_x(r['time_ratio_to_plain'])} | "
            f"{_x(r['cpu_time_ratio_to_plain'])} |")
    return '\n'.join(lines)


def part_table(records: Sequence[dict]) -> str:
    """Saved MiB by part (``--by-part``) as a Markdown table."""
    parts = sorted({p for r in records for p in r['saved_bytes_by_part']})
    lines = [
        '| model | mode | in units | ' + ' | '.join(parts) + ' |',
        '|---' * (len(parts) + 3) + '|'
    ]
    for r in records:
        by_part = r['saved_bytes_by_part']
        units = sum(v for k, v in by_part.items() if k.startswith('unit'))
        lines.append(f"| {r['name']} | {r['mode']} | {_mb(units)} | " +
                     ' | '.join(_mb(by_part.get(p, 0)) for p in parts) +
                     ' |')
    return '\n'.join(lines)


def peer_table(records: Sequence[dict]) -> str:
    """The peers' records as a Markdown table."""
    lines = [
        '| model | unit | batch | runner | float64 grad error | BN updates '
        'per step | saved MiB | peak MiB | time / plain | CPU time / plain |',
        '|---|---|---|---|---|---|---|---|---|---|'
    ]
    for r in records:
        error = '-' if r['grad_error'] is None else \
            f"{r['grad_error']:.1e}"
        if r['missing_grads']:
            error = f"{r['missing_grads']} parameter grads missing"
        lines.append(
            f"| {r['name']} | {r['unit']} | {r['batch_size']} | "
            f"{r['runner']} | {error} | {r['bn_updates_per_step']} | "
            f"{_mb(r['saved_bytes'])} | {_mb(r['peak_bytes'])} | "
            f"{_x(r['time_ratio_to_plain'])} | "
            f"{_x(r['cpu_time_ratio_to_plain'])} |")
    return '\n'.join(lines)


def run_peers(args) -> dict:
    """``--peers``: one unit of each model in every installed runner."""
    machine = machine_info('cpu')
    records = []
    for spec in model_specs(args):
        for batch_size in args.batch_size:
            records += compare_peers(
                spec,
                batch_size=batch_size,
                input_size=args.input_size,
                unit_index=args.peer_unit,
                steps=args.steps,
                warmup=args.warmup,
                seed=args.seed,
                malloc_trim_threshold=args.malloc_trim_threshold,
                progress=lambda what: print(what, flush=True))
    machine['load_average_end'] = list(os.getloadavg())
    return dict(machine=machine, runners=available_runners(),
                records=records)


def plot(records: Sequence[dict], path: str, title: Optional[str] = None):
    """Saved bytes, peak memory, step and CPU time against depth."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    panels = [('saved_bytes', 'saved for backward (MiB)', 2**20),
              ('peak_bytes', 'peak memory of a step (MiB)', 2**20),
              ('step_time_s', 'step time (s, median)', 1),
              ('cpu_time_s', 'CPU time of a step (s, median)', 1)]
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))
    groups: Dict[tuple, List[dict]] = {}
    for r in records:
        groups.setdefault((r['model'], r['batch_size'], r['mode']),
                          []).append(r)
    styles = dict(reversible='o-', plain='s--', checkpoint='^:')
    _, xlabel = depth_axis(records)
    for (model, batch, mode), rows in groups.items():
        xs, rows = zip(*sorted(zip(depth_axis(rows)[0], rows),
                               key=lambda pair: pair[0]))
        label = mode if len(groups) <= len(styles) else \
            f'{mode}, {model}, batch {batch}'
        for ax, (key, _, scale) in zip(axes, panels):
            pts = [(x, r[key] / scale) for x, r in zip(xs, rows)
                   if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), styles.get(mode, 'x-'), label=label)
    for ax, (_, ylabel, _) in zip(axes, panels):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)  # linear axes: linear growth looks linear
        ax.set_xlim(left=0)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
    axes[0].legend()
    save_figure(fig, path, title)


def parse_args(argv=None):
    parser = model_parser(
        'Memory and time of a training step with the reversible backward, '
        'plain autograd and checkpointing.')
    parser.add_argument(
        '--modes', nargs='+', choices=list(MODES), default=list(MODES))
    add_run_arguments(
        parser,
        batch_size=64,
        several_batch_sizes=True,
        progress_bar=True,
        device=True)
    parser.add_argument(
        '--steps', type=int, default=5, help='timed steps per mode')
    parser.add_argument(
        '--warmup', type=int, default=1, help='untimed steps per mode')
    parser.add_argument(
        '--dtype', choices=['float32', 'float64'], default='float32')
    parser.add_argument(
        '--lr',
        type=float,
        default=0.0,
        help='SGD learning rate of the timed steps (default 0: the update '
        'runs but the weights stay, so every step does the same work)')
    parser.add_argument(
        '--det',
        action='store_true',
        help='the backbone as a detector uses it: ImageNet stem, the outputs '
        'of units 0-3, the loss the sum of their means, no classifier')
    parser.add_argument(
        '--by-part',
        action='store_true',
        help='split the saved bytes into the stem, each unit and the rest')
    parser.add_argument(
        '--malloc-trim-threshold',
        type=int,
        default=1 << 20,
        help='on a CPU, measure the memory in a fresh process with glibc\'s '
        'M_TRIM_THRESHOLD set to this many bytes (and M_TOP_PAD to 0) so '
        'that the resident set follows the memory in use; -1 measures in '
        'this process with glibc\'s defaults (default: 1 MiB)')
    parser.add_argument(
        '--peers',
        action='store_true',
        help='run one unit of each model (Hamiltonian or RevNet) in '
        'mmrevode, plain autograd, checkpointing and the installed peers '
        '(MemCNN, RevLib: pip install -e .[bench]) with the same weights')
    parser.add_argument(
        '--peer-unit',
        type=int,
        default=0,
        help='with --peers: the unit to run (default: 0)')
    add_output_arguments(parser, 'benchmark', title=True)
    return cli.parse_args(parser, argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.peers:
        result = run_peers(args)
        print(peer_table(result['records']))
        print(f"Runners: {', '.join(result['runners'])}; load average "
              f"{result['machine']['load_average_start'][0]:.2f} at the "
              f"start, {result['machine']['load_average_end'][0]:.2f} at "
              'the end.')
        print(f'Wrote {write_json(args, result)}')
        return result
    backbone_options = dict(args.backbone_options or {})
    if args.det:
        backbone_options.setdefault('stem_type', 'imagenet')
        backbone_options.setdefault('out_indices', (0, 1, 2, 3))
    result = run_benchmark(
        model_specs(args),
        modes=args.modes,
        batch_sizes=args.batch_size,
        progress_bar=not args.no_progress,
        input_size=args.input_size,
        steps=args.steps,
        warmup=args.warmup,
        device=args.device,
        dtype=getattr(torch, args.dtype),
        backbone_options=backbone_options,
        lr=args.lr,
        seed=args.seed,
        head='features' if args.det else 'linear',
        by_part=args.by_part,
        malloc_trim_threshold=args.malloc_trim_threshold)
    records = result['records']
    print(table(records))
    if args.by_part:
        print('\nSaved MiB by part:')
        print(part_table(records))
    m = result['machine']
    print(f"{m['processor']}, {m['cpu_count']} CPUs, {m['torch_threads']} "
          f"torch threads, device {m['device']}; load average "
          f"{m['load_average_start'][0]:.2f} at the start, "
          f"{m['load_average_end'][0]:.2f} at the end; malloc: "
          f"{m.get('malloc') or 'defaults'}.")
    json_path = write_json(args, result)
    png_path = output_path(args, 'png')
    plot(records, png_path, args.title)
    print(f'Wrote {json_path} and {png_path}')
    return result


if __name__ == '__main__':
    main()
