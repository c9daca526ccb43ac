"""Memory and time of a training step: reversible, plain autograd, checkpoint.

For every model (and batch size) given, the tool builds the same network in
three modes, with the same weights:

==============  =============================================================
mode            backbone arguments
==============  =============================================================
``reversible``  ``reversible=True``: one autograd function per unit, nothing
                stored inside a unit (the default of the backbones)
``plain``       ``reversible=False``: ordinary autograd, every activation
                stored
``checkpoint``  ``reversible=False, with_cp=True``: ``torch.utils.checkpoint``
                around each block (stores each block's input, recomputes the
                block in the backward)
==============  =============================================================

and measures one training step (forward, cross-entropy loss of a linear
classifier on the globally pooled last output, backward, SGD update) on
random images:

- ``saved_bytes``: bytes of the tensors saved for backward during the
  forward, counted with :func:`torch.autograd.graph.saved_tensors_hooks` and
  deduplicated by storage; parameters and buffers are not counted. The
  inputs that ``torch.utils.checkpoint`` keeps for its recompute go through
  the same hooks, so all three modes are counted alike (and
  ``forward_held_bytes`` checks it independently).
- ``forward_held_bytes``: memory still allocated when the forward (and loss)
  has finished, over what was allocated before it: the saved activations of
  every mode plus the loss graph's outputs. On a GPU from
  ``torch.cuda.memory_allocated``; on a CPU from the process's resident set
  (``/proc/self/status``), after returning freed heap memory to the system.
- ``peak_bytes``: the peak memory of the whole step over what is held
  between steps (weights, optimizer state; the gradients, set to None before
  the step, count): ``torch.cuda.max_memory_allocated`` on a GPU; on a CPU
  the peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs``)
  over the resident set before the step. Resident-set readings are page
  granular: expect a few percent of noise. The memory is measured after all
  the timing, with glibc's heap set to return freed memory promptly
  (``--malloc-trim-threshold``), so that the reading follows the memory in
  use rather than the allocator's slack; the times are taken before, with
  glibc's defaults, because that setting slows steps down.
- ``step_time_s``: median wall time of the timed steps. The modes are run in
  rounds, one step of each per round (in alternating order), after warm-up,
  so every ratio compares steps taken at nearly the same time;
  ``time_ratio_to_plain`` is the median over rounds of the per-round ratio.
- ``cpu_time_s``: the same for the CPU time of the process
  (``time.process_time``). On a machine shared with other work, and with one
  thread, it is much steadier than the wall time; with several threads it
  includes their spin-waiting.

It prints a table, shows progress while it runs, and writes ``--json`` (the
machine, then one record per model, batch size and mode) and ``--plot`` (saved
bytes, peak memory, step time and CPU time against depth, one line per
mode).

Models are given as ``TYPE:ARCH`` (``HamiltonianNet:110``, or with an arch
dict, ``"HamiltonianNet:{'blocks': [4, 4, 4], 'widths': [32, 64, 128]}"``),
or as ``TYPE`` with ``--blocks-per-unit`` for a depth sweep.

Examples::

    # the table in docs/performance.md
    python tools/analysis_tools/benchmark.py HamiltonianNet:110 \\
        HamiltonianNet:218 --batch-size 64 --steps 10 --threads 1 \\
        --json docs/figures/benchmark.json --plot docs/figures/benchmark.png

    # "arbitrarily deep": 1 to 100 blocks per unit (Hamiltonian-14 to -1202)
    python tools/analysis_tools/benchmark.py HamiltonianNet \\
        --blocks-per-unit 1 4 16 64 100 --widths 32 64 128 --batch-size 64 \\
        --json docs/figures/depth_sweep.json \\
        --plot docs/figures/depth_sweep.png
"""
import argparse
import ast
import ctypes
import gc
import json
import logging
import os
import os.path as osp
import platform
import re
import statistics
import time
from contextlib import contextmanager
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MODES = {
    'reversible': dict(reversible=True, with_cp=False),
    'plain': dict(reversible=False, with_cp=False),
    'checkpoint': dict(reversible=False, with_cp=True),
}
#: Depth (counted as in the paper) = LAYERS_PER_BLOCK * blocks + 2.
LAYERS_PER_BLOCK = {
    'HamiltonianNet': 4,
    'MidpointNet': 2,
    'LeapfrogNet': 2,
}
RECORD_FIELDS = ('name', 'model', 'arch', 'depth', 'blocks', 'mode',
                 'batch_size', 'input_size', 'device', 'dtype', 'params',
                 'saved_bytes', 'forward_held_bytes', 'peak_bytes',
                 'memory_method', 'step_time_s', 'step_times_s',
                 'cpu_time_s', 'cpu_times_s', 'saved_ratio_to_plain',
                 'peak_ratio_to_plain', 'time_ratio_to_plain',
                 'cpu_time_ratio_to_plain')


