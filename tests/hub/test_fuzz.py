"""Property-based requests from the OpenAPI document (schemathesis): no 5xx, whatever comes.

Schemathesis generates valid and invalid requests for every operation the document lists
(bodies, query arguments, path segments, headers) with a fixed seed, so a failure replays.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hub.conftest import Hub

pytestmark = pytest.mark.hub


def test_generated_requests_never_get_a_server_error(erc_hub: Hub, tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a test dependency"
    token = erc_hub.token("fuzzer")
    result = subprocess.run(
        [
            st, "run", f"{erc_hub.api_url}/openapi.json",
            "--url", erc_hub.api_url,
            "--header", f"Authorization: token {token}",
            "--checks", "not_a_server_error",
            "--max-examples", "40",
            "--seed", "20261122",
            "--workers", "1",
            "--request-timeout", "30",
            "--no-color",
        ],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    summary = result.stdout[-4000:].replace(token, "[token]")
    assert result.returncode == 0, summary
    assert "generated" in summary
