"""Fixtures of the detection tests (helpers in det_utils.py)."""
import pytest
import torch

from det_utils import (CLS_CONFIG, config_path, make_coco,
                       save_train_checkpoint)


@pytest.fixture(scope='session')
def cls_checkpoint(tmp_path_factory):
    """A classification checkpoint of HamiltonianNet 'det-38' built from
    the pre-training config, in the format of tools/train.py, with
    non-default weights and batch-norm statistics."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import mmrevode  # noqa: F401

    cfg = Config.fromfile(config_path(CLS_CONFIG))
    torch.manual_seed(1)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    # Move every weight and statistic away from its initial value, keeping
    # the network well-behaved, so that loading is seen.
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith('running_var'):
                tensor.uniform_(0.5, 2.0)
            elif name.endswith('running_mean'):
                tensor.normal_(0, 0.1)
            elif tensor.is_floating_point():
                tensor.mul_(1 + 0.1 * torch.randn_like(tensor)).add_(
                    0.01 * torch.randn_like(tensor))
    path = str(tmp_path_factory.mktemp('cls') / 'epoch_1.pth')
    save_train_checkpoint(model, path)
    return path, model.state_dict()


@pytest.fixture(scope='session')
def coco_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('coco')
    make_coco(str(root))
    return str(root)
