"""How the API shows records: the JSON of compendia (shared by the handler modules, which
import no other handler module)."""

from __future__ import annotations

from typing import Any

from erchub.services.compendia.operations import related_ids
from erchub.services.handlers.base import iso
from erchub.services.store import CompendiumRecord


def compendium_json(record: CompendiumRecord, files: dict[str, Any] | None) -> dict[str, Any]:
    """A compendium as the API shows it (o2r fields, times in ISO 8601), with the ids of the
    compendia it is a new version of and derived from (null for none)."""
    body = summary_json(record)
    body["updated"] = iso(record.updated)
    body.update(related_ids(record.metadata))
    body["metadata"] = {"o2r": record.metadata}
    if files is not None:
        body["files"] = files
    return body


def summary_json(record: CompendiumRecord) -> dict[str, Any]:
    title = record.metadata.get("title")
    return {
        "id": record.id,
        "user": record.user,
        "created": iso(record.created),
        "candidate": record.candidate,
        "title": title if isinstance(title, str) else None,
    }
