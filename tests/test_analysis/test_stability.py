"""mmrevode.analysis.stability and tools/analysis_tools/stability.py on tiny
models."""
import json
import math
import os.path as osp

import pytest
import torch

from mmrevode.analysis import build_backbone
from mmrevode.analysis.stability import (depth_profile, jacobian_spectrum,
                                         right_hand_side)

TINY = "{'blocks': [2, 3], 'widths': [8, 16]}"
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def build(spec, **options):
    return build_backbone(spec, options, seed=0)


@pytest.mark.parametrize('spec', [
    f'HamiltonianNet:{TINY}', f'MidpointNet:{TINY}', f'LeapfrogNet:{TINY}'
])
def test_ode_right_hand_sides_have_imaginary_spectra(spec):
    result = jacobian_spectrum(build(spec), size=3)
    assert result['spectral_radius'] > 0.1
    # Imaginary up to round-off (zero eigenvalues from inactive ReLUs are
    # defective, hence the square-root-of-epsilon scale).
    assert result['real_to_radius'] < 1e-6
    assert len(result['eig_real']) == result['dim']


def test_hamiltonian_right_hand_side_is_the_papers():
    model = build(f'HamiltonianNet:{TINY}').double().eval()
    block = model.units[0].blocks[0]
    y, z = torch.randn(2, 1, 4, 3, 3, dtype=torch.float64)
    rhs, point = right_hand_side(block, (y, z))
    dy, dz = rhs(point)
    assert torch.equal(dy, block.f1(z)) and torch.equal(dz, -block.f2(y))
    result = jacobian_spectrum(model, unit=1, block=-1, size=2)
    assert (result['unit'], result['block'], result['dim']) == (1, 2, 64)
    assert result['real_to_radius'] < 1e-6


def test_spectrum_runs_only_the_units_it_needs():
    # 3x3 maps in unit 0 would shrink to nothing in unit 2.
    model = build("HamiltonianNet:{'blocks': [1, 1, 1], 'widths': [4, 8, 16]}")
    assert jacobian_spectrum(model, size=3)['dim'] == 36


@pytest.mark.parametrize('spec', [f'RevNet:{TINY}', 'CifarResNet:8'])
def test_residual_baselines_have_real_parts(spec):
    result = jacobian_spectrum(build(spec), size=3)
    assert result['real_to_radius'] > 0.1


def test_resnet_block_that_changes_shape_is_refused():
    with pytest.raises(ValueError, match='changes the shape'):
        jacobian_spectrum(build('CifarResNet:8'), unit=1, block=0)
    with pytest.raises(ValueError, match='out of range'):
        jacobian_spectrum(build('CifarResNet:8'), unit=3)


@pytest.mark.parametrize('spec, blocks', [
    (f'HamiltonianNet:{TINY}', [2, 3]),
    (f'LeapfrogNet:{TINY}', [2, 3]),
    ('CifarResNet:14', [2, 2, 2]),
])
def test_depth_profile_shapes_and_running_stats(spec, blocks):
    model = build(spec)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    units = depth_profile(model, batch_size=4, input_size=8)
    assert [len(u['state_norm']) for u in units] == [n + 1 for n in blocks]
    for unit in units:
        for key in ('state_norm', 'grad_norm', 'pair_grad_norm',
                    'state_ratio', 'grad_ratio'):
            assert len(unit[key]) == len(unit['state_norm'])
            assert all(math.isfinite(v) and v >= 0 for v in unit[key]), key
        assert unit['state_ratio'][0] == pytest.approx(1)
        assert unit['grad_ratio'][-1] == pytest.approx(1)
    for key, value in model.state_dict().items():
        assert torch.equal(value, buffers[key]), key  # nothing was updated
    assert all(p.grad is None for p in model.parameters())


def test_gradient_at_a_unit_input_is_the_autograd_gradient():
    model = build(f'HamiltonianNet:{TINY}', out_norm=False).double()
    units = depth_profile(model, batch_size=2, input_size=4)
    # The same loss through the backbone's own forward.
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 4, generator=generator).double()
    stem = model.stem(x).detach().requires_grad_()
    out = model.units[0](stem)
    out = model.units[1](model.transitions[0](out))
    weight = torch.randn(out.shape, generator=generator).double()
    (out * weight).sum().backward()
    expected = stem.grad.flatten(1).norm(dim=1).mean().item()
    assert units[0]['grad_norm'][0] == pytest.approx(expected, rel=1e-10)


