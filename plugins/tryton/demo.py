"""The bundled demo, synced into a running Tryton: ``python -m crmsync_tryton.demo``.

Starts a throwaway Tryton on 127.0.0.1:8000 (see :mod:`crmsync_tryton.devserver`),
adds the demo's CRM contacts (``demo/crm/contacts.csv``) as parties, runs
``crmsync --config demo/crmsync-tryton.toml run``, then prints every party with
the notes crmsync put on it, read back through Tryton's own API. ``--keep``
leaves the server running to look around (``crmsync run`` again: nothing new).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

from .devserver import TrytonServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crmsync_tryton.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("demo/crmsync-tryton.toml"), help="The demo's config (default demo/crmsync-tryton.toml).")
    parser.add_argument("--port", type=int, default=8000, help="Port the config's url names (default 8000).")
    parser.add_argument("--keep", action="store_true", help="Keep Tryton running after the sync, until Ctrl-C.")
    args = parser.parse_args(argv)
    if not args.config.exists():
        parser.error(f"{args.config} not found: run this from the crmsync checkout, or pass --config")
    print("starting Tryton (the first time installs trytond into its own environment: about a minute) ...", file=sys.stderr)
    server = TrytonServer(port=args.port).start()
    try:
        contacts = args.config.parent / "crm" / "contacts.csv"
        with open(contacts, encoding="utf-8", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("email")]
        server.rpc("party.party", "create", [
            {"name": f"{r['first_name']} {r['last_name']}".strip(), "contact_mechanisms": [["create", [{"type": "email", "value": r["email"]}]]]} for r in rows
        ])
        print(f"Tryton at {server.url} (database {server.database!r}) holds {len(rows)} parties from {contacts}", file=sys.stderr)
        env = {**os.environ, "TRYTON_PASSWORD": server.password}
        code = subprocess.run([sys.executable, "-m", "crmsync", "--config", str(args.config), "run"], env=env).returncode
        print("\nwhat Tryton holds now (read back through its JSON-RPC API):")
        notes = server.notes()
        for party in server.parties():
            mine = [n for n in notes if n["resource"] == f"party.party,{party['id']}"]
            print(f"  party {party['id']}: {party['name']} {party['emails'] or ''} - {len(mine)} note(s)")
            for n in mine:
                print(f"      {n['message'].splitlines()[0][:90]}")
        if args.keep:
            print(f"\nTryton keeps running at {server.url} (user {server.username}, password {server.password}); Ctrl-C stops it", file=sys.stderr)
            assert server.proc is not None
            server.proc.wait()
        return code
    except KeyboardInterrupt:
        return 130
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
