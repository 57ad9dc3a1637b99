"""``make demo``: load the example ERC into the `erc` service's store, then run the hub.

The example workspace is ingested the way an upload is (safe extraction, metadata extraction)
as a published compendium of the user ``erchub-demo``; a second run finds it and loads nothing.
Then JupyterHub takes over this process with the embedded-default jupyterhub_config.py, and
the example's launch link is printed.

Usage: python -m erchub.hub.demo [EXAMPLE_DIR] [--config jupyterhub_config.py]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from erchub.errors import ErchubError
from erchub.services.compendia import files as compendia
from erchub.services.compendia.operations import add_compendium
from erchub.services.store import CompendiumQuery, StoreError, default_db_url, open_store

DEMO_USER = "erchub-demo"
HUB_URL = "http://127.0.0.1:8000"


def load_example(example: Path, data_dir: str, db_url: str) -> str:
    """The id of the published example compendium, ingested unless it is there already."""
    store = open_store(db_url)
    try:
        staged = None
        with tempfile.TemporaryDirectory() as scratch:
            archive = Path(shutil.make_archive(str(Path(scratch) / "example"), "zip", example))
            staged = compendia.ingest(archive, "workspace", data_dir)
            title = staged.metadata.get("title")
            found, _total = store.list_compendia(CompendiumQuery(viewer=None, user=DEMO_USER))
            existing = next((r.id for r in found if r.metadata.get("title") == title), None)
            if existing is not None:
                compendia.discard(staged)
                return existing
            compendium_id = add_compendium(store, staged, data_dir, DEMO_USER)
            compendia.discard(staged)
        store.update_compendium(compendium_id, candidate=False, now=time.time())
        return compendium_id
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="erchub-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("example", nargs="?", default="examples/sine-wave")
    parser.add_argument("--config", default="jupyterhub_config.py")
    args = parser.parse_args()
    example = Path(args.example)
    if not (example / "requirements.txt").exists() and not any(example.glob("*.ipynb")):
        sys.exit(f"erchub-demo: {example} is not an example workspace")
    # the data directory and store of jupyterhub_config.py
    data_dir = os.path.abspath(os.environ.get("ERCHUB_DATA_DIR") or "erchub-data")
    os.makedirs(data_dir, exist_ok=True)
    db_url = os.environ.get("ERCHUB_DB_URL") or default_db_url(data_dir)
    try:
        compendium_id = load_example(example, data_dir, db_url)
    except (ErchubError, StoreError) as exc:
        sys.exit(f"erchub-demo: cannot load {example}: {exc}")
    print(
        f"\nerchub demo: the hub starts at {HUB_URL}\n"
        f"  authors: log in, then Start my workspace: {HUB_URL}/hub/home\n"
        f"  readers: the catalogue {HUB_URL}/services/erc/ and the example's page "
        f"{HUB_URL}/services/erc/compendium/{compendium_id}\n"
        f"  reviewers: the example's launch link {HUB_URL}/services/erc/launch/{compendium_id}\n"
        "  (without ORCID_CLIENT_ID any user name logs in: development only)\n",
        flush=True,
    )
    os.execv(sys.executable, [sys.executable, "-m", "jupyterhub", "-f", args.config])


if __name__ == "__main__":
    main()
