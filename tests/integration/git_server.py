"""A real git smart-HTTP server on 127.0.0.1 for the tests: git's own ``http-backend`` (the
CGI program that GitHub-like forges' protocol comes from) behind a small threaded HTTP server,
serving the repositories below ``root``. It records every request (so a test can assert that
a host was never contacted) and can be made slow (``delay`` seconds before each answer).
:class:`Repository` writes a repository there with dulwich's porcelain."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from dulwich import porcelain
from dulwich.objects import S_IFGITLINK, Commit

from tests.conftest import require_tier
from tests.integration.serving import ServedInThread

REPO = Path(__file__).resolve().parents[2]
#: the files of a compendium (erc.yml, main.ipynb, requirements.txt)
EXAMPLE = REPO / "examples" / "sine-wave"
AUTHOR = b"Ada Lovelace <ada@example.org>"
#: seconds one run of git http-backend may take
BACKEND_TIMEOUT = 60
#: the largest request body the server reads
MAX_BODY = 10 * 1024**2


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.answer(b"")

    def do_POST(self) -> None:
        length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
        self.answer(self.rfile.read(length))

    def answer(self, body: bytes) -> None:
        self.server.requests.append((self.command, self.path))
        if self.server.delay:
            time.sleep(self.server.delay)
        parts = urlsplit(self.path)
        for moved, location in self.server.redirects.items():
            if parts.path.startswith(moved):
                self.send_response(301)
                self.send_header("Location", location + self.path[len(moved) :])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(self.server.root),
            "PATH_INFO": parts.path,
            "QUERY_STRING": parts.query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
        }
        if self.headers.get("Git-Protocol"):
            environment["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        output = subprocess.run(
            [self.server.git, "http-backend"],
            input=body,
            env=environment,
            capture_output=True,
            timeout=BACKEND_TIMEOUT,
            check=False,
        ).stdout
        head, _, payload = output.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        try:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a time-out test)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    root: Path
    git: str
    delay: float
    requests: list[tuple[str, str]]
    #: a path prefix that redirects (301) to a URL prefix
    redirects: dict[str, str]


class GitServer(ServedInThread):
    """``with GitServer(root) as server``: ``server.url_of("org/repo")`` is a repository's
    URL; ``server.requests`` what it was asked; ``server.delay`` makes it slow,
    ``server.redirects`` moves paths elsewhere."""

    def __init__(self, root: Path) -> None:
        git = shutil.which("git")
        require_tier(
            "git", None if git else "git is missing: the test server runs git http-backend"
        )
        assert git is not None
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.root = root
        self.server.git = git
        self.server.delay = 0.0
        self.server.requests = []
        self.server.redirects = {}
        self.serve_in_thread()

    @property
    def requests(self) -> list[tuple[str, str]]:
        return self.server.requests

    @property
    def redirects(self) -> dict[str, str]:
        return self.server.redirects

    @property
    def delay(self) -> float:
        return self.server.delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        self.server.delay = seconds

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url_of(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"


class Repository:
    """A repository below the server's root, written with dulwich's porcelain."""

    def __init__(self, server: GitServer, path: str) -> None:
        # git http-backend finds PATH/.git below PATH.git: the URL works with .git and without
        self.folder = Path(server.server.root) / f"{path}.git"
        self.url = server.url_of(path)
        self.folder.mkdir(parents=True)
        self.repo = porcelain.init(str(self.folder))
        self.repo.refs.set_symbolic_ref(b"HEAD", b"refs/heads/main")

    def commit(self, files: dict[str, bytes | str], message: str = "change") -> str:
        for name, content in files.items():
            target = self.folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            data = content.encode() if isinstance(content, str) else content
            target.write_bytes(data)
        porcelain.add(self.repo, [str(self.folder / name) for name in files])
        sha = porcelain.commit(self.repo, message=message.encode(), author=AUTHOR, committer=AUTHOR)
        return sha.decode()

    def commit_example(self, **extra: bytes | str) -> str:
        files: dict[str, bytes | str] = {
            path.name: path.read_bytes() for path in EXAMPLE.iterdir() if path.is_file()
        }
        return self.commit({**files, **extra}, "the example")

    def add_gitlink(self, path: str, sha: str, submodule_url: str) -> str:
        """A commit with a submodule at ``path`` (``.gitmodules`` and the gitlink)."""
        self.commit({".gitmodules": f'[submodule "{path}"]\n\tpath = {path}\n\turl = '
                     f"{submodule_url}\n"})  # fmt: skip
        head = self.repo[self.repo.head()]
        assert isinstance(head, Commit)
        tree = self.repo[head.tree]
        tree.add(path.encode(), S_IFGITLINK, sha.encode())  # type: ignore[attr-defined]
        self.repo.object_store.add_object(tree)
        commit = Commit()
        commit.tree = tree.id
        commit.parents = [head.id]
        commit.author = commit.committer = AUTHOR
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = b"a submodule"
        self.repo.object_store.add_object(commit)
        self.repo.refs[b"refs/heads/main"] = commit.id
        return commit.id.decode()
