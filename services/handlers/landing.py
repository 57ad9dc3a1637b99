"""A compendium's landing page, the link an author puts in a paper, and what it links.

- ``GET compendium/{id}``: title, authors (ORCID links), abstract, keywords, licences, the
  display HTML (the paper's figures) in a sandboxed frame, the last check's verdict, "Launch in
  JupyterLab", "Check", downloads, "Cite" (BibTeX and DataCite, :mod:`~.exchange.citation`),
  the files with their sizes, the job history and related versions; its schema.org JSON-LD
  (a ``Dataset``, for search engines) in a ``<script type="application/ld+json">``.
- ``GET compendium/{id}/metadata?format=``: the metadata's exports, as the API's (the Cite
  box's downloads: BibTeX, CSL-JSON, DataCite XML, codemeta, schema.org);
- ``GET compendium/{id}.zip``: the compendium as a zip (as the API's download);
- ``GET compendium/{id}/bag.zip``: the compendium as a BagIt bag with RO-Crate metadata, zipped
  (as a ``download`` shipment makes it, but nothing is recorded: a GET changes nothing);
- ``GET compendium/{id}/display``: the display HTML, the compendium's own ``displayfile``, else
  the one its newest successful job wrote;
- ``GET compendium/{id}/job/{job_id}/report``: a job's check report.

Published compendia are readable without logging in (:mod:`.reading`); files are served as
every file of a compendium or job is (sandboxed, :func:`~.base.untrusted_content_headers`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jupyterhub.utils import url_path_join
from tornado import web

from erchub import safefs
from erchub.checker import Verdict as CheckerVerdict
from erchub.erc import LICENSE_NOT_SPECIFIED
from erchub.services.compendia import files as compendia
from erchub.services.compendia import links
from erchub.services.exchange.citation import bibtex, datacite_attributes, schema_org
from erchub.services.exchange.o2r import doi_of, keywords_of, loaded_commit, text_of
from erchub.services.exchange.packaging import human_size
from erchub.services.exchange.shipping import WorkFolder, doi_url, make_bag_zip
from erchub.services.handlers.base import LINK_ARGUMENT, SCOPE_READ, iso
from erchub.services.handlers.pages import PageHandler
from erchub.services.handlers.reading import (
    ReaderPageHandler,
    authors_of,
    day_of,
    title_of,
)
from erchub.services.jobs.runner import CHECK_DIR, OUTPUT_DIR
from erchub.services.store import CompendiumRecord, JobQuery, JobRecord
from erchub.steps import JobStatus, StrEnum

#: jobs the history shows, newest first
JOB_HISTORY = 20
#: o2r fields linking other versions (written by publishing a new version or a derived
#: compendium), the relation each names, in the order the page lists them
RELATIONS = (("is_new_version_of", "A new version of"), ("derived_from", "Derived from"))
#: what a related value must look like to be read as the id of a compendium here
COMPENDIUM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Verdict(StrEnum):
    """What the newest finished check says about a compendium."""

    REPRODUCED = "reproduced"
    EXECUTED = "executed"
    #: executed, but the published notebook stores no outputs to compare with
    NO_REFERENCE = "no-reference"
    DIFFERS = "differs"
    FAILED = "failed"
    UNCHECKED = "unchecked"


@dataclass(frozen=True)
class CheckVerdict:
    verdict: Verdict
    #: in plain words
    text: str
    #: the job it comes from (None: never checked)
    job: JobRecord | None = None


def verdict_of(job: JobRecord | None) -> CheckVerdict:
    """The verdict of a compendium's newest job that ended in success or failure. Pure."""
    if job is None:
        return CheckVerdict(Verdict.UNCHECKED, "Not checked yet.")
    check = _mapping(_mapping(job.result).get("check"))
    counts = _mapping(check.get("counts"))
    if job.status == JobStatus.SUCCESS and check.get("passed") is True:
        compared = counts.get("cells_compared")
        cells = f" ({compared} cells compared)" if isinstance(compared, int) else ""
        return CheckVerdict(
            Verdict.REPRODUCED,
            f"Reproduced: every output matches the published one{cells}.",
            job,
        )
    if (
        job.status == JobStatus.SUCCESS
        and check.get("verdict") == CheckerVerdict.NO_REFERENCE_OUTPUTS
    ):
        return CheckVerdict(
            Verdict.NO_REFERENCE,
            "Executed without error, but the published notebook stores no outputs to compare "
            "with (no reference outputs).",
            job,
        )
    if job.status == JobStatus.SUCCESS:
        return CheckVerdict(
            Verdict.EXECUTED, "Executed without error; no outputs were compared.", job
        )
    if check.get("passed") is False:
        different, compared = counts.get("cells_different"), counts.get("cells_compared")
        how_many = (
            f"{different} of {compared} cells differ"
            if isinstance(different, int) and isinstance(compared, int)
            else "outputs differ"
        )
        return CheckVerdict(
            Verdict.DIFFERS, f"Not reproduced: {how_many} from the published ones.", job
        )
    reason = f": {job.reason}" if job.reason else ""
    return CheckVerdict(Verdict.FAILED, f"The check failed{reason}.", job)


