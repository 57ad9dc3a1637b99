"""erchub's embedded-default JupyterHub configuration, the one `make demo` runs.

Settings from the environment: ERCHUB_DATA_DIR (default ./erchub-data: compendia, jobs, the
SQLite stores), ERCHUB_WORKER_COUNT (job worker processes, default 1), ERCHUB_DB_URL (the
service's store, default SQLite in the data directory), ERCHUB_ADMIN_USERS (comma-separated
hub users who administer the hub and the erc service), ERCHUB_HUB_API_PORT (the hub's API port,
default 8081), ERCHUB_SERVICE_PORT (the erc service's port, default 10101; with Docker both
listen on the sessions network's gateway), ERCHUB_REVIEW_GUESTS (true: review links may be
opened without an account, as guests that live as long as the link; default false),
ERCHUB_BIND_URL (where the hub listens, default http://127.0.0.1:8000; --url, --ip, --port and
--base-url on the command line win) and ERCHUB_SERVICE_USER (the user the erc service runs as
when the hub runs as root, default erchub; empty: root).
"""

import os
import shutil
import sys
from urllib.parse import urlsplit, urlunsplit

from jupyterhub.app import JupyterHub

from erchub.hub.config import (
    ServiceUserError,
    configure_authenticator,
    configure_erc_service,
    configure_review_guests,
    configure_spawner,
    configure_templates,
    service_user,
)

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (provided by JupyterHub)

here = os.path.dirname(os.path.abspath(__file__))
data_dir = os.path.abspath(os.environ.get("ERCHUB_DATA_DIR") or "erchub-data")
os.makedirs(data_dir, exist_ok=True)

# Where the hub listens: ERCHUB_BIND_URL, else http://127.0.0.1:8000 (this machine only), as a
# default: what the command line gives (--url, --ip, --port, --base-url) wins, and the parts
# it does not give come from that URL (`jupyterhub -f jupyterhub_config.py --port 9000`
# listens on 127.0.0.1:9000). JupyterHub applies the command line before and after this file;
# its --ip/--port would not change a bind_url set here.
hub_url = os.environ.get("ERCHUB_BIND_URL") or "http://127.0.0.1:8000"
if urlsplit(hub_url).scheme not in ("http", "https", "http+unix") or "://" not in hub_url:
    sys.exit(f"jupyterhub_config.py: ERCHUB_BIND_URL={hub_url!r} is no URL like http://HOST:PORT")
hub_cli = JupyterHub.instance().cli_config.JupyterHub if JupyterHub.initialized() else {}
if not {"bind_url", "ip", "port", "base_url"}.intersection(hub_cli):
    c.JupyterHub.bind_url = hub_url
elif "bind_url" not in hub_cli:
    hub_tcp = urlsplit(hub_url).scheme in ("http", "https")  # not a unix socket
    hub_parts = urlsplit(hub_url if hub_tcp else "http://127.0.0.1:8000")
    hub_host = str(hub_cli.get("ip", hub_parts.hostname or ""))
    hub_host = f"[{hub_host}]" if ":" in hub_host else hub_host
    hub_port = hub_cli.get("port", hub_parts.port)
    c.JupyterHub.bind_url = urlunsplit(
        (
            hub_parts.scheme,
            f"{hub_host}:{hub_port}" if hub_port else hub_host,
            str(hub_cli.get("base_url", hub_parts.path or "/")),
            "",
            "",
        )
    )
c.JupyterHub.db_url = f"sqlite:///{os.path.join(data_dir, 'jupyterhub.sqlite')}"
c.JupyterHub.cookie_secret_file = os.path.join(data_dir, "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = os.path.join(data_dir, "jupyterhub-proxy.pid")
# A restart of the hub (an upgrade, a crash) leaves users' sessions running: the hub finds
# them again at its start in its database and rebuilds the proxy's routes to them. Stop them
# with `jupyterhub --JupyterHub.cleanup_servers=True` or from the admin page.
c.JupyterHub.cleanup_servers = False
# configurable-http-proxy from the project's node_modules (make installs it), else from PATH,
# started through config/proxy/chp.mjs: that answers 400 to a URL whose path is not valid
# percent-encoding (/hub/%c0%ae), which CHP itself answers 500 (URIError: URI malformed), and
# closes upstream connections idle for 60 s (--upstream-idle-timeout), before tornado's
# upstreams close them (3600 s), so CHP never lends a closing one (a 503 "socket hang up").
local_proxy = os.path.join(here, "node_modules", ".bin", "configurable-http-proxy")
proxy = local_proxy if os.path.exists(local_proxy) else shutil.which("configurable-http-proxy")
node = shutil.which("node")
proxy_guard = os.path.join(here, "config", "proxy", "chp.mjs")
if proxy and node:
    c.ConfigurableHTTPProxy.command = [node, proxy_guard, proxy]
else:  # JupyterHub says how to install it
    c.ConfigurableHTTPProxy.command = [proxy or "configurable-http-proxy"]

admin_users = {name.strip() for name in os.environ.get("ERCHUB_ADMIN_USERS", "").split(",")}
admin_users.discard("")
c.Authenticator.admin_users = admin_users

# ORCID login when ORCID_CLIENT_ID (and ORCID_CLIENT_SECRET) are set; else DummyAuthenticator,
# development only, with a warning in the log and on the login page.
configure_authenticator(c, data_dir=data_dir, environ=os.environ)
configure_templates(c)

# ERCSpawner: one named server per ERC in its runtime image on the local Docker engine (the
# hub's API then listens on the sessions network's gateway); without Docker, LocalERCSpawner
# runs sessions as local processes (development only).
service_port = int(os.environ.get("ERCHUB_SERVICE_PORT") or 10101)
configure_spawner(
    c,
    data_dir=data_dir,
    hub_port=int(os.environ.get("ERCHUB_HUB_API_PORT") or 8081),
    service_port=service_port,
)

# As root, the erc service and its workers run as the unprivileged user ERCHUB_SERVICE_USER
# (default erchub; README "Security and reliability").
try:
    erc_service_user = service_user(data_dir)
except ServiceUserError as error:
    sys.exit(f"jupyterhub_config.py: {error}")
configure_erc_service(
    c,
    data_dir=data_dir,
    user=erc_service_user,
    db_url=os.environ.get("ERCHUB_DB_URL"),
    worker_count=int(os.environ.get("ERCHUB_WORKER_COUNT") or 1),
    port=service_port,
    admin_users=admin_users,
)

# Review links opened without an account, as guests of the link (README "Review links").
if os.environ.get("ERCHUB_REVIEW_GUESTS", "").strip().lower() in ("1", "true"):
    configure_review_guests(c)
