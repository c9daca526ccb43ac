"""Memory and time of a training step: reversible, plain autograd, checkpoint.

For every model (and batch size), the same network is built in the three
modes of :data:`~mmrevode.analysis.models.MODES`, with the same weights, and
one training step (forward, loss, backward, SGD update) on random images is
measured:

- ``saved_bytes``: bytes of the tensors saved for backward during the
  forward (:func:`~mmrevode.analysis.memory.count_saved_bytes`); parameters
  and buffers are not counted. The inputs that ``torch.utils.checkpoint``
  keeps for its recompute go through the same hooks, so all three modes are
  counted alike (and ``forward_held_bytes`` checks it independently). With
  ``by_part``, ``saved_bytes_by_part`` splits them into the stem, each unit
  and the rest.
- ``forward_held_bytes``: memory still allocated when the forward (and loss)
  has finished, over what was allocated before it
  (:class:`~mmrevode.analysis.memory.MemoryMeter`).
- ``peak_bytes``: the peak memory of the whole step over what is held
  between steps (weights, optimizer state; the gradients, set to None before
  the step, count). Resident-set readings are page granular: expect a few
  percent of noise. The memory is measured after all the timing, in a fresh
  process with glibc's heap set to return freed memory promptly
  (:func:`~mmrevode.analysis.memory.configure_malloc`); the times are taken
  before, with glibc's defaults, because that setting slows steps down.
- ``step_time_s``: median wall time of the timed steps. The modes are run in
  rounds, one step of each per round (in alternating order), after warm-up,
  so every ratio compares steps taken at nearly the same time;
  ``time_ratio_to_plain`` is the median over rounds of the per-round ratio
  (:func:`~mmrevode.analysis.timing.paired_step_times`).
- ``cpu_time_s``: the same for the CPU time of the process
  (``time.process_time``). On a machine shared with other work, and with one
  thread, it is much steadier than the wall time; with several threads it
  includes their spin-waiting.

The step is :class:`~mmrevode.analysis.training.TrainStep`.
"""
import os
import platform
import re
import statistics
from typing import Callable, Dict, List, Optional, Sequence

import torch

from .cli import Progress
from .memory import (MemoryMeter, configure_malloc, has_glibc,
                     release_free_memory, run_in_fresh_process,
                     total_memory_bytes)
from .models import MODES, parse_spec
from .timing import paired_ratio, paired_step_times
from .training import STEP_OPTIONS, TrainStep, train_steps

RECORD_FIELDS = ('name', 'model', 'arch', 'depth', 'blocks', 'mode', 'head',
                 'batch_size', 'input_size', 'device', 'dtype', 'params',
                 'saved_bytes', 'forward_held_bytes', 'peak_bytes',
                 'memory_method', 'step_time_s', 'step_times_s',
                 'cpu_time_s', 'cpu_times_s', 'saved_ratio_to_plain',
                 'peak_ratio_to_plain', 'time_ratio_to_plain',
                 'cpu_time_ratio_to_plain', 'time_ratio_to_float',
                 'cpu_time_ratio_to_float')


def _ratio(value, reference):
    if value is None or not reference:
        return None
    return value / reference


def _warmed_up(runs: Dict[str, TrainStep], warmup: int,
               progress: Callable[[], None]):
    """Each ``(mode, run)`` after ``warmup`` untimed steps of it."""
    for mode, run in runs.items():
        for _ in range(warmup):
            run()
            progress()
        yield mode, run


