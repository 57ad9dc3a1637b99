"""o2r's API index: ``GET /api`` (what the API is and its versions) and ``GET /api/v1`` (where
each resource is). o2r serves both at its host's root; here they sit below the API prefix,
where o2r's document puts them relative to its server URL. Open to anyone, as o2r's."""

from __future__ import annotations

from jupyterhub.utils import url_path_join

from erchub.services.handlers.base import BaseHandler

#: o2r's names of the resources in the index, and erchub's path of each
RESOURCES = {
    "auth": "auth",
    "compendia": "compendium",
    "jobs": "job",
    "search": "search",
    "shipments": "shipment",
    "recipients": "recipient",
    "substitutions": "substitution",
    "links": "link",
}


class ApiInfoHandler(BaseHandler):
    """``/api``: o2r's API info."""

    async def get(self) -> None:
        self.check_arguments()
        prefix = self.service.api_prefix
        self.write_json(
            {
                "about": url_path_join(prefix, "openapi.json"),
                "versions": {"current": prefix, "v1": prefix},
            }
        )


class ApiListHandler(BaseHandler):
    """``/api/v1``: o2r's list of resources."""

    async def get(self) -> None:
        self.check_arguments()
        prefix = self.service.api_prefix
        self.write_json({name: url_path_join(prefix, path) for name, path in RESOURCES.items()})


default_handlers = [
    (r"/api", ApiInfoHandler),
    (r"/api/v1", ApiListHandler),
]
