# Fewer training data (the paper's experiment): Hamiltonian-74 trained on a
# seeded, class-balanced fraction of STL-10's 5000 training images. The files
# hamiltonian_stl10_<N>pct.py only set the fraction.
#
# The schedule counts iterations: every fraction gets the 8000 iterations of
# batch 100 of the full-data run (160 epochs of 50 iterations; lr / 10 at
# 4000 and 6000), so smaller subsets are seen for more epochs. Validation and
# checkpoints every 500 iterations.
_base_ = ['../hamiltonian_stl10.py']

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
    milestones=[4000, 6000],
    gamma=0.1)
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=8000,
    val_interval=500)
default_hooks = dict(
    logger=dict(log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=500))
log_processor = dict(by_epoch=False)