def time_model(spec: dict,
               modes: Sequence[str],
               batch_size: int,
               steps: int = 5,
               warmup: int = 1,
               by_part: bool = False,
               progress: Optional[Callable[[], None]] = None,
               **options) -> List[dict]:
    """Saved bytes and step times of one model at one batch size.

    Args:
        spec (dict): The model, from
            :func:`~mmrevode.analysis.models.parse_spec`.
        modes (Sequence[str]): Modes to run (keys of ``MODES`` or
            ``EXACT_MODES``; ``'<mode>-exact'`` records get
            ``time_ratio_to_float``, the paired ratio to ``'<mode>'``).
        batch_size (int): Images per step.
        steps (int): Timed steps per mode. Defaults to 5.
        warmup (int): Untimed steps per mode first. Defaults to 1.
        by_part (bool): Split the saved bytes by part. Defaults to False.
        progress (callable, optional): Called after every step.
        **options: The training step
            (:data:`~mmrevode.analysis.training.STEP_OPTIONS`):
            ``input_size``, the height and width of the images (32);
            ``device`` (``'cpu'``); ``dtype`` (``torch.float32``);
            ``backbone_options``, overrides of the backbone's arguments
            (None); ``lr``, the SGD learning rate (0); ``seed``, of the
            weights and the data (0); ``head``, the loss (``'linear'``, see
            :class:`~mmrevode.analysis.training.TrainingModel`).

    Returns:
        list[dict]: One record per mode, without the memory readings (see
        :func:`memory_model`).
    """
    progress = progress or (lambda: None)
    runs = train_steps(spec, modes, batch_size, **options)
    options = dict(STEP_OPTIONS, **options)
    records = {}
    for mode, run in _warmed_up(runs, warmup, progress):
        records[mode] = dict(
            name=spec['name'],
            model=spec['model'],
            arch=spec['arch'],
            depth=spec['depth'],
            blocks=spec['blocks'],
            mode=mode,
            head=options['head'],
            batch_size=batch_size,
            input_size=options['input_size'],
            device=str(options['device']),
            dtype=str(options['dtype']).replace('torch.', ''),
            params=sum(p.numel() for p in run.model.parameters()),
            **run.saved_bytes(by_part))
        progress()

    times, cpu_times = paired_step_times(runs, steps, progress=progress)
    plain = records.get('plain')
    for mode, record in records.items():
        record['saved_ratio_to_plain'] = _ratio(
            record['saved_bytes'], plain['saved_bytes']) if plain else None
        for key, values in (('step_time', times), ('cpu_time', cpu_times)):
            record[f'{key}s_s'] = values[mode]
            record[f'{key}_s'] = statistics.median(values[mode]) \
                if values[mode] else None
            record[f'{key}_ratio_to_plain'] = paired_ratio(
                values[mode], values['plain']) if plain else None
        record['time_ratio_to_plain'] = record.pop('step_time_ratio_to_plain')
        # '<mode>-exact' against '<mode>', step by step in the same rounds
        float_mode = mode[:-len('-exact')] if mode.endswith('-exact') \
            else None
        record['time_ratio_to_float'] = None
        record['cpu_time_ratio_to_float'] = None
        if float_mode in records:
            record['time_ratio_to_float'] = paired_ratio(
                times[mode], times[float_mode])
            record['cpu_time_ratio_to_float'] = paired_ratio(
                cpu_times[mode], cpu_times[float_mode])
    del runs
    release_free_memory()
    return [records[mode] for mode in modes]


