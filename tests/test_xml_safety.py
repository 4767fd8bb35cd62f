"""No XML entity expansion anywhere: billion laughs and external entities are refused and quarantined."""

from __future__ import annotations

from crmsync.testing import kit_config, kit_host, kit_run
from crmsync.store import Store
from crmsync_rss import RssSource

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol9 "&lol3;&lol3;&lol3;">]>
<rss version="2.0"><channel><item><guid>https://x.example/1</guid><title>&lol9;</title></item></channel></rss>"""

XXE = """<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><item><guid>https://x.example/2</guid><title>&xxe;</title></item></channel></rss>"""

EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE rss SYSTEM "http://127.0.0.1:9/evil.dtd">
<rss version="2.0"><channel><item><guid>https://x.example/3</guid><title>t</title></item></channel></rss>"""


def test_entity_attacks_are_quarantined_not_expanded(tmp_path):
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "bomb.xml").write_text(BILLION_LAUGHS)
    (feeds / "xxe.xml").write_text(XXE)
    (feeds / "dtd.xml").write_text(EXTERNAL_DTD)
    host = kit_host(sources=[RssSource])
    cfg = kit_config(tmp_path, host, sources={"f": ("rss", {"feeds": ["feeds"]})})
    report = kit_run(cfg)
    s = report.sources[0]
    store = Store(cfg.store_url)
    try:
        items = {i.ref.rsplit("/", 1)[-1]: i for i in store.quarantine.items()}
        stored = [r for r, _ in store.interactions.iter()]
    finally:
        store.dispose()
    assert set(items) == {"bomb.xml", "xxe.xml"}
    assert all("refused unsafe XML" in i.reason for i in items.values())
    assert items["bomb.xml"].raw == BILLION_LAUGHS.encode()
    # an external DTD reference is not fetched (nothing listens on port 9) and not needed
    assert [r.title for r in stored] == ["t"]
    assert "root:" not in repr(stored)
    assert s.quarantined == 2 and report.exit_code == 1