# -- models -------------------------------------------------------------------
def _registry():
    import mmrevode  # noqa: F401  (registers the backbones)
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    return MODELS


def parse_spec(spec: str) -> dict:
    """``'TYPE:ARCH'`` to ``dict(name, model, arch, blocks, depth, spec)``."""
    type_name, _, arch = spec.partition(':')
    cls = _registry().get(type_name)
    if cls is None:
        raise ValueError(f'{type_name!r} is not a backbone registered in '
                         'MMPretrain.')
    if not arch:
        raise ValueError(f'{spec!r}: give TYPE:ARCH, or TYPE with '
                         '--blocks-per-unit.')
    value = ast.literal_eval(arch) if arch[0] in '{[(' else arch
    settings = getattr(cls, 'arch_settings', {})
    if isinstance(value, dict):
        blocks = list(value['blocks'])
    elif str(value).lower() in settings:
        blocks = list(settings[str(value).lower()]['blocks'])
    else:
        raise ValueError(f'{type_name} has no preset {value!r}; presets: '
                         f'{sorted(settings)}.')
    per_block = LAYERS_PER_BLOCK.get(type_name)
    depth = per_block * sum(blocks) + 2 if per_block else None
    if isinstance(value, dict):
        name = f'{type_name}-{depth}' if depth else f'{type_name}-{blocks}'
    else:
        name = f'{type_name}-{value}'
    return dict(name=name, model=type_name, arch=value, blocks=blocks,
                depth=depth, spec=spec)


def sweep_specs(model: str, blocks_per_unit: Sequence[int],
                widths: Sequence[int]) -> List[str]:
    """``TYPE:{'blocks': [n] * len(widths), 'widths': widths}`` for each n."""
    return [
        f'{model}:' + repr(dict(blocks=[n] * len(widths), widths=list(widths)))
        for n in blocks_per_unit
    ]


class Classifier(nn.Module):
    """Backbone, global average pooling of its last output, linear head."""

    def __init__(self, backbone: nn.Module, num_classes: int,
                 in_channels: int):
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        feat = self.backbone(x)[-1]
        return self.fc(feat.mean(dim=(2, 3)))


def build_models(spec: dict,
                 modes: Sequence[str],
                 num_classes: int = 10,
                 input_size: int = 32,
                 backbone_options: Optional[dict] = None,
                 device: str = 'cpu',
                 dtype: torch.dtype = torch.float32,
                 seed: int = 0) -> Dict[str, Classifier]:
    """One classifier per mode, all with the same weights."""
    models = _registry()
    cfg = dict(type=spec['model'], arch=spec['arch'])
    cfg.update(backbone_options or {})
    torch.manual_seed(seed)
    backbone = models.build(dict(cfg, **MODES['plain']))
    _quiet(backbone.init_weights)
    with torch.no_grad():
        backbone.eval()
        probe = torch.zeros(1, getattr(backbone, 'in_channels', 3),
                            input_size, input_size)
        channels = backbone(probe)[-1].shape[1]
    reference = Classifier(backbone, num_classes, channels)
    state = reference.state_dict()
    result = {}
    for mode in modes:
        model = Classifier(
            models.build(dict(cfg, **MODES[mode])), num_classes, channels)
        model.load_state_dict(state)
        result[mode] = model.to(device=device, dtype=dtype).train()
    return result


def _quiet(fn: Callable):
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        return fn()
    finally:
        logger.setLevel(level)


