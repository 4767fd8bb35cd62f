"""Every built-in plugin runs the crmsync.testing conformance kit."""

from __future__ import annotations

import mailbox
import shutil
from email.message import EmailMessage
from pathlib import Path

from crmsync.testing import get_sink_test_class, get_source_test_class
from crmsync_crm_csv import ContactsSource, CsvSink, read_import_files
from crmsync_email import EmailSource
from crmsync_reviews import ReviewsSource
from crmsync_rss import RssSource

DEMO = Path(__file__).resolve().parent.parent / "demo"


def _copy(tmp: Path, rel: str) -> str:
    src = DEMO / rel
    dst = tmp / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True)
    else:
        shutil.copy(src, dst)
    return rel


def _bad_feeds(tmp: Path) -> dict:
    d = tmp / "bad"
    d.mkdir()
    (d / "broken.xml").write_text("<rss><channel><item><title>unclosed</channel>")
    (d / "bomb.xml").write_text('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><rss version="2.0"><channel><item><title>&lol2;</title><guid>x</guid></item></channel></rss>')
    shutil.copy(DEMO / "feeds" / "acme-fans.rss.xml", d / "good.xml")
    return {"feeds": ["bad"]}


def _bad_mail(tmp: Path) -> dict:
    box = mailbox.mbox(tmp / "bad.mbox")
    m = EmailMessage()
    m["Subject"] = "no sender"
    m["Message-ID"] = "<nosender@example.org>"
    m.set_content("who sent this?")
    box.add(m)
    good = EmailMessage()
    good["From"] = "Ann <ann@example.org>"
    good["Message-ID"] = "<good@example.org>"
    good.set_content("hello")
    box.add(good)
    box.flush()
    return {"paths": ["bad.mbox"]}


def _bad_reviews(tmp: Path) -> dict:
    (tmp / "bad.csv").write_text("review_id,stars,body\nR1,5,great\nR2,not-a-number,meh\nR3,4,good,extra-field\nR4,,\n")
    return {"files": ["bad.csv"]}


TestRssSource = get_source_test_class(RssSource, lambda tmp: {"feeds": [_copy(tmp, "feeds")]}, bad_config=_bad_feeds, min_records=5)
TestEmailSource = get_source_test_class(EmailSource, lambda tmp: {"paths": [_copy(tmp, "mail/support.mbox")]}, bad_config=_bad_mail, min_records=3)
TestReviewsSource = get_source_test_class(ReviewsSource, lambda tmp: {"files": [_copy(tmp, "reviews/reviews.csv")]}, bad_config=_bad_reviews, min_records=3)
TestContactsSource = get_source_test_class(
    ContactsSource,
    lambda tmp: {"file": _copy(tmp, "crm/contacts.csv")},
    bad_config=lambda tmp: (tmp / "c.csv").write_text("contact_id,email\n,nobody@example.org\nC1,a@example.org\n") and {"file": "c.csv"},
    min_records=4,
)
def _unwritable(tmp: Path) -> dict:
    (tmp / "a-file").write_text("not a directory")
    return {"output_dir": "a-file/out"}


TestCsvSink = get_sink_test_class(CsvSink, {"output_dir": "out"}, read_back=lambda opts, tmp: read_import_files(tmp / opts["output_dir"]), unreachable_config=_unwritable)
