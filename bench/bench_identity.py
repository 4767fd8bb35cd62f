#!/usr/bin/env python3
"""Identity matching throughput: interactions per second against N contacts,
beside a plain dict lookup of exact emails (the floor), as a ratio.

    python bench/bench_identity.py --contacts 100000 --interactions 100000

Authors are drawn from the contacts under realistic variants (case, +tags,
Gmail dots, twitter.com/x.com profile URLs, @handles) plus strangers and
name-only decoys, deterministically (seed 1).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import crmsync
from crmsync.pipeline.resolve.matching import ContactIndex, Resolver

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contacts", type=int, default=100_000)
    ap.add_argument("--interactions", type=int, default=100_000)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    rnd = random.Random(1)
    domains = ["gmail.com", "outlook.com", "acme-customer.example", "tools.example", "gmx.de"]
    contacts = []
    for n in range(args.contacts):
        local = f"user.{n}"
        contacts.append(crmsync.Identity(name=f"Person {n}", emails=[f"{local}@{domains[n % len(domains)]}"], handles=[f"twitter:handle{n}"] if n % 3 == 0 else [], crm_ids={"generic": f"C{n}"}))
    authors = []
    for _ in range(args.interactions):
        n = rnd.randrange(args.contacts)
        c = contacts[n]
        kind = rnd.random()
        if kind < 0.4:
            authors.append(crmsync.Identity(name=c.name, emails=[c.emails[0]]))
        elif kind < 0.55:
            local, _, dom = c.emails[0].partition("@")
            authors.append(crmsync.Identity(emails=[f"{local.upper()}+shop@{dom}"]))
        elif kind < 0.65 and c.handles:
            authors.append(crmsync.Identity(profile_urls=[f"https://twitter.com/{c.handles[0].split(':')[1]}/"]))
        elif kind < 0.75 and c.handles:
            authors.append(crmsync.Identity(name="@" + c.handles[0].split(":")[1]))
        elif kind < 0.85:
            authors.append(crmsync.Identity(name=c.name, emails=[f"stranger{n}@elsewhere.example"]))  # decoy
        else:
            authors.append(crmsync.Identity(name=f"Someone {n}", emails=[f"x{n}@nowhere.example"]))
    t0 = time.perf_counter()
    index = ContactIndex(contacts)
    build_s = time.perf_counter() - t0
    resolver = Resolver(index)
    t0 = time.perf_counter()
    linked = sum(1 for a in authors if resolver.resolve(a)[0] is not None)
    resolve_s = time.perf_counter() - t0
    exact = {c.emails[0].lower(): c.crm_ids["generic"] for c in contacts}
    t0 = time.perf_counter()
    floor_hits = sum(1 for a in authors for e in a.emails[:1] if e.lower() in exact)
    floor_s = time.perf_counter() - t0
    result = {
        "contacts": args.contacts,
        "interactions": args.interactions,
        "index_build_s": round(build_s, 3),
        "resolver_interactions_per_s": round(args.interactions / resolve_s, 1),
        "resolver_linked": linked,
        "dict_lookup_interactions_per_s": round(args.interactions / floor_s, 1),
        "dict_lookup_hits": floor_hits,
        "ratio_resolver_to_dict": round((args.interactions / resolve_s) / (args.interactions / floor_s), 4),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"identity-{args.contacts}.json").write_text(json.dumps(result, indent=2))
    print("\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
