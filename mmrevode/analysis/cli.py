"""The options every measurement tool shares, with one name each.

============================  =================================================
option                        meaning
============================  =================================================
``models``                    specs ``TYPE[:ARCH]`` (or config files, where a
                              tool takes them)
``--blocks-per-unit N ...``   depth sweep: a model of each depth per ``TYPE``
``--widths C ...``            unit widths of the depth sweep
``--backbone-options``        ``key=value`` overrides of every backbone
``--batch-size``              images per batch
``--input-size``              height and width of the images
``--seed``                    seed of the weights and the data
``--steps``, ``--warmup``     timed and untimed steps (or rounds)
``--threads``                 ``torch.set_num_threads``
``--no-progress``             no progress bar (:class:`Progress`, on stderr)
``--device``                  ``cuda`` or ``cpu``
``--out-dir``, ``--name``     the tool writes ``OUT_DIR/NAME.json`` (and
                              ``NAME.png``)
``--title``                   title of the figure
============================  =================================================

and what they read and print and write: memory sizes (:func:`parse_bytes`,
:func:`format_bytes`), Markdown tables (:func:`markdown_table`,
:func:`fixed`), figures (:func:`new_figure`,
:func:`save_figure`) and the output files (:func:`write_outputs`).
"""
import argparse
import json
import os
import os.path as osp
import re
import sys
from typing import Callable, Iterable, List, Optional, Sequence, Union

import torch

from ..engine.options import parse_image_size
from .models import sweep_specs


class Progress:
    """MMEngine's :class:`~mmengine.utils.ProgressBar` on stderr, so that
    stdout holds only what a tool prints (tables, JSON); or nothing.

    Args:
        total (int): Number of tasks.
        enabled (bool): Show the bar. Defaults to True.

    Example:
        >>> progress = Progress(3, enabled=False)
        >>> for _ in range(3):
        ...     progress.update()
        >>> progress.close()
    """

    def __init__(self, total: int, enabled: bool = True):
        self.bar = None
        if enabled and total > 0:
            from mmengine.utils import ProgressBar
            self.bar = ProgressBar(total, file=sys.stderr)

    def update(self, num_tasks: int = 1):
        """Count ``num_tasks`` more tasks done."""
        if self.bar is not None:
            self.bar.update(num_tasks)

    def close(self):
        """End the bar's line."""
        if self.bar is not None:
            sys.stderr.write('\n')
            sys.stderr.flush()
            self.bar = None


def model_parser(description: str,
                 sweep: bool = True,
                 configs: bool = False) -> argparse.ArgumentParser:
    """A parser with ``models``, ``--backbone-options`` and, with ``sweep``,
    ``--blocks-per-unit`` and ``--widths``.

    Args:
        description (str): What the tool does.
        sweep (bool): The tool runs depth sweeps. Defaults to True.
        configs (bool): The models may be config files. Defaults to False.
    """
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        'models',
        nargs='+',
        help='specs TYPE[:ARCH] such as HamiltonianNet:110 or '
        '"RevNet:{\'blocks\': [2, 2], \'widths\': [8, 16]}"' +
        (', or config files' if configs else '') +
        (', or TYPE with --blocks-per-unit' if sweep else ''))
    if sweep:
        parser.add_argument(
            '--blocks-per-unit',
            type=int,
            nargs='+',
            help='depth sweep: these numbers of blocks in every unit of '
            'each TYPE')
        parser.add_argument(
            '--widths',
            type=int,
            nargs='+',
            default=[32, 64, 128],
            help='unit widths of the depth sweep (default: 32 64 128)')
    parser.add_argument(
        '--backbone-options',
        nargs='+',
        action=DictAction,
        help='override arguments of every backbone, e.g. h=0.05')
    return parser


