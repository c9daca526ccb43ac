"""A mutation fuzzer for the checkpoint and data-set pickle readers.

Mutates a real checkpoint (its pickle inside a re-written, CRC-valid
archive, or the file's raw bytes) and a real CIFAR batch with random byte
and opcode edits, deletions, duplications and splices of the attack
corpus's fragments, and loads each result. Every file must either load
into plain data (tensors, NumPy numbers, builtin containers, MMEngine's
``HistoryBuffer``) or be refused with one line (``CheckpointError`` /
``DatasetError``); any other exception, a payload's marker file, a change
of ``HistoryBuffer``'s class state or a crash (the exit status of the
process) is a finding.

Usage::

    python tests/test_fileio/fuzz.py --seconds 600 [--seed 0] [--out DIR]

Exit status 1 with the findings (and the files, under ``--out``) if any.
"""
import argparse
import os
import os.path as osp
import pickle
import random
import sys
import tempfile
import time
from collections import Counter, OrderedDict

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from corpus import (all_attacks, archive_members,  # noqa: E402
                    real_checkpoint, write_archive)

from mmengine.logging import HistoryBuffer  # noqa: E402

import mmrevode  # noqa: E402,F401
from mmrevode.datasets import DatasetError  # noqa: E402
from mmrevode.datasets.safe_pickle import load_data_pickle  # noqa: E402
from mmrevode.engine import (CheckpointError, load_from_local,  # noqa: E402
                             plain_message_hub)

#: What a loaded file may hold.
PLAIN_TYPES = (dict, OrderedDict, Counter, list, tuple, set, frozenset, str,
               bytes, int, float, bool, type(None), torch.Tensor,
               np.ndarray, np.generic, np.dtype, torch.dtype, torch.device,
               torch.Size, HistoryBuffer)
OPCODES = sorted({op.code.encode('latin1')[0]
                  for op in __import__('pickletools').opcodes})


def check_plain(obj):
    """Raise AssertionError if ``obj`` holds anything but plain data."""
    pending, seen = [obj], set()
    while pending:
        item = pending.pop()
        assert isinstance(item, PLAIN_TYPES), type(item)
        if isinstance(item, (dict, list, tuple, set, frozenset)):
            if id(item) in seen:
                continue
            seen.add(id(item))
            pending.extend(item.values() if isinstance(item, dict) else item)
            if isinstance(item, dict):
                pending.extend(item.keys())


def mutate(data, rng, fragments):
    """One to four random edits of ``data``."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randrange(max(len(data), 1))
        kind = rng.random()
        if kind < 0.3 and data:
            data[pos] = rng.randrange(256)
        elif kind < 0.5 and data:
            data[pos] = rng.choice(OPCODES)
        elif kind < 0.6:
            data[pos:pos] = bytes(
                rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind < 0.7:
            del data[pos:pos + rng.randint(1, 16)]
        elif kind < 0.8:
            end = pos + rng.randint(1, 64)
            data[pos:pos] = data[pos:end]
        else:
            data[pos:pos] = rng.choice(fragments)
    return bytes(data)


def cifar_batch():
    rng = np.random.default_rng(0)
    return pickle.dumps(
        dict(batch_label='training batch 1 of 5',
             data=rng.integers(0, 256, (4, 3072), dtype=np.uint8),
             labels=[0, 1, 2, 3],
             filenames=[b'a.png', b'b.png', b'c.png', b'd.png']), 2)


def run(seconds, seed, out):
    rng = random.Random(seed)
    folder = tempfile.mkdtemp(prefix='fuzz_')
    marker = osp.join(folder, 'created_by_a_payload')
    fragments = [body for _, _, body in all_attacks(marker)]
    seeds = {}
    for name, checkpoint in (('mmengine', real_checkpoint()),
                             ('mmrevode', plain_message_hub(
                                 real_checkpoint()))):
        path = osp.join(folder, f'{name}.pth')
        torch.save(checkpoint, path)
        seeds[name] = (archive_members(path), open(path, 'rb').read())
    batch = cifar_batch()
    statistics = dict(HistoryBuffer._statistics_methods)
    counts = Counter()
    findings = []
    path = osp.join(folder, 'case.pth')
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        target = rng.random()
        if target < 0.2:
            data = mutate(batch, rng, fragments)
            kind = 'data'
        else:
            members, whole = seeds[rng.choice(sorted(seeds))]
            if target < 0.85:
                kind = 'pickle'
                write_archive(path, {**members, 'data.pkl': mutate(
                    members['data.pkl'], rng, fragments)})
            else:
                kind = 'archive'
                with open(path, 'wb') as f:
                    f.write(mutate(whole, rng, fragments))
        try:
            if kind == 'data':
                result = load_data_pickle(data, 'case')
            else:
                result = load_from_local(path, map_location='cpu')
            check_plain(result)
            outcome = 'loaded'
        except (CheckpointError, DatasetError) as e:
            outcome = 'refused'
            if '\n' in str(e):
                outcome = 'finding: message of several lines'
        except AssertionError as e:
            outcome = f'finding: loaded {e}'
        except BaseException as e:  # noqa: B902
            outcome = f'finding: {type(e).__name__}: {str(e)[:200]}'
        if osp.exists(marker):
            outcome = 'finding: the marker file was created'
            os.remove(marker)
        if dict(HistoryBuffer._statistics_methods) != statistics:
            outcome = 'finding: HistoryBuffer class state changed'
        counts[(kind, outcome.split(':')[0])] += 1
        if outcome.startswith('finding'):
            saved = osp.join(out, f'finding_{len(findings)}.{kind}')
            os.makedirs(out, exist_ok=True)
            with open(saved, 'wb') as f:
                f.write(data if kind == 'data' else open(path, 'rb').read())
            findings.append(f'{saved}: {outcome}')
    total = sum(counts.values())
    print(f'fuzzed {total} files in {seconds:g} s (seed {seed}): ' +
          ', '.join(f'{k[0]} {k[1]} {v}' for k, v in sorted(counts.items())))
    for finding in findings:
        print(finding)
    return 1 if findings else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=30)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default=osp.join(tempfile.gettempdir(),
                                                  'fuzz_findings'))
    args = parser.parse_args(argv)
    return run(args.seconds, args.seed, args.out)


if __name__ == '__main__':
    sys.exit(main())
