# Midpoint-8 on scikit-learn's digits: hamiltonian_digits.py with the
# Midpoint backbone (one block per unit, widths 16-32-64).
#   python tools/train.py configs/revode/midpoint_digits.py
#   python tools/test.py configs/revode/midpoint_digits.py \
#       work_dirs/midpoint_digits/epoch_15.pth
_base_ = './hamiltonian_digits.py'
# With one block per unit, a unit is the single forward-Euler step
# Y1 = Y0 + h F(Y0); at the default h = 0.02 it is nearly the identity
# (97.3% here), at h = 0.1 the network learns more (98.4%).
model = dict(backbone=dict(type='MidpointNet', h=0.1))
