"""Compendia on disk: ingesting archives into staging, installing, deleting, file trees, safe
paths and streamed archives (``files``), and the operations on compendia that the API and the
exchange call (``operations``: add, delete, save metadata under its lock), raising domain
errors (:mod:`erchub.errors`), never HTTP ones.

Imports the core and ``store``; never a handler, a job or the exchange.
"""
