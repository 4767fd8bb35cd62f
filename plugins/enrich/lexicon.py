"""Sentiment words in German, French, Spanish, Russian and Japanese, added to VADER's
English lexicon (valence on VADER's -4..4 scale). VADER only knows English;
these common customer-feedback words let it score the other languages the
corpus and real inboxes carry. Extend per deployment with ``extra_lexicon``."""

MULTILINGUAL: dict[str, float] = {
    # German
    "toll": 2.5, "super": 2.5, "großartig": 3.0, "grossartig": 3.0, "hervorragend": 3.0, "ausgezeichnet": 3.0, "empfehlen": 1.8,
    "empfehle": 1.8, "zufrieden": 2.0, "begeistert": 3.0, "schnell": 1.0, "gut": 1.9, "liebe": 2.5, "perfekt": 3.0, "klasse": 2.5,
    "schlecht": -2.5, "schrecklich": -3.0, "enttäuscht": -2.5, "enttäuschend": -2.5, "kaputt": -2.5, "defekt": -2.5, "ärgerlich": -2.3,
    "unbrauchbar": -3.0, "furchtbar": -3.0, "mangelhaft": -2.5, "langsam": -1.0, "nie": -1.0, "leider": -1.5, "gefährlich": -2.5,
    "beschädigt": -2.2, "zerbrochen": -2.2, "unhöflich": -2.5, "nutzlos": -2.8, "dank": 1.5, "danke": 1.5, "bester": 2.5, "beste": 2.5,
    "freundlich": 2.0, "hilfsbereit": 2.0, "schrott": -3.0, "verärgert": -2.5, "schlechte": -2.5, "schlechter": -2.5, "wunderbar": 3.0,
    "zuverlässig": 2.0, "fantastisch": 3.0, "katastrophe": -3.0, "katastrophal": -3.0, "enttäuschung": -2.5,
    "unzufrieden": -2.5, "kaputtgegangen": -2.5, "funktioniert": 0.8, "nicht": 0.0,
    # French
    "excellent": 3.0, "excellente": 3.0, "génial": 3.0, "geniale": 3.0, "parfait": 3.0, "recommande": 1.8, "ravi": 2.5, "bon": 1.9,
    "bonne": 1.9, "très": 0.0, "réactif": 1.5, "rapide": 1.0, "adore": 3.0, "magnifique": 3.0, "mauvais": -2.5, "mauvaise": -2.5,
    "horrible": -3.0, "déçu": -2.5, "décevant": -2.5, "cassé": -2.5, "endommagé": -2.2, "inutile": -2.5, "nul": -2.5, "lent": -1.0,
    "dangereux": -2.5, "impoli": -2.5, "malheureusement": -1.5, "jamais": -1.0, "merci": 1.5, "meilleur": 2.5, "meilleure": 2.5,
    "aimable": 2.0, "serviable": 2.0, "qualité": 0.5, "déception": -2.5, "catastrophe": -3.0, "arnaque": -3.0, "fâché": -2.5,
    "insatisfait": -2.5, "fiable": 2.0, "formidable": 3.0, "superbe": 3.0, "cassée": -2.5,
    # Spanish
    "excelente": 3.0, "genial": 3.0, "perfecto": 3.0, "recomiendo": 1.8, "encanta": 3.0, "bueno": 1.9, "buena": 1.9, "rápido": 1.0,
    "fantástico": 3.0, "maravilloso": 3.0, "contento": 2.0, "malo": -2.5, "mala": -2.5, "terrible": -3.0,
    "decepcionado": -2.5, "decepcionante": -2.5, "roto": -2.5, "rota": -2.5, "dañado": -2.2, "inútil": -2.5, "lento": -1.0,
    "peligroso": -2.5, "grosero": -2.5, "desafortunadamente": -1.5, "nunca": -1.0, "pésimo": -3.0, "gracias": 1.5, "mejor": 2.5,
    "amable": 2.0, "útil": 1.5, "decepción": -2.5, "estafa": -3.0, "enfadado": -2.5, "insatisfecho": -2.5, "fiable": 2.0,
    "increíble": 3.0, "basura": -3.0,
    # Russian
    "отлично": 3.0, "отличный": 3.0, "отличное": 3.0, "прекрасно": 3.0, "рекомендую": 1.8, "хорошо": 1.9, "хороший": 1.9,
    "супер": 2.5, "доволен": 2.0, "довольна": 2.0, "быстро": 1.0, "люблю": 2.5, "замечательно": 3.0, "плохо": -2.5, "плохой": -2.5,
    "ужасно": -3.0, "ужасный": -3.0, "разочарован": -2.5, "сломан": -2.5, "сломался": -2.5, "сломалось": -2.5, "бесполезный": -2.5,
    "медленно": -1.0, "опасно": -2.5, "грубый": -2.5, "никогда": -1.0, "сожалению": -1.5, "спасибо": 1.5, "помогла": 1.5,
    "помог": 1.5, "лучшая": 2.5, "лучший": 2.5, "вежливый": 2.0, "разочарование": -2.5, "кошмар": -3.0, "недоволен": -2.5,
    "недовольна": -2.5, "надёжный": 2.0, "надежный": 2.0, "брак": -2.5, "очень": 0.0,
}


