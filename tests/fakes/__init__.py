"""Local stand-ins for services the tests cannot reach (ORCID); never for components that run
here (Docker, PostgreSQL, JupyterHub, Chromium are real)."""
