"""The store contract: one suite, run against every backend (see conftest.py)."""

from __future__ import annotations

import contextlib
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import mongomock
import pymongo
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from erchub.services.store import (
    SCHEMES,
    CompendiumQuery,
    CompendiumRecord,
    Conflict,
    JobQuery,
    JobRecord,
    JobRunning,
    LinkMode,
    LinkRecord,
    Store,
    StoreError,
    open_store,
)
from erchub.services.store.base import (
    WORKER_LOST,
    JobChanges,
    ShipmentChanges,
    ShipmentRecord,
    ShipmentStatus,
)
from erchub.services.store.mongo import MongoStore
from erchub.services.store.sql import (
    MIGRATIONS,
    SqlStore,
    compendia,
    jobs,
    shipments,
    user_secrets,
)
from erchub.steps import JobStatus, StepName, StepStatus
from tests.store.conftest import empty_postgres

# -- helpers -----------------------------------------------------------------------------------


def compendium(
    id: str, user: str = "alice", *, candidate: bool = False, created: float = 1.0, **metadata: Any
) -> CompendiumRecord:
    return CompendiumRecord(
        id=id, user=user, candidate=candidate, metadata=metadata, created=created, updated=created
    )


def job(id: str, compendium_id: str = "c1", user: str = "alice", created: float = 1.0) -> JobRecord:
    return JobRecord(id=id, compendium_id=compendium_id, user=user, created=created)


def ids(records: list[Any]) -> list[str]:
    return [getattr(r, "compendium", r).id for r in records]