# Customer service ---------------------------------------------------------------
# VADER was built from tweets and reviews of things, not from complaints to a
# company: "support" and "help" are positive words to it, "refund", "lawyer" and
# "chargeback" are unknown. These valences (VADER's -4..4 scale) replace or add
# to its English lexicon when ``customer_service`` is on.
CUSTOMER_SERVICE: dict[str, float] = {
    "support": 0.0, "help": 0.4, "please": 0.2, "ticket": -0.3, "refund": -1.0, "refunds": -1.0, "cancel": -1.5,
    "cancelled": -1.5, "canceled": -1.5, "cancellation": -1.2, "down": -0.8, "outage": -2.0, "cracked": -1.9,
    "lawyer": -1.8, "attorney": -1.8, "lawsuit": -2.5, "chargeback": -2.5, "overcharged": -2.3, "declined": -1.3,
    "crashes": -1.8, "crashed": -1.8, "crashing": -1.8, "freezes": -1.5, "bug": -1.3, "bugs": -1.3, "glitch": -1.3,
    "broke": -2.0, "leaks": -1.5, "leaking": -1.5, "melted": -2.0, "unsafe": -2.2, "late": -1.0, "delayed": -1.3,
    "missing": -1.5, "locked": -1.0, "hanging": -0.8, "ignored": -1.8, "unanswered": -1.8, "ridiculous": -2.0,
    "unbelievable": -1.0, "defective": -2.2, "faulty": -2.0, "error": -1.5, "spins": -0.5, "junk": -2.2, "flimsy": -1.6,
    "illogical": -1.2, "dent": -1.0, "dented": -1.2, "scratched": -1.2, "returned": -0.8, "unusable": -2.2, "malfunction": -2.0,
    "malfunctioning": -2.0, "overheats": -1.8, "overheating": -1.8, "rattles": -1.0, "wobbly": -1.0,
}