def add_run_arguments(parser: argparse.ArgumentParser,
                      batch_size: int,
                      input_size: int = 32,
                      several_batch_sizes: bool = False,
                      progress_bar: bool = False,
                      device: bool = False,
                      height_width: bool = False):
    """``--batch-size`` (a list with ``several_batch_sizes``),
    ``--input-size`` (``H [W]``, a list, with ``height_width``), ``--seed``,
    ``--threads``, with ``progress_bar`` ``--no-progress`` and with
    ``device`` ``--device``."""
    parser.add_argument(
        '--batch-size',
        type=int,
        nargs='+' if several_batch_sizes else None,
        default=[batch_size] if several_batch_sizes else batch_size,
        help=f'images per batch (default: {batch_size})')
    parser.add_argument(
        '--input-size',
        type=int,
        nargs='+' if height_width else None,
        metavar=('H', 'W') if height_width else None,
        default=[input_size] if height_width else input_size,
        help=f'height and width of the images (default: {input_size})')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch.set_num_threads (default: leave as is)')
    if progress_bar:
        parser.add_argument(
            '--no-progress', action='store_true', help='no progress bar')
    if device:
        parser.add_argument(
            '--device',
            default='cuda' if torch.cuda.is_available() else 'cpu',
            help='cuda or cpu (default: cuda where there is one)')


def add_timing_arguments(parser: argparse.ArgumentParser,
                         steps: int,
                         warmup: int = 1,
                         what: str = 'steps per mode'):
    """``--steps`` (timed) and ``--warmup`` (untimed), counted in
    ``what``."""
    parser.add_argument(
        '--steps',
        type=int,
        default=steps,
        help=f'timed {what} (default: {steps})')
    parser.add_argument(
        '--warmup',
        type=int,
        default=warmup,
        help=f'untimed {what} (default: {warmup})')


def add_output_arguments(parser: argparse.ArgumentParser,
                         name: str,
                         title: bool = False):
    """``--out-dir``, ``--name`` and, with ``title``, ``--title``."""
    out_dir = osp.join('work_dirs', name)
    parser.add_argument(
        '--out-dir',
        default=out_dir,
        help=f'where to write NAME.json and NAME.png (default: {out_dir})')
    parser.add_argument(
        '--name',
        default=name,
        help=f'base name of the output files (default: {name})')
    if title:
        parser.add_argument('--title', help='title of the figure')


def parse_args(parser: argparse.ArgumentParser,
               argv=None) -> argparse.Namespace:
    """Parse the command line and apply ``--threads``; ``--input-size H
    [W]`` becomes ``[H, W]``
    (:func:`~mmrevode.engine.options.parse_image_size`)."""
    args = parser.parse_args(argv)
    if isinstance(getattr(args, 'input_size', None), list):
        try:
            args.input_size = list(parse_image_size(args.input_size))
        except ValueError as e:
            parser.error(f'--input-size: {e}')
    if getattr(args, 'threads', None):
        torch.set_num_threads(args.threads)
    return args


def model_specs(args: argparse.Namespace) -> List[str]:
    """The models of the command line, with a depth sweep expanded."""
    if not getattr(args, 'blocks_per_unit', None):
        return list(args.models)
    if any(':' in model for model in args.models):
        raise SystemExit('--blocks-per-unit: give backbone types only '
                         '(e.g. HamiltonianNet), not TYPE:ARCH.')
    return [
        spec for model in args.models
        for spec in sweep_specs(model, args.blocks_per_unit, args.widths)
    ]


def output_path(args: argparse.Namespace, extension: str) -> str:
    """``OUT_DIR/NAME.EXTENSION``; the folder is created."""
    os.makedirs(args.out_dir, exist_ok=True)
    return osp.join(args.out_dir, f'{args.name}.{extension}')


def write_json(args: argparse.Namespace, document) -> str:
    """Write ``document`` to ``OUT_DIR/NAME.json``; return the path."""
    path = output_path(args, 'json')
    with open(path, 'w') as f:
        json.dump(document, f, indent=1)
    return path


