"""erchub's embedded-default JupyterHub configuration, the one `make demo` will run.

Placeholder until the hub issue: ORCID login (DummyAuthenticator when ORCID_CLIENT_ID is
unset), ERCSpawner on the local Docker engine and the managed `erc` service land there.
"""

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (provided by JupyterHub)