def searched(store: Store, text: str, viewer: str | None = "reader", **paging: int) -> list[str]:
    hits, total = store.search_compendia(text, viewer=viewer, **paging)
    if "start" not in paging and "limit" not in paging:
        assert total == len(hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    return ids(hits)


METADATA = {
    "title": "Sea surface temperature of the North Atlantic",
    "description": 'Monthly means, 1950\u20132020, with a "quoted" note & more: 100% real.',
    "creators": [{"name": "Ada M\u00fcller", "orcid": "0000-0001"}, {"name": "Bo Li"}],
    "keywords": ["ocean", "climate"],
    "files": ["data/sst_2020.csv", "main.ipynb"],
    "identifier": {"doi": "10.5281/Zenodo.42"},
    "nested": {"list": [1, 2.5, None, True, "x"], "empty": {}},
}

# -- compendia ---------------------------------------------------------------------------------


def test_compendium_round_trip(store: Store) -> None:
    record = compendium("c1", candidate=True, created=12.5, **METADATA)
    store.add_compendium(record)
    assert store.get_compendium("c1") == record
    assert store.get_compendium("c1").doi == "10.5281/zenodo.42"
    assert store.get_compendium("absent") is None


def test_duplicate_compendium_is_a_conflict(store: Store) -> None:
    store.add_compendium(compendium("c1", title="first"))
    with pytest.raises(Conflict):
        store.add_compendium(compendium("c1", "bob", title="second"))
    assert store.get_compendium("c1").metadata == {"title": "first"}
    assert searched(store, "second") == []


def test_update_compendium(store: Store) -> None:
    store.add_compendium(compendium("c1", candidate=True, title="Old words", created=1.0))
    updated = store.update_compendium(
        "c1", metadata={"title": "Fresh words", "identifier": {"doi": "10.1/X"}}, now=5.0
    )
    assert updated == store.get_compendium("c1")
    assert updated is not None
    assert (updated.candidate, updated.created, updated.updated) == (True, 1.0, 5.0)
    assert updated.metadata["title"] == "Fresh words"
    assert searched(store, "old", viewer="alice") == []
    assert searched(store, "fresh", viewer="alice") == ["c1"]
    assert ids(store.list_compendia(CompendiumQuery(viewer=None, doi="10.1/x", candidate=True))[0])

    published = store.update_compendium("c1", candidate=False, now=6.0)
    assert published is not None
    assert (published.candidate, published.updated, published.metadata) == (
        False,
        6.0,
        updated.metadata,
    )
    assert searched(store, "fresh") == ["c1"]  # now for everyone
    assert store.update_compendium("absent", candidate=False, now=7.0) is None


def test_delete_compendium_deletes_its_jobs(store: Store) -> None:
    store.add_compendium(compendium("c1", title="gone"))
    store.add_compendium(compendium("c2", title="stays"))
    store.add_job(job("j1", "c1"))
    store.add_job(job("j2", "c1"))
    store.add_job(job("j3", "c2"))
    store.update_job("j2", JobChanges(status=JobStatus.SUCCESS, finished=2.0))
    assert store.delete_compendium("c1") == ["j1", "j2"]
    assert store.get_compendium("c1") is None
    assert (store.get_job("j1"), store.get_job("j2")) == (None, None)
    assert store.get_job("j3") is not None
    assert searched(store, "gone") == []
    assert store.delete_compendium("c1") is None
    assert store.delete_compendium("absent") is None
    # the id is free again
    store.add_compendium(compendium("c1", title="back"))
    assert searched(store, "back") == ["c1"]
    assert store.delete_compendium("c1") == []


def test_delete_compendium_refuses_while_a_job_runs(store: Store) -> None:
    store.add_compendium(compendium("c1", title="kept"))
    store.add_job(job("j1", "c1", created=1.0))
    store.add_job(job("j2", "c1", created=2.0))
    store.add_job(job("j3", "c1", created=3.0))
    store.update_job("j3", JobChanges(status=JobStatus.FAILURE, finished=3.0))
    running = store.claim_job("w1", now=10.0)
    assert running is not None and running.id == "j1"
    with pytest.raises(JobRunning) as raised:
        store.delete_compendium("c1")
    assert isinstance(raised.value, Conflict)
    assert str(raised.value) == "job j1 of this compendium is running; cancel it first"
    assert raised.value.job_id == "j1"
    # nothing deleted, nothing changed
    assert store.get_compendium("c1") is not None
    assert searched(store, "kept") == ["c1"]
    assert [store.get_job(n).status for n in ("j1", "j2", "j3")] == [
        JobStatus.RUNNING,
        JobStatus.QUEUED,
        JobStatus.FAILURE,
    ]
    # the queued job is still there to be claimed: the failed delete let go of it
    again = store.claim_job("w2", now=11.0)
    assert again is not None and again.id == "j2"
    with pytest.raises(JobRunning, match="job j1 "):
        store.delete_compendium("c1")
    store.update_job("j1", JobChanges(status=JobStatus.SUCCESS, finished=12.0), worker="w1")
    with pytest.raises(JobRunning, match="job j2 "):
        store.delete_compendium("c1")
    store.update_job("j2", JobChanges(status=JobStatus.SUCCESS, finished=13.0), worker="w2")
    assert store.delete_compendium("c1") == ["j1", "j2", "j3"]
    assert store.get_compendium("c1") is None


# -- listing -----------------------------------------------------------------------------------


@pytest.fixture
def listed(store: Store) -> Store:
    """Published c1..c5 (alice: c1 c3 c5, bob: c2 c4; c{n} created at n), candidates a6 (alice)
    and b7 (bob)."""
    for n in range(1, 6):
        user = "alice" if n % 2 else "bob"
        doi = {"identifier": {"doi": f"10.1/DOI{n}"}} if n in (2, 3) else {}
        store.add_compendium(compendium(f"c{n}", user, created=float(n), **doi))
    store.add_compendium(compendium("a6", "alice", candidate=True, created=6.0))
    store.add_compendium(compendium("b7", "bob", candidate=True, created=7.0))
    return store


def listing(store: Store, **query: Any) -> tuple[list[str], int]:
    query.setdefault("viewer", "reader")
    records, total = store.list_compendia(CompendiumQuery(**query))
    return ids(records), total


def test_list_published_newest_first(listed: Store) -> None:
    assert listing(listed) == (["c5", "c4", "c3", "c2", "c1"], 5)
    assert listing(listed, viewer=None) == (["c5", "c4", "c3", "c2", "c1"], 5)


def test_list_filters(listed: Store) -> None:
    assert listing(listed, user="bob") == (["c4", "c2"], 2)
    assert listing(listed, doi="10.1/doi3") == (["c3"], 1)
    assert listing(listed, doi=" 10.1/DOI2 ") == (["c2"], 1)
    assert listing(listed, doi="10.1/none") == ([], 0)
    assert listing(listed, user="alice", doi="10.1/doi2") == ([], 0)


def test_list_by_git_origin(store: Store) -> None:
    """Compendia loaded from a git repository are found by its URL and the commit."""
    for name, url, commit, candidate in (
        ("g1", "https://h/o/paper", "a" * 40, False),
        ("g2", "https://h/o/paper", "b" * 40, False),
        ("g3", "https://h/o/other", "a" * 40, False),
        ("g4", "https://h/o/paper", "b" * 40, True),
    ):
        origin = {"kind": "git_url", "git_url": url, "commit": commit}
        store.add_compendium(compendium(name, candidate=candidate, origin=origin))
    store.add_compendium(compendium("plain"))
    assert listing(store, git_url="https://h/o/paper") == (["g2", "g1"], 2)
    assert listing(store, git_url="https://h/o/paper", git_commit="b" * 40) == (["g2"], 1)
    assert listing(store, git_commit="a" * 40) == (["g3", "g1"], 2)
    assert listing(store, viewer="alice", candidate=True, git_commit="b" * 40) == (["g4"], 1)
    assert listing(store, git_url="https://h/o/none") == ([], 0)


def test_list_candidates_own_only(listed: Store) -> None:
    assert listing(listed, candidate=True) == ([], 0)
    assert listing(listed, viewer="alice", candidate=True) == (["a6"], 1)
    assert listing(listed, viewer="bob", candidate=True) == (["b7"], 1)
    assert listing(listed, viewer="bob", candidate=True, user="alice") == ([], 0)
    assert listing(listed, viewer=None, candidate=True) == (["b7", "a6"], 2)
    assert listing(listed, viewer=None, candidate=True, user="alice") == (["a6"], 1)


def test_list_paging(listed: Store) -> None:
    assert listing(listed, start=1, limit=2) == (["c4", "c3"], 5)
    assert listing(listed, start=4, limit=2) == (["c1"], 5)
    assert listing(listed, start=9, limit=2) == ([], 5)
    assert listing(listed, limit=0) == ([], 5)
    assert listing(listed, start=-3, limit=1) == (["c5"], 5)


def test_list_ties_are_ordered_by_id(store: Store) -> None:
    for name in ("x1", "x3", "x2"):
        store.add_compendium(compendium(name, created=1.0))
    pages = [listing(store, start=n, limit=1)[0] for n in range(3)]
    assert pages == [["x3"], ["x2"], ["x1"]]


# -- search ------------------------------------------------------------------------------------


@pytest.fixture
def corpus(store: Store) -> Store:
    store.add_compendium(
        compendium("title", title="Ocean temperature", description="lorem ipsum", created=1.0)
    )
    store.add_compendium(
        compendium(
            "description",
            title="Lorem ipsum",
            description="A study of ocean temperature and salinity records",
            created=2.0,
        )
    )
    store.add_compendium(
        compendium(
            "keywords",
            title="Dolor sit",
            keywords=["ocean", "temperature"],
            description="ipsum",
            created=3.0,
        )
    )
    store.add_compendium(
        compendium(
            "authors",
            title="Amet",
            creators=[{"name": "Oceane Temperley"}],
            description="lorem",
            created=4.0,
        )
    )
    store.add_compendium(
        compendium("files", title="Consectetur", files=["data/oceanic_temps.csv"], created=5.0)
    )
    store.add_compendium(
        compendium("draft", "alice", candidate=True, title="Ocean draft", created=6.0)
    )
    return store


def test_search_ranks_title_and_authors_over_keywords_over_description(corpus: Store) -> None:
    found = searched(corpus, "ocean temp")
    assert set(found) == {"title", "description", "keywords", "authors", "files"}
    assert set(found[:2]) == {"title", "authors"}
    assert found[2] == "keywords"
    assert set(found[3:]) == {"description", "files"}


def test_search_matches_prefixes_case_insensitively(corpus: Store) -> None:
    assert searched(corpus, "SALIN") == ["description"]
    assert searched(corpus, "salinity") == ["description"]
    assert searched(corpus, "salinitys") == []
    assert searched(corpus, "csv") == ["files"]
    assert searched(corpus, "temps") == ["files"]  # a word of a file name


def test_search_needs_every_word(corpus: Store) -> None:
    assert searched(corpus, "ocean salinity") == ["description"]
    assert searched(corpus, "ocean zebra") == []
    assert searched(corpus, "ocean OR zebra") == []


def test_search_finds_accented_authors(store: Store) -> None:
    store.add_compendium(compendium("c1", creators=[{"name": "Ada M\u00fcller"}]))
    assert searched(store, "m\u00fcll") == ["c1"]
    assert searched(store, "M\u00dcLLER ada") == ["c1"]


def test_search_shows_candidates_to_their_author_only(corpus: Store) -> None:
    assert "draft" not in searched(corpus, "ocean")
    assert "draft" not in searched(corpus, "ocean", viewer="bob")
    assert searched(corpus, "draft", viewer="alice") == ["draft"]
    assert searched(corpus, "draft", viewer=None) == ["draft"]
    assert "draft" in searched(corpus, "ocean", viewer="alice")


def test_search_paging(corpus: Store) -> None:
    everything = searched(corpus, "ocean")
    assert len(everything) == 5
    pages = [corpus.search_compendia("ocean", viewer="bob", start=n, limit=2) for n in (0, 2, 4)]
    assert [total for _, total in pages] == [5, 5, 5]
    assert [ids(hits) for hits, _ in pages] == [everything[0:2], everything[2:4], everything[4:]]
    assert corpus.search_compendia("ocean", viewer="bob", start=10, limit=2) == ([], 5)
    assert corpus.search_compendia("ocean", viewer="bob", limit=0) == ([], 5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"ocean', ["title", "authors", "keywords", "description", "files"]),
        ("ocean:* & temperature", ["title", "keywords", "description"]),
        ("salinity)", ["description"]),
        ("'salinity'", ["description"]),
        ("NEAR(ocean salinity)", []),
        ("ocean NOT lorem", []),
        ("-lorem", ["title", "description", "authors"]),
        ("salin*", ["description"]),
        ("^salin.*", ["description"]),
        ("$where salinity", []),
        ("", []),
        ("   ", []),
        ("*", []),
        (":", []),
        ("&|!()", []),
        ("\"'*:&|!()<->\\%_.^$[]{}+?", []),
        ("\x00", []),
    ],
)
def test_search_takes_any_input_as_words(corpus: Store, text: str, expected: list[str]) -> None:
    assert sorted(searched(corpus, text)) == sorted(expected)


