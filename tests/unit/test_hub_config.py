"""The config helpers of jupyterhub_config.py, on a fresh traitlets Config each."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import stat
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

from erchub.errors import ErchubError
from erchub.hub import config as hub_config
from erchub.hub.config import (
    DUMMY_LOGIN_WARNING,
    TEMPLATE_DIRECTORY,
    configure_authenticator,
    configure_erc_service,
    configure_review_guests,
    configure_spawner,
    configure_templates,
)
from erchub.spawner import network as network_module
from erchub.spawner.network import FIREWALL_CHAIN, firewall_rules
from erchub.spawner.spawner import ERCSpawner, LocalERCSpawner


def entry_point(group: str, name: str) -> Any:
    (found,) = [e for e in entry_points(group=group) if e.name == name]
    return found.load()


# -- authenticator ------------------------------------------------------------------------


def test_without_orcid_anyone_may_log_in_and_is_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    c = Config()
    with caplog.at_level(logging.WARNING, logger="JupyterHub"):
        assert configure_authenticator(c, data_dir=str(tmp_path), environ={}) is False
    assert c.JupyterHub.authenticator_class == "erc-dummy"
    assert c.Authenticator.allow_all is True
    assert "enable_auth_state" not in c.Authenticator
    assert "keys" not in c.CryptKeeper
    assert c.JupyterHub.template_vars["erchub_dummy_login_warning"] == DUMMY_LOGIN_WARNING
    assert "ANYONE" in DUMMY_LOGIN_WARNING and "ORCID_CLIENT_ID" in DUMMY_LOGIN_WARNING
    assert [r.getMessage() for r in caplog.records if r.name == "JupyterHub"] == [
        DUMMY_LOGIN_WARNING
    ]
    assert list(tmp_path.iterdir()) == [], "no key is made for nothing"


def test_orcid_with_the_crypt_key_from_the_environment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = secrets.token_hex(32)
    c = Config()
    c.JupyterHub.template_vars = {"site": "kept"}
    environ = {"ORCID_CLIENT_ID": "APP-1", "JUPYTERHUB_CRYPT_KEY": key}
    with caplog.at_level(logging.WARNING):
        assert configure_authenticator(c, data_dir=str(tmp_path), environ=environ) is True
    assert c.JupyterHub.authenticator_class == "orcid"
    assert c.Authenticator.enable_auth_state is True
    assert c.Authenticator.allow_all is True
    assert "keys" not in c.CryptKeeper, "JupyterHub reads $JUPYTERHUB_CRYPT_KEY itself"
    assert c.JupyterHub.template_vars == {"site": "kept", "erchub_dummy_login_warning": ""}
    assert caplog.records == []
    assert list(tmp_path.iterdir()) == []
    assert entry_point("jupyterhub.authenticators", "orcid").__name__ == "ORCIDOAuthenticator"


def test_orcid_keeps_a_generated_crypt_key_in_the_data_dir(tmp_path: Path) -> None:
    first, second = Config(), Config()
    configure_authenticator(first, data_dir=str(tmp_path), environ={"ORCID_CLIENT_ID": "APP"})
    key_file = tmp_path / "jupyterhub_crypt_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    (key,) = first.CryptKeeper["keys"]
    assert len(bytes.fromhex(key)) == 32
    assert key == key_file.read_text().strip()
    configure_authenticator(second, data_dir=str(tmp_path), environ={"ORCID_CLIENT_ID": "APP"})
    assert second.CryptKeeper["keys"] == [key], "the same key after a restart"
    other = tmp_path / "other"
    other.mkdir()
    third = Config()
    configure_authenticator(third, data_dir=str(other), environ={"ORCID_CLIENT_ID": "APP"})
    assert third.CryptKeeper["keys"] != [key], "a new data directory, a new key"


@pytest.mark.parametrize(
    "value",
    [
        base64.urlsafe_b64encode(os.urandom(32)).decode(),
        f"{secrets.token_hex(32)};{secrets.token_hex(32)}",
    ],
    ids=["base64", "rotation"],
)
def test_crypt_keys_in_every_form_jupyterhub_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    from jupyterhub.crypto import CryptKeeper

    monkeypatch.setenv("ORCID_CLIENT_ID", "APP")
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", value)
    c = Config()
    configure_authenticator(c, data_dir=str(tmp_path), environ=os.environ)
    assert CryptKeeper(config=c).keys == CryptKeeper(keys=value.split(";")).keys
    assert list(tmp_path.iterdir()) == []


# -- templates and the erc service --------------------------------------------------------


def test_templates_come_first_and_know_the_service() -> None:
    c = Config()
    c.JupyterHub.template_paths = ["/site/templates"]
    c.JupyterHub.template_vars = {"erchub_dummy_login_warning": ""}
    configure_templates(c)
    assert c.JupyterHub.template_paths == [TEMPLATE_DIRECTORY, "/site/templates"]
    assert any(Path(TEMPLATE_DIRECTORY).glob("*.html"))
    assert c.JupyterHub.template_vars == {
        "erchub_dummy_login_warning": "",
        "erc_service_url": "/services/erc/",
    }
    other = Config()
    configure_templates(other, "/hub-prefix/services/erc/")
    assert other.JupyterHub.template_vars["erc_service_url"] == "/hub-prefix/services/erc/"


def test_the_erc_service_may_manage_sessions_and_users_and_nothing_more(tmp_path: Path) -> None:
    c = Config()
    configure_erc_service(c, data_dir=str(tmp_path))
    roles = {role["name"]: role for role in c.JupyterHub.load_roles}
    scopes = set(roles["erc-service"]["scopes"])
    assert {"servers", "list:users", "read:servers", "admin:users"} <= scopes
    assert roles["erc-service"]["services"] == ["erc"]
    assert set(roles["erc-service"]) <= {"name", "description", "scopes", "services"}
    (service,) = c.JupyterHub.services
    assert service["name"] == "erc"
    assert "api_token" not in service, "the hub makes the managed service's token"


def test_the_erc_service_gets_the_hubs_auth_state_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JUPYTERHUB_CRYPT_KEY", raising=False)
    generated = Config()
    configure_erc_service(generated, data_dir=str(tmp_path))
    key = generated.JupyterHub.services[0]["environment"]["JUPYTERHUB_CRYPT_KEY"]
    assert key == hub_config.crypt_key(str(tmp_path)) and len(key) == 64
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", "an-operators-key")
    given = Config()
    configure_erc_service(given, data_dir=str(tmp_path))
    assert given.JupyterHub.services[0]["environment"]["JUPYTERHUB_CRYPT_KEY"] == "an-operators-key"


def test_the_erc_service_listens_where_the_hubs_api_does(tmp_path: Path) -> None:
    alone = Config()
    configure_erc_service(alone, data_dir=str(tmp_path), port=10199)
    assert alone.JupyterHub.services[0]["url"] == "http://127.0.0.1:10199"
    # with Docker the hub's API is on the sessions network's gateway: sessions reach both
    with_sessions = Config()
    with_sessions.JupyterHub.hub_bind_url = "http://172.30.0.1:8081"
    configure_erc_service(with_sessions, data_dir=str(tmp_path))
    assert with_sessions.JupyterHub.services[0]["url"] == "http://172.30.0.1:10101"


# -- the spawner --------------------------------------------------------------------------


def test_without_docker_sessions_are_local_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hub_config, "docker_engine_problem", lambda: "DockerException: gone")
    c = Config()
    c.JupyterHub.tornado_settings = {"xsrf_cookies": True}
    with caplog.at_level(logging.WARNING, logger="JupyterHub"):
        assert configure_spawner(c, data_dir=str(tmp_path)) == "erc-local"
    assert c.JupyterHub.spawner_class == "erc-local"
    assert entry_point("jupyterhub.spawners", "erc-local") is LocalERCSpawner
    assert c.LocalERCSpawner.sessions_dir == os.path.join(str(tmp_path), "sessions")
    assert c.JupyterHub.allow_named_servers is True
    assert c.JupyterHub.named_server_limit_per_user == 0
    assert c.JupyterHub.tornado_settings == {"xsrf_cookies": True, "slow_spawn_timeout": 0}
    assert c.JupyterHub.hub_bind_url == "http://127.0.0.1:8081"
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "JupyterHub"]
    assert "DockerException: gone" in warning
    assert "LocalERCSpawner" in warning and "development only" in warning


def test_an_unreachable_engine_is_a_problem_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    problem = hub_config.docker_engine_problem()
    assert problem is not None and problem.startswith("DockerException")


@pytest.mark.docker
def test_with_docker_sessions_run_on_the_internal_network(
    tmp_path: Path, docker_client: Any
) -> None:
    c = Config()
    assert configure_spawner(c, data_dir=str(tmp_path), hub_port=18081) == "erc"
    assert c.JupyterHub.spawner_class == "erc"
    assert entry_point("jupyterhub.spawners", "erc") is ERCSpawner
    assert c.ERCSpawner.network_name == hub_config.SESSION_NETWORK
    network = docker_client.networks.get(hub_config.SESSION_NETWORK)
    assert network.attrs["Internal"] is True
    gateways = [conf.get("Gateway") for conf in network.attrs["IPAM"]["Config"]]
    assert c.JupyterHub.hub_bind_url in [f"http://{gw}:18081" for gw in gateways if gw]
    assert c.JupyterHub.hub_connect_url == c.JupyterHub.hub_bind_url
    assert c.JupyterHub.allow_named_servers is True
    assert "sessions_dir" not in c.LocalERCSpawner


def test_the_firewall_keeps_sessions_to_the_hub_and_service_ports() -> None:
    jump, established, hub, service, drop = firewall_rules("erchub0", [8081, 10101])
    assert jump == ["INPUT", "-i", "erchub0", "-j", FIREWALL_CHAIN]
    assert established[-2:] == hub[-2:] == service[-2:] == ["-j", "ACCEPT"]
    assert hub[:5] == [FIREWALL_CHAIN, "-p", "tcp", "--dport", "8081"]
    assert service[:5] == [FIREWALL_CHAIN, "-p", "tcp", "--dport", "10101"]
    assert drop == [FIREWALL_CHAIN, "-j", "DROP"]


@pytest.mark.docker
def test_without_a_firewall_rule_the_hub_warns(
    tmp_path: Path,
    docker_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def refuse(network: Any, ports: list[int]) -> None:
        raise ErchubError("iptables is not installed")

    monkeypatch.setattr(network_module, "restrict_to_hub", refuse)
    with caplog.at_level(logging.WARNING, logger="JupyterHub"):
        assert configure_spawner(Config(), data_dir=str(tmp_path), hub_port=18082) == "erc"
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "JupyterHub"]
    assert "iptables is not installed" in warning and "listens on all interfaces" in warning


def test_review_guests_are_allowed_at_the_hub_and_the_service_together(tmp_path: Path) -> None:
    from erchub.hub.guests import ERCDummyAuthenticator, ReviewLinkHandler
    from erchub.hub.orcid import ORCIDOAuthenticator

    c = Config()
    configure_erc_service(c, data_dir=str(tmp_path))
    assert ERCDummyAuthenticator(config=c).review_guests is False
    configure_review_guests(c)
    (service,) = c.JupyterHub.services
    assert service["environment"]["ERCHUB_REVIEW_GUESTS"] == "True"
    for authenticator in (
        ERCDummyAuthenticator(config=c),
        ORCIDOAuthenticator(config=c, client_id="id", client_secret="secret"),
    ):
        assert authenticator.review_guests is True
        handlers = dict(authenticator.get_handlers(None))
        assert handlers[r"/review/([^/]+)"] is ReviewLinkHandler
        assert len(handlers) > 1  # the authenticator's own login pages stay


# -- where the hub listens (jupyterhub_config.py) ---------------------------------------------

REPOSITORY = Path(__file__).resolve().parents[2]
#: loads jupyterhub_config.py as `jupyterhub ARGV` does, once per case: its bind_url
BIND_URLS = """
import json, os, sys
from jupyterhub.app import JupyterHub

