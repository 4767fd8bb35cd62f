"""The module names of crmsync 0.1's flat layout, kept working for one release.

``import crmsync.base`` (or ``runner``, ``config``, ...) still works and warns
with a :class:`DeprecationWarning` naming the new module; the module object is
the new one, so classes and functions are the same objects under both names.
Public names are best imported from ``crmsync`` itself.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any

#: old module (below ``crmsync.``) -> where it lives now
MOVED = {
    "errors": "contract.errors",
    "schema": "contract.schema",
    "text": "contract.text",
    "base": "contract.base",
    "hookspecs": "contract.hookspecs",
    "http": "helpers.http",
    "retry": "helpers.retry",
    "tabular": "helpers.tabular",
    "activity": "helpers.activity",
    "journal": "helpers.journal",
    "brands": "helpers.brands",
    "config": "host.config",
    "plugins": "host.plugins",
    "logs": "host.logs",
    "failpoints": "host.failpoints",
    "tables": "store.tables",
    "migrations": "store.migrations",
    "runner": "pipeline.run",
    "identity": "pipeline.resolve.matching",
    "influence": "pipeline.resolve.influence",
    "replay": "pipeline.replay",
    "deliveries": "pipeline.deliver.pages",
    "plan": "pipeline.deliver.plan",
    "receipts": "pipeline.deliver.receipts",
    "sink_quarantine": "pipeline.deliver.rejections",
    "identity_export": "cli.identity_export",
    "singer": "cli.singer",
}


class _Loader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: Any) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        pass  # the target module ran when it was imported


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if not fullname.startswith("crmsync."):
            return None
        old = fullname[len("crmsync.") :]
        new = MOVED.get(old)
        if new is None:
            return None
        warnings.warn(f"crmsync.{old} moved to crmsync.{new}; the old name goes away in crmsync 0.3", DeprecationWarning, stacklevel=3)
        spec = importlib.util.spec_from_loader(fullname, _Loader(f"crmsync.{new}"))
        return spec


def install() -> None:
    """Let the old module names import (once per process)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
