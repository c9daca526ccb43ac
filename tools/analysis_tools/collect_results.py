"""Tabulate the test accuracy of training runs, as the paper reports it.

    python tools/analysis_tools/collect_results.py work_dirs/paper \
        [--out-dir work_dirs/paper/results] [--metric accuracy/top1]

Reads every run among WORK_DIRS (a work directory of ``tools/train.py``, or
a folder of them, searched recursively): its config, seed, status and the
validation metric it logged (the last validation counts). Runs are pooled
only within one experiment (same config, model, data and fraction, total
batch, schedule and length, optimizer); runs of one seed are repeats, and
the ± is taken over seeds. Unfinished, diverged and failed runs and folders
with missing files are left out, each named with the reason. Writes into
``--out-dir``:

- ``results.md``: one row per model (and experiment, labelled by what
  differs), one column per data set, in the README's model-table format
  (mean ± standard deviation over seeds, the seeds and repeats counted);
  the fewer-data table; every run (seed, drawn or set; repeats marked);
  the runs left out and why;
- ``results.json``: the same, and every run with its whole validation
  history and experiment definition;
- ``fewer_data.png``: test accuracy against the percentage of training
  data, one line per model and data set (when there are fewer-data runs).
"""
import argparse
import sys
import warnings

with warnings.catch_warnings():  # MMCV-lite's note on its missing ops
    warnings.filterwarnings('ignore', 'Fail to import ``MultiScaleDeformable')
    import mmrevode  # noqa: F401

from mmrevode.utils.optional import require_packages
from mmrevode.utils.results import RunError, collect


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Collect the results of training runs')
    parser.add_argument(
        'work_dirs', nargs='+',
        help='work directories of runs, or folders holding them')
    parser.add_argument(
        '--out-dir',
        help='where to write results.md, results.json and fewer_data.png '
        '(default: the first WORK_DIR)')
    parser.add_argument(
        '--metric', default='accuracy/top1', help='the metric to tabulate')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    require_packages('collect_results.py', 'matplotlib')
    out_dir = args.out_dir or args.work_dirs[0]
    try:
        result = collect(args.work_dirs, out_dir, args.metric)
    except RunError as e:
        print(f'Error: {e}', file=sys.stderr)
        return 1
    print(result['table']['markdown'])
    for left_out in result['left_out']:
        print(f'left out: {left_out["work_dir"]}: {left_out["reason"]}')
    print(f'{len(result["runs"])} runs in {len(result["experiments"])} '
          f'experiments, {len(result["left_out"])} left out; written: ' +
          ', '.join(result['files'].values()))
    if not result['runs']:
        print('Error: no finished run with a logged validation was found.',
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