def test_command_line_writes_png_and_json(tmp_path, run_tool):
    config = tmp_path / 'tiny_revnet.py'
    config.write_text(
        'model = dict(type="ImageClassifier", backbone=dict(type="RevNet", '
        'arch=dict(blocks=[1, 2], widths=[8, 16])))\n')
    checkpoint = tmp_path / 'tiny.pth'
    backbone = build_backbone(str(config), seed=0)
    torch.save({
        'state_dict': {
            f'backbone.{k}': v.clone().fill_(0.5) if v.is_floating_point()
            else v
            for k, v in backbone.state_dict().items()
        },
        'meta': {}
    }, checkpoint)
    stdout = run_tool(
        'stability', config, f'LeapfrogNet:{TINY}', 'CifarResNet:8',
        '--checkpoint', checkpoint, 'none', 'none', '--batch-size', '2',
        '--input-size', '8', '--jac-size', '2', '--out-dir',
        tmp_path / 'out')
    assert stdout.count('right-hand side: max|Re|/rho') == 3
    with open(tmp_path / 'out' / 'stability.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    with open(tmp_path / 'out' / 'stability.json') as f:
        models = json.load(f)['models']
    assert [m['name'] for m in models] == [
        'tiny_revnet', 'LeapfrogNet-12', 'CifarResNet-8'
    ]
    assert [m['mode'] for m in models] == ['eval', 'train', 'train']
    assert [len(m['units']) for m in models] == [2, 2, 3]
    assert models[0]['checkpoint'] == str(checkpoint)
    for m in models:
        assert m['jacobian']['dim'] == len(m['jacobian']['eig_imag'])
        assert all(
            math.isfinite(v) for u in m['units'] for v in u['state_norm'] +
            u['grad_norm'])


def test_unknown_model_spec():
    with pytest.raises(ValueError, match='neither a config'):
        build_backbone('NoSuchNet:3')


def stability_tool():
    """tools/analysis_tools/stability.py as a module, for its main(argv)."""
    import importlib.util
    path = osp.join(ROOT, 'tools', 'analysis_tools', 'stability.py')
    spec = importlib.util.spec_from_file_location('stability_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SMALL_RUN = ('--batch-size', '2', '--input-size', '8', '--jac-size', '2',
             '--no-progress')


def test_h_of_one_model_and_cfg_options_of_a_config(tmp_path, capsys):
    """--h MODEL=VALUE sets one model's h; --cfg-options reaches a config."""
    config = tmp_path / 'tiny_midpoint.py'
    config.write_text(
        'model = dict(type="ImageClassifier", backbone=dict('
        'type="MidpointNet", arch=dict(blocks=[1, 1], widths=[8, 16])))\n')
    tool = stability_tool()
    result = tool.main([
        str(config), '--cfg-options', 'model.backbone.h=0.03', *SMALL_RUN,
        '--out-dir', str(tmp_path / 'config')
    ])
    assert [m['h'] for m in result['models']] == [0.03]
    midpoint, leapfrog = f'MidpointNet:{TINY}', f'LeapfrogNet:{TINY}'
    result = tool.main([
        midpoint, leapfrog, '--h', f'{midpoint}=0.02', *SMALL_RUN,
        '--out-dir', str(tmp_path / 'specs')
    ])
    assert [m['h'] for m in result['models']] == [0.02, 0.1]
    with open(result['json']) as f:
        assert [m['h'] for m in json.load(f)['models']] == [0.02, 0.1]
    captured = capsys.readouterr()
    assert captured.out.count('right-hand side: max|Re|/rho') == 3
    assert 'elapsed' not in captured.out + captured.err  # --no-progress


def test_progress_goes_to_stderr(tmp_path, capsys):
    stability_tool().main([f'MidpointNet:{TINY}', *SMALL_RUN[:-1],
                           '--out-dir', str(tmp_path)])
    captured = capsys.readouterr()
    assert '2/2' in captured.err and 'elapsed' not in captured.out


@pytest.mark.parametrize('argv, message', [
    (['--cfg-options', 'model.backbone.h=0.03'],
     '--cfg-options changes config files, and MidpointNet:'),
    (['--h', 'MidpointNet:92=0.02'], 'is not one of the models'),
    (['--h', 'MidpointNet=x'], 'is not one of the models'),
    (['--h', '0.02'], 'give MODEL=VALUE'),
])
def test_options_that_would_be_ignored_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        stability_tool().main([f'MidpointNet:{TINY}', *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and 'Traceback' not in err
