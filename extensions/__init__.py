"""erchub.extensions: the jupyter-server extension that runs inside single-user servers."""
