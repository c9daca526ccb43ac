"""Helpers of the engine tests: the data loaders of a tiny Runner."""


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
