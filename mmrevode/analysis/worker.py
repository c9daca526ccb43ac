"""The other end of :func:`mmrevode.analysis.memory.run_in_fresh_process`.

``python -m mmrevode.analysis.worker REQUEST ANSWER`` reads the function and
its arguments from the JSON file REQUEST, calls it and writes its result to
the JSON file ANSWER.
"""
import importlib
import json
import sys


def main(request: str, answer: str):
    with open(request) as f:
        job = json.load(f)
    function = getattr(importlib.import_module(job['module']), job['name'])
    result = function(**job['kwargs'])
    with open(answer, 'w') as f:
        json.dump(result, f)


if __name__ == '__main__':
    main(*sys.argv[1:3])
