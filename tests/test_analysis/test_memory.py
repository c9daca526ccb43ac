"""mmrevode.analysis.memory: saved bytes, memory readings, fresh processes."""
import pytest
import torch
from torch import nn

from mmrevode.analysis import MemoryMeter, count_saved_bytes
from mmrevode.analysis.memory import run_in_fresh_process
from mmrevode.analysis.models import parse_spec


def test_saved_bytes_are_deduplicated_by_storage():
    x = torch.randn(1000, requires_grad=True)
    w = torch.randn(1000, requires_grad=True)
    with count_saved_bytes() as counted:
        y = (x * w).sum() + (x * x).sum() + (x[:10] * 2).sum()
    assert counted['bytes'] == 2 * 4000  # x (once, views too) and w
    with count_saved_bytes(exclude=[w]) as counted:
        y = (x * w).sum()
    assert counted['bytes'] == 4000
    y.backward()


def test_saved_bytes_by_part_and_only_what_the_graph_keeps():
    x = torch.randn(4, 1000, requires_grad=True)
    first, second = nn.Linear(1000, 250), nn.Linear(250, 10)
    parts = dict(first=first, second=second)
    params = list(first.parameters()) + list(second.parameters())
    with count_saved_bytes(params, parts) as counted:
        out = second(first(x).relu())
        dropped = first(x) * first(x)  # saved, then freed with its graph
        del dropped
    # first saves x, relu its output, second its input (the same tensor)
    assert counted['by_part'] == dict(first=16000, other=4000)
    assert counted['bytes'] == 20000
    out.sum().backward()


def test_memory_meter_sees_an_allocation():
    meter = MemoryMeter('cpu')
    if meter.method is None:
        pytest.skip('no /proc/self/clear_refs here')
    meter.start()
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, written
    held = meter.current()
    del block
    peak = meter.peak()
    assert held > 48 * 2**20
    assert peak > 48 * 2**20


def test_run_in_fresh_process():
    result = run_in_fresh_process(parse_spec, spec='MidpointNet:62')
    assert result['depth'] == 62 and result['blocks'] == [10, 10, 10]
