"""A small record of every start of a training run: ``run_info.json``.

MMEngine's logs say what a run was configured to do, not what happened: a
config that draws its seed (``randomness.seed=None``) is dumped with
``seed=None``, and a run that diverged, failed or was killed leaves the same
files as one that is still going. ``tools/train.py`` therefore writes, into
the folder of each start (``<work_dir>/<timestamp>/``, beside ``vis_data``),
``run_info.json``::

    {"seed": 1234, "status": "finished", "resumed_from": null, ...}

- ``seed``: the seed the run used (the drawn one, too); ``world_size``;
- ``config``: the config file's name; ``cfg_options``: the options given;
  ``resumed_from``: the checkpoint a resumed start continued from;
- ``status``: ``'running'`` while it runs (what a killed run leaves),
  then ``'finished'``, ``'diverged'``, ``'failed'`` or ``'interrupted'``,
  with the error's ``message``, and ``epoch`` and ``iter`` reached.

``mmrevode.utils.results`` reads it to report runs.
"""
import json
import os
import os.path as osp
import sys
import time
from typing import Optional

from .checkpoint import atomic_write

#: The file name, in each start's log folder.
RUN_INFO_FILE = 'run_info.json'


def _plain(value):
    """``value`` as JSON can hold it (configs' dicts, tuples, ...)."""
    return json.loads(json.dumps(value, default=str))


class RunInfo:
    """Writes ``run_info.json`` for one start of a run (main process only).

    Args:
        runner (Runner): The built runner (its ``log_dir``, ``seed`` and
            ``world_size`` are recorded).
        cfg_options (dict, optional): The ``--cfg-options`` given.
        resumed_from (str, optional): The checkpoint resumed from.
    """

    def __init__(self,
                 runner,
                 cfg_options: Optional[dict] = None,
                 resumed_from: Optional[str] = None):
        self.runner = runner
        self.path = osp.join(runner.log_dir, RUN_INFO_FILE)
        filename = getattr(runner.cfg, 'filename', None)
        self.info = dict(
            seed=runner.seed,
            world_size=runner.world_size,
            config=osp.basename(filename) if filename else None,
            cfg_options=_plain(dict(cfg_options or {})),
            resumed_from=resumed_from,
            command=' '.join(sys.argv),
            started=time.strftime('%Y-%m-%d %H:%M:%S'),
            status='running')

    def _write(self) -> None:
        os.makedirs(osp.dirname(self.path), exist_ok=True)
        atomic_write(json.dumps(self.info, indent=2) + '\n', self.path)

    def start(self) -> 'RunInfo':
        """Record the start (status ``'running'``)."""
        self._write()
        return self

    def end(self, status: str, message: Optional[str] = None) -> None:
        """Record how the start ended, and the epoch and iteration reached.

        Args:
            status (str): ``'finished'``, ``'diverged'``, ``'failed'`` or
                ``'interrupted'``.
            message (str, optional): The error that ended it.
        """
        self.info.update(
            status=status,
            ended=time.strftime('%Y-%m-%d %H:%M:%S'),
            epoch=self.runner.epoch,
            iter=self.runner.iter)
        if message:
            self.info['message'] = message
        self._write()
