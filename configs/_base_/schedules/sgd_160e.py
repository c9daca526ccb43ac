# The authors' schedule: momentum SGD 0.9, batch 100, lr 0.1, divided by 10
# at 50% and 75% of 160 epochs (on CIFAR: 40k and 60k of 80k iterations),
# weight decay 2e-4 on convolution and fully connected weights only (no decay
# on batch-norm parameters and biases).
# GuardedOptimWrapper: MMEngine's OptimWrapper that skips a step with
# non-finite gradients (DivergenceHook then stops the run); --amp switches
# to MMEngine's AmpOptimWrapper.
optim_wrapper = dict(
    type='GuardedOptimWrapper',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=2e-4),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[80, 120], gamma=0.1)

train_cfg = dict(by_epoch=True, max_epochs=160, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# `tools/train.py --auto-scale-lr` scales lr by (total batch size) / 100
auto_scale_lr = dict(base_batch_size=100)