def _mapping(value: object) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one (results are read leniently)."""
    return value if isinstance(value, Mapping) else {}


def related_links(metadata: Mapping[str, Any], service_url: str) -> list[dict[str, str]]:
    """The related versions the metadata names (:data:`RELATIONS`), as links: a compendium
    id to its landing page, a DOI to its resolver, a URL as it is; a value may be one of
    those, ``{"id"|"doi"|"url": ...}``, or a list of them. Anything else is left out.
    Pure."""
    links = []
    for field, relation in RELATIONS:
        value = metadata.get(field)
        for item in value if isinstance(value, list) else [value]:
            link = _link_of(item, service_url)
            if link is not None:
                links.append({"relation": relation, "href": link[0], "text": link[1]})
    return links


def _link_of(item: object, service_url: str) -> tuple[str, str] | None:
    if isinstance(item, Mapping):
        for key in ("id", "compendium_id", "doi", "url"):
            if text_of(item.get(key)):
                return _link_of(item[key], service_url)
        return None
    text = text_of(item)
    if text is None:
        return None
    if text.startswith(("https://", "http://")):
        return text, text
    doi = text.removeprefix("doi:")
    if doi.startswith("10.") and "/" in doi:
        return doi_url(doi), doi
    if COMPENDIUM_ID.fullmatch(text):
        return f"{service_url}compendium/{text}", text
    return None


def licenses_of(metadata: Mapping[str, Any]) -> list[dict[str, str]]:
    """Each license kind and what it says ("not stated" for NOASSERTION; a per-file mapping
    as "path: id" pairs). Pure."""
    licenses = metadata.get("license")
    if not isinstance(licenses, Mapping):
        return []
    shown = []
    for kind, value in licenses.items():
        if isinstance(value, Mapping):
            text = "; ".join(f"{path}: {lic}" for path, lic in value.items())
        else:
            text = text_of(value) or LICENSE_NOT_SPECIFIED
        shown.append(
            {"kind": str(kind), "license": "not stated" if text == LICENSE_NOT_SPECIFIED else text}
        )
    return shown


def files_of(tree: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The files of a :func:`~erchub.services.compendia.files.file_tree`, in path order, with
    their sizes. Pure."""
    files = []
    pending = [tree]
    while pending:
        node = pending.pop()
        if node.get("type") == "directory":
            pending.extend(reversed(node.get("children") or []))
        else:
            files.append({"path": node["path"], "size": human_size(int(node.get("size", 0)))})
    return files


def job_file(job: JobRecord, key: str, folder: str) -> str | None:
    """The path inside ``folder`` of the job's file ``key`` (``display``, ``report``), when
    the job recorded one there; None otherwise."""
    recorded = text_of(job.result.get(key)) if isinstance(job.result, Mapping) else None
    if recorded is None:
        return None
    top, _, inside = recorded.partition("/")
    return inside if top == folder and inside else None


