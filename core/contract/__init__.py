"""The plugin contract: what a source, sink or enricher author imports.

``hookspecs`` (the hooks), ``base`` (Source, Sink, Enricher and what flows
between them and the host), ``schema`` (the interaction record), ``errors``
(what the host does next) and ``text`` (the sanitising the schema applies).
Nothing here imports the rest of crmsync; plugins get all of it from
``crmsync`` itself.
"""