# -- memory -------------------------------------------------------------------
def _proc_status_kib(key: str) -> int:
    with open('/proc/self/status') as f:
        match = re.search(rf'^{key}:\s+(\d+) kB', f.read(), re.MULTILINE)
    return int(match.group(1))


_LIBC = None
# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def _libc():
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL('libc.so.6')
            _LIBC.malloc_trim  # glibc only
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC


def _release_free_memory():
    """Collect garbage and give freed heap pages back to the system."""
    gc.collect()
    if _libc():
        _libc().malloc_trim(0)


def configure_malloc(trim_threshold: int = 1 << 20,
                     mmap_threshold: int = 128 << 10) -> Optional[str]:
    """Have glibc return freed memory to the system promptly.

    By default glibc raises its mmap threshold as a process frees large
    blocks, after which large tensors come from the heap, where freed
    memory stays in the resident set. In a long backward this slack grew
    with depth (for Hamiltonian-770 at batch 64, 330 to 430 MiB of resident
    set over the about 100 MiB the reversible step actually held), so the
    peak resident set measured the allocator's history rather than the
    model. A fixed mmap threshold (``M_MMAP_THRESHOLD``, glibc's initial
    128 KiB), trim threshold (``M_TRIM_THRESHOLD``) and no top padding
    (``M_TOP_PAD``) keep the resident set close to the memory in use, as
    ``torch.cuda.max_memory_allocated`` is on a GPU. The same holds for a
    process started with ``MALLOC_MMAP_THRESHOLD_=131072
    MALLOC_TRIM_THRESHOLD_=1048576 MALLOC_TOP_PAD_=0``. It slows steps down
    (pages are faulted in for every large tensor), so step times are taken
    before it is set.

    Returns a description of the setting, or None where there is no glibc.
    """
    libc = _libc()
    if not libc or trim_threshold < 0:
        return None
    if not (libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
            and libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold)
            and libc.mallopt(_M_TOP_PAD, 0)):
        return None
    return (f'glibc M_MMAP_THRESHOLD={mmap_threshold}, '
            f'M_TRIM_THRESHOLD={trim_threshold}, M_TOP_PAD=0')


class MemoryMeter:
    """Memory allocated now and at peak, over a baseline.

    On CUDA: ``torch.cuda.memory_allocated`` and ``max_memory_allocated``.
    On CPU: the resident set size and its high-water mark from
    ``/proc/self/status``; the mark is reset by writing 5 to
    ``/proc/self/clear_refs`` (Linux). Where neither works, the readings are
    None.
    """

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.method = 'cuda' if self.device.type == 'cuda' else 'rss'
        self.base = 0
        if self.method == 'rss':
            try:
                _proc_status_kib('VmRSS')
                with open('/proc/self/clear_refs', 'w') as f:
                    f.write('5')
            except (OSError, AttributeError):
                self.method = None

    def _sync(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def start(self):
        """Set the baseline and reset the peak."""
        _release_free_memory()
        self._sync()
        if self.method == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        elif self.method == 'rss':
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')
            self.base = _proc_status_kib('VmRSS') * 1024

    def current(self) -> Optional[int]:
        """Allocated now, over the baseline (freed memory released first)."""
        _release_free_memory()
        self._sync()
        if self.method == 'cuda':
            return torch.cuda.memory_allocated(self.device) - self.base
        if self.method == 'rss':
            return _proc_status_kib('VmRSS') * 1024 - self.base
        return None

    def peak(self) -> Optional[int]:
        """Peak since :meth:`start`, over the baseline."""
        self._sync()
        if self.method == 'cuda':
            return torch.cuda.max_memory_allocated(self.device) - self.base
        if self.method == 'rss':
            return _proc_status_kib('VmHWM') * 1024 - self.base
        return None


@contextmanager
def count_saved_bytes(exclude: Sequence[Tensor] = ()):
    """Count the bytes saved for backward inside the context.

    Yields a dict whose ``'bytes'`` is the total over distinct storages
    (a tensor saved by several operations, or views of one tensor, count
    once). Storages of the tensors in ``exclude`` (parameters, buffers) are
    not counted.
    """
    excluded = {t.untyped_storage().data_ptr() for t in exclude}
    seen: Dict[int, int] = {}
    result = dict(bytes=0)

    def pack(tensor: Tensor) -> Tensor:
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):  # e.g. sparse tensors
            return tensor
        ptr = storage.data_ptr()
        if ptr not in excluded and ptr not in seen:
            seen[ptr] = storage.nbytes()
            result['bytes'] += storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield result


