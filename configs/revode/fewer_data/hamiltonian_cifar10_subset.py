# Fewer training data (the paper's experiment): Hamiltonian-74 trained on a
# seeded, class-balanced fraction of CIFAR-10. The files
# hamiltonian_cifar10_<N>pct.py only set the fraction.
#
# The schedule counts iterations, as the authors' code does: every fraction
# gets the 80k iterations of batch 100 of the full-data run (lr / 10 at 40k
# and 60k), so smaller subsets are seen for more epochs. Validation and
# checkpoints every 2000 iterations.
_base_ = ['../hamiltonian_cifar10.py']

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ClassBalancedSubset',
        dataset={{_base_.train_dataloader.dataset}},
        fraction=1.0,
        seed=0),
    sampler=dict(type='InfiniteSampler', shuffle=True))

param_scheduler = dict(
    _delete_=True,
    type='MultiStepLR',
    by_epoch=False,
    milestones=[40000, 60000],
    gamma=0.1)
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=80000,
    val_interval=2000)
default_hooks = dict(
    logger=dict(log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=2000))
log_processor = dict(by_epoch=False)
