"""The sentiment enricher as a support team reads: complaints, star ratings,
emotions, and triage from them. tests/data/customer_service.jsonl holds short
hand-labelled customer-service texts (see bench/bench_sentiment.py for the
measures on a public set)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crmsync
from crmsync.host.config import validate_options
from crmsync_enrich.enrichers import SentimentEnricher, TriageEnricher

DATA = Path(__file__).parent / "data" / "customer_service.jsonl"


def _enricher(**options):
    return SentimentEnricher("sentiment", validate_options(SentimentEnricher.config_schema, options, where="sentiment"))


def _rec(text: str, **fields) -> crmsync.Interaction:
    return crmsync.Interaction.create(source="s", channel="x-forum", native_id=text[:40], kind="post", body_text=text, **fields)


@pytest.mark.parametrize("text", ["Arrived cracked, support never answered.", "is your checkout down?? can't pay", "I will contact my lawyer. Can you help?"])
def test_complaints_read_as_negative(text):
    plain = _enricher(customer_service=False, model="off").enrich(_rec(text))
    layer = _enricher(model="off").enrich(_rec(text))
    read = _enricher().enrich(_rec(text))
    assert plain.sentiment.label != "negative", "VADER alone misreads it (the reason for the layer)"
    assert layer.sentiment.label == "negative" and layer.sentiment.method == "vader+cs"
    assert read.sentiment.label == "negative" and read.sentiment.method == "vader+cs+model"


def test_praise_stays_positive_and_thanks_is_gratitude():
    rec = _enricher().enrich(_rec("Thanks so much, the support team fixed it in five minutes. Great job!"))
    assert rec.sentiment.label == "positive" and rec.extra["emotions"] == ["joy", "gratitude"]


def test_a_star_rating_anchors_a_review():
    text = "The colour is nice I guess, but it arrived late."
    one = _enricher().enrich(_rec(text, rating=crmsync.Rating(value=1)))
    five = _enricher().enrich(_rec(text, rating=crmsync.Rating(value=5)))
    assert one.sentiment.label == "negative" and five.sentiment.label == "positive"
    assert one.sentiment.method.endswith("+rating")
    ignored = _enricher(rating_weight=0).enrich(_rec(text, rating=crmsync.Rating(value=1)))
    assert ignored.sentiment.method == "vader+cs+model"


def test_emotions_follow_the_text_and_its_sign():
    angry = _enricher().enrich(_rec("You charged me twice. Unbelievable, I'm filing a chargeback."))
    assert angry.sentiment.label == "negative" and "anger" in angry.extra["emotions"]
    waiting = _enricher().enrich(_rec("Still waiting for the refund, third time I ask."))
    assert "frustration" in waiting.extra["emotions"]
    # "again" is frustration only in a negative text
    happy = _enricher().enrich(_rec("Lovely shop, will order again!"))
    assert happy.extra["emotions"] == ["joy"]
    off = _enricher(emotions="off").enrich(_rec("Still waiting for the refund, third time I ask."))
    assert "emotions" not in off.extra


def test_other_languages_keep_their_own_lexicon():
    rec = _enricher().enrich(_rec("Der Support hat nie geantwortet, sehr enttäuschend.", language="de"))
    assert rec.sentiment.method == "vader" and rec.sentiment.label == "negative" and "emotions" not in rec.extra


def test_the_nrc_lexicon_adds_emotions_the_builtin_lists_miss():
    text = "I am terrified the heater will explode."
    builtin = _enricher().enrich(_rec(text))
    nrc = _enricher(emotions="nrc").enrich(_rec(text))
    assert builtin.sentiment.label == nrc.sentiment.label == "negative"
    assert "emotions" not in builtin.extra and "urgency" in nrc.extra["emotions"]


def test_the_nrc_option_says_how_to_get_the_lexicon_when_it_is_missing(monkeypatch):
    import importlib.resources

    from crmsync_enrich import enrichers

    enrichers._nrc_lexicon.cache_clear()

    def missing(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(importlib.resources, "files", missing)
    with pytest.raises(crmsync.ConfigError, match=r"pip install 'crmsync\[emotions\]'"):
        _enricher(emotions="nrc")
    enrichers._nrc_lexicon.cache_clear()


def test_triage_answers_complaints_by_their_emotions():
    triage = TriageEnricher("triage", validate_options(TriageEnricher.config_schema, {}, where="triage"))
    rec = triage.enrich(_enricher().enrich(_rec("Support closed my ticket without answering. Unbelievable.")))
    assert rec.needs_response and {"anger", "frustration"} <= set(rec.extra["triage"]) and rec.priority == "high"


def test_the_labelled_customer_service_texts():
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    sentiment = _enricher()
    triage = TriageEnricher("triage", validate_options(TriageEnricher.config_schema, {}, where="triage"))
    recs = triage.enrich_batch(sentiment.enrich_batch([_rec(r["text"]) for r in rows]))
    recall = {}
    for label in ("negative", "positive"):
        mine = [rec for rec, r in zip(recs, rows, strict=True) if r["label"] == label]
        recall[label] = sum(1 for rec in mine if rec.sentiment.label == label) / len(mine)
    complaints = [rec for rec, r in zip(recs, rows, strict=True) if r["label"] == "negative"]
    answered = sum(1 for rec in complaints if rec.needs_response) / len(complaints)
    assert recall["negative"] >= 0.85 and recall["positive"] >= 0.9 and answered >= 0.85, (recall, answered)


_VADER_WORDS = ["good", "GOOD", "not", "isn't", "never", "so", "this", "without", "doubt", "no", "nor", "or", "kind", "of", "very", "but", "BUT",
                "bad", "great", "sort", "of", "least", "at", "the", "shit", "bomb", "cool", ":)", ":(", "😀", "💔", "!", "?", "??", "yeah", "right",
                "hate", "love", "refund", "support", "kinda", "extremely", "barely", "the", "it", "was", ",", ".", "\n", "  "]


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(_VADER_WORDS), max_size=30).map(" ".join) | st.text(max_size=80))
def test_the_fast_vader_scores_what_vader_scores(text):
    """crmsync_enrich.vader.Analyzer skips VADER's character rebuild and whole-text
    lower-casing; its scores must be the original's, for any text."""
    fast, slow = _vaders()
    assert fast.polarity_scores(text) == slow.polarity_scores(text)


