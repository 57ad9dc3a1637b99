"""erchub.hub: ORCID authenticator, hub pages and configuration helpers (see the hub issue)."""