def write_outputs(args: argparse.Namespace,
                  document,
                  draw: Optional[Callable[[str], None]] = None) -> List[str]:
    """Write ``document`` to ``OUT_DIR/NAME.json`` and, with ``draw``, the
    figure ``draw(path)`` makes to ``OUT_DIR/NAME.png``; print what was
    written and return the paths."""
    paths = [write_json(args, document)]
    if draw is not None:
        paths.append(output_path(args, 'png'))
        draw(paths[-1])
    print('Wrote ' + ' and '.join(paths))
    return paths


#: Bytes per unit of a memory size, binary and decimal.
BYTE_UNITS = {
    'b': 1, 'kb': 10**3, 'mb': 10**6, 'gb': 10**9, 'tb': 10**12,
    'kib': 2**10, 'mib': 2**20, 'gib': 2**30, 'tib': 2**40
}


def parse_bytes(text: Union[str, int, float]) -> int:
    """Bytes from ``'2GiB'``, ``'500MiB'``, ``'1.5 GB'`` or a number.

    Binary units (KiB, MiB, GiB, TiB) are powers of 1024, decimal ones (KB,
    MB, GB, TB) powers of 1000; a bare number is bytes.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = text, 'b'
    else:
        match = re.fullmatch(r'\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*',
                             str(text).lower())
        if not match or match.group(2) not in BYTE_UNITS and match.group(2):
            raise ValueError(
                f'cannot read {text!r} as a memory size: give a number of '
                'bytes or a number with one of B, KiB, MiB, GiB, TiB, KB, '
                'MB, GB, TB (e.g. 2GiB, 500MiB).')
        value, unit = float(match.group(1)), match.group(2) or 'b'
    if value < 0:
        raise ValueError(f'a memory size cannot be negative, got {text!r}.')
    return int(round(value * BYTE_UNITS[unit]))


def format_bytes(num_bytes: Optional[float],
                 unit: Optional[str] = None) -> str:
    """A memory size as text; ``-`` for None.

    Args:
        num_bytes (float, optional): The size in bytes.
        unit (str, optional): ``'KiB'``, ``'MiB'`` or ``'GiB'``: the number
            alone in that unit, one decimal (a table cell whose header names
            the unit). Defaults to None: the number and its unit, in KiB,
            MiB or (from 10 GiB on) GiB with two decimals.
    """
    if num_bytes is None:
        return '-'
    if unit is not None:
        return f'{num_bytes / BYTE_UNITS[unit.lower()]:.1f}'
    if num_bytes >= 10 * 2**30:
        return f'{num_bytes / 2**30:.2f} GiB'
    if num_bytes >= 2**20:
        return f'{num_bytes / 2**20:.1f} MiB'
    return f'{num_bytes / 2**10:.1f} KiB'


def fixed(value: Optional[float], digits: int = 3) -> str:
    """A table cell: ``value`` with ``digits`` decimals, ``-`` for None."""
    return '-' if value is None else f'{value:.{digits}f}'


def markdown_table(header: Sequence[str],
                   rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table: the header, its rule and one line per row of
    cells."""
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(cell) for cell in row) + ' |'
              for row in rows]
    return '\n'.join(lines)


def depth_axis(records: Sequence[dict]) -> tuple:
    """The x values of records against depth, and the axis label: the depth
    where every record has one, else the total number of blocks."""
    if all(r['depth'] for r in records):
        return [r['depth'] for r in records], 'depth'
    return [sum(r['blocks']) for r in records], 'blocks'


def new_figure(*args, **kwargs) -> tuple:
    """``plt.subplots(*args, **kwargs)`` on matplotlib's file-only ``Agg``
    backend (no display needed): ``(fig, axes)``, for :func:`save_figure`.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt.subplots(*args, **kwargs)


def save_figure(fig,
                path: str,
                title: Optional[str] = None,
                dpi: int = 100,
                rect: Optional[tuple] = None):
    """Give ``fig`` its title, lay it out, write it to ``path``, close it."""
    import matplotlib.pyplot as plt
    if title:
        fig.suptitle(title)
    fig.tight_layout(**({} if rect is None else dict(rect=rect)))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
