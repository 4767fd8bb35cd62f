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
    "zuverlässig": 2.0, "fantastisch": 3.0, "ärgerlich": -2.3, "katastrophe": -3.0, "katastrophal": -3.0, "enttäuschung": -2.5,
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
    "increíble": 3.0, "basura": -3.0, "horrible": -3.0,
    # Russian
    "отлично": 3.0, "отличный": 3.0, "отличное": 3.0, "прекрасно": 3.0, "рекомендую": 1.8, "хорошо": 1.9, "хороший": 1.9,
    "супер": 2.5, "доволен": 2.0, "довольна": 2.0, "быстро": 1.0, "люблю": 2.5, "замечательно": 3.0, "плохо": -2.5, "плохой": -2.5,
    "ужасно": -3.0, "ужасный": -3.0, "разочарован": -2.5, "сломан": -2.5, "сломался": -2.5, "сломалось": -2.5, "бесполезный": -2.5,
    "медленно": -1.0, "опасно": -2.5, "грубый": -2.5, "никогда": -1.0, "сожалению": -1.5, "спасибо": 1.5, "помогла": 1.5,
    "помог": 1.5, "лучшая": 2.5, "лучший": 2.5, "вежливый": 2.0, "разочарование": -2.5, "кошмар": -3.0, "недоволен": -2.5,
    "недовольна": -2.5, "надёжный": 2.0, "надежный": 2.0, "брак": -2.5, "очень": 0.0,
}