# -- one training step --------------------------------------------------------
class TrainStep:
    """Forward, loss, backward and SGD update of one model."""

    def __init__(self, model: Classifier, images: Tensor, labels: Tensor,
                 lr: float = 0.01):
        self.model = model
        self.images = images
        self.labels = labels
        # A learning rate of 0 keeps the weights (and so the work) the same
        # from step to step while the update still runs.
        self.optimizer = torch.optim.SGD(
            model.parameters(), lr=lr, momentum=0.9)
        self.device = images.device

    def zero_grad(self):
        self.optimizer.zero_grad(set_to_none=True)

    def forward(self) -> Tensor:
        return F.cross_entropy(self.model(self.images), self.labels)

    def backward(self, loss: Tensor):
        loss.backward()
        self.optimizer.step()

    def __call__(self) -> Tuple[float, float]:
        """Run a step; return its wall time and the process's CPU time."""
        sync = self.device.type == 'cuda'
        if sync:
            torch.cuda.synchronize(self.device)
        start, cpu_start = time.perf_counter(), time.process_time()
        self.zero_grad()
        self.backward(self.forward())
        if sync:
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start, time.process_time() - cpu_start

    def saved_bytes(self) -> int:
        exclude = list(self.model.parameters()) + list(self.model.buffers())
        self.zero_grad()
        with count_saved_bytes(exclude) as counted:
            loss = self.forward()
        self.backward(loss)
        return counted['bytes']

    def memory(self, meter: MemoryMeter) -> Dict[str, Optional[int]]:
        """Memory of a step over what is held between steps (weights,
        optimizer state); the gradients it allocates count."""
        self.zero_grad()
        meter.start()
        loss = self.forward()
        held = meter.current()
        self.backward(loss)
        del loss
        return dict(forward_held_bytes=held, peak_bytes=meter.peak())


# -- the benchmark ------------------------------------------------------------
def _ratio(value, reference):
    if value is None or not reference:
        return None
    return value / reference


def _paired_ratio(values: Sequence[float],
                  references: Sequence[float]) -> Optional[float]:
    """Median over rounds of ``value / reference``."""
    ratios = [v / r for v, r in zip(values, references) if r > 0]
    return statistics.median(ratios) if ratios else None


