"""Local stand-ins for services the tests cannot reach (ORCID, Zenodo and the DOI handle API);
never for components that run here (Docker, PostgreSQL, JupyterHub, Chromium are real)."""