# Phrases VADER cannot see (it scores words): (regex, valence added to the text's
# raw VADER sum, emotions it signals, anchors: words one of which the text must
# hold for the regex to be tried at all; a text without any is not scanned).
CUSTOMER_SERVICE_PHRASES: tuple[tuple[str, float, tuple[str, ...], tuple[str, ...]], ...] = (
    (r"never (?:answered|responded|replied|got back|heard back|happened|came|comes)", -2.0, ("frustration",), ("never",)),
    (r"(?:never|didn't|did not|hasn't|has not|haven't|have not|still not) (?:arrive[ds]?|received|come|shown up|showed up)", -1.8, ("frustration",), ("arrive", "arrived", "arrives", "received", "come", "shown", "showed",)),
    (r"no (?:response|reply|answer|refund|one (?:answers|replies|responds))", -1.8, ("frustration",), ("response", "reply", "answer", "refund", "answers", "replies", "responds",)),
    (r"still (?:no|nothing|waiting|not|broken|hasn't|haven't|doesn't|isn't)", -1.8, ("frustration",), ("still",)),
    (r"(?:second|third|fourth|fifth|\d+(?:st|nd|rd|th)) time", -1.2, ("frustration",), ("time",)),
    (r"(?:nobody|no one) (?:replies|answers|responds|helps|will|is|cares)", -1.5, ("frustration",), ("nobody", "one",)),
    (r"(?:can't|cannot|can not|unable to|won't let me|couldn't) (?:pay|log ?in|login|access|check ?out|order|reset|sign in|use|connect)", -2.0, ("urgency",), ("can't", "cannot", "can", "unable", "won't", "couldn't",)),
    (r"(?:is|are|was|went) (?:down|broken|offline)|down again", -1.8, ("urgency",), ("down", "broken", "offline",)),
    (r"(?:doesn't|does not|don't|didn't|won't|isn't|is not|not) work(?:ing|s)?|stopped (?:working|charging)|keeps (?:crashing|failing|hanging)", -2.0, (), ("work", "working", "works", "stopped", "keeps",)),
    (r"(?:want|get|give me) my money back|money back", -2.0, ("anger",), ("money",)),
    (r"waste of (?:money|time)", -2.5, ("anger",), ("waste",)),
    (r"on hold|hung up", -1.5, ("frustration",), ("hold", "hung",)),
    (r"charged (?:me )?twice|double.charged|charged (?:me )?again", -2.2, ("anger",), ("charged",)),
    (r"fix (?:it|this) now|\basap\b|immediately|right now|\burgent(?:ly)?\b|deadline", -0.8, ("urgency",), ("fix", "asap", "immediately", "now", "urgent", "urgently", "deadline",)),
    (r"shows delivered but|marked (?:as )?delivered but", -1.5, ("frustration",), ("delivered",)),
    (r"caught fire|fire hazard|\bsmoke\b|\bsparks\b|electric shock", -2.5, ("urgency",), ("fire", "smoke", "sparks", "shock",)),
    (r"without answering|without a (?:reply|response)", -1.8, ("frustration",), ("without",)),
    (r"promised (?:a |me a )?(?:callback|call back|refund|replacement)", -1.0, ("frustration",), ("promised",)),
    (r"closed my (?:ticket|case|account)", -1.5, ("anger",), ("closed",)),
    (r"(?:filing|file|filed) a (?:complaint|chargeback|claim|dispute)", -2.0, ("anger",), ("filing", "file", "filed",)),
    (r"(?:contact|call|calling|contacting) my (?:lawyer|attorney|bank)", -2.0, ("anger", "urgency"), ("lawyer", "attorney", "bank",)),
    (r"is (?:anyone|anybody) there", -1.0, ("frustration",), ("anyone", "anybody",)),
    # product reviews: a returned item, an unmet wish, a warning to others
    (r"(?:sent|sending|send|took|taking|take|bring|brought) (?:it|them|mine|the \w+) back|returned (?:it|them|mine|the \w+)|return(?:ing)? (?:it|them|mine)\b", -1.8, ("frustration",), ("back", "returned", "return", "returning",)),
    (r"i wish|if only|would (?:be|have been) (?:really |so |much )?(?:nice|good|better|great) if|should have bought|shouldn't have", -1.2, (), ("wish", "only", "if", "bought", "shouldn't",)),
    (r"(?:do not|don't|never) buy|save your money|stay away|avoid (?:this|it|them)|piece of (?:junk|crap|garbage)", -2.5, ("anger",), ("buy", "money", "away", "avoid", "piece",)),
    (r"(?:won't|wouldn't|doesn't|does not|didn't|can't|cannot|couldn't) (?:play|perform|connect|charge|fit|load|print|read|turn on|start|sync|recognize|hold|stay)", -1.5, ("frustration",), ("play", "perform", "connect", "charge", "fit", "load", "print", "read", "turn", "start", "sync", "recognize", "hold", "stay",)),
    (r"(?:is|was|are|were|be) an issue|(?:issues?|problems?|trouble) with", -1.2, (), ("issue", "issues", "problem", "problems", "trouble",)),
    (r"too (?:easy to (?:hit|break|lose|scratch)|small|short|loud|slow|flimsy|heavy|dim|quiet|expensive)", -1.0, (), ("too",)),
)

# Emotion words (own list, English): a negative emotion counts only in a negative
# text, a positive one only in a positive text.
EMOTION_WORDS: dict[str, frozenset[str]] = {
    "anger": frozenset({"unbelievable", "ridiculous", "outrageous", "furious", "angry", "unacceptable", "disgusting", "scam", "ripoff",
                        "lawyer", "attorney", "chargeback", "lawsuit", "worst", "overcharged", "fraud", "lied", "pathetic", "disgrace"}),
    "frustration": frozenset({"again", "still", "nobody", "ignored", "unanswered", "waiting", "frustrating", "frustrated", "annoying",
                              "annoyed", "useless", "hours", "keeps", "twice", "weeks"}),
    "urgency": frozenset({"urgent", "urgently", "asap", "immediately", "emergency", "deadline", "unsafe", "dangerous", "hazard", "fire"}),
    "joy": frozenset({"love", "loved", "lovely", "great", "amazing", "fantastic", "excellent", "happy", "delighted", "wonderful", "awesome",
                      "perfect", "perfectly", "adore", "beautiful", "best", "satisfied", "enjoy", "enjoyed", "recommend", "good"}),
    "gratitude": frozenset({"thanks", "thank", "grateful", "appreciate", "appreciated", "kudos", "cheers", "helpful", "polite"}),
}
NEGATIVE_EMOTIONS = ("anger", "frustration", "urgency")
POSITIVE_EMOTIONS = ("joy", "gratitude")
#: NRC EmoLex categories -> crmsync's (with ``emotions = "nrc"``)
NRC_MAP = {"anger": "anger", "disgust": "anger", "fear": "urgency", "joy": "joy"}