found = []
for argv, url in json.loads(sys.argv[1]):
    os.environ.pop("ERCHUB_BIND_URL", None)
    if url:
        os.environ["ERCHUB_BIND_URL"] = url
    hub = JupyterHub.instance()
    hub.parse_command_line(["-f", sys.argv[2], *argv])
    hub.load_config_file(hub.config_file)
    found.append(hub.bind_url)
    JupyterHub.clear_instance()
print(json.dumps(found))
"""


def hub_environment(tmp_path: Path) -> dict[str, str]:
    """jupyterhub_config.py without side effects: no engine (local sessions), no service user."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ERCHUB_", "ORCID_", "DOCKER_"))
    }
    return {
        **environment,
        "ERCHUB_DATA_DIR": str(tmp_path / "data"),
        "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock",
        "ERCHUB_SERVICE_USER": "",
    }


def test_the_command_line_and_erchub_bind_url_say_where_the_hub_listens(tmp_path: Path) -> None:
    env_url = "http://127.0.0.2:9300/prefix/"
    cases = [
        # (command line, ERCHUB_BIND_URL): bind_url
        (([], None), "http://127.0.0.1:8000"),
        ((["--port", "9123"], None), "http://127.0.0.1:9123/"),
        ((["--ip", "0.0.0.0"], None), "http://0.0.0.0:8000/"),
        ((["--ip", "::1", "--port", "9124"], None), "http://[::1]:9124/"),
        ((["--base-url", "/hub-b/"], None), "http://127.0.0.1:8000/hub-b/"),
        ((["--url", "http://127.0.0.1:9200/x/"], None), "http://127.0.0.1:9200/x/"),
        ((["--JupyterHub.bind_url=http://127.0.0.1:9201"], None), "http://127.0.0.1:9201"),
        (([], env_url), env_url),
        ((["--port", "9125"], env_url), "http://127.0.0.2:9125/prefix/"),
        ((["--url", "http://127.0.0.1:9202/"], env_url), "http://127.0.0.1:9202/"),
        ((["--port", "9126"], "http+unix://%2Ftmp%2Fhub.sock"), "http://127.0.0.1:9126/"),
    ]
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            BIND_URLS,
            json.dumps([case for case, _ in cases]),
            str(REPOSITORY / "jupyterhub_config.py"),
        ],
        env=hub_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == [expected for _, expected in cases]
    # no bind_url is first set and then overridden by --ip/--port
    assert "Both bind_url and ip/port/base_url have been configured" not in result.stderr


def test_a_bind_url_that_is_no_url_stops_the_hub_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jupyterhub", "-f", str(REPOSITORY / "jupyterhub_config.py")],
        env={**hub_environment(tmp_path), "ERCHUB_BIND_URL": "8000"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last == "jupyterhub_config.py: ERCHUB_BIND_URL='8000' is no URL like http://HOST:PORT"
