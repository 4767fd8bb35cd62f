"""sanitize_html's plain-text fast path returns exactly what nh3 would; normalize_text's
shortcuts return exactly what its three regexes would."""

from __future__ import annotations

import nh3
from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync.contract import text


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=()), max_size=60))
def test_the_fast_path_is_what_nh3_returns(fragment):
    try:
        expected = text._cleaner("safe").clean(fragment) if fragment else ""
    except Exception:  # noqa: BLE001 - what nh3 refuses must take the slow path (and raise there too)
        assert text._MARKUP.search(fragment) is not None
        return
    assert text.sanitize_html(fragment) == expected


def test_markup_still_goes_through_nh3():
    assert text.sanitize_html('<p onclick="x()">hi<script>steal()</script></p>') == "<p>hi</p>"
    assert text.sanitize_html("a > b") == "a &gt; b"


def test_the_cleaner_is_nh3_clean_with_the_allow_list():
    """The reusable cleaner sanitises as nh3.clean does given the same allow-lists."""
    args = {"tags": set(text.ALLOWED_TAGS), "attributes": {k: set(v) for k, v in text.ALLOWED_ATTRIBUTES.items()},
            "url_schemes": set(text.URL_SCHEMES), "link_rel": "noopener noreferrer nofollow", "strip_comments": True}
    for fragment in ['<a href="javascript:x()" onclick="y">l</a><img src="http://e/x.png" style="a">', "<table><tr><td>c</td></tr></table><!-- c --><form><input></form>",
                     '<a href="https://e.org/">e</a> &amp; <b>b</b><iframe src="x"></iframe>']:
        assert text.sanitize_html(fragment) == nh3.clean(fragment, **args)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(" \t\r\n\f\v\u00a0\u2028ab<&")), max_size=40))
def test_normalize_text_is_its_three_regexes(value):
    plain = text._EDGES.sub("\n", text._SPACES.sub(" ", value.replace("\r\n", "\n")))
    assert text.normalize_text(value) == text._NEWLINES.sub("\n\n", plain).strip()


@settings(max_examples=3000, deadline=None)
@given(st.text(max_size=40) | st.text(alphabet=st.sampled_from(list("AbZ 1-ÄéﬁŉİẞΣς\u0301")), max_size=20))
def test_fold_shortcuts_are_the_full_fold(value):
    """fold skips NFKD and the combining-mark walk where they cannot change anything."""
    import unicodedata

    from crmsync.helpers.brands import fold

    full = "".join(c for c in unicodedata.normalize("NFKD", value) if not unicodedata.combining(c)).casefold()
    assert fold(value) == full


@settings(max_examples=3000, deadline=None)
@given(st.text(min_size=1, max_size=20).filter(lambda v: "\x00" not in v))
def test_the_crm_csv_sink_skips_only_cells_neutralize_leaves_alone(value):
    """crm_csv calls neutralize_formula only for cells starting with a character of
    _RISKY_FIRST: every other cell must be one it returns unchanged."""
    from crmsync_crm_csv.sink import _RISKY_FIRST

    if value[0] not in _RISKY_FIRST:
        assert text.neutralize_formula(value) == value


_CSV_PIECES = ["a", "b,c", '"q"', '"x,y"', '"open', "\n", "\r\n", "\r", ",", ";", "é", "\ufeff", "sep=;\n", " ", '"a""b"', '"multi\nline"']


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(_CSV_PIECES), max_size=25).map("".join), st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252", "utf-32-le"]))
def test_an_export_read_a_line_at_a_time_is_the_export_read_whole(tmp_path_factory, text, encoding):
    """The reviews source reads exports through export_lines (memory that does not grow
    with the file): the decoded text and every CSV row must be what the whole-text path
    gives, from the bytes and from the file."""
    from crmsync.helpers.tabular import count_lines, decode_export, export_lines, read_csv

    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        return
    whole = decode_export(data)
    lines, how = export_lines(data)
    lines = list(lines)
    assert "".join(lines) == whole.text and (how.encoding, how.guessed, how.replaced) == (whole.encoding, whole.guessed, whole.replaced)
    path = tmp_path_factory.mktemp("export") / "export.csv"
    path.write_bytes(data)
    from_file, how_file = export_lines(path)
    assert list(from_file) == lines and how_file == how
    assert count_lines(path) == count_lines(data) == (data.count(b"\n"), data.endswith(b"\n"))
    header, rows = read_csv(whole.text)
    header2, rows2 = read_csv(iter(lines))
    assert header2 == header
    assert [(n, list(r), r.problem) for n, r in rows2] == [(n, list(r), r.problem) for n, r in rows]


def test_export_lines_counts_what_it_replaces_and_refuses_an_unknown_encoding(tmp_path):
    import pytest

    from crmsync.helpers.tabular import count_lines, decode_export, export_lines

    data = "naïve,x\n".encode("utf-8") + b"\xff\xfe bad\n"
    lines, how = export_lines(data, "utf-8")
    assert "".join(lines) == decode_export(data, "utf-8").text and how.replaced == decode_export(data, "utf-8").replaced == 2
    # a bad byte split across the 1 MiB reads of a file, and one at its very end
    path = tmp_path / "big.csv"
    body = b"a" * ((1 << 20) - 1) + "é".encode() + b"\n" + b"b\xff\n\xe2\x82"
    path.write_bytes(body)
    lines, how = export_lines(path)
    assert how.encoding == "cp1252" and "".join(lines) == decode_export(body).text
    assert count_lines(path) == (2, False)
    lines, how = export_lines(path, "utf-8")
    assert "".join(lines) == decode_export(body, "utf-8").text and how.replaced == decode_export(body, "utf-8").replaced == 2
    with pytest.raises(LookupError):
        export_lines(b"a\n", "no-such-codec")
