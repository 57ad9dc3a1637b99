"""erchub.services: the `erc` hub service, its store and the job runner."""
