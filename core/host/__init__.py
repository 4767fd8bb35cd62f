"""The host process: loading ``crmsync.toml`` and its secrets (``config``),
discovering plugins through pluggy (``plugins``), logging (``logs``) and the
failpoints the crash tests use (``failpoints``). Depends on the contract and
the helpers only.
"""

__version__ = "0.1.0"
