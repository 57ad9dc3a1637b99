"""The WebDAV loader's pure rules: the folder a share_url names (share links, WebDAV folders
with credentials), the request body, PROPFIND listings, and the safety of their paths."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from erchub.services.exchange.sources import (
    LOAD_BODY_SCHEMA,
    LoadError,
    Source,
    origin_metadata,
    parse_source,
)
from erchub.services.exchange.webdav import (
    MAX_LISTING_BYTES,
    Entry,
    WebDavFolder,
    basic_auth,
    parse_listing,
    share_endpoint,
    webdav_folder,
)
from erchub.services.handlers.base import schema_problems

O2R_SCHEMA = Path(__file__).resolve().parents[2] / "services/schemas/metadata_o2r.schema.json"
ROOT = "https://cloud.example.org/public.php/webdav/"


# -- the folder a request names ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "endpoint", "token"),
    [
        (
            "https://uni.sciebo.de/s/aBc123XyZ",
            "https://uni.sciebo.de/public.php/webdav/",
            "aBc123XyZ",
        ),
        ("https://h.org/index.php/s/T0k3n/", "https://h.org/public.php/webdav/", "T0k3n"),
        ("https://h.org/nextcloud/s/T0k3n", "https://h.org/nextcloud/public.php/webdav/", "T0k3n"),
        ("http://127.0.0.1:8080/s/abc", "http://127.0.0.1:8080/public.php/webdav/", "abc"),
    ],
)
def test_a_share_link_names_the_public_webdav_endpoint(
    link: str, endpoint: str, token: str
) -> None:
    assert share_endpoint(link) == (endpoint, token)
    folder = webdav_folder(Source("share_url", link, password="pw"))
    assert folder == WebDavFolder(endpoint, token, "pw", link, public_share=True)
    assert "pw" not in repr(folder)


@pytest.mark.parametrize(
    "url",
    [
        "https://h.org/s/T0k3n/download",  # a zip of the folder: an archive
        "https://h.org/s/T0k3n?path=/sub",
        "https://h.org/s/",
        "https://h.org/s/to:ken",
        "https://h.org/files/paper.zip",
        "https://h.org/s/T0k3n#top",
    ],
)
def test_other_urls_are_no_share_links(url: str) -> None:
    assert share_endpoint(url) is None
    assert webdav_folder(Source("share_url", url)) is None


def test_a_webdav_folder_with_credentials() -> None:
    url = "https://h.org/remote.php/dav/files/ada/paper"
    folder = webdav_folder(Source("share_url", url, user="ada", password="pw"))
    assert folder == WebDavFolder(url + "/", "ada", "pw", url, public_share=False)
    assert basic_auth("ada", "pw") == {"Authorization": "Basic YWRhOnB3"}


@pytest.mark.parametrize(
    ("source", "words"),
    [
        (Source("share_url", "https://h.org/a.zip", password="pw"), "password: only with a share"),
        (Source("share_url", "http://h.org/s/T0k3n"), "must be an https URL"),
        (Source("share_url", "http://h.org/dav/", user="ada"), "must be an https URL"),
        (Source("share_url", "https://h.org/dav/?x=1", user="ada"), "no query or fragment"),
        (Source("share_url", "https://h.org/s/T0k3n", user="ada"), "user: not with a share"),
    ],
)
def test_bad_webdav_requests_are_400(source: Source, words: str) -> None:
    with pytest.raises(LoadError) as caught:
        webdav_folder(source)
    assert caught.value.status == 400 and words in caught.value.message


def test_a_webdav_body_is_read_and_the_password_not_shown() -> None:
    body = {"share_url": "https://h.org/s/T0k3n", "password": "s3cret"}
    assert schema_problems(body, LOAD_BODY_SCHEMA) == []
    source = parse_source(body)
    assert (source.kind, source.password, source.user) == ("share_url", "s3cret", None)
    assert "s3cret" not in repr(source)
    for wrong, words in [
        ({"doi": "10.1234/x", "password": "pw"}, "password: only with share_url"),
        ({"git_url": "https://h/a/b", "user": "ada"}, "user: only with share_url"),
    ]:
        with pytest.raises(LoadError) as caught:
            parse_source(wrong)
        assert caught.value.status == 400 and words in caught.value.message
    assert schema_problems({"share_url": "https://h/", "user": "a:b"}, LOAD_BODY_SCHEMA)


def test_the_origin_records_the_link_and_endpoint_and_fits_the_schema() -> None:
    link = "https://h.org/s/T0k3n"
    source = Source("share_url", link, password="s3cret")
    origin = origin_metadata(source, url="https://h.org/public.php/webdav/")
    assert origin["origin"]["share_url"] == link
    assert "s3cret" not in json.dumps(origin)
    schema = json.loads(O2R_SCHEMA.read_text())
    jsonschema.validate(origin["origin"], schema["properties"]["origin"])


# -- listings -------------------------------------------------------------------------------------


def multistatus(*responses: str) -> bytes:
    return ('<?xml version="1.0"?><d:multistatus xmlns:d="DAV:">' + "".join(responses)
            + "</d:multistatus>").encode()  # fmt: skip


def response(href: str, folder: bool = False, size: int | None = None, status: int = 200) -> str:
    kind = "<d:collection/>" if folder else ""
    length = f"<d:getcontentlength>{size}</d:getcontentlength>" if size is not None else ""
    return (f"<d:response><d:href>{href}</d:href><d:propstat><d:prop><d:resourcetype>{kind}"
            f"</d:resourcetype>{length}</d:prop><d:status>HTTP/1.1 {status} OK</d:status>"
            "</d:propstat></d:response>")  # fmt: skip


def test_a_listing_gives_the_folder_and_its_members() -> None:
    body = multistatus(
        response("/public.php/webdav/data/", folder=True),
        response("/public.php/webdav/data/values.csv", size=12),
        response("https://cloud.example.org/public.php/webdav/data/raw/", folder=True),
        response("/public.php/webdav/data/%C3%9Cber%20sicht.txt", size=3),
        # NFD (as macOS writes names) becomes NFC
        response("/public.php/webdav/data/Mu%CC%88ller.txt"),
        response("/public.php/webdav/data/unknown", status=404),
    )
    itself, members = parse_listing(body, ROOT + "data/", ROOT)
    assert itself == Entry("data", ROOT + "data/", True, None)
    assert members == [
        Entry("data/values.csv", ROOT + "data/values.csv", False, 12),
        Entry("data/raw", ROOT + "data/raw/", True, None),
        Entry("data/Über sicht.txt", ROOT + "data/%C3%9Cber%20sicht.txt", False, 3),
        Entry("data/Müller.txt", ROOT + "data/Mu%CC%88ller.txt", False, None),
        Entry("data/unknown", ROOT + "data/unknown", False, None),
    ]


def test_a_share_of_a_file_lists_the_file_itself() -> None:
    itself, members = parse_listing(
        multistatus(response("/public.php/webdav/", size=5)), ROOT, ROOT
    )
    assert itself == Entry("", ROOT, False, 5) and members == []


@pytest.mark.parametrize(
    ("href", "words"),
    [
        ("/public.php/webdav/../../etc/passwd", "outside the shared folder"),
        ("/public.php/webdav/%2E%2E/secret", "unsafe name"),
        ("/public.php/webdav/a%5Cb", "unsafe name"),
        ("/public.php/webdav/a%0Ab", "unsafe name"),
        ("/remote.php/dav/files/admin/secret", "outside the shared folder"),
        ("/public.php/webdavX/a", "outside the shared folder"),
        ("https://evil.example.org/public.php/webdav/a", "outside the shared folder"),
        ("http://cloud.example.org/public.php/webdav/a", "outside the shared folder"),
        ("/public.php/webdav/deeper/still/a", "no member of the folder"),
    ],
)
def test_hostile_hrefs_are_refused(href: str, words: str) -> None:
    with pytest.raises(LoadError) as caught:
        parse_listing(multistatus(response(href)), ROOT, ROOT)
    assert caught.value.status == 502 and words in caught.value.message


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"not xml", "no XML"),
        (b'<?xml version="1.0"?><html/>', "no multistatus"),
        (
            b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            b'<d:multistatus xmlns:d="DAV:">&b;</d:multistatus>',
            "DOCTYPE",
        ),
        (b"<d:multistatus xmlns:d='DAV:'>" + b" " * MAX_LISTING_BYTES, "larger than"),
        (multistatus("<d:response><d:propstat/></d:response>"), "without href"),
        (multistatus(response("/public.php/webdav/a"), response("/public.php/webdav/a/")), "twice"),
    ],
)
def test_hostile_listings_are_refused(body: bytes, words: str) -> None:
    with pytest.raises(LoadError) as caught:
        parse_listing(body, ROOT, ROOT)
    assert caught.value.status == 502 and words in caught.value.message
