"""Per-unit execution modes that fit a memory budget at the least time.

Calibrates the cost model of :mod:`mmrevode.analysis.planner` on this
machine (saved-for-backward bytes of each unit in each mode, each unit's
step time), chooses the fastest plan whose predicted saved bytes fit
``--budget``, measures it (saved bytes; step time paired with all-plain
steps) and prints the ``--cfg-options`` that apply it. A budget that no plan
fits ends with a message that names the smallest reachable figure.

With ``--all-plans`` it also measures every plan (``3 ** units`` of them)
and writes the frontier of step time against saved bytes,
``OUT_DIR/NAME.json`` and ``OUT_DIR/NAME.png``.

Examples::

    python tools/analysis_tools/plan_memory.py \\
        configs/revode/hamiltonian110_cifar10.py --batch-size 64 \\
        --input-size 32 32 --budget 200MiB --threads 1

    # in exact mode (exact=True): --backbone-options exact=True for a
    # spec, --cfg-options model.backbone.exact=True for a config
    python tools/analysis_tools/plan_memory.py HamiltonianNet:110 \\
        --backbone-options exact=True --batch-size 64 --budget 100MiB

    # the frontier in docs/performance.md
    python tools/analysis_tools/plan_memory.py HamiltonianNet:110 \\
        HamiltonianNet:218 --batch-size 64 --all-plans --threads 1 \\
        --steps 3 --out-dir docs/figures --name frontier
"""
import os
import sys
import warnings
from typing import List, Sequence

with warnings.catch_warnings():  # MMCV-lite's note on its missing ops
    warnings.filterwarnings('ignore', 'Fail to import ``MultiScaleDeformable')
    import mmrevode  # noqa: F401

from mmrevode.analysis import (BudgetError, calibrate, cfg_option,
                               format_bytes, machine_info, measure_plans,
                               model_spec, parse_bytes)
from mmrevode.analysis import cli
from mmrevode.analysis.cli import (add_output_arguments, add_run_arguments,
                                   add_timing_arguments, fixed,
                                   markdown_table, model_parser,
                                   new_figure, save_figure, write_outputs)
from mmrevode.engine.launcher import run_cli
from mmrevode.models.reversible import EXECUTION_MODES
from mmrevode.utils.optional import require_packages
from mmrevode.utils.tools import add_cfg_options_argument

SHORT = dict(reversible='R', plain='P', checkpoint='C')


def short(modes: Sequence[str]) -> str:
    """``['reversible', 'plain']`` -> ``'RP'``."""
    return ''.join(SHORT[m] for m in modes)


def cost_table(costs) -> str:
    """Saved MiB of each unit in each mode and the milliseconds it adds
    to the all-plain step."""
    header = ['part']
    for m in costs.modes:
        header += [f'{m} MiB', f'{m} +ms']
    rows = []
    for i, (saved, seconds) in enumerate(zip(costs.unit_bytes,
                                             costs.unit_time)):
        row = [f'unit {i}']
        for m in costs.modes:
            row += [
                format_bytes(saved[m], 'MiB'),
                fixed(seconds[m] * 1e3, 0)
            ]
        rows.append(row)
    rows.append([
        'rest (time: all-plain step)',
        format_bytes(costs.rest_bytes, 'MiB'),
        fixed(costs.rest_time * 1e3, 0)
    ] + ['-', '-'] * (len(costs.modes) - 1))
    return markdown_table(header, rows)


def plan_table(plans: Sequence[dict], measured: Sequence[dict] = ()) -> str:
    """Predicted (and measured) saved MiB and time ratio of plans."""
    by_modes = {tuple(m['modes']): m for m in measured}
    header = [
        'modes', 'predicted saved MiB', 'predicted time / plain',
        'measured saved MiB', 'measured time / plain', 'CPU time / plain'
    ]
    rows = []
    for plan in plans:
        m = by_modes.get(tuple(plan['modes']), {})
        rows.append([
            ', '.join(plan['modes']),
            format_bytes(plan['saved_bytes'], 'MiB'),
            fixed(plan['time_ratio_to_plain']),
            format_bytes(m.get('saved_bytes'), 'MiB'),
            fixed(m.get('time_ratio_to_plain')),
            fixed(m.get('cpu_time_ratio_to_plain'))
        ])
    return markdown_table(header, rows)


def plot(results: Sequence[dict], path: str, title=None):
    """Step time against saved bytes of every plan, one panel per model."""
    fig, axes = new_figure(
        1, len(results), figsize=(6.5 * len(results), 5), squeeze=False)
    for ax, result in zip(axes[0], results):
        plans = result['measured_plans']
        for key, marker, label in (('cpu_time_ratio_to_plain', 'o',
                                    'measured (CPU time)'),
                                   ('time_ratio_to_plain', 'x',
                                    'measured (wall time)')):
            ax.plot([p['saved_bytes'] / 2**20 for p in plans],
                    [p[key] for p in plans], marker, ls='', alpha=0.7,
                    label=label)
        front = result['front']
        ax.plot([p['saved_bytes'] / 2**20 for p in front],
                [p['time_ratio_to_plain'] for p in front], 'k--', lw=1,
                label='predicted front')
        for plan in plans:
            uniform = len(set(plan['modes'])) == 1
            ax.annotate(
                short(plan['modes']),
                (plan['saved_bytes'] / 2**20, plan['cpu_time_ratio_to_plain']),
                fontsize=9 if uniform else 6,
                fontweight='bold' if uniform else 'normal',
                xytext=(3, 3), textcoords='offset points')
        ax.set_xlabel('saved for backward (MiB)')
        ax.set_ylabel('step time / all-plain step (median of paired steps)')
        ax.set_title(f"{result['name']}, batch {result['batch_size']}")
        ax.set_xlim(left=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path, title or 'Per-unit modes: R reversible, '
                'P plain, C checkpoint (unit 0 first)')