def _train_steps(spec: dict, modes: Sequence[str], batch_size: int,
                 input_size: int, device: str, dtype: torch.dtype,
                 backbone_options: Optional[dict], lr: float,
                 seed: int) -> Dict[str, TrainStep]:
    models = build_models(spec, modes, input_size=input_size,
                          backbone_options=backbone_options, device=device,
                          dtype=dtype, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    in_channels = getattr(models[modes[0]].backbone, 'in_channels', 3)
    images = torch.randn(batch_size, in_channels, input_size, input_size,
                         generator=generator).to(device=device, dtype=dtype)
    labels = torch.randint(0, 10, (batch_size, ), generator=generator)
    return {
        mode: TrainStep(model, images, labels.to(device), lr=lr)
        for mode, model in models.items()
    }


def time_model(spec: dict,
               modes: Sequence[str],
               batch_size: int,
               input_size: int = 32,
               steps: int = 5,
               warmup: int = 1,
               device: str = 'cpu',
               dtype: torch.dtype = torch.float32,
               backbone_options: Optional[dict] = None,
               lr: float = 0.0,
               seed: int = 0,
               progress: Optional[Callable[[], None]] = None) -> List[dict]:
    """Saved bytes and step times of one model at one batch size.

    Returns one record per mode, without the memory readings (see
    :func:`memory_model`).
    """
    progress = progress or (lambda: None)
    runs = _train_steps(spec, modes, batch_size, input_size, device, dtype,
                        backbone_options, lr, seed)
    records = {}
    for mode, run in runs.items():
        for _ in range(warmup):
            run()
            progress()
        records[mode] = dict(
            name=spec['name'],
            model=spec['model'],
            arch=spec['arch'],
            depth=spec['depth'],
            blocks=spec['blocks'],
            mode=mode,
            batch_size=batch_size,
            input_size=input_size,
            device=str(device),
            dtype=str(dtype).replace('torch.', ''),
            params=sum(p.numel() for p in run.model.parameters()),
            saved_bytes=run.saved_bytes())
        progress()

    times = {mode: [] for mode in runs}
    cpu_times = {mode: [] for mode in runs}
    order = list(runs)
    for i in range(steps):
        for mode in (order if i % 2 == 0 else order[::-1]):
            wall, cpu = runs[mode]()
            times[mode].append(wall)
            cpu_times[mode].append(cpu)
            progress()
    plain = records.get('plain')
    for mode, record in records.items():
        record['saved_ratio_to_plain'] = _ratio(
            record['saved_bytes'], plain['saved_bytes']) if plain else None
        for key, values in (('step_time', times), ('cpu_time', cpu_times)):
            record[f'{key}s_s'] = values[mode]
            record[f'{key}_s'] = statistics.median(values[mode]) \
                if values[mode] else None
            record[f'{key}_ratio_to_plain'] = _paired_ratio(
                values[mode], values['plain']) if plain else None
        record['time_ratio_to_plain'] = record.pop('step_time_ratio_to_plain')
    del runs
    _release_free_memory()
    return [records[mode] for mode in modes]


def memory_model(spec: dict,
                 modes: Sequence[str],
                 batch_size: int,
                 input_size: int = 32,
                 warmup: int = 1,
                 device: str = 'cpu',
                 dtype: torch.dtype = torch.float32,
                 backbone_options: Optional[dict] = None,
                 lr: float = 0.0,
                 seed: int = 0,
                 progress: Optional[Callable[[], None]] = None,
                 **unused) -> Dict[str, dict]:
    """Memory held after the forward and peak memory of a step, per mode."""
    progress = progress or (lambda: None)
    runs = _train_steps(spec, modes, batch_size, input_size, device, dtype,
                        backbone_options, lr, seed)
    meter = MemoryMeter(device)
    result = {}
    for mode, run in runs.items():
        for _ in range(warmup):
            run()
            progress()
        result[mode] = dict(run.memory(meter), memory_method=meter.method)
        progress()
    del runs
    _release_free_memory()
    return result


def add_memory(records: List[dict], memory: Dict[str, dict]):
    """Merge :func:`memory_model`'s readings into the records of a model."""
    for record in records:
        record.update(memory[record['mode']])
    plain = memory.get('plain')
    for record in records:
        record['peak_ratio_to_plain'] = _ratio(
            record['peak_bytes'], plain['peak_bytes']) if plain else None


def benchmark_model(spec: dict, modes: Sequence[str], batch_size: int,
                    **kwargs) -> List[dict]:
    """Times, then memory, of one model at one batch size in every mode.

    Returns one record per mode (fields: :data:`RECORD_FIELDS`). The
    allocator is left as it is; :func:`run` configures it between the two.
    """
    records = time_model(spec, modes, batch_size, **kwargs)
    add_memory(records, memory_model(spec, modes, batch_size, **kwargs))
    return records


def machine_info(device: str) -> dict:
    """What the numbers were measured on."""
    info = dict(
        platform=platform.platform(),
        processor=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        torch=torch.__version__,
        python=platform.python_version(),
        device=str(device),
        load_average_start=list(os.getloadavg()) if hasattr(
            os, 'getloadavg') else None)
    try:
        with open('/proc/cpuinfo') as f:
            match = re.search(r'^model name\s*:\s*(.+)$', f.read(),
                              re.MULTILINE)
        if match:
            info['processor'] = match.group(1).strip()
    except OSError:
        pass
    try:
        info['memory_total_bytes'] = _proc_meminfo_kib('MemTotal') * 1024
    except (OSError, AttributeError):
        pass
    if torch.device(device).type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(torch.device(device))
    return info


def _proc_meminfo_kib(key: str) -> int:
    with open('/proc/meminfo') as f:
        return int(
            re.search(rf'^{key}:\s+(\d+) kB', f.read(),
                      re.MULTILINE).group(1))


def run(specs: Sequence[str],
        modes: Sequence[str] = tuple(MODES),
        batch_sizes: Sequence[int] = (64, ),
        progress_bar: bool = True,
        malloc_trim_threshold: int = 1 << 20,
        **kwargs) -> dict:
    """Benchmark every model and batch size; return the JSON document.

    The step times (and saved bytes) are taken in this process, with the
    allocator as it is. On a CPU with glibc, the memory is then measured in
    a fresh Python process whose heap is set to return freed memory promptly
    (:func:`configure_malloc`): that setting slows steps down, and set in a
    process that has already run the timed steps, it still left 60-85 MiB
    of scattered heap in the peaks. A negative ``malloc_trim_threshold``
    measures the memory here, with the allocator as it is.
    """
    parsed = [parse_spec(s) for s in specs]
    device = kwargs.get('device', 'cpu')
    machine = machine_info(device)
    warmup = kwargs.get('warmup', 1)
    per_model = len(modes) * (warmup + 1 + kwargs.get('steps', 5))
    bar = None
    if progress_bar:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(parsed) * len(batch_sizes) * per_model)
    progress = bar.update if bar else None
    jobs = [(spec, batch) for spec in parsed for batch in batch_sizes]
    results = [
        time_model(spec, modes, batch, progress=progress, **kwargs)
        for spec, batch in jobs
    ]
    if bar:
        print()
    isolate = torch.device(device).type == 'cpu' and \
        malloc_trim_threshold >= 0 and bool(_libc())
    if isolate:
        print('Measuring memory in a separate process ...', flush=True)
        memories, machine['malloc'] = _memory_in_subprocess(
            [(spec['spec'], batch) for spec, batch in jobs], modes,
            malloc_trim_threshold, kwargs)
    else:
        machine['malloc'] = None
        memories = [
            memory_model(spec, modes, batch, **kwargs)
            for spec, batch in jobs
        ]
    for records, memory in zip(results, memories):
        add_memory(records, memory)
    machine['load_average_end'] = list(os.getloadavg()) if hasattr(
        os, 'getloadavg') else None
    return dict(
        machine=machine,
        records=[record for group in results for record in group])


