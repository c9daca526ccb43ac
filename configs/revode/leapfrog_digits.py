# Leapfrog-8 on scikit-learn's digits: hamiltonian_digits.py with the
# Leapfrog backbone (one block per unit, widths 16-32-64, default h).
#   python tools/train.py configs/revode/leapfrog_digits.py
#   python tools/test.py configs/revode/leapfrog_digits.py \
#       work_dirs/leapfrog_digits/epoch_15.pth
_base_ = './hamiltonian_digits.py'
model = dict(backbone=dict(type='LeapfrogNet'))
