"""``erchub cluster scale SERVICE=N ...``: what it takes on its command line, without a cluster
(the swarm tier scales a real one, tests/swarm/test_replicas.py)."""

from __future__ import annotations

import argparse

import pytest

from erchub.cli import main, service_replicas


def test_a_service_and_its_replicas() -> None:
    assert service_replicas("erc=3") == ("erc", 3)
    assert service_replicas("worker=0") == ("worker", 0)


@pytest.mark.parametrize("text", ["erc", "erc=", "=3", "erc=-1", "erc=three", "erc=1.5"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not SERVICE=N"):
        service_replicas(text)


def test_the_command_says_what_is_wrong_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["cluster", "scale", "erc"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "'erc' is not SERVICE=N (such as erc=3)" in error