def _memory_in_subprocess(jobs: List[tuple], modes: Sequence[str],
                          trim_threshold: int, kwargs: dict):
    """Run :func:`memory_model` for each job in a fresh process."""
    import subprocess
    import sys
    import tempfile
    options = dict(kwargs)
    options['dtype'] = str(options.get('dtype', torch.float32)).replace(
        'torch.', '')
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in [root, env.get('PYTHONPATH')] if p)
    with tempfile.TemporaryDirectory() as tmp:
        request, answer = osp.join(tmp, 'in.json'), osp.join(tmp, 'out.json')
        with open(request, 'w') as f:
            json.dump(
                dict(jobs=jobs, modes=list(modes), options=options,
                     trim_threshold=trim_threshold,
                     threads=torch.get_num_threads()), f)
        subprocess.run([
            sys.executable,
            osp.abspath(__file__), '--memory-worker', request, answer
        ],
                       env=env,
                       check=True)
        with open(answer) as f:
            result = json.load(f)
    return result['memories'], result['malloc']


def _memory_worker(request: str, answer: str):
    """The other end of :func:`_memory_in_subprocess`."""
    with open(request) as f:
        job = json.load(f)
    malloc = configure_malloc(job['trim_threshold'])
    torch.set_num_threads(job['threads'])
    options = job['options']
    options['dtype'] = getattr(torch, options['dtype'])
    memories = [
        memory_model(parse_spec(spec), job['modes'], batch, **options)
        for spec, batch in job['jobs']
    ]
    with open(answer, 'w') as f:
        json.dump(dict(memories=memories, malloc=malloc), f)


