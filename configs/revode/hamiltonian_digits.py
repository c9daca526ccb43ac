_base_ = [
    '../_base_/models/hamiltonian74_cifar.py',
    '../_base_/datasets/digits_bs50.py',
    '../_base_/schedules/sgd_160e.py',
    '../_base_/default_runtime.py',
]
# A first run that needs no download: Hamiltonian-14 (one block per unit,
# widths 16-32-64) on scikit-learn's digits, 15 epochs of batch 50 on the
# CPU in about a minute:
#   python tools/train.py configs/revode/hamiltonian_digits.py
#   python tools/test.py configs/revode/hamiltonian_digits.py \
#       work_dirs/hamiltonian_digits/epoch_15.pth
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, blocks=[1, 1, 1], widths=[16, 32, 64])),
    head=dict(in_channels=64))
# lr 0.1 divided by 10 at epochs 8 and 12
param_scheduler = dict(milestones=[8, 12])
train_cfg = dict(max_epochs=15, val_interval=5)
default_hooks = dict(
    logger=dict(interval=9), checkpoint=dict(max_keep_ckpts=1))
auto_scale_lr = dict(base_batch_size=50)
# a fixed seed: the same weights and accuracy on every run on one machine (CPU;
# the float32 kernels of another CPU can move a test image or two)
randomness = dict(seed=0)