# -- jobs --------------------------------------------------------------------------------------


def test_job_round_trip(store: Store) -> None:
    record = JobRecord(
        id="j1",
        compendium_id="c1",
        user="alice",
        parameters={"n": 3, "label": "x\u00e9", "ratio": 0.5, "flags": [True, None]},
        steps={"validate_compendium": {"status": "queued", "text": []}},
        created=3.5,
    )
    store.add_job(record)
    assert store.get_job("j1") == record
    assert store.get_job("absent") is None
    with pytest.raises(Conflict):
        store.add_job(replace(record, user="bob"))
    assert store.get_job("j1") == record


def test_a_job_keeps_its_network_grant(store: Store) -> None:
    # recorded when the job is created (its starter's scope custom:erc:network), read by the
    # worker that claims it; jobs without it have none
    store.add_job(replace(job("granted", created=1.0), network_granted=True))
    store.add_job(job("plain", created=2.0))
    assert store.get_job("granted").network_granted is True  # type: ignore[union-attr]
    assert store.get_job("plain").network_granted is False  # type: ignore[union-attr]
    listed, _ = store.list_jobs(JobQuery(viewer=None))
    assert {j.id: j.network_granted for j in listed} == {"granted": True, "plain": False}
    claimed = store.claim_job("w1", 10.0)
    assert claimed is not None and (claimed.id, claimed.network_granted) == ("granted", True)
    store.update_job("granted", JobChanges(status=JobStatus.SUCCESS, finished=11.0), worker="w1")
    assert store.get_job("granted").network_granted is True  # type: ignore[union-attr]


@pytest.fixture
def job_listing(store: Store) -> Store:
    """alice's published c1 and candidate c2; jobs: j1 (c1, alice), j2 (c1, bob), j3 (c2, alice),
    j4 (c2, bob: who could not see c2, but sees his own job); j{n} created at n."""
    store.add_compendium(compendium("c1"))
    store.add_compendium(compendium("c2", candidate=True))
    for n, (cid, user) in enumerate(
        [("c1", "alice"), ("c1", "bob"), ("c2", "alice"), ("c2", "bob")], start=1
    ):
        store.add_job(job(f"j{n}", cid, user, created=float(n)))
    store.update_job("j2", JobChanges(status=JobStatus.SUCCESS))
    return store


def job_list(store: Store, **query: Any) -> tuple[list[str], int]:
    records, total = store.list_jobs(JobQuery(**query))
    return ids(records), total


def test_list_jobs_filters(job_listing: Store) -> None:
    assert job_list(job_listing, viewer=None) == (["j4", "j3", "j2", "j1"], 4)
    assert job_list(job_listing, viewer=None, compendium_id="c1") == (["j2", "j1"], 2)
    assert job_list(job_listing, viewer=None, status=JobStatus.SUCCESS) == (["j2"], 1)
    assert job_list(job_listing, viewer=None, user="bob") == (["j4", "j2"], 2)
    assert job_list(job_listing, viewer=None, start=1, limit=2) == (["j3", "j2"], 4)
    assert job_list(job_listing, viewer=None, limit=0) == ([], 4)


def test_list_jobs_visibility(job_listing: Store) -> None:
    assert job_list(job_listing, viewer="alice") == (["j4", "j3", "j2", "j1"], 4)
    assert job_list(job_listing, viewer="bob") == (["j4", "j2", "j1"], 3)
    assert job_list(job_listing, viewer="carol") == (["j2", "j1"], 2)
    assert job_list(job_listing, viewer="carol", compendium_id="c2") == ([], 0)
    assert job_list(job_listing, viewer="carol", start=1, limit=5) == (["j1"], 2)


def test_claim_takes_the_oldest_queued_job(store: Store) -> None:
    assert store.claim_job("w1", now=10.0) is None
    store.add_job(job("late", created=5.0))
    store.add_job(job("early", created=2.0))
    store.add_job(job("done", created=1.0))
    store.update_job("done", JobChanges(status=JobStatus.SUCCESS))
    first = store.claim_job("w1", now=10.0)
    assert first is not None
    assert (first.id, first.status, first.worker, first.heartbeat, first.started) == (
        "early",
        JobStatus.RUNNING,
        "w1",
        10.0,
        10.0,
    )
    assert first.attempts == 1
    assert store.get_job("early") == first
    second = store.claim_job("w2", now=11.0)
    assert second is not None and (second.id, second.worker) == ("late", "w2")
    assert store.claim_job("w3", now=12.0) is None


def test_update_job_with_and_without_worker(store: Store) -> None:
    store.add_job(job("j1"))
    assert store.update_job("j1", JobChanges(steps={"image_build": {"status": "queued"}})) is True
    store.claim_job("w1", now=10.0)
    assert store.update_job("j1", JobChanges(status=JobStatus.SUCCESS), worker="w2") is False
    assert store.get_job("j1").status == JobStatus.RUNNING
    result = {"display": "display.html", "check": {"ok": True}}
    steps = {"image_execute": {"status": "success", "text": ["done"]}}
    changes = JobChanges(
        status=JobStatus.SUCCESS, finished=20.0, result=result, steps=steps, reason=""
    )
    assert store.update_job("j1", changes, worker="w1") is True
    done = store.get_job("j1")
    assert done is not None
    assert (done.status, done.finished, done.result, done.steps, done.reason) == (
        JobStatus.SUCCESS,
        20.0,
        result,
        steps,
        "",
    )
    # the worker let go of it when it ended
    assert store.update_job("j1", JobChanges(reason="late"), worker="w1") is False
    assert store.update_job("absent", JobChanges(status=JobStatus.FAILURE)) is False


def test_update_job_back_to_the_queue_lets_go_of_it(store: Store) -> None:
    store.add_job(job("j1"))
    store.claim_job("w1", now=10.0)
    changes = JobChanges(status=JobStatus.QUEUED, attempts=0)
    assert store.update_job("j1", changes, worker="w1") is True
    requeued = store.get_job("j1")
    assert requeued is not None
    assert (requeued.status, requeued.worker, requeued.heartbeat, requeued.attempts) == (
        JobStatus.QUEUED,
        None,
        None,
        0,
    )
    assert requeued.started == 10.0  # unchanged
    assert store.claim_job("w2", now=11.0).id == "j1"


def test_change_sets_are_checked() -> None:
    for wrong in ({"worker_name": "w1"}, {"id": "other"}, {"worker": "w2"}, {"created": 1.0}):
        with pytest.raises(TypeError):
            JobChanges(**wrong)
    for wrong in ({"id": "other"}, {"user": "mallory"}, {"compendium_id": "c9"}):
        with pytest.raises(TypeError):
            ShipmentChanges(**wrong)
    with pytest.raises(ValueError, match="nothing to change"):
        JobChanges()
    with pytest.raises(ValueError, match="nothing to change"):
        ShipmentChanges()
    with pytest.raises(ValueError):
        JobChanges(status="done")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ShipmentChanges(status="sent")  # type: ignore[arg-type]
    # a status given as its string is the member; an empty reason is a change
    assert JobChanges(status="success").status is JobStatus.SUCCESS  # type: ignore[arg-type]
    assert JobChanges(reason="").reason == ""