class CompendiumReading(ReaderPageHandler):
    """What the landing page and its files share: the compendium and its jobs. A review link
    shows them too (see :meth:`~.base.BaseHandler.visible_compendium`)."""

    link_methods = frozenset({"GET"})
    guest_methods = frozenset({"GET"})

    @property
    def viewer(self) -> str | None:
        """Whose view the store applies to the compendium's jobs: through a review link, the
        view of whoever sees the compendium (its jobs are visible to them, the store's
        rule)."""
        return None if self.review_link is not None else super().viewer

    def link_query(self) -> str:
        """What the page's links to the compendium's files and check carry: the review link
        it is seen through, else nothing."""
        link = self.review_link
        return f"?{urlencode({LINK_ARGUMENT: link.id})}" if link is not None else ""

    async def newest_job(self, record: CompendiumRecord, status: JobStatus) -> JobRecord | None:
        query = JobQuery(viewer=self.viewer, compendium_id=record.id, status=status, limit=1)
        jobs, _ = await self.blocking(self.store.list_jobs, query)
        return jobs[0] if jobs else None

    async def verdict(self, record: CompendiumRecord) -> CheckVerdict:
        ended = [
            job
            for job in [
                await self.newest_job(record, JobStatus.SUCCESS),
                await self.newest_job(record, JobStatus.FAILURE),
            ]
            if job is not None
        ]
        newest = max(ended, key=lambda job: job.finished or job.created, default=None)
        return verdict_of(newest)

    async def display(self, record: CompendiumRecord, root: Path) -> tuple[Path, str] | None:
        """Where the display HTML is (a folder and a path inside it), or None."""
        own = text_of(record.metadata.get("displayfile"))
        if own is not None:
            is_there: bool = await self.blocking(safefs.is_file, root, own)
            if is_there:
                return root, own
        job = await self.newest_job(record, JobStatus.SUCCESS)
        inside = job_file(job, "display", OUTPUT_DIR) if job else None
        if job is None or inside is None:
            return None
        return self.job_dir(job.id) / OUTPUT_DIR, inside


class LandingPageHandler(CompendiumReading):
    counts_link_use = True

    async def get(self, compendium_id: str) -> None:
        self.check_arguments()
        record = await self.readable_compendium(compendium_id)
        root = await self.compendium_files(record)
        tree = await self.blocking(compendia.file_tree, root)
        history, history_total = await self.blocking(
            self.store.list_jobs,
            JobQuery(viewer=self.viewer, compendium_id=record.id, limit=JOB_HISTORY),
        )
        metadata = record.metadata
        description = await self.described(record, root)
        page = self.service_url("compendium", record.id)
        link_query = self.link_query()
        check = await self.verdict(record)
        jobs = [
            {
                "id": job.id,
                "status": str(job.status),
                "date": day_of(job.finished or job.created),
                "report": f"{page}/job/{job.id}/report{link_query}"
                if job_file(job, "report", CHECK_DIR)
                else None,
            }
            for job in history
        ]
        self.render_page(
            "landing.html",
            compendium_id=record.id,
            page_url=page,
            candidate=record.candidate,
            title=title_of(record),
            authors=authors_of(metadata),
            description=text_of(metadata.get("description")),
            keywords=keywords_of(metadata),
            licenses=licenses_of(metadata),
            published=text_of(metadata.get("publication_date")) or day_of(record.created),
            doi=doi_of(metadata),
            loaded_from=loaded_commit(metadata),
            has_display=await self.display(record, root) is not None,
            check=check,
            check_date=day_of(check.job.finished) if check.job else None,
            bibtex=bibtex(description),
            datacite=json.dumps(datacite_attributes(description), indent=2, ensure_ascii=False),
            json_ld=schema_org(description),
            files=files_of(tree),
            jobs=jobs,
            jobs_total=history_total,
            related=related_links(metadata, self.service_url()),
            login_url=self.login_link(),
            link_query=link_query,
            blinded=self.blinded,
            guest=self.is_guest,
            review_links=await self.review_links(record),
            api_url=self.service.api_prefix,
        )

    async def review_links(self, record: CompendiumRecord) -> list[dict[str, Any]] | None:
        """The author's review links of the compendium, as the page lists them; None for
        anyone else (and for the author seeing it through a link)."""
        if self.review_link is not None or self.anonymous or record.user != self.username:
            return None
        found = await self.blocking(
            self.store.list_links, user=record.user, compendium_id=record.id
        )
        now = time.time()
        origin = f"{self.request.protocol}://{self.request.host}"
        return [
            {
                "id": link.id,
                "mode": str(link.mode),
                "expires": iso(link.expires),
                "active": links.is_active(link, now),
                "revoked": link.revoked is not None,
                "uses": link.uses,
                "url": f"{origin}{self.service_url('link', link.id)}",
            }
            for link in found
        ]


