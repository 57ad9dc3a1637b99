"""Config helpers for jupyterhub_config.py: the managed `erc` service, its scopes and roles."""

from __future__ import annotations

import logging
import os
import pwd
import secrets
import stat
import subprocess
import sys
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

SERVICE_NAME = "erc"
#: the erc service's port (on the host of the hub's API)
SERVICE_PORT = 10101

ERC_SCOPES: dict[str, dict[str, str]] = {
    "custom:erc:read": {
        "description": "See published compendia, their jobs and search results (and one's own "
        "candidates)."
    },
    "custom:erc:create": {"description": "Upload compendia and edit their metadata."},
    "custom:erc:run": {"description": "Start jobs and cancel one's own jobs."},
    "custom:erc:admin": {"description": "See, change, delete and cancel every compendium and job."},
    # granted by an operator to a role or group, never to every user by erchub
    "custom:erc:network": {
        "description": "Run compendia whose erc.yml asks for network, where the workers allow "
        "networked executions."
    },
}

#: what every user may do with the service
USER_ERC_SCOPES = ["custom:erc:read", "custom:erc:create", "custom:erc:run"]
#: the role of erc administrators (JupyterHub's own admin role cannot be extended)
ERC_ADMIN_ROLE = "erc-admin"

#: the hub's environment variables a managed service inherits besides JupyterHub's own: how
#: builds reach PyPI (PIP_*, proxies, CA bundles) and where the Docker engine is
PASSED_ENVIRONMENT_PREFIXES = ("PIP_", "DOCKER_", "ERCHUB_")
PASSED_ENVIRONMENT = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CI",
)


def passed_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        key: value
        for key, value in environ.items()
        if key in PASSED_ENVIRONMENT or key.startswith(PASSED_ENVIRONMENT_PREFIXES)
    }


def service_host(c: Any) -> str:
    """Where the erc service listens: the host of the hub's API, else 127.0.0.1."""
    hub_bind_url = c.JupyterHub.get("hub_bind_url")
    host = urlsplit(hub_bind_url).hostname if isinstance(hub_bind_url, str) else None
    return host or "127.0.0.1"


#: the unprivileged user the erc service runs as when the hub runs as root
DEFAULT_SERVICE_USER = "erchub"
#: what the erc service keeps in the data directory (owned by its user); the rest (the hub's
#: database, cookie secret and crypt key, the working copies) stays the hub's
SERVICE_ENTRIES = ("compendia", "jobs", "uploads", "venvs", "cookie_secret")
SERVICE_STORE_FILES = ("erchub.sqlite", "erchub.sqlite-wal", "erchub.sqlite-shm")
SERVICE_DIRECTORIES = ("compendia", "jobs", "uploads")
#: seconds the check that the service user can start the service may take
SERVICE_USER_CHECK_SECONDS = 120


class ServiceUserError(RuntimeError):
    """The configured service user cannot run the erc service (said in one line)."""


