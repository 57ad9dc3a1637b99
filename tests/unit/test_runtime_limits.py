"""The operator's limits cap what an ERC asks for (pure: no container is started)."""

from pathlib import Path

import pytest
from traitlets import TraitError

from erchub.services.jobs.runtime import DockerRuntime, ExecutionSpec


def spec(**limits) -> ExecutionSpec:
    here = Path(".")
    return ExecutionSpec(here, here / "nb.ipynb", here, "main.ipynb", "main.html", **limits)


def test_defaults_are_4_gib_1_cpu_1_hour():
    runtime = DockerRuntime()
    assert runtime.effective_memory(spec()) == 4 * 1024**3
    assert runtime.cpu_limit == 1.0
    assert runtime.effective_timeout(spec()) == 3600


def test_an_erc_may_ask_for_less_never_for_more():
    runtime = DockerRuntime(mem_limit="1g", time_limit=60)
    assert runtime.effective_memory(spec(memory=256 * 1024**2)) == 256 * 1024**2
    assert runtime.effective_memory(spec(memory=8 * 1024**3)) == 1024**3
    assert runtime.effective_timeout(spec(timeout=5)) == 5
    assert runtime.effective_timeout(spec(timeout=7200)) == 60


def test_a_bad_memory_limit_is_refused_at_configuration():
    with pytest.raises(TraitError, match="mem_limit"):
        DockerRuntime(mem_limit="lots")
