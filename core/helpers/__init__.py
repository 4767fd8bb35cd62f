"""Helpers plugins may rely on besides the contract: HTTP with conditional GET
(``http``), retries (``retry``), decoding and writing tabular files
(``tabular``), a CRM activity's text (``activity``), the create journal for
sinks whose target has no upsert (``journal``) and brand matching (``brands``).
They depend on the contract only.
"""
