# Hamiltonian-1202 with the authors' schedule for it: batch 32, weight decay
# 5e-4, lr divided by 10 at 120k and 180k of 240k iterations (154 epochs of
# 1563 iterations).
_base_ = './hamiltonian_cifar10.py'

model = dict(backbone=dict(arch='1202'), head=dict(in_channels=128))
train_dataloader = dict(batch_size=32)
optim_wrapper = dict(optimizer=dict(weight_decay=5e-4))
param_scheduler = dict(
    _delete_=True,
    type='MultiStepLR',
    by_epoch=False,
    milestones=[120000, 180000],
    gamma=0.1)
train_cfg = dict(max_epochs=154)
auto_scale_lr = dict(base_batch_size=32)
