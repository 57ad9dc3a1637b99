"""erchub's hub in the Swarm stack (config/swarm/stack.yml): JupyterHub and
configurable-http-proxy in one container on an app node, their state in the stack's
PostgreSQL, the erc service an external service of the hub: its own Swarm service, whose
replicas the proxy reaches through Swarm's virtual IP by the service's name.

Settings from the environment (the stack sets them; the image's entrypoint reads the *_FILE
variables' secrets into them): ERCHUB_HUB_DB_URL (the hub's database), ERCHUB_ERC_API_TOKEN (the
erc service's token, which the service holds as JUPYTERHUB_API_TOKEN), ERCHUB_ERC_URL (where
the proxy and the hub reach the service, http://erc:10101), ERCHUB_HUB_CONNECT_URL (where the
service reaches the hub's API, http://hub:8081), ERCHUB_ADMIN_USERS (comma-separated hub users
who administer the hub and the erc service), and those that JupyterHub reads itself:
JPY_COOKIE_SECRET, JUPYTERHUB_CRYPT_KEY. ORCID login as in the embedded configuration
(ORCID_CLIENT_ID, ORCID_CLIENT_SECRET), else DummyAuthenticator: development only.

Sessions: SwarmERCSpawner (erchub.spawner.swarm) starts each session as a Swarm service on a
session node (ERCHUB_SESSION_CONSTRAINT, default the app nodes), through a swarm manager's
engine API (DOCKER_HOST, see stack.yml), in its runtime image built on that engine and pushed to
the registry (the builder's configuration: erchub_config.py, with
ERCHUB_REGISTRY), on the overlay network ERCHUB_SESSION_NETWORK, which the hub and the erc
service share with the sessions and nothing else; ERCHUB_ENDPOINT_MODE (vip or dnsrr) as for
the stack's services.
"""

import os

from erchub.hub.config import (
    ERC_SCOPES,
    SERVICE_NAME,
    configure_authenticator,
    configure_erc_roles,
    configure_named_sessions,
    configure_templates,
)

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (provided by JupyterHub)

# the proxy on every address of the container (the stack publishes it), the hub's API too: the
# erc service's replicas reach it over the app network
c.JupyterHub.bind_url = "http://0.0.0.0:8000"
c.JupyterHub.hub_bind_url = "http://0.0.0.0:8081"
c.JupyterHub.hub_connect_url = os.environ["ERCHUB_HUB_CONNECT_URL"]
c.JupyterHub.db_url = os.environ["ERCHUB_HUB_DB_URL"]
# JupyterHub takes its cookie secret from JPY_COOKIE_SECRET (a secret of the stack) before any
# file: nothing of the hub's is kept on the container's disk, which a new task does not have
c.ConfigurableHTTPProxy.pid_file = "/tmp/jupyterhub-proxy.pid"
c.ConfigurableHTTPProxy.command = [
    "node",
    "/srv/erchub/config/proxy/chp.mjs",
    "/srv/erchub/node_modules/.bin/configurable-http-proxy",
]
c.JupyterHub.cleanup_servers = False

configure_named_sessions(c)
c.JupyterHub.spawner_class = "erchub.spawner.swarm.SwarmERCSpawner"
c.SwarmERCSpawner.network_name = os.environ["ERCHUB_SESSION_NETWORK"]
c.SwarmERCSpawner.extra_endpoint_spec = {"mode": os.environ.get("ERCHUB_ENDPOINT_MODE", "vip")}
c.SwarmERCSpawner.extra_placement_spec = {
    "constraints": [
        os.environ.get("ERCHUB_SESSION_CONSTRAINT", "node.labels.erchub.role.app == true")
    ]
}

admin_users = {name.strip() for name in os.environ.get("ERCHUB_ADMIN_USERS", "").split(",")}
admin_users.discard("")
c.Authenticator.admin_users = admin_users
# ORCID's auth_state key is JUPYTERHUB_CRYPT_KEY (a secret of the stack), never a file
configure_authenticator(c, data_dir="/nonexistent", environ=os.environ)
configure_templates(c)

c.JupyterHub.services = [
    {
        "name": SERVICE_NAME,
        "url": os.environ["ERCHUB_ERC_URL"],
        "api_token": os.environ["ERCHUB_ERC_API_TOKEN"],
        "display": False,
        # the browser's token carries the erc scopes its user holds, no consent page
        "oauth_client_allowed_scopes": list(ERC_SCOPES),
        "oauth_no_confirm": True,
    }
]
configure_erc_roles(c, admin_users=admin_users)