def test_statuses_are_stored_as_their_strings(store: Store) -> None:
    """The enums change nothing in the database: a status is stored as o2r's string."""
    store.add_job(job("j1"))
    store.update_job("j1", JobChanges(status=JobStatus.CANCELED))
    store.add_shipment(shipment("s1"))
    store.update_shipment("s1", ShipmentChanges(status=ShipmentStatus.ERROR, reason="no"))
    if isinstance(store, SqlStore):
        with store._engine.connect() as conn:
            stored_job = conn.execute(sa.select(jobs.c.status)).scalar_one()
            stored_shipment = conn.execute(sa.select(shipments.c.status)).scalar_one()
            typed = conn.execute(
                sa.select(sa.func.count()).select_from(jobs).where(jobs.c.status == "canceled")
            ).scalar_one()
        assert typed == 1
    else:
        assert isinstance(store, MongoStore)
        stored_job = store._jobs.find_one({"_id": "j1"})["status"]
        stored_shipment = store._shipments.find_one({"_id": "s1"})["status"]
    assert (stored_job, stored_shipment) == ("canceled", "error")
    assert (str(stored_job), str(stored_shipment)) == ("canceled", "error")
    # read back, a status is the member (equal to its string)
    found = store.get_job("j1")
    assert found is not None and found.status is JobStatus.CANCELED
    listed, _ = store.list_jobs(JobQuery(viewer=None, status=JobStatus.CANCELED))
    assert ids(listed) == ["j1"]


def test_heartbeat(store: Store) -> None:
    store.add_job(job("j1"))
    assert store.heartbeat("j1", "w1", now=9.0) is None  # queued: nobody holds it
    store.claim_job("w1", now=10.0)
    beat = store.heartbeat("j1", "w1", now=15.0)
    assert beat is not None and (beat.heartbeat, beat.cancel_requested) == (15.0, False)
    assert store.heartbeat("j1", "w2", now=15.0) is None
    store.request_cancel("j1", now=16.0)
    beat = store.heartbeat("j1", "w1", now=17.0)
    assert beat is not None and beat.cancel_requested is True
    assert store.heartbeat("absent", "w1", now=17.0) is None


def test_request_cancel(store: Store) -> None:
    for name in ("queued", "running", "done"):
        store.add_job(job(name, created={"queued": 3.0, "running": 1.0, "done": 2.0}[name]))
    store.claim_job("w1", now=10.0)  # "running", the oldest
    store.update_job("done", JobChanges(status=JobStatus.SUCCESS, finished=11.0))

    canceled = store.request_cancel("queued", now=12.0)
    assert canceled is not None
    assert (canceled.status, canceled.finished) == (JobStatus.CANCELED, 12.0)
    assert canceled.reason
    assert store.claim_job("w2", now=13.0) is None  # canceled jobs are never claimed

    flagged = store.request_cancel("running", now=14.0)
    assert flagged is not None
    assert (flagged.status, flagged.cancel_requested, flagged.finished) == (
        JobStatus.RUNNING,
        True,
        None,
    )

    before = store.get_job("done")
    assert store.request_cancel("done", now=15.0) == before
    assert store.request_cancel("absent", now=15.0) is None


def test_reap_requeues_once_then_fails(store: Store) -> None:
    store.add_job(job("lost", created=1.0))
    store.add_job(job("alive", created=2.0))
    store.claim_job("w1", now=10.0)
    store.claim_job("w2", now=10.0)
    store.heartbeat("alive", "w2", now=30.0)
    assert store.reap_lost_jobs(cutoff=5.0, now=31.0) == []

    (requeued,) = store.reap_lost_jobs(cutoff=25.0, now=31.0)
    assert (requeued.id, requeued.status, requeued.worker, requeued.attempts) == (
        "lost",
        JobStatus.QUEUED,
        None,
        1,
    )
    assert store.get_job("lost") == requeued
    assert store.heartbeat("lost", "w1", now=32.0) is None
    assert store.update_job("lost", JobChanges(status=JobStatus.SUCCESS), worker="w1") is False

    again = store.claim_job("w3", now=40.0)
    assert again is not None
    assert (again.id, again.attempts, again.started, again.heartbeat) == ("lost", 2, 10.0, 40.0)

    store.heartbeat("alive", "w2", now=46.0)
    (failed,) = store.reap_lost_jobs(cutoff=45.0, now=50.0, max_attempts=2)
    assert (failed.id, failed.status, failed.reason, failed.finished) == (
        "lost",
        JobStatus.FAILURE,
        WORKER_LOST,
        50.0,
    )
    assert store.get_job("lost") == failed
    assert store.heartbeat("lost", "w3", now=51.0) is None
    assert store.claim_job("w4", now=52.0) is None
    assert store.get_job("alive").status == JobStatus.RUNNING


# -- what operators watch ----------------------------------------------------------------------


def test_count_jobs_by_status(store: Store) -> None:
    assert store.count_jobs() == {}
    for n in range(5):
        store.add_job(job(f"j{n}", created=float(n)))
    store.claim_job("w1", now=10.0)
    store.claim_job("w1", now=10.0)
    store.update_job("j0", JobChanges(status=JobStatus.SUCCESS, finished=11.0))
    store.request_cancel("j4", now=12.0)
    counts = store.count_jobs()
    assert counts == {JobStatus.SUCCESS: 1, JobStatus.RUNNING: 1, JobStatus.QUEUED: 2,
                      JobStatus.CANCELED: 1}  # fmt: skip
    assert all(type(status) is JobStatus for status in counts)


def test_worker_heartbeats_are_those_of_running_jobs(store: Store) -> None:
    assert store.worker_heartbeats() == {}
    for n in range(5):
        store.add_job(job(f"j{n}", created=float(n)))
    store.claim_job("w1", now=10.0)  # j0
    store.claim_job("w1", now=10.0)  # j1: a worker holding two jobs shows its newest beat
    store.claim_job("w2", now=10.0)  # j2
    store.claim_job("w3", now=10.0)  # j3, ended: no longer a sign of life
    store.heartbeat("j1", "w1", now=15.0)
    store.heartbeat("j2", "w2", now=12.0)
    store.update_job("j3", JobChanges(status=JobStatus.SUCCESS, finished=13.0), worker="w3")
    assert store.worker_heartbeats() == {"w1": 15.0, "w2": 12.0}


def timed_job(id: str, created: float, status: JobStatus, **steps: dict[str, Any]) -> JobRecord:
    """A job with the steps given (step name -> status, start, end), each with a log."""
    records = {
        name: {"name": name, "text": ["a line of the build log"] * 50, "reason": "", **step}
        for name, step in steps.items()
    }
    return replace(job(id, created=created), status=status, steps=records)


