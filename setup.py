"""Installs mmrevode.

``pip install -e .[cls]`` brings the light MMCV build that classification needs;
``pip install -e .[det]`` brings MMDetection and the compiled MMCV it needs
(see ``tools/build_mmcv_wheel.sh``). The two MMCV builds cannot be installed
side by side, so MMCV is not a plain requirement. ``pip install -e .[bench]``
brings the peers that ``tools/analysis_tools/benchmark.py --peers`` compares
with (MemCNN, RevLib).
"""
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_requirements(name):
    """Return the requirement lines of ``requirements/<name>.txt``."""
    with open(osp.join(HERE, 'requirements', f'{name}.txt')) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


def read_version():
    namespace = {}
    with open(osp.join(HERE, 'mmrevode', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def add_mim_extension():
    """Copy ``configs/`` and ``model-index.yml`` into ``mmrevode/.mim``, as
    OpenMMLab packages do, so an installed package finds its model index
    (:mod:`mmrevode.utils.model_index`). An editable install reads them from
    the checkout and needs no copy."""
    if not {'build', 'bdist_wheel', 'install', 'sdist'} & set(sys.argv):
        return
    mim_dir = osp.join(HERE, 'mmrevode', '.mim')
    shutil.rmtree(mim_dir, ignore_errors=True)
    shutil.copytree(osp.join(HERE, 'configs'), osp.join(mim_dir, 'configs'))
    shutil.copy(osp.join(HERE, 'model-index.yml'), mim_dir)


add_mim_extension()
setup(
    name='mmrevode',
    version=read_version(),
    description='Reversible ODE-inspired residual networks (Hamiltonian, '
    'Midpoint, Leapfrog) for MMPretrain',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    include_package_data=True,
    package_data={'mmrevode': ['.mim/model-index.yml', '.mim/configs/**/*']},
    python_requires='>=3.8',
    install_requires=read_requirements('runtime'),
    extras_require={
        'cls': read_requirements('cls'),
        'det': read_requirements('det'),
        'bench': read_requirements('bench'),
        'deploy': read_requirements('deploy'),
        'tests': read_requirements('tests'),
    },
    zip_safe=False,
)
