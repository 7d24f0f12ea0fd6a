"""`sambench ... | head`: a reader that leaves early ends the command quietly, as with Unix
tools; a broken pipe anywhere else is still an error."""
from __future__ import annotations

import os
import sys

import pytest

from sambench import cli


def test_a_closed_stdout_pipe_ends_quietly(monkeypatch, capsys):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (`head`) has gone
    stdout = open(write_end, "w", buffering=1)
    monkeypatch.setattr(sys, "stdout", stdout)
    try:
        assert cli.main(["models", "list"]) == 141
        print("after the reader left")  # stdout now leads nowhere instead of failing again
        stdout.flush()
    finally:
        monkeypatch.undo()
        stdout.close()
    assert capsys.readouterr().err == ""


def test_other_broken_pipes_still_fail(monkeypatch):
    def reference_died(args):
        raise BrokenPipeError(32, "Broken pipe")  # e.g. writing to a reference subprocess that exited

    monkeypatch.setattr(cli, "cmd_models_list", reference_died)
    with pytest.raises(BrokenPipeError):
        cli.main(["models", "list"])