def memory_model(spec: dict,
                 modes: Sequence[str],
                 batch_size: int,
                 warmup: int = 1,
                 progress: Optional[Callable[[], None]] = None,
                 steps: int = 0,
                 by_part: bool = False,
                 **options) -> Dict[str, dict]:
    """Memory held after the forward and peak memory of a step, per mode.

    Arguments as :func:`time_model`; ``steps`` and ``by_part`` are not used.
    """
    progress = progress or (lambda: None)
    runs = train_steps(spec, modes, batch_size, **options)
    device = options.get('device', STEP_OPTIONS['device'])
    meter = MemoryMeter(device)
    result = {}
    for mode, run in _warmed_up(runs, warmup, progress):
        result[mode] = dict(run.memory(meter), memory_method=meter.method)
        progress()
    del runs
    release_free_memory()
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
    """Times, then memory, of one model at one batch size in every mode,
    in this process, with the allocator as it is.

    Returns:
        list[dict]: One record per mode (fields: :data:`RECORD_FIELDS`).
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
        load_average_start=_load_average())
    try:
        with open('/proc/cpuinfo') as f:
            match = re.search(r'^model name\s*:\s*(.+)$', f.read(),
                              re.MULTILINE)
        if match:
            info['processor'] = match.group(1).strip()
    except OSError:
        pass
    memory = total_memory_bytes()
    if memory is not None:
        info['memory_total_bytes'] = memory
    if torch.device(device).type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(torch.device(device))
    return info


def _load_average() -> Optional[List[float]]:
    return list(os.getloadavg()) if hasattr(os, 'getloadavg') else None


def run_benchmark(specs: Sequence[str],
                  modes: Sequence[str] = tuple(MODES),
                  batch_sizes: Sequence[int] = (64, ),
                  progress_bar: bool = True,
                  malloc_trim_threshold: int = 1 << 20,
                  **kwargs) -> dict:
    """Benchmark every model and batch size.

    The step times (and saved bytes) are taken in this process, with the
    allocator as it is. On a CPU with glibc, the memory is then measured in
    a fresh Python process whose heap is set to return freed memory promptly
    (:func:`~mmrevode.analysis.memory.configure_malloc`): that setting slows
    steps down, and set in a process that has already run the timed steps,
    it still left 60-85 MiB of scattered heap in the peaks.

    Args:
        specs (Sequence[str]): The models, ``'TYPE[:ARCH]'``.
        modes (Sequence[str]): Defaults to all of ``MODES``.
        batch_sizes (Sequence[int]): Defaults to ``(64, )``.
        progress_bar (bool): Show a progress bar (on stderr).
            Defaults to True.
        malloc_trim_threshold (int): See
            :func:`~mmrevode.analysis.memory.configure_malloc`; a negative
            value measures the memory here, with the allocator as it is.
            Defaults to 1 MiB.
        **kwargs: Arguments of :func:`time_model`.

    Returns:
        dict: ``machine`` (:func:`machine_info`, with the allocator setting
        as ``malloc``) and ``records``, one per model, batch size and mode.
    """
    parsed = [parse_spec(s) for s in specs]
    device = kwargs.get('device', 'cpu')
    machine = machine_info(device)
    warmup = kwargs.get('warmup', 1)
    per_model = len(modes) * (warmup + 1 + kwargs.get('steps', 5))
    progress = Progress(len(parsed) * len(batch_sizes) * per_model,
                        progress_bar)
    jobs = [(spec, batch) for spec in parsed for batch in batch_sizes]
    results = [
        time_model(spec, modes, batch, progress=progress.update, **kwargs)
        for spec, batch in jobs
    ]
    progress.close()
    if torch.device(device).type == 'cpu' and malloc_trim_threshold >= 0 \
            and has_glibc():
        print('Measuring memory in a separate process ...', flush=True)
        options = dict(kwargs)
        options['dtype'] = str(options.get('dtype', torch.float32)).replace(
            'torch.', '')
        answer = run_in_fresh_process(
            measure_memory,
            jobs=[(spec['spec'], batch) for spec, batch in jobs],
            modes=list(modes),
            options=options,
            trim_threshold=malloc_trim_threshold,
            threads=torch.get_num_threads())
        memories, machine['malloc'] = answer['memories'], answer['malloc']
    else:
        machine['malloc'] = None
        memories = [
            memory_model(spec, modes, batch, **kwargs)
            for spec, batch in jobs
        ]
    for records, memory in zip(results, memories):
        add_memory(records, memory)
    machine['load_average_end'] = _load_average()
    return dict(
        machine=machine,
        records=[record for group in results for record in group])


def measure_memory(jobs: List[tuple], modes: Sequence[str], options: dict,
                   trim_threshold: int, threads: int) -> dict:
    """:func:`memory_model` of each ``(spec, batch_size)`` job, after
    :func:`~mmrevode.analysis.memory.configure_malloc`; what
    :func:`run_benchmark` runs in a fresh process."""
    malloc = configure_malloc(trim_threshold)
    torch.set_num_threads(threads)
    options = dict(options, dtype=getattr(torch, options['dtype']))
    memories = [
        memory_model(parse_spec(spec), modes, batch, **options)
        for spec, batch in jobs
    ]
    return dict(memories=memories, malloc=malloc)