class DisplayHandler(CompendiumReading):
    async def get(self, compendium_id: str) -> None:
        self.check_arguments()
        record = await self.readable_compendium(compendium_id)
        found = await self.display(record, await self.compendium_files(record))
        if found is None:
            raise web.HTTPError(404, f"compendium {record.id} has no display file yet")
        await self.send_file(*found)


class ReportHandler(CompendiumReading):
    async def get(self, compendium_id: str, job_id: str) -> None:
        self.check_arguments()
        record = await self.readable_compendium(compendium_id)
        job = await self.blocking(self.store.get_job, job_id)
        # a job is visible to whoever sees its compendium (the store's rule)
        inside = job_file(job, "report", CHECK_DIR) if job else None
        if job is None or job.compendium_id != record.id or inside is None:
            raise web.HTTPError(404, f"compendium {record.id} has no report of job {job_id}")
        await self.send_file(self.job_dir(job.id) / CHECK_DIR, inside)


class ZipHandler(CompendiumReading):
    counts_link_use = True

    async def get(self, compendium_id: str) -> None:
        self.check_arguments()
        record = await self.readable_compendium(compendium_id)
        await self.send_compendium(record, "zip")


class BagHandler(CompendiumReading):
    #: the bag's RO-Crate metadata names the authors: not served through a link (the zip is)
    link_methods: frozenset[str] = frozenset()

    async def get(self, compendium_id: str) -> None:
        self.check_arguments()
        record = await self.readable_compendium(compendium_id)
        root = await self.compendium_files(record)
        work = await self.blocking(WorkFolder.new, self.service.data_dir)
        try:
            bag_zip = await self.blocking(
                make_bag_zip,
                self.store,
                record,
                root,
                work.path,
                self.job_dir,
                self.landing_url(record.id),
            )
            self.set_header("Content-Type", "application/zip")
            self.set_header("Content-Length", await self.blocking(lambda: bag_zip.stat().st_size))
            self.set_header("Content-Disposition", f'attachment; filename="{record.id}_bag.zip"')
            await self.stream_file(bag_zip)
        finally:
            await self.blocking(work.remove)


class MetadataExportHandler(CompendiumReading):
    """The metadata in a ``format`` (the Cite box's downloads), as the API sends it."""

    async def get(self, compendium_id: str) -> None:
        self.check_arguments(["format"])
        record = await self.readable_compendium(compendium_id)
        export_format = self.export_format()
        if export_format is None:
            raise web.HTTPError(400, "format is required")
        await self.send_export(record, export_format)


class ReviewLinkHandler(PageHandler):
    """``GET link/{id}``: a review link's own address, the landing page of its compendium
    seen through it; a link revoked, expired or unknown is the 404 page."""

    guest_methods = frozenset({"GET"})

    async def get(self, link_id: str) -> None:
        self.check_arguments()
        if self.current_user is None and self.not_allowed is None and self.service.review_guests:
            # without identity: the hub's page for reviewers, which offers a guest identity
            self.redirect(url_path_join(self.hub_url, "review", quote(link_id, safe="")))
            return
        self.require(SCOPE_READ)
        link = await self.blocking(self.store.get_link, link_id)
        if link is None or not links.is_active(link, time.time()):
            raise web.HTTPError(404, "this review link does not exist or no longer works")
        page = self.service_url("compendium", link.compendium_id)
        self.redirect(f"{page}?{urlencode({LINK_ARGUMENT: link.id})}")


_ID = r"(?P<compendium_id>[^/.]+)"

default_handlers = [
    (rf"compendium/{_ID}", LandingPageHandler),
    (rf"compendium/{_ID}\.zip", ZipHandler),
    (rf"compendium/{_ID}/bag\.zip", BagHandler),
    (rf"compendium/{_ID}/display", DisplayHandler),
    (rf"compendium/{_ID}/metadata", MetadataExportHandler),
    (rf"compendium/{_ID}/job/(?P<job_id>[^/]+)/report", ReportHandler),
    (r"link/(?P<link_id>[^/]+)", ReviewLinkHandler),
]
