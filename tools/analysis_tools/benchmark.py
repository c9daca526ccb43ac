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

    # exact mode (fixed-point pairs) against floating point, paired steps
    python tools/analysis_tools/benchmark.py HamiltonianNet:110 \\
        --modes plain reversible reversible-exact --batch-size 64 \\
        --steps 10 --threads 1 --out-dir docs/figures --name exact

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
import warnings
from typing import Dict, List, Optional, Sequence

import torch

with warnings.catch_warnings():  # MMCV-lite's note on its missing ops
    warnings.filterwarnings('ignore', 'Fail to import ``MultiScaleDeformable')
    import mmrevode  # noqa: F401

from mmrevode.analysis import MODES, machine_info, run_benchmark
from mmrevode.analysis.models import EXACT_MODES
from mmrevode.analysis.peers import (PEER_PACKAGES, available_runners,
                                     compare_peers)
from mmrevode.analysis import cli
from mmrevode.analysis.cli import (add_output_arguments, add_run_arguments,
                                   add_timing_arguments, depth_axis, fixed,
                                   format_bytes, markdown_table, model_parser,
                                   model_specs, new_figure, save_figure,
                                   write_outputs)
from mmrevode.utils.optional import install_command, require_packages


def table(records: Sequence[dict]) -> str:
    """The records as a Markdown table."""
    header = [
        'model', 'batch', 'mode', 'saved MiB', 'held after fwd MiB',
        'peak MiB', 'step s', 'CPU s', 'saved / plain', 'peak / plain',
        'time / plain', 'CPU time / plain'
    ]
    in_mib = ('saved_bytes', 'forward_held_bytes', 'peak_bytes')
    in_decimals = ['step_time_s', 'cpu_time_s', 'saved_ratio_to_plain',
                   'peak_ratio_to_plain', 'time_ratio_to_plain',
                   'cpu_time_ratio_to_plain']
    if any(r.get('time_ratio_to_float') is not None for r in records):
        header += ['time / float', 'CPU time / float']
        in_decimals += ['time_ratio_to_float', 'cpu_time_ratio_to_float']
    return markdown_table(header, [
        [r['name'], r['batch_size'], r['mode']] +
        [format_bytes(r[key], 'MiB') for key in in_mib] +
        [fixed(r.get(key)) for key in in_decimals] for r in records
    ])


def part_table(records: Sequence[dict]) -> str:
    """Saved MiB by part (``--by-part``) as a Markdown table."""
    parts = sorted({p for r in records for p in r['saved_bytes_by_part']})
    rows = []
    for r in records:
        by_part = r['saved_bytes_by_part']
        units = sum(v for k, v in by_part.items() if k.startswith('unit'))
        rows.append([r['name'], r['mode'],
                     format_bytes(units, 'MiB')] +
                    [format_bytes(by_part.get(p, 0), 'MiB') for p in parts])
    return markdown_table(['model', 'mode', 'in units'] + parts, rows)


def peer_table(records: Sequence[dict]) -> str:
    """The peers' records as a Markdown table."""
    header = [
        'model', 'unit', 'batch', 'runner', 'float64 grad error',
        'BN updates per step', 'saved MiB', 'peak MiB', 'time / plain',
        'CPU time / plain'
    ]
    rows = []
    for r in records:
        error = '-' if r['grad_error'] is None else \
            f"{r['grad_error']:.1e}"
        if r['missing_grads']:
            error = f"{r['missing_grads']} parameter grads missing"
        rows.append([
            r['name'], r['unit'], r['batch_size'], r['runner'], error,
            r['bn_updates_per_step'],
            format_bytes(r['saved_bytes'], 'MiB'),
            format_bytes(r['peak_bytes'], 'MiB'),
            fixed(r['time_ratio_to_plain']),
            fixed(r['cpu_time_ratio_to_plain'])
        ])
    return markdown_table(header, rows)


def run_peers(args) -> dict:
    """``--peers``: one unit of each model in every installed runner."""
    machine = machine_info('cpu')
    missing = [p for p in PEER_PACKAGES if p not in available_runners()]
    if missing:
        print(f'Not installed: {", ".join(missing)}; their rows are left '
              f'out ({install_command("bench")} brings them).', flush=True)
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
    panels = [('saved_bytes', 'saved for backward (MiB)', 2**20),
              ('peak_bytes', 'peak memory of a step (MiB)', 2**20),
              ('step_time_s', 'step time (s, median)', 1),
              ('cpu_time_s', 'CPU time of a step (s, median)', 1)]
    fig, axes = new_figure(1, 4, figsize=(20, 4.2))
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
        '--modes',
        nargs='+',
        choices=list(MODES) + list(EXACT_MODES),
        default=list(MODES),
        help='modes to run; a mode with -exact is the same network in '
        'exact mode (exact=True: fixed-point pairs); next to its floating-'
        'point mode it gets the time ratio between the two')
    add_run_arguments(
        parser,
        batch_size=64,
        several_batch_sizes=True,
        progress_bar=True,
        device=True)
    add_timing_arguments(parser, steps=5)
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
        write_outputs(args, result)
        return result
    require_packages('benchmark.py', 'matplotlib')
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
    write_outputs(args, result, lambda path: plot(records, path, args.title))
    return result


if __name__ == '__main__':
    main()