def service_user(data_dir: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The user the erc service runs as: None (the hub's own user) unless the hub runs as root.

    As root, ``$ERCHUB_SERVICE_USER`` (default ``erchub``; empty: run as root) names a system
    user (``config/provision/service-user.sh`` makes one). The data directory becomes
    root-owned, group-writable by that user's group and sticky (``1775``, as ``/tmp``): the
    service makes and owns its entries, and can neither read nor replace the hub's secrets
    there. Raises :class:`ServiceUserError` when a user named in the environment is missing
    or cannot start the service (the Python or the checkout not readable to it); the default
    user missing is a warning, and the service runs as root.
    """
    environ = os.environ if environ is None else environ
    if os.geteuid() != 0:
        return None
    name = environ.get("ERCHUB_SERVICE_USER", DEFAULT_SERVICE_USER)
    if not name:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        if "ERCHUB_SERVICE_USER" in environ:
            raise ServiceUserError(f"ERCHUB_SERVICE_USER={name!r}: no such user") from None
        logging.getLogger("erchub").warning(
            "the erc service runs as root: there is no user %r (make one with "
            "config/provision/service-user.sh, or set ERCHUB_SERVICE_USER)",
            name,
        )
        return None
    prepare_data_dir(data_dir, entry)
    check_service_user(entry)
    return name


def prepare_data_dir(data_dir: str, entry: pwd.struct_passwd) -> None:
    """Give the service user its part of the data directory (see :func:`service_user`)."""
    os.makedirs(data_dir, exist_ok=True)
    os.chown(data_dir, 0, entry.pw_gid)
    os.chmod(data_dir, 0o1775)
    for name in SERVICE_DIRECTORIES:
        path = os.path.join(data_dir, name)
        if not os.path.lexists(path):
            os.mkdir(path, 0o755)
    for name in (*SERVICE_ENTRIES, *SERVICE_STORE_FILES):
        path = os.path.join(data_dir, name)
        if os.path.lexists(path) and os.lstat(path).st_uid != entry.pw_uid:
            _chown_tree(path, entry.pw_uid, entry.pw_gid)


def _chown_tree(path: str, uid: int, gid: int) -> None:
    """Hand ``path`` and everything below it to ``uid``:``gid`` (links themselves, never what
    they point to): data an earlier run of the service left as root."""
    os.lchown(path, uid, gid)
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        return
    for directory, subdirectories, names in os.walk(path):
        for name in subdirectories + names:
            os.lchown(os.path.join(directory, name), uid, gid)


def check_service_user(entry: pwd.struct_passwd) -> None:
    """Start the service's Python as ``entry``'s user, as JupyterHub will, and import the
    service: ServiceUserError with the reason when that fails."""
    groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
    try:
        result = subprocess.run(
            [sys.executable, "-c", "import erchub.services.app"],
            user=entry.pw_uid,
            group=entry.pw_gid,
            extra_groups=groups,
            cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": entry.pw_dir},
            capture_output=True,
            timeout=SERVICE_USER_CHECK_SECONDS,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        reason = getattr(error, "strerror", None) or str(error)
    else:
        if result.returncode == 0:
            return
        lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = lines[-1] if lines else f"exit code {result.returncode}"
    raise ServiceUserError(
        f"the erc service's user {entry.pw_name!r} cannot start {sys.executable} with erchub: "
        f"{reason} (config/provision/service-user.sh grants it the access it needs)"
    )


def configure_erc_service(
    c: Any,
    *,
    data_dir: str,
    db_url: str | None = None,
    worker_count: int = 1,
    port: int = SERVICE_PORT,
    admin_users: Iterable[str] = (),
    environment: Mapping[str, str] | None = None,
    user: str | None = None,
) -> None:
    """Add the managed `erc` service to a JupyterHub config, with its scopes and roles.

    The service listens at ``port`` on the host of the hub's API (``hub_bind_url``; with
    Docker that is the sessions network's gateway, see :func:`configure_spawner`, so the server
    extension in sessions reaches it), else on 127.0.0.1.
    Every user gets ``custom:erc:read``, ``create`` and ``run`` (and access to the service);
    ``admin_users`` and the ``erc-admin`` group get ``custom:erc:admin``. Settings reach the
    service as ``ERCHUB_*`` environment variables (see erchub.services.app). With ``user``
    (see :func:`service_user`), JupyterHub starts the service, and so its workers, as that
    user.
    """
    env = passed_environment(os.environ)
    env.update(
        ERCHUB_DATA_DIR=os.path.abspath(data_dir),
        ERCHUB_WORKER_COUNT=str(worker_count),
        # users' repository tokens (Zenodo) are encrypted as the hub's auth_state is: same key
        JUPYTERHUB_CRYPT_KEY=os.environ.get("JUPYTERHUB_CRYPT_KEY") or crypt_key(data_dir),
    )
    if db_url:
        env["ERCHUB_DB_URL"] = db_url
    env.update(environment or {})
    services = list(c.JupyterHub.get("services", []))
    services.append(
        {
            "name": SERVICE_NAME,
            "url": f"http://{service_host(c)}:{port}",
            "command": [sys.executable, "-m", "erchub.services"],
            "environment": env,
            "display": False,
            # The browser's token carries the erc scopes its user holds, no consent page.
            "oauth_client_allowed_scopes": list(ERC_SCOPES),
            "oauth_no_confirm": True,
            **({"user": user} if user else {}),
        }
    )
    c.JupyterHub.services = services
    configure_erc_roles(c, admin_users=admin_users)


def configure_erc_roles(c: Any, *, admin_users: Iterable[str] = ()) -> None:
    """The erc service's custom scopes and the roles that grant them: every user's
    ``custom:erc:read``, ``create`` and ``run``, the service's own role, and ``erc-admin``
    (``admin_users`` and the group of that name). Part of :func:`configure_erc_service`; alone
    for a hub whose erc service runs elsewhere (on Kubernetes: a Deployment of its own, in
    ``c.JupyterHub.services`` by its URL)."""
    c.JupyterHub.custom_scopes = {**ERC_SCOPES, **dict(c.JupyterHub.get("custom_scopes", {}))}
    roles = [r for r in c.JupyterHub.get("load_roles", []) if r["name"] != "user"]
    roles.append(
        {
            "name": "user",
            "scopes": ["self", f"access:services!service={SERVICE_NAME}", *USER_ERC_SCOPES],
        }
    )
    roles.append(
        {
            "name": "erc-service",
            "description": "The erc service starts users' ERC sessions (launch links), stops "
            "the sessions of review links that ended and removes their guests, and lists users "
            "(o2r's GET /user).",
            "scopes": [
                "servers",
                "list:users",
                "read:users",
                "read:roles:users",
                "read:servers",
                "admin:users",
            ],
            "services": [SERVICE_NAME],
        }
    )
    roles.append(
        {
            "name": ERC_ADMIN_ROLE,
            "description": "Administers the erc service.",
            "scopes": [f"access:services!service={SERVICE_NAME}", *ERC_SCOPES],
            "users": sorted(admin_users),
            "groups": [ERC_ADMIN_ROLE],
        }
    )
    c.JupyterHub.load_roles = roles


#: where erchub's hub templates are (they extend JupyterHub's own)
TEMPLATE_DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")

DUMMY_LOGIN_WARNING = (
    "ORCID_CLIENT_ID is not set: DummyAuthenticator lets ANYONE log in under ANY name "
    "without a password. Development only; set ORCID_CLIENT_ID and ORCID_CLIENT_SECRET."
)


def crypt_key(data_dir: str) -> str:
    """A key that encrypts auth_state, kept (0600) in the data directory, made on first use."""
    path = os.path.join(data_dir, "jupyterhub_crypt_key")
    if not os.path.exists(path):
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as stream:
            stream.write(secrets.token_hex(32))
    with open(path) as stream:
        return stream.read().strip()


def configure_authenticator(c: Any, *, data_dir: str, environ: Mapping[str, str]) -> bool:
    """ORCID login when ``ORCID_CLIENT_ID`` is set, else DummyAuthenticator (development only,
    announced in the log and on the login page). Returns whether ORCID is used.

    With ORCID, every ORCID iD may log in (set ``c.Authenticator.allow_all = False`` and
    ``allowed_users`` to restrict); auth_state (the name from ORCID) is kept encrypted.
    """
    orcid = bool(environ.get("ORCID_CLIENT_ID"))
    if orcid:
        c.JupyterHub.authenticator_class = "orcid"
        c.Authenticator.enable_auth_state = True
        if not environ.get("JUPYTERHUB_CRYPT_KEY"):  # else JupyterHub reads it (any form)
            c.CryptKeeper.keys = [crypt_key(data_dir)]
    else:
        c.JupyterHub.authenticator_class = "erc-dummy"
        # JupyterHub logs as "JupyterHub": the warning lands in its log, formatted as its own
        logging.getLogger("JupyterHub").warning(DUMMY_LOGIN_WARNING)
    c.Authenticator.allow_all = True
    template_vars = dict(c.JupyterHub.get("template_vars", {}))
    template_vars["erchub_dummy_login_warning"] = "" if orcid else DUMMY_LOGIN_WARNING
    c.JupyterHub.template_vars = template_vars
    return orcid


def configure_review_guests(c: Any, allow: bool = True) -> None:
    """Let review links be opened without an account, as guests of the hub that live as long
    as their link (erchub.hub.guests): the hub's authenticator and the erc service both."""
    c.ReviewGuestsMixin.review_guests = allow
    services = list(c.JupyterHub.get("services", []))
    for service in services:
        if service.get("name") == SERVICE_NAME:
            service["environment"] = {
                **service.get("environment", {}),
                "ERCHUB_REVIEW_GUESTS": str(allow),
            }
    c.JupyterHub.services = services


def configure_templates(c: Any, service_prefix: str = f"/services/{SERVICE_NAME}/") -> None:
    """erchub's home, login and spawn-pending pages (extending JupyterHub's)."""
    c.JupyterHub.template_paths = [TEMPLATE_DIRECTORY, *c.JupyterHub.get("template_paths", [])]
    template_vars = dict(c.JupyterHub.get("template_vars", {}))
    template_vars["erc_service_url"] = service_prefix
    c.JupyterHub.template_vars = template_vars


#: the Docker network of sessions: internal (no route off the host), its gateway is the host
SESSION_NETWORK = "erchub-sessions"
#: the hub API's port on the sessions network's gateway
HUB_API_PORT = 8081


def docker_engine_problem() -> str | None:
    """Why the local Docker engine cannot run sessions, or None."""
    try:
        from erchub.spawner.clients import docker_client

        docker_client(timeout=5).ping()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def configure_named_sessions(c: Any) -> None:
    """What every erchub spawner needs of the hub: one named server per ERC, started from a
    launch link with a progress page, none at login."""
    c.JupyterHub.allow_named_servers = True
    # Logging in lands on the home page (the workspace, the catalogue, the user's compendia),
    # it does not start a server.
    c.JupyterHub.redirect_to_server = False
    # Starting a session answers at once: the progress page shows the build, not a wait.
    c.JupyterHub.tornado_settings = {
        **dict(c.JupyterHub.get("tornado_settings", {})),
        "slow_spawn_timeout": 0,
    }
    # One server per ERC: no limit but the machine's; idle sessions are for a culler to stop.
    c.JupyterHub.named_server_limit_per_user = 0


def configure_spawner(
    c: Any,
    *,
    data_dir: str,
    hub_port: int = HUB_API_PORT,
    service_port: int = SERVICE_PORT,
    restrict_sessions: bool = True,
) -> str:
    """ERCSpawner on the local Docker engine, or LocalERCSpawner (development only) without
    one. Returns the spawner's entry point name (``erc`` or ``erc-local``).

    With Docker, sessions run on the internal network ``erchub-sessions`` (created here when
    missing) and the hub's API listens on that network's gateway at ``hub_port`` (and the erc
    service at ``service_port``, see :func:`configure_erc_service`), the only addresses of the
    host a session needs; with ``restrict_sessions`` an iptables rule drops everything else
    sessions send to the host (needs root; a warning otherwise). Each user gets a workspace
    (the default server, started from the home page) and one named server per ERC.
    """
    configure_named_sessions(c)
    problem = docker_engine_problem()
    if problem is not None:
        logging.getLogger("JupyterHub").warning(
            "no Docker engine (%s): sessions run as local processes with LocalERCSpawner, "
            "without runtime images or isolation (development only)",
            problem,
        )
        c.JupyterHub.spawner_class = "erc-local"
        c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{hub_port}"
        c.LocalERCSpawner.sessions_dir = os.path.join(data_dir, "sessions")
        return "erc-local"
    from erchub.errors import ErchubError
    from erchub.spawner.network import ensure_session_network, restrict_to_hub

    network = ensure_session_network(SESSION_NETWORK)
    if restrict_sessions:
        try:
            restrict_to_hub(network, [hub_port, service_port])
        except ErchubError as exc:
            logging.getLogger("JupyterHub").warning(
                "sessions can reach every service of this host that listens on all interfaces "
                "(at %s): the firewall rule that keeps them to the hub's API cannot be made: %s",
                network.gateway,
                exc,
            )
    c.JupyterHub.spawner_class = "erc"
    c.JupyterHub.hub_bind_url = f"http://{network.gateway}:{hub_port}"
    c.JupyterHub.hub_connect_url = f"http://{network.gateway}:{hub_port}"
    c.ERCSpawner.network_name = SESSION_NETWORK
    return "erc"