def test_step_timings_of_the_newest_ended_jobs(store: Store) -> None:
    ran = {"status": "success", "start": 100.0, "end": 101.5}
    store.add_job(timed_job("oldest", 1.0, JobStatus.SUCCESS, validate_compendium=ran))
    store.add_job(
        timed_job(
            "failed",
            2.0,
            JobStatus.FAILURE,
            image_build={"status": "failure", "start": 200.0, "end": 260.0},
            validate_compendium={"status": "success", "start": 199.0, "end": 200.0},
            check={"status": "skipped", "start": None, "end": None},
            cleanup={"status": "success", "start": 260.0, "end": 260.25},
        )
    )
    building = {"status": "running", "start": 101.5, "end": None}
    store.add_job(
        timed_job("running", 3.0, JobStatus.RUNNING, validate_compendium=ran, image_build=building)
    )
    store.add_job(timed_job("canceled", 4.0, JobStatus.CANCELED))
    # its node pulled the runtime image from the registry first
    pulled = {**ran, "pull": 0.75, "text": ["pulling ...", "pulled in 0.8 s"]}
    store.add_job(timed_job("newest", 5.0, JobStatus.SUCCESS, image_execute=pulled))

    timings = store.step_timings(last_jobs=3)
    # newest job first, its steps in o2r's order; the oldest ended job is past the window, the
    # running one is not counted, steps that did not run to an end are left out
    assert [(t.step, t.status, t.start, t.end, t.pull) for t in timings] == [
        (StepName.IMAGE_EXECUTE, StepStatus.SUCCESS, 100.0, 101.5, 0.75),
        (StepName.VALIDATE_COMPENDIUM, StepStatus.SUCCESS, 199.0, 200.0, None),
        (StepName.IMAGE_BUILD, StepStatus.FAILURE, 200.0, 260.0, None),
        (StepName.CLEANUP, StepStatus.SUCCESS, 260.0, 260.25, None),
    ]
    assert all(type(t.step) is StepName and type(t.status) is StepStatus for t in timings)
    assert len(store.step_timings(last_jobs=10)) == 5
    assert store.step_timings(last_jobs=0) == []


# -- concurrency -------------------------------------------------------------------------------

JOBS = 40


def add_queued_jobs(store: Store) -> set[str]:
    names = {f"j{n:02}" for n in range(JOBS)}
    for n, name in enumerate(sorted(names)):
        store.add_job(job(name, created=float(n)))
    return names


def claim_all(store: Store, worker: str) -> list[str]:
    claimed = []
    while (record := store.claim_job(worker, now=100.0)) is not None:
        assert record.worker == worker
        claimed.append(record.id)
    return claimed


def test_threads_claim_every_job_once(store: Store, request: pytest.FixtureRequest) -> None:
    if request.node.callspec.params["store"] == "mongomock":
        pytest.skip("mongomock's find_one_and_update is not atomic across threads")
    names = add_queued_jobs(store)
    results: dict[str, list[str]] = {}
    start = threading.Barrier(8)

    def work(worker: str) -> None:
        start.wait()
        results[worker] = claim_all(store, worker)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    claimed = [name for worker_claims in results.values() for name in worker_claims]
    assert sorted(claimed) == sorted(names)
    assert len(results) == 8
    assert all(store.get_job(n).status == JobStatus.RUNNING for n in names)


ROUNDS = 20


