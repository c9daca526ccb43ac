# Midpoint-8 on scikit-learn's digits: hamiltonian_digits.py with the
# Midpoint backbone (one block per unit, widths 16-32-64, default h).
#   python tools/train.py configs/revode/midpoint_digits.py
#   python tools/test.py configs/revode/midpoint_digits.py \
#       work_dirs/midpoint_digits/epoch_15.pth
_base_ = './hamiltonian_digits.py'
model = dict(backbone=dict(type='MidpointNet'))
