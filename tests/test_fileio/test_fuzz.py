"""The mutation fuzzer (fuzz.py) for a few seconds, in a process of its own
so that a crash shows in its exit status. Longer runs: ``python
tests/test_fileio/fuzz.py --seconds 600``; ``MMREVODE_FUZZ_SECONDS`` sets
this test's budget."""
import os
import os.path as osp
import subprocess
import sys

HERE = osp.dirname(osp.abspath(__file__))


def test_fuzzer_finds_nothing(tmp_path):
    seconds = os.environ.get('MMREVODE_FUZZ_SECONDS', '15')
    result = subprocess.run(
        [sys.executable, osp.join(HERE, 'fuzz.py'), '--seconds', seconds,
         '--out', str(tmp_path)],
        capture_output=True, text=True, timeout=float(seconds) + 300,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, (result.stdout[-3000:] +
                                    result.stderr[-3000:])
    summary = result.stdout.strip().splitlines()[0]
    assert 'refused' in summary and 'loaded' in summary, summary
    assert 'finding' not in result.stdout
    assert os.listdir(tmp_path) == []
