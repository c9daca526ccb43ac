"""The pieces the measurement tools share (mmrevode.analysis.cli)."""
import argparse

from mmrevode.analysis.cli import (add_output_arguments, add_timing_arguments,
                                   fixed, format_bytes, markdown_table,
                                   write_outputs)


def test_cells_and_markdown_table():
    assert (format_bytes(3 * 2**20, 'MiB'), format_bytes(None, 'MiB'),
            format_bytes(1536, 'KiB')) == ('3.0', '-', '1.5')
    assert (format_bytes(3 * 2**20), format_bytes(12 * 2**30),
            format_bytes(2048), format_bytes(None)) == (
                '3.0 MiB', '12.00 GiB', '2.0 KiB', '-')
    assert (fixed(1 / 3), fixed(12.6, 0), fixed(None)) == ('0.333', '13', '-')
    assert markdown_table(['a', 'b'], [[1, 'x'], ['-', 2.5]]) == (
        '| a | b |\n|---|---|\n| 1 | x |\n| - | 2.5 |')
    assert markdown_table(['a'], []) == '| a |\n|---|'


def test_timing_arguments():
    parser = argparse.ArgumentParser()
    add_timing_arguments(parser, steps=3, what='rounds')
    assert vars(parser.parse_args([])) == dict(steps=3, warmup=1)
    assert 'timed rounds (default: 3)' in parser.format_help()


def test_write_outputs(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_output_arguments(parser, 'tool')
    args = parser.parse_args(['--out-dir', str(tmp_path / 'out')])
    json_path, = write_outputs(args, dict(a=1))
    assert capsys.readouterr().out == f'Wrote {json_path}\n'
    drawn = []
    paths = write_outputs(args, dict(a=2), drawn.append)
    assert paths == [json_path, str(tmp_path / 'out' / 'tool.png')]
    assert drawn == paths[1:]
    assert capsys.readouterr().out == f'Wrote {paths[0]} and {paths[1]}\n'
