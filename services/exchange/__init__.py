"""Exchange with the world outside the hub, o2r's names kept:

- ``loader``: compendia from a share URL, a DOI or a Zenodo record (o2r's loader); ``git``:
  from a git repository's commit; ``webdav``: from a cloud share (ownCloud, Nextcloud) or a
  WebDAV folder; ``loading``: the loads as the API runs them;
- ``packaging``: BagIt bags with RO-Crate metadata, Zenodo/DataCite metadata;
- ``shipper``: shipments to Zenodo and downloads (o2r's shipper), recipients and their tokens.

Imports the core, ``compendia`` and ``store``; never a handler or a job.
"""