@functools.cache
def _vaders():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from crmsync_enrich.vader import Analyzer

    return Analyzer(), SentimentIntensityAnalyzer()


def test_the_fast_vader_scores_the_labelled_texts_as_vader():
    fast, slow = _vaders()
    texts = [json.loads(line)["text"] for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(texts) > 50
    for text in texts:
        assert fast.polarity_scores(text) == slow.polarity_scores(text), text


def test_the_sentiment_bench_runs_and_measures_emotions(tmp_path):
    """bench/bench_sentiment.py on the own set and a GoEmotions-shaped file: the figures
    bench/README.md publishes come from here, so it must keep running as the schema moves."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    goemotions = tmp_path / "test.tsv"
    # GoEmotions rows: text, label ids (15 gratitude, 2 anger, 17 joy, 27 neutral), comment id
    goemotions.write_text("Thank you so much!\t15\ta1\nThis is outrageous, a scam.\t2\ta2\nI love it, amazing\t17\ta3\nok then\t27\ta4\n", encoding="utf-8")
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(root / "bench" / "bench_sentiment.py"), "--goemotions", str(goemotions), "--out", str(out)], check=True, capture_output=True)
    own, goe = json.loads(out.read_text())
    assert own["texts"] == len(DATA.read_text(encoding="utf-8").splitlines())
    assert own["recall"]["negative"] >= 0.9 and own["emotion_agreement"]["gratitude"]["texts"] > 0
    assert goe["texts"] == 4 and goe["recall"] == {}
    agreement = goe["emotion_agreement"]
    assert {e: (a["texts"], a["recall"]) for e, a in agreement.items() if a["texts"]} == {"gratitude": (1, 1.0), "anger": (1, 1.0), "joy": (1, 1.0)}


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("The battery lasts about an hour and then it just dies.", "negative"),
        ("It took them a month to ship it.", "negative"),
        ("After two weeks the hinge snapped off.", "negative"),
        ("Works exactly as described, would buy again.", "positive"),
    ],
)
def test_the_model_reads_what_no_lexicon_word_says(text, label):
    """Texts with no word of VADER's or the customer-service lists: the layer leaves
    them neutral, the trained model reads them as a reader would."""
    layer = _enricher(model="off").enrich(_rec(text))
    read = _enricher().enrich(_rec(text))
    assert layer.sentiment.label == "neutral"
    assert read.sentiment.label == label and read.sentiment.method == "vader+cs+model"


def test_the_model_features_mark_negation_and_pair_neighbours():
    from crmsync_enrich.model import features

    assert features("Not good, at ALL!") == ["not", "NOT_good", "NOT_at", "NOT_all", "!", "not NOT_good", "NOT_good NOT_at", "NOT_at NOT_all", "NOT_all !"]
    assert features("didn't work") == ["didn't", "NOT_work", "didn't NOT_work"]
    assert features("12345 #") == []


def test_the_model_without_evidence_says_nothing_and_sums_its_features():
    from crmsync_enrich.model import LinearModel, bundled

    model = LinearModel({"good": 1.5, "good day": 0.5, "bad": -2.0}, lexicon_weight=2.0, bias=0.0)
    assert model.score("12345", 0.0) == 0.0
    # each feature once, however often it occurs; the lexicon's score weighed in
    assert model.logit("good day good", 0.0) == pytest.approx(1.5 + 0.5)
    assert model.logit("bad", 0.5) == pytest.approx(-2.0 + 1.0)
    assert -1 < model.score("bad bad bad", -1.0) < -0.9
    assert LinearModel.from_json(model.to_json()).weights == model.weights
    shipped = bundled()
    assert shipped.bias == 0.0 and shipped.lexicon_weight > 0 and len(shipped.weights) > 10_000
    # where the weights come from, and what they were not trained on, travel with them
    assert len(shipped.meta["sources"]) == 3 and "Amazon" in shipped.meta["held_out"]


@pytest.mark.parametrize(
    ("text", "emotion"),
    [
        ("This is infuriating, you people are clowns.", "anger"),
        ("I'm really worried the heater will catch something, please advise.", "urgency"),
        ("So disappointed, it broke after one use.", "frustration"),
    ],
)
def test_the_emotion_models_tag_what_the_word_lists_miss(text, emotion):
    lists = _enricher(model="off").enrich(_rec(text))
    read = _enricher().enrich(_rec(text))
    assert "emotions" not in lists.extra
    assert read.sentiment.label == "negative" and read.extra["emotions"] == [emotion]


def test_an_emotion_is_tagged_at_its_threshold_and_only_where_asked():
    from crmsync_enrich.model import LinearModel, bundled

    # anger at p >= 0.5 (log-odds 0), joy at p >= 0.8 (log-odds 1.386)
    model = LinearModel({}, 1.0, 0.0, emotions={"anger": ({"clowns": 1.0}, -0.5, 0.5), "joy": ({"thrilled": 1.0}, 0.0, 0.8)})
    assert model.emotion_tags("clowns") == {"anger"}  # -0.5 + 1.0 >= 0
    assert model.emotion_tags("clowns", ("joy",)) == set()
    assert model.emotion_tags("thrilled") == set()  # 1.0 < 1.386
    assert LinearModel.from_json(model.to_json()).emotion_tags("clowns") == {"anger"}
    shipped = bundled()
    assert set(shipped.emotions) == {"anger", "frustration", "urgency", "joy", "gratitude"}
    assert all(0 < threshold < 1 and len(weights) > 500 for weights, _bias, threshold in shipped.emotions.values())


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(["not", "no", "don't", "never", "good", "bad", "no1", "x_no", "won't", "NOT", "n't", "it", "!", "?", "nor'"]), max_size=12).map(" ".join) | st.text(max_size=60))
def test_model_features_skip_the_negation_loop_only_where_it_would_mark_nothing(text):
    """features() skips its marking loop for texts with no negator: the result must be
    what the loop gives, for any text (the model was trained on these features)."""
    import re

    from crmsync_enrich.model import NEGATION_SCOPE, NEGATORS, features

    marked, scope = [], 0
    for word in re.findall(r"[a-z][a-z']*|[!?]", text.lower()):
        if word in NEGATORS or word.endswith("n't"):
            scope = NEGATION_SCOPE
            marked.append(word)
        elif scope:
            marked.append("NOT_" + word)
            scope -= 1
        else:
            marked.append(word)
    assert features(text) == marked + [f"{a} {b}" for a, b in zip(marked, marked[1:])]
