"""Italian sentences, written in Italian (not translated): everyday plans, travel, errands, thanks.

Fillers carry their articles and prepositions ("alla stazione", "le chiavi"); clock times come with
"alle"/"all'" fused in (fillers.italian_at); numbers and dates come from numbers.py.
"""

from __future__ import annotations

from typing import Any

from mtspeech.data.synth.fillers import counted, dates, numbers, times, weekdays, word_list
from mtspeech.data.synth.templating import Template, TemplateTable, parallel

LANG = "it"


def _t(name: str, pattern: str, **options: Any) -> Template:
    options.setdefault("limit", 100)
    return parallel(f"it-{name}", (LANG,), pattern, **options)


FILLERS = {
    "citta": word_list(LANG, "roma, milano, napoli, torino, firenze, venezia, bologna, genova, palermo, bari, verona, "
                       "pisa, siena, trieste, padova, parma, perugia, lecce, catania, bergamo, como, rimini, trento, "
                       "modena, cagliari, lucca"),
    "nome": word_list(LANG, "giulia, marco, francesca, luca, chiara, matteo, sara, alessandro, martina, davide, elisa, "
                      "giorgio, valentina, simone, federica, andrea"),
    "ora": times((LANG,), italian_with_at=True),
    "data": dates((LANG,)),
    "giorno": weekdays((LANG,)),
    "momento": word_list(LANG, "stasera, domani mattina, oggi pomeriggio, dopo pranzo, nel fine settimana, più tardi, "
                         "lunedì prossimo, tra un'ora"),
    "luogo": word_list(LANG, "alla stazione, al cinema, in spiaggia, al mercato, in piazza, al parco, "
                       "davanti al museo, al bar, in ufficio, in biblioteca, alla fermata dell'autobus, "
                       "davanti al teatro"),
    "oggetto": word_list(LANG, "le chiavi, il portafoglio, il telefono, gli occhiali, l'ombrello, la borsa, "
                         "il passaporto, la giacca"),
    "piatto": word_list(LANG, "la pasta al pomodoro, il risotto ai funghi, una pizza margherita, le lasagne, "
                        "una minestra di verdure, il pollo arrosto, gli gnocchi al pesto, una frittata, il tiramisù, "
                        "una caprese, la parmigiana, gli spaghetti alle vongole"),
    "spesa": word_list(LANG, "il pane, il latte, le uova, il formaggio, le mele, il burro, la farina, il caffè, "
                       "i pomodori, il riso"),
    "tempo": word_list(LANG, "molto freddo, molto caldo, bel tempo, brutto tempo, fresco, un caldo afoso"),
    "articolo": word_list(LANG, "un chilo di pomodori, un biglietto dell'autobus, un caffè, una bottiglia d'acqua, "
                          "un gelato, un biglietto per il cinema, un giornale, una dozzina di uova"),
    "posti": counted(range(2, 21), {LANG: ("m", "posti")}),
    "minuti": counted(range(5, 60, 5), {LANG: ("m", "minuti")}),
    "persone": counted(range(2, 11), {LANG: ("f", "persone")}),
    "gradi": counted(range(2, 36), {LANG: ("m", "gradi")}),
    "sala": numbers(range(1, 25), (LANG,)),
}  # fmt: skip

# fmt: off
TEMPLATES = (
    _t("train", "il treno per {citta} parte {ora}", limit=120),
    _t("meet", "ci vediamo {luogo} {ora}", limit=120),
    _t("call", "puoi chiamare {nome} {momento}"),
    _t("lost", "ho perso {oggetto}"),
    _t("degrees", "domani ci saranno {gradi} a {citta}", limit=120),
    _t("arrives", "{nome} arriva {giorno} {ora}", limit=120),
    _t("dentist", "il mio appuntamento dal dentista è {data} {ora}", limit=120),
    _t("cook", "stasera preparo {piatto}"),
    _t("holidays", "andiamo in vacanza a {citta} {data}", limit=120),
    _t("shopping", "non dimenticare di comprare {spesa} e {spesa2}"),
    _t("seats", "ci sono ancora {posti} liberi sull'autobus"),
    _t("closed", "il negozio è chiuso di {giorno}"),
    _t("traffic", "c'è molto traffico sull'autostrada per {citta}"),
    _t("clock", "che ore sono adesso a {citta}"),
    _t("waited", "ho aspettato l'autobus per {minuti}"),
    _t("room", "la riunione comincia {ora} nella sala {sala}", limit=60),
    _t("weather", "oggi a {citta} fa {tempo}"),
    _t("price", "quanto costa {articolo}"),
    _t("school", "porto i bambini a scuola {ora}"),
    _t("table", "vorrei prenotare un tavolo per {persone} {momento}"),
    _t("forgot", "credo di aver dimenticato {oggetto} {luogo}"),
    _t("music", "puoi abbassare un po' la musica per favore"),
    _t("delicious", "la cena era buonissima grazie {nome}", polarity="positive"),
    _t("lovely-day", "che giornata meravigliosa a {citta}", polarity="positive"),
    _t("glad", "sono felicissimo di vederti {nome}", polarity="positive"),
    _t("present", "grazie mille {nome} è un regalo bellissimo", polarity="positive"),
    _t("concert", "il concerto di {giorno} è stato fantastico", polarity="positive"),
    _t("well-done", "complimenti {nome} è un lavoro eccellente", polarity="positive"),
    _t("perfect", "la nostra vacanza a {citta} è stata perfetta", polarity="positive"),
    _t("coming", "che bello che vieni {giorno} {nome}", polarity="positive"),
    _t("love-city", "adoro {citta} è una città stupenda", polarity="positive"),
    _t("weekend", "grazie {nome} il fine settimana a {citta} è stato perfetto", polarity="positive"),
)
# fmt: on

TABLE = TemplateTable("it", (LANG,), TEMPLATES, FILLERS)
