"""Helpers of the engine tests: a toy model and the data loaders of a tiny
Runner."""
import torch
from mmengine.model import BaseModel


class ToyRegression(BaseModel):
    """A linear regression that MMEngine's Runner can train."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, x, y, mode='loss'):
        return dict(loss=((self.linear(x) - y)**2).mean())


def cifar_loaders(data_root, batch_size):
    """Train and validation loaders over CIFAR-10 files written by
    :func:`mmrevode.datasets.write_cifar10`, unshuffled, in this process."""
    dataset = dict(
        type='CheckedCIFAR10',
        data_root=data_root,
        verify_md5=False,
        pipeline=[dict(type='PackInputs')])
    train = dict(
        batch_size=batch_size,
        num_workers=0,
        dataset=dataset,
        sampler=dict(type='DefaultSampler', shuffle=False))
    return train, dict(train, dataset=dict(dataset, split='test'))