def plan_model(model: str, args) -> dict:
    """Calibrate, choose and measure for one model; the JSON record."""
    spec = model_spec(model, args.cfg_options)
    options = dict(
        device=args.device, seed=args.seed,
        backbone_options=args.backbone_options)
    size = args.input_size * 2 if len(args.input_size) == 1 \
        else args.input_size
    run = dict(batch_size=args.batch_size, input_size=size, steps=args.steps,
               warmup=args.warmup, progress_bar=not args.no_progress,
               **options)
    print(f"Calibrating {spec['name']} at batch {args.batch_size}, "
          f"{size[0]}x{size[1]} ...", flush=True)
    costs = calibrate(spec, modes=args.modes, **run)
    if costs.info['exact']:
        print('Exact mode (exact=True): fixed-point pairs in every plan.')
    print(cost_table(costs))
    front = costs.front()
    print('\nPlans no other plan beats in both memory and time (predicted):')
    print(plan_table(front))
    result = dict(
        name=spec['name'], spec=spec['spec'], batch_size=args.batch_size,
        input_size=size, exact=costs.info['exact'], costs=costs.to_dict(),
        front=front)
    uniform = [[m] * costs.num_units for m in args.modes]
    to_measure: List[List[str]] = []
    if args.budget is not None:
        budget = parse_bytes(args.budget)
        result['budget_bytes'] = budget
        try:
            chosen = costs.choose(budget)
        except BudgetError as error:
            result['error'] = str(error)
            return result
        result['plan'] = chosen
        to_measure.append(chosen['modes'])
    if args.all_plans:
        to_measure = [p['modes'] for p in costs.all_plans()]
    to_measure += [m for m in uniform if m not in to_measure]
    measured = measure_plans(spec, to_measure, **run)
    result['measured_plans'] = measured
    if args.all_plans:
        result['predicted_plans'] = costs.all_plans()
    shown = [result['plan']] if 'plan' in result else []
    shown += [costs.plan(m) for m in uniform
              if m != result.get('plan', {}).get('modes')]
    print('\nPredicted and measured (saved bytes; median of paired step-time '
          'ratios to all-plain):')
    print(plan_table(shown, measured))
    if 'plan' in result:
        chosen = result['plan']
        fit = next(m for m in measured if m['modes'] == chosen['modes'])
        print(f"\nPlan for a budget of {format_bytes(result['budget_bytes'])}"
              f": mode={chosen['modes']}; predicted "
              f"{format_bytes(chosen['saved_bytes'])}, "
              f"{chosen['time_ratio_to_plain']:.3f}x plain; measured "
              f"{format_bytes(fit['saved_bytes'])}, "
              f"{fit['cpu_time_ratio_to_plain']:.3f}x plain (CPU time), "
              f"{fit['time_ratio_to_plain']:.3f}x (wall).")
        exact = ' model.backbone.exact=True' if costs.info['exact'] else ''
        print('Apply it with:  --cfg-options '
              f"{cfg_option(chosen['modes'])}{exact}")
    return result


def parse_args(argv=None):
    parser = model_parser(
        'Choose per-unit execution modes that fit a memory budget (bytes '
        'saved for backward) at the least step time.',
        sweep=False,
        configs=True)
    parser.add_argument(
        '--budget',
        help='bytes saved for backward, e.g. 2GiB, 500MiB or 123456789')
    add_run_arguments(
        parser,
        batch_size=64,
        progress_bar=True,
        device=True,
        height_width=True)
    parser.add_argument(
        '--modes',
        nargs='+',
        choices=list(EXECUTION_MODES),
        default=list(EXECUTION_MODES),
        help='the modes a unit may take (default: all)')
    add_timing_arguments(parser, steps=3, what='rounds')
    parser.add_argument(
        '--all-plans',
        action='store_true',
        help='measure every plan and write the frontier (JSON and PNG)')
    add_cfg_options_argument(parser)
    add_output_arguments(parser, 'plan_memory', title=True)
    args = cli.parse_args(parser, argv)
    if args.budget is None and not args.all_plans:
        parser.error('give --budget, --all-plans or both.')
    if len(args.input_size) > 2:
        parser.error('--input-size takes H or H W.')
    specs = [m for m in args.models
             if not (m.endswith('.py') or os.path.isfile(m))]
    if args.cfg_options and specs:
        parser.error(f'--cfg-options changes config files, and {specs[0]} '
                     'is a spec: give the backbone\'s arguments with '
                     '--backbone-options (e.g. exact=True).')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.all_plans:
        require_packages('plan_memory.py', 'matplotlib')
    machine = machine_info(args.device)
    results = [plan_model(model, args) for model in args.models]
    machine['load_average_end'] = list(os.getloadavg())
    print(f"\n{machine['processor']}, {machine['cpu_count']} CPUs, "
          f"{machine['torch_threads']} torch threads, device "
          f"{machine['device']}; load average "
          f"{machine['load_average_start'][0]:.2f} at the start, "
          f"{machine['load_average_end'][0]:.2f} at the end.")
    document = dict(machine=machine, results=results)

    def draw(path):
        plot([r for r in results if 'measured_plans' in r], path, args.title)

    write_outputs(args, document, draw if args.all_plans else None)
    errors = [r['error'] for r in results if 'error' in r]
    if errors:
        sys.exit('\n'.join(errors))
    return document


if __name__ == '__main__':
    sys.exit(run_cli(lambda: main() and 0))
