"""Memory of a detection backbone's training step, reversible against plain.

For each execution mode (``reversible``: the memory-efficient backward;
``plain``: ordinary autograd on the same modules; ``checkpoint``: plain
autograd with ``torch.utils.checkpoint`` around every block), a fresh
process builds the backbone in training mode, runs one forward and backward
pass on a random batch and reports

- **saved bytes**: the tensors autograd keeps for the backward pass, caught
  with ``torch.autograd.graph.saved_tensors_hooks``, counted if the graph
  still holds them when the forward pass is over, and once per storage
  (views of one tensor share it); parameters are left out, and the figure
  is split into the stem, each unit, and the rest (transitions and output
  norms);
- **peak RSS increase** (CPU): the process's peak resident memory
  (``ru_maxrss``) after the step minus its resident memory just before, so
  it covers activations, gradients and temporaries;
- **peak allocated** (CUDA, with ``--device cuda``):
  ``torch.cuda.max_memory_allocated`` during the step minus the memory
  allocated before it.

Example::

    python tools/det/backbone_memory.py --arch det-38 --shape 2 3 512 512
    python tools/det/backbone_memory.py --arch det-74 --device cuda \\
        --out memory.json
"""
import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time
import weakref

MODES = ('reversible', 'plain', 'checkpoint')
MiB = 2**20


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Memory of a backbone training step, reversible vs '
        'plain autograd, each in a fresh process.')
    parser.add_argument(
        '--backbone',
        default='HamiltonianNet',
        choices=['HamiltonianNet', 'MidpointNet', 'LeapfrogNet'])
    parser.add_argument('--arch', default='det-38', help='preset name')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=4,
        default=[2, 3, 512, 512],
        metavar=('N', 'C', 'H', 'W'),
        help='input batch shape (default: 2 3 512 512)')
    parser.add_argument(
        '--modes', nargs='+', default=list(MODES), choices=MODES)
    parser.add_argument(
        '--frozen-stages',
        type=int,
        default=-1,
        help='as in the backbone; -1 (default) trains everything')
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    parser.add_argument('--out', help='also write the figures to this JSON')
    parser.add_argument('--worker', choices=MODES, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def current_rss() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(args) -> dict:
    """One training step of one mode, in this process."""
    import torch
    from mmpretrain.registry import MODELS

    import mmrevode  # noqa: F401

    torch.manual_seed(0)
    device = torch.device(args.device)
    model = MODELS.build(
        dict(
            type=args.backbone,
            arch=args.arch,
            stem_type='imagenet',
            out_indices=(0, 1, 2, 3),
            frozen_stages=args.frozen_stages,
            reversible=args.worker == 'reversible',
            with_cp=args.worker == 'checkpoint')).to(device).train()
    x = torch.randn(*args.shape, device=device)
    param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}

    # Attribute each saved tensor to the top-level part that saved it.
    region = ['other']
    parts = [('stem', model.stem)] + [(f'unit{i}', u)
                                      for i, u in enumerate(model.units)]
    handles = []
    for name, module in parts:
        handles.append(
            module.register_forward_pre_hook(
                lambda m, i, name=name: region.__setitem__(0, name)))
        handles.append(
            module.register_forward_hook(
                lambda m, i, o: region.__setitem__(0, 'other')))
    packed = []

    def pack(tensor):
        # A weak reference: what autograd packs but drops (e.g. in a unit
        # whose inputs and parameters need no gradient) is not counted.
        packed.append((region[0], weakref.ref(tensor)))
        return tensor

    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        allocated_before = torch.cuda.memory_allocated(device)
    rss_before = current_rss()
    start = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        outs = model(x)
    storages, tensor = {}, None
    for name, ref in packed:
        tensor = ref()
        if tensor is None:
            continue
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in param_ptrs and key not in storages:
            storages[key] = (name, storage.nbytes())
    del tensor, packed
    sum(out.float().mean() for out in outs).backward()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    for handle in handles:
        handle.remove()

    by_region = {}
    for name, nbytes in storages.values():
        by_region[name] = by_region.get(name, 0) + nbytes
    result = dict(
        mode=args.worker,
        saved_bytes=sum(by_region.values()),
        saved_bytes_by_part=by_region,
        num_saved_storages=len(storages),
        step_seconds=seconds,
        params=sum(p.numel() for p in model.parameters()),
        output_shapes=[list(o.shape) for o in outs])
    if device.type == 'cuda':
        result['cuda_peak_allocated_increase'] = \
            torch.cuda.max_memory_allocated(device) - allocated_before
    else:
        result['peak_rss_increase'] = peak_rss() - rss_before
    return result


def run_worker(args, mode) -> dict:
    argv = [sys.executable, osp.abspath(__file__), '--worker', mode,
            '--backbone', args.backbone, '--arch', args.arch, '--shape',
            *map(str, args.shape), '--frozen-stages', str(args.frozen_stages),
            '--device', args.device]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, text=True,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args)))
        return
    results = [run_worker(args, mode) for mode in args.modes]
    peak_key = 'cuda_peak_allocated_increase' if args.device.startswith(
        'cuda') else 'peak_rss_increase'
    print(f'{args.backbone} {args.arch}, input {tuple(args.shape)}, '
          f'{results[0]["params"] / 1e6:.2f} M parameters, '
          f'device {args.device}')
    print(f'{"mode":<12}{"saved MiB":>11}{"units MiB":>11}'
          f'{peak_key.replace("_", " ") + " MiB":>32}{"step s":>9}')
    for r in results:
        units = sum(v for k, v in r['saved_bytes_by_part'].items()
                    if k.startswith('unit'))
        print(f'{r["mode"]:<12}{r["saved_bytes"] / MiB:>11.1f}'
              f'{units / MiB:>11.1f}{r[peak_key] / MiB:>32.1f}'
              f'{r["step_seconds"]:>9.2f}')
    for r in results:
        parts = ', '.join(f'{k} {v / MiB:.1f}'
                          for k, v in sorted(r['saved_bytes_by_part'].items()))
        print(f'  {r["mode"]}: saved MiB by part: {parts}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(config=vars(args), results=results), f, indent=2)


if __name__ == '__main__':
    main()