def claim_and_delete_at_once(store: Store, compendium_id: str) -> tuple[Any, Any]:
    """A claim and a delete of ``compendium_id`` started together: what each returned (the
    delete's JobRunning instead of a result when it raised)."""
    start = threading.Barrier(2)
    outcome: dict[str, Any] = {}

    def claim() -> None:
        start.wait()
        outcome["claim"] = store.claim_job("w1", now=time.time())

    def delete() -> None:
        start.wait()
        try:
            outcome["delete"] = store.delete_compendium(compendium_id)
        except JobRunning as error:
            outcome["delete"] = error

    threads = [threading.Thread(target=claim), threading.Thread(target=delete)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return outcome["claim"], outcome["delete"]


def test_claim_and_delete_never_both_win(store: Store, request: pytest.FixtureRequest) -> None:
    if request.node.callspec.params["store"] == "mongomock":
        pytest.skip("mongomock's find_one_and_update and update_many are not atomic across threads")
    wins = {"claim": 0, "delete": 0}
    for n in range(ROUNDS):
        compendium_id, job_id = f"c{n:02}", f"j{n:02}"
        store.add_compendium(compendium(compendium_id))
        store.add_job(job(job_id, compendium_id, created=float(n)))
        claimed, deleted = claim_and_delete_at_once(store, compendium_id)
        if isinstance(deleted, JobRunning):
            # the claim won: the job runs, the compendium is there
            assert claimed is not None and claimed.id == job_id
            assert deleted.job_id == job_id
            assert store.get_compendium(compendium_id) is not None
            assert store.get_job(job_id).status == JobStatus.RUNNING
            wins["claim"] += 1
            store.update_job(
                job_id, JobChanges(status=JobStatus.SUCCESS, finished=time.time()), worker="w1"
            )
            assert store.delete_compendium(compendium_id) == [job_id]
        else:
            # the delete won: the job is gone, the claim got nothing
            assert deleted == [job_id], f"round {n}: {claimed=} {deleted=}"
            assert claimed is None, f"round {n}: {claimed=} {deleted=}"
            assert store.get_job(job_id) is None
            assert store.get_compendium(compendium_id) is None
            wins["delete"] += 1
    assert sum(wins.values()) == ROUNDS


@pytest.fixture
def pg_store(postgres_store: SqlStore, postgres_store_url: str) -> SqlStore:
    """The PostgreSQL store alone, emptied (for tests of its locks)."""
    empty_postgres(postgres_store_url)
    return postgres_store


@contextlib.contextmanager
def paused_before_commit(
    store: SqlStore, thread_name: str
) -> Iterator[tuple[threading.Event, threading.Event]]:
    """While inside: the thread ``thread_name`` stops before it commits (its locks held), sets
    the first event and goes on when the second one is set."""
    paused, resume = threading.Event(), threading.Event()

    def hook(_conn: Any) -> None:
        if threading.current_thread().name == thread_name:
            paused.set()
            resume.wait(timeout=30)

    sa.event.listen(store._engine, "commit", hook)
    try:
        yield paused, resume
    finally:
        resume.set()
        sa.event.remove(store._engine, "commit", hook)


def started(name: str, outcome: dict[str, Any], call: Callable[[], Any]) -> threading.Thread:
    """A thread ``name`` that puts what ``call`` returns (or its JobRunning) in ``outcome``."""

    def run() -> None:
        try:
            outcome[name] = call()
        except JobRunning as error:
            outcome[name] = error

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


@pytest.mark.postgres
def test_postgres_delete_waits_for_a_claim_and_refuses(pg_store: SqlStore) -> None:
    pg_store.add_compendium(compendium("c1"))
    pg_store.add_job(job("j1", "c1"))
    outcome: dict[str, Any] = {}
    with paused_before_commit(pg_store, "claim") as (paused, resume):
        claimer = started("claim", outcome, lambda: pg_store.claim_job("w1", now=10.0))
        assert paused.wait(timeout=10)
        deleter = started("delete", outcome, lambda: pg_store.delete_compendium("c1"))
        deleter.join(timeout=1.0)
        assert deleter.is_alive(), "the delete should wait for the claim's lock on the job"
        resume.set()
        claimer.join(timeout=10)
        deleter.join(timeout=10)
    assert outcome["claim"].id == "j1"
    assert isinstance(outcome["delete"], JobRunning)
    assert pg_store.get_compendium("c1") is not None
    assert pg_store.get_job("j1").status == JobStatus.RUNNING


@pytest.mark.postgres
def test_postgres_claim_passes_over_the_jobs_a_delete_holds(pg_store: SqlStore) -> None:
    pg_store.add_compendium(compendium("c1"))
    pg_store.add_compendium(compendium("c2"))
    pg_store.add_job(job("j1", "c1", created=1.0))
    pg_store.add_job(job("j2", "c2", created=2.0))
    outcome: dict[str, Any] = {}
    with paused_before_commit(pg_store, "delete") as (paused, resume):
        deleter = started("delete", outcome, lambda: pg_store.delete_compendium("c1"))
        assert paused.wait(timeout=10)
        claimer = started("claim", outcome, lambda: pg_store.claim_job("w1", now=10.0))
        claimer.join(timeout=10)
        assert not claimer.is_alive(), "the claim should not wait for the delete"
        resume.set()
        deleter.join(timeout=10)
    assert outcome["claim"].id == "j2"  # the oldest queued job, j1, was being deleted
    assert outcome["delete"] == ["j1"]
    assert pg_store.get_job("j1") is None
    assert pg_store.get_job("j2").status == JobStatus.RUNNING


def claim_in_process(url: str, worker: str, start: Any, out: Any) -> None:
    """A worker process: open the store, wait for the others, claim until nothing is left."""
    store = open_store(url)
    start.wait()
    claimed = []
    while (record := store.claim_job(worker, now=100.0)) is not None:
        claimed.append(record.id)
        time.sleep(0.002)  # as if working: lets the other processes in
    store.close()
    out.put((worker, claimed))


def test_processes_claim_every_job_once(sql_url: str) -> None:
    store = open_store(sql_url)
    names = add_queued_jobs(store)
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(3), ctx.Queue()
    processes = [
        ctx.Process(target=claim_in_process, args=(sql_url, f"p{n}", start, out)) for n in range(3)
    ]
    for process in processes:
        process.start()
    results = dict(out.get(timeout=60) for _ in processes)
    for process in processes:
        process.join(timeout=10)
        assert process.exitcode == 0
    claimed = [name for worker_claims in results.values() for name in worker_claims]
    assert sorted(claimed) == sorted(names)
    assert all(results.values()), f"a process claimed nothing: {results}"
    assert {store.get_job(n).worker for n in names} == set(results)
    store.close()


def test_sqlite_writes_begin_immediate_and_reads_do_not(tmp_path: Any) -> None:
    store = open_store(f"sqlite:///{tmp_path}/erchub.sqlite")
    assert isinstance(store, SqlStore)
    statements: list[str] = []
    sa.event.listen(
        store._engine, "before_cursor_execute", lambda *args: statements.append(args[2])
    )
    store.add_compendium(compendium("c1"))
    store.update_compendium("c1", candidate=True, now=2.0)
    store.get_compendium("c1")
    begins = [s for s in statements if s.startswith("BEGIN")]
    assert begins == ["BEGIN IMMEDIATE", "BEGIN IMMEDIATE", "BEGIN"]
    store.close()


def test_sqlite_writers_wait_for_each_other_and_readers_do_not(tmp_path: Any) -> None:
    path = tmp_path / "erchub.sqlite"
    store = open_store(f"sqlite:///{path}")
    store.add_job(job("j0"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing
    writer = threading.Thread(target=store.add_job, args=(job("j1"),))
    writer.start()
    writer.join(timeout=0.5)
    assert writer.is_alive(), "the write should wait for the other writer"
    assert store.get_job("j0") is not None  # WAL: reading goes on meanwhile
    other.execute("COMMIT")
    writer.join(timeout=10)
    assert store.get_job("j1") is not None
    other.close()
    store.close()


# -- migrations and opening --------------------------------------------------------------------


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def recorded_revision(url: str) -> str:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    return str(version)


def open_in_process(url: str, start: Any) -> None:
    start.wait()
    open_store(url).close()


def test_migrations_are_idempotent(sql_url: str) -> None:
    store = open_store(sql_url)
    store.add_compendium(compendium("c1", title="kept"))
    store.close()
    store = open_store(sql_url)
    assert searched(store, "kept") == ["c1"]
    store.close()
    assert recorded_revision(sql_url) == head_revision()


def test_a_schema_from_a_newer_erchub_is_refused(sql_url: str) -> None:
    open_store(sql_url).close()
    engine = sa.create_engine(sql_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    with pytest.raises(StoreError, match="newer erchub"):
        open_store(sql_url)


def test_schema_matches_the_code(sql_url: str) -> None:
    open_store(sql_url).close()
    engine = sa.create_engine(sql_url)
    inspector = sa.inspect(engine)
    postgres = engine.dialect.name == "postgresql"
    for table in (compendia, jobs):
        expected = {c.name for c in table.columns if postgres or c.name != "search"}
        assert {c["name"] for c in inspector.get_columns(table.name)} == expected
    engine.dispose()


def test_processes_opening_a_new_database_together(sql_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(3)
    processes = [ctx.Process(target=open_in_process, args=(sql_url, start)) for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [p.exitcode for p in processes] == [0, 0, 0]
    assert recorded_revision(sql_url) == head_revision()


def test_open_store_rejects_unknown_schemes() -> None:
    with pytest.raises(ValueError) as raised:
        open_store("mysql://root:hunter2@db/erchub")
    message = str(raised.value)
    assert "hunter2" not in message and "\n" not in message
    assert all(f"{scheme}://" in message for scheme in SCHEMES)
    with pytest.raises(ValueError, match="file"):
        open_store("sqlite:///:memory:")


def test_open_store_makes_the_sqlite_folder(tmp_path: Any) -> None:
    store = open_store(f"sqlite:///{tmp_path}/a/b/erchub.sqlite")
    assert isinstance(store, SqlStore)
    store.close()
    assert (tmp_path / "a" / "b" / "erchub.sqlite").is_file()


def test_open_store_hides_the_password_of_an_unreachable_server() -> None:
    with pytest.raises(StoreError) as raised:
        open_store("postgresql://erchub:hunter2@127.0.0.1:1/erchub?connect_timeout=2")
    assert "hunter2" not in str(raised.value)
    assert "127.0.0.1" in str(raised.value)


def test_open_store_names_the_mongodb_database(monkeypatch: pytest.MonkeyPatch) -> None:
    # no MongoDB server here: the client is mongomock's, the URL handling is the store's
    monkeypatch.setattr(pymongo, "MongoClient", mongomock.MongoClient)
    named = open_store("mongodb://user:pw@db.example:27017/ercs?authSource=admin")
    default = open_store("mongodb://db.example:27017/")
    assert named._compendia.database.name == "ercs"
    assert default._compendia.database.name == "erchub"


# -- shipments ---------------------------------------------------------------------------------


def shipment(
    id: str,
    compendium_id: str = "c1",
    user: str = "alice",
    recipient: str = "zenodo",
    created: float = 1.0,
    **fields: Any,
) -> ShipmentRecord:
    return ShipmentRecord(
        id=id,
        compendium_id=compendium_id,
        recipient=recipient,
        user=user,
        created=created,
        last_modified=created,
        **fields,
    )


def test_shipment_round_trip(store: Store) -> None:
    record = shipment(
        "s1",
        created=12.5,
        deposition_id="4711",
        deposition_url="https://zenodo.example/deposit/4711",
        reason="",
    )
    store.add_shipment(record)
    assert store.get_shipment("s1") == record
    assert store.get_shipment("absent") is None
    download = shipment("s2", recipient="download", status=ShipmentStatus.SHIPPED)
    store.add_shipment(download)
    assert store.get_shipment("s2") == download
    assert (download.deposition_id, download.doi) == (None, None)


def test_duplicate_shipment_is_a_conflict(store: Store) -> None:
    store.add_shipment(shipment("s1", recipient="zenodo"))
    with pytest.raises(Conflict):
        store.add_shipment(shipment("s1", recipient="download", user="bob"))
    found = store.get_shipment("s1")
    assert found is not None and (found.recipient, found.user) == ("zenodo", "alice")


def test_list_shipments(store: Store) -> None:
    store.add_shipment(shipment("s1", "c1", "alice", created=1.0))
    store.add_shipment(shipment("s2", "c2", "alice", created=2.0))
    store.add_shipment(shipment("s3", "c1", "bob", created=3.0))
    store.add_shipment(shipment("s4", "c1", "alice", created=4.0))

    def listed(**query: Any) -> tuple[list[str], int]:
        records, total = store.list_shipments(**query)
        return ids(records), total

    assert listed() == (["s4", "s3", "s2", "s1"], 4)
    assert listed(compendium_id="c1") == (["s4", "s3", "s1"], 3)
    assert listed(user="alice") == (["s4", "s2", "s1"], 3)
    assert listed(compendium_id="c1", user="alice") == (["s4", "s1"], 2)
    assert listed(compendium_id="c1", user="carol") == ([], 0)
    assert listed(compendium_id="absent") == ([], 0)
    assert listed(start=1, limit=2) == (["s3", "s2"], 4)
    assert listed(start=9, limit=2) == ([], 4)
    assert listed(limit=0) == ([], 4)
    assert listed(start=-1, limit=1) == (["s4"], 4)
    records, _ = store.list_shipments(user="bob")
    assert records == [store.get_shipment("s3")]


def test_list_shipments_ties_are_ordered_by_id(store: Store) -> None:
    for name in ("x1", "x3", "x2"):
        store.add_shipment(shipment(name, created=1.0))
    pages = [ids(store.list_shipments(start=n, limit=1)[0]) for n in range(3)]
    assert pages == [["x3"], ["x2"], ["x1"]]


def test_update_shipment(store: Store) -> None:
    store.add_shipment(shipment("s1", created=1.0, deposition_id="7"))
    store.add_shipment(shipment("s2", created=2.0))
    published = store.update_shipment(
        "s1",
        ShipmentChanges(
            status=ShipmentStatus.PUBLISHED,
            doi="10.5072/zenodo.7",
            deposition_url="https://zenodo.example/records/7",
            last_modified=5.0,
        ),
    )
    assert published == store.get_shipment("s1")
    assert published is not None
    assert (published.status, published.doi, published.deposition_id) == (
        ShipmentStatus.PUBLISHED,
        "10.5072/zenodo.7",
        "7",
    )
    assert (published.created, published.last_modified) == (1.0, 5.0)
    assert published.deposition_url == "https://zenodo.example/records/7"
    failed = store.update_shipment(
        "s2", ShipmentChanges(status=ShipmentStatus.ERROR, reason="Zenodo said no")
    )
    assert failed is not None
    assert (failed.status, failed.reason) == (ShipmentStatus.ERROR, "Zenodo said no")
    assert store.get_shipment("s1") == published  # the other one is untouched
    changes = ShipmentChanges(status=ShipmentStatus.PUBLISHED)
    assert store.update_shipment("absent", changes) is None
    assert store.get_shipment("s1") == published


def test_deleting_a_compendium_keeps_its_shipments(store: Store) -> None:
    # a deposition on Zenodo outlives the compendium here: its record stays
    store.add_compendium(compendium("c1"))
    store.add_shipment(shipment("s1", "c1"))
    store.delete_compendium("c1")
    assert store.get_shipment("s1") is not None


# -- users' secrets ----------------------------------------------------------------------------


def test_user_secrets(store: Store) -> None:
    assert store.get_user_secret("alice", "zenodo") is None
    store.set_user_secret("alice", "zenodo", "gAAAA-first", now=1.0)
    store.set_user_secret("alice", "zenodo_sandbox", "gAAAA-sandbox", now=1.0)
    store.set_user_secret("bob", "zenodo", "gAAAA-bob", now=1.0)
    assert store.get_user_secret("alice", "zenodo") == "gAAAA-first"
    store.set_user_secret("alice", "zenodo", "gAAAA-second", now=2.0)
    assert store.get_user_secret("alice", "zenodo") == "gAAAA-second"
    assert store.get_user_secret("alice", "zenodo_sandbox") == "gAAAA-sandbox"
    assert store.get_user_secret("bob", "zenodo") == "gAAAA-bob"
    assert store.get_user_secret("carol", "zenodo") is None

    assert store.delete_user_secret("alice", "zenodo") is True
    assert store.get_user_secret("alice", "zenodo") is None
    assert store.delete_user_secret("alice", "zenodo") is False
    assert store.get_user_secret("alice", "zenodo_sandbox") == "gAAAA-sandbox"
    assert store.get_user_secret("bob", "zenodo") == "gAAAA-bob"
    store.set_user_secret("alice", "zenodo", "gAAAA-third", now=3.0)
    assert store.get_user_secret("alice", "zenodo") == "gAAAA-third"


def test_user_secrets_from_threads_keep_one_value(
    store: Store, request: pytest.FixtureRequest
) -> None:
    if request.node.callspec.params["store"] == "mongomock":
        pytest.skip("mongomock's upserts are not atomic across threads")
    start = threading.Barrier(4)

    def write(n: int) -> None:
        start.wait()
        for round in range(10):
            store.set_user_secret("alice", "zenodo", f"value-{n}-{round}", now=float(round))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert store.get_user_secret("alice", "zenodo") in {f"value-{n}-9" for n in range(4)}
    assert store.delete_user_secret("alice", "zenodo") is True
    assert store.get_user_secret("alice", "zenodo") is None


def test_shipment_tables_match_the_code(sql_url: str) -> None:
    open_store(sql_url).close()
    engine = sa.create_engine(sql_url)
    inspector = sa.inspect(engine)
    for table in (shipments, user_secrets):
        assert {c["name"] for c in inspector.get_columns(table.name)} == {
            c.name for c in table.columns
        }
    assert set(ShipmentRecord.__dataclass_fields__) - {"user"} == {
        c.name for c in shipments.columns
    } - {"user_name"}
    engine.dispose()


def migrated_to(sql_url: str, revision: str, *statements: str) -> None:
    """The database of ``sql_url`` brought up to ``revision`` only, then ``statements`` run."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    database = sa.make_url(sql_url).database
    if sql_url.startswith("sqlite") and database:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(sql_url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


def test_migrating_a_first_schema_keeps_its_compendia(sql_url: str) -> None:
    migrated_to(sql_url, "0001")
    assert recorded_revision(sql_url) == "0001"
    store = open_store(sql_url)
    assert recorded_revision(sql_url) == head_revision()
    store.add_compendium(compendium("c1", title="kept"))
    store.add_shipment(shipment("s1", "c1"))
    assert store.get_shipment("s1") is not None
    store.close()


def test_jobs_from_before_the_network_grant_have_none(sql_url: str) -> None:
    migrated_to(
        sql_url,
        "0003",
        "INSERT INTO jobs (id, compendium_id, user_name, status, parameters, steps, "
        "created, attempts, cancel_requested, reason, result) VALUES ('old', 'c1', "
        "'alice', 'queued', '{}', '{}', 1.0, 0, false, '', '{}')",
    )
    store = open_store(sql_url)
    assert recorded_revision(sql_url) == head_revision()
    old = store.get_job("old")
    assert old is not None and old.network_granted is False
    store.close()


def test_mongodb_jobs_from_before_the_network_grant_have_none() -> None:
    store = MongoStore(mongomock.MongoClient(), "erchub_test")
    store._jobs.insert_one(
        {"_id": "old", "compendium_id": "c1", "user": "alice", "status": "queued", "created": 1.0}
    )
    old = store.get_job("old")
    assert old is not None and old.network_granted is False


def test_mongodb_secrets_are_unique_per_user_and_name() -> None:
    store = MongoStore(mongomock.MongoClient(), "erchub_test")
    indexes = store._secrets.index_information()
    assert any(
        index.get("unique") and [key for key, _ in index["key"]] == ["user", "name"]
        for index in indexes.values()
    )
    store.set_user_secret("alice", "zenodo", "one", now=1.0)
    store.set_user_secret("alice", "zenodo", "two", now=2.0)
    assert store._secrets.count_documents({}) == 1


class InterleavedCollection:
    """A MongoDB collection whose next find_one first calls ``before``: another client acting in
    the middle of a store method."""

    def __init__(self, collection: Any, before: Callable[[], None]) -> None:
        self._collection = collection
        self._before: Callable[[], None] | None = before

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    def find_one(self, *args: Any, **kwargs: Any) -> Any:
        before, self._before = self._before, None
        if before is not None:
            before()
        return self._collection.find_one(*args, **kwargs)


def test_mongodb_delete_holds_its_jobs_against_claims() -> None:
    store = MongoStore(mongomock.MongoClient(), "erchub_test")
    store.add_compendium(compendium("c1"))
    store.add_compendium(compendium("c2"))
    store.add_job(job("j1", "c1", created=1.0))
    store.add_job(job("j2", "c2", created=2.0))
    claimed: list[JobRecord | None] = []
    # a worker claims after the delete held the jobs, before it looks for running ones
    store._jobs = InterleavedCollection(
        store._jobs, lambda: claimed.append(store.claim_job("w1", now=time.time()))
    )
    assert store.delete_compendium("c1") == ["j1"]
    assert [record.id for record in claimed if record] == ["j2"]
    assert store.get_job("j1") is None


def test_mongodb_refused_delete_lets_go_of_the_compendium_and_its_jobs() -> None:
    store = MongoStore(mongomock.MongoClient(), "erchub_test")
    store.add_compendium(compendium("c1"))
    store.add_job(job("j1", "c1", created=1.0))
    store.add_job(job("j2", "c1", created=2.0))
    store.claim_job("w1", now=time.time())
    with pytest.raises(JobRunning):
        store.delete_compendium("c1")
    assert store._jobs.count_documents({"held_until": {"$exists": True}}) == 0
    assert store._compendia.count_documents({"deleting": {"$exists": True}}) == 0
    assert store.claim_job("w2", now=time.time()).id == "j2"


def test_mongodb_delete_marks_are_leases() -> None:
    store = MongoStore(mongomock.MongoClient(), "erchub_test")
    store.add_compendium(compendium("c1"))
    store.add_job(job("j1", "c1"))
    now = time.time()
    # another delete of c1 is under way: its mark and its hold are fresh
    store._compendia.update_one(
        {"_id": "c1"}, {"$set": {"deleting": {"token": "x", "until": now + 60}}}
    )
    store._jobs.update_one({"_id": "j1"}, {"$set": {"held_until": now + 60}})
    with pytest.raises(Conflict, match="c1 is being deleted") as raised:
        store.delete_compendium("c1")
    assert not isinstance(raised.value, JobRunning)
    assert store._compendia.find_one({"_id": "c1"})["deleting"]["token"] == "x"  # not ours
    assert store.claim_job("w1", now=now) is None
    assert store.get_job("j1").status == JobStatus.QUEUED
    # ... and it died: once its leases end, claims and deletes go on
    assert store.claim_job("w1", now=now + 61).id == "j1"
    store.update_job("j1", JobChanges(status=JobStatus.SUCCESS, finished=now + 62), worker="w1")
    store._compendia.update_one({"_id": "c1"}, {"$set": {"deleting.until": now - 1}})
    assert store.delete_compendium("c1") == ["j1"]
    assert store.get_compendium("c1") is None


# -- review links ------------------------------------------------------------------------------


def link(
    id: str, compendium_id: str = "c1", user: str = "alice", created: float = 1.0, **fields: Any
) -> LinkRecord:
    return LinkRecord(id=id, compendium_id=compendium_id, user=user, created=created, **fields)


def test_link_round_trip(store: Store) -> None:
    blind = link("l1", mode=LinkMode.BLIND, expires=99.5, created=2.0)
    store.add_link(blind)
    found = store.get_link("l1")
    assert found == blind
    assert found is not None and found.mode is LinkMode.BLIND
    store.add_link(link("l2"))
    assert store.get_link("l2") == LinkRecord("l2", "c1", "alice", created=1.0)
    assert store.get_link("absent") is None


def test_duplicate_link_is_a_conflict(store: Store) -> None:
    store.add_link(link("l1"))
    with pytest.raises(Conflict):
        store.add_link(link("l1", "c2", "bob"))
    assert store.get_link("l1") == link("l1")


def test_list_links(store: Store) -> None:
    store.add_link(link("l1", "c1", "alice", created=1.0))
    store.add_link(link("l2", "c2", "alice", created=2.0))
    store.add_link(link("l3", "c1", "bob", created=3.0))
    store.add_link(link("l4", "c1", "alice", created=3.0))
    assert ids(store.list_links()) == ["l4", "l3", "l2", "l1"]
    assert ids(store.list_links(user="alice")) == ["l4", "l2", "l1"]
    assert ids(store.list_links(compendium_id="c1")) == ["l4", "l3", "l1"]
    assert ids(store.list_links(user="alice", compendium_id="c1")) == ["l4", "l1"]
    assert store.list_links(user="carol") == []


def test_revoke_link_keeps_its_first_time(store: Store) -> None:
    store.add_link(link("l1"))
    store.add_link(link("l2"))
    revoked = store.revoke_link("l1", now=5.0)
    assert revoked is not None and revoked.revoked == 5.0
    again = store.revoke_link("l1", now=9.0)
    assert again == revoked == store.get_link("l1")
    assert store.get_link("l2") == link("l2")
    assert store.revoke_link("absent", now=5.0) is None


def test_link_uses_count_from_threads(store: Store) -> None:
    store.add_link(link("l1"))
    store.add_link(link("l2"))
    threads = [threading.Thread(target=store.count_link_use, args=("l1",)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    found, other = store.get_link("l1"), store.get_link("l2")
    assert found is not None and other is not None
    assert (found.uses, other.uses) == (8, 0)
    store.count_link_use("absent")
    assert store.get_link("absent") is None


def test_set_link_mode_changes_that_link_only(store: Store) -> None:
    store.add_link(link("l1"))
    store.add_link(link("l2"))
    changed = store.set_link_mode("l1", LinkMode.BLIND)
    assert changed is not None and changed.mode is LinkMode.BLIND
    assert store.get_link("l1") == changed
    assert store.get_link("l2") == link("l2")
    assert store.set_link_mode("absent", LinkMode.OPEN) is None