# -- output -------------------------------------------------------------------
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
    for (model, batch, mode), rows in groups.items():
        rows = sorted(rows, key=_x_value)
        xs = [_x_value(r) for r in rows]
        label = mode if len(groups) <= len(styles) else \
            f'{mode}, {model}, batch {batch}'
        for ax, (key, _, scale) in zip(axes, panels):
            pts = [(x, r[key] / scale) for x, r in zip(xs, rows)
                   if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), styles.get(mode, 'x-'), label=label)
    for ax, (_, ylabel, _) in zip(axes, panels):
        ax.set_xlabel('depth' if all(r['depth'] for r in records) else
                      'blocks')
        ax.set_ylabel(ylabel)  # linear axes: linear growth looks linear
        ax.set_xlim(left=0)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
    axes[0].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _x_value(record: dict) -> float:
    return record['depth'] or sum(record['blocks'])


# -- command line -------------------------------------------------------------
def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Memory and time of a training step with the reversible '
        'backward, plain autograd and checkpointing.')
    parser.add_argument(
        'models',
        nargs='+',
        help='TYPE:ARCH such as HamiltonianNet:110, or TYPE with '
        '--blocks-per-unit')
    parser.add_argument(
        '--blocks-per-unit',
        type=int,
        nargs='+',
        help='depth sweep: these numbers of blocks in every unit')
    parser.add_argument(
        '--widths',
        type=int,
        nargs='+',
        default=[32, 64, 128],
        help='unit widths of the depth sweep (default: 32 64 128)')
    parser.add_argument(
        '--modes', nargs='+', choices=list(MODES), default=list(MODES))
    parser.add_argument('--batch-size', type=int, nargs='+', default=[64])
    parser.add_argument('--input-size', type=int, default=32)
    parser.add_argument(
        '--steps', type=int, default=5, help='timed steps per mode')
    parser.add_argument(
        '--warmup', type=int, default=1, help='untimed steps per mode')
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--dtype', choices=['float32', 'float64'], default='float32')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch.set_num_threads (default: leave as is)')
    parser.add_argument(
        '--lr',
        type=float,
        default=0.0,
        help='SGD learning rate of the timed steps (default 0: the update '
        'runs but the weights stay, so every step does the same work)')
    parser.add_argument(
        '--backbone-options',
        nargs='+',
        action=DictAction,
        help='override backbone arguments, e.g. h=0.05')
    parser.add_argument(
        '--malloc-trim-threshold',
        type=int,
        default=1 << 20,
        help='on a CPU, set glibc\'s M_TRIM_THRESHOLD to this many bytes '
        '(and M_TOP_PAD to 0) so that the resident set follows the memory '
        'in use; -1 keeps glibc\'s defaults (default: 1 MiB)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='write the records to this file')
    parser.add_argument('--plot', help='write the figure to this PNG file')
    parser.add_argument('--title', help='title of the figure')
    parser.add_argument(
        '--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    import sys
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['--memory-worker']:
        return _memory_worker(*argv[1:3])
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    specs = args.models
    if args.blocks_per_unit:
        if any(':' in m for m in specs):
            raise SystemExit('--blocks-per-unit: give backbone types only '
                             '(e.g. HamiltonianNet), not TYPE:ARCH.')
        specs = [
            s for m in specs
            for s in sweep_specs(m, args.blocks_per_unit, args.widths)
        ]
    result = run(
        specs,
        modes=args.modes,
        batch_sizes=args.batch_size,
        progress_bar=not args.no_progress,
        input_size=args.input_size,
        steps=args.steps,
        warmup=args.warmup,
        device=args.device,
        dtype=getattr(torch, args.dtype),
        backbone_options=args.backbone_options,
        lr=args.lr,
        seed=args.seed,
        malloc_trim_threshold=args.malloc_trim_threshold)
    print(table(result['records']))
    m = result['machine']
    print(f"{m['processor']}, {m['cpu_count']} CPUs, {m['torch_threads']} "
          f"torch threads, device {m['device']}; load average "
          f"{m['load_average_start'][0]:.2f} at the start, "
          f"{m['load_average_end'][0]:.2f} at the end; malloc: "
          f"{m.get('malloc') or 'defaults'}.")
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
        print(f'Wrote {args.json}')
    if args.plot:
        plot(result['records'], args.plot, args.title)
        print(f'Wrote {args.plot}')
    return result


if __name__ == '__main__':
    main()
