"""Record the network's definition in a checkpoint that lacks it.

    python tools/model_converters/add_definition.py CONFIG CHECKPOINT OUTPUT \
        [--cfg-options model.backbone.h=0.02]

Checkpoints written before the backbones recorded their definition (step
size ``h``, ``arch``, scheme options, ...) are refused by the tools, since
nothing shows which network their weights belong to. This reads such a
checkpoint without running code from it, builds the model of CONFIG (with
``--cfg-options``), checks that the weights fit it, and writes the
checkpoint with that model's definition added (everything else kept) to
OUTPUT, which may be CHECKPOINT itself. Give the config and options the
checkpoint was trained with: what is recorded is the network they build,
printed at the end. (MidpointNet's default ``h`` was 0.02 before it became
0.1: for a Midpoint checkpoint of that time pass
``--cfg-options model.backbone.h=0.02``.)
"""
import argparse
import sys
import warnings

with warnings.catch_warnings():  # MMCV-lite's note on its missing ops
    warnings.filterwarnings('ignore', 'Fail to import ``MultiScaleDeformable')
    import mmrevode  # noqa: F401

from mmrevode.engine import add_definition
from mmrevode.engine.launcher import run_cli
from mmrevode.utils.tools import add_cfg_options_argument


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Record the network definition of CONFIG in a '
        'checkpoint written without one')
    parser.add_argument('config', help='the config the checkpoint was '
                        'trained with')
    parser.add_argument('checkpoint', help='the checkpoint to convert')
    parser.add_argument('output', help='where to write the converted '
                        'checkpoint (may be the checkpoint itself)')
    add_cfg_options_argument(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)

    def convert():
        added = add_definition(args.config, args.checkpoint, args.output,
                               args.cfg_options)
        if not added:
            print(f'{args.checkpoint} records the definition of this '
                  'network already.')
        for key, definition in added.items():
            settings = ', '.join(f'{k}={v!r}' for k, v in definition.items())
            print(f'Recorded {key}: {settings}')
        print(f'Wrote {args.output}')

    return run_cli(convert)


if __name__ == '__main__':
    sys.exit(main())
