"""German sentences, written in German (not translated): everyday plans, travel, errands, thanks.

Fillers carry their articles and prepositions in the case the patterns need ("am bahnhof",
"meinen schlüssel"); numbers, times and dates come from numbers.py.
"""

from __future__ import annotations

from typing import Any

from mtspeech.data.synth.fillers import counted, dates, numbers, times, weekdays, word_list
from mtspeech.data.synth.templating import Template, TemplateTable, parallel

LANG = "de"


def _t(name: str, pattern: str, **options: Any) -> Template:
    options.setdefault("limit", 100)
    return parallel(f"de-{name}", (LANG,), pattern, **options)


FILLERS = {
    "stadt": word_list(LANG, "berlin, hamburg, münchen, köln, frankfurt, stuttgart, düsseldorf, leipzig, dresden, "
                       "hannover, nürnberg, bremen, bonn, freiburg, heidelberg, wien, graz, salzburg, zürich, bern, "
                       "basel, innsbruck, potsdam, rostock, kiel, mainz"),
    "name": word_list(LANG, "lena, jonas, mia, felix, hannah, lukas, lea, paul, sophie, maximilian, anna, tim, laura, "
                      "jan, katharina, moritz"),
    "zeit": times((LANG,)),
    "datum": dates((LANG,)),
    "tag": weekdays((LANG,)),
    "moment": word_list(LANG, "heute abend, morgen früh, nach dem essen, am wochenende, gleich, später, "
                        "heute nachmittag, morgen mittag"),
    "ort": word_list(LANG, "am bahnhof, im café, vor dem kino, an der haltestelle, im park, beim bäcker, "
                     "in der bibliothek, am marktplatz, im büro, am eingang, vor dem museum, am strand"),
    "objekt": word_list(LANG, "meinen schlüssel, mein handy, meine brille, meinen geldbeutel, meinen regenschirm, "
                        "meine tasche, meinen ausweis, meine jacke"),
    "gericht": word_list(LANG, "spaghetti bolognese, eine gemüsesuppe, kartoffelsalat, schnitzel mit pommes, "
                         "einen nudelauflauf, linsensuppe, käsespätzle, einen apfelkuchen, frikadellen, "
                         "eine gemüsepfanne, rinderrouladen, pfannkuchen"),
    "einkauf": word_list(LANG, "brot, milch, eier, käse, äpfel, butter, mehl, kaffee, tomaten, reis"),
    "wetter": word_list(LANG, "kalt, warm, windig, neblig, regnerisch, sonnig, schwül, frisch"),
    "artikel": word_list(LANG, "ein kilo tomaten, ein brot, eine fahrkarte, eine kinokarte, ein milchkaffee, "
                         "eine flasche wasser, eine brezel, eine zeitung"),
    "plaetze": counted(range(2, 21), {LANG: ("m", "plätze")}),
    "minuten": counted(range(5, 60, 5), {LANG: ("f", "minuten")}),
    "personen": counted(range(2, 11), {LANG: ("f", "personen")}),
    "grad": counted(range(2, 36), {LANG: ("n", "grad")}),
    "raum": numbers(range(1, 25), (LANG,)),
}  # fmt: skip

# fmt: off
TEMPLATES = (
    _t("train", "der zug nach {stadt} fährt um {zeit} ab", limit=120),
    _t("meet", "wir treffen uns um {zeit} {ort}", limit=120),
    _t("call", "kannst du {name} bitte {moment} anrufen"),
    _t("lost", "ich habe {objekt} verloren"),
    _t("degrees", "morgen werden es in {stadt} {grad}", limit=120),
    _t("arrives", "{name} kommt am {tag} um {zeit} an", limit=120),
    _t("dentist", "mein termin beim zahnarzt ist am {datum} um {zeit}", limit=120),
    _t("cook", "heute abend koche ich {gericht}"),
    _t("holidays", "wir fahren am {datum} in den urlaub nach {stadt}", limit=120),
    _t("shopping", "vergiss nicht {einkauf} und {einkauf2} zu kaufen"),
    _t("seats", "im bus sind noch {plaetze} frei"),
    _t("closed", "das geschäft hat am {tag} geschlossen"),
    _t("traffic", "auf der autobahn nach {stadt} gibt es einen langen stau"),
    _t("clock", "wie spät ist es gerade in {stadt}"),
    _t("waited", "ich habe {minuten} auf den bus gewartet"),
    _t("room", "die besprechung fängt um {zeit} in raum {raum} an", limit=60),
    _t("weather", "heute ist es ziemlich {wetter} in {stadt}"),
    _t("price", "wie viel kostet {artikel}"),
    _t("school", "ich bringe die kinder um {zeit} zur schule"),
    _t("table", "ich möchte einen tisch für {personen} {moment} reservieren"),
    _t("forgot", "ich glaube ich habe {objekt} {ort} vergessen"),
    _t("music", "kannst du die musik bitte etwas leiser machen"),
    _t("delicious", "das essen war wirklich köstlich danke {name}", polarity="positive"),
    _t("lovely-day", "was für ein wunderschöner tag in {stadt}", polarity="positive"),
    _t("glad", "ich freue mich riesig dich zu sehen {name}", polarity="positive"),
    _t("present", "vielen dank {name} das ist ein tolles geschenk", polarity="positive"),
    _t("concert", "das konzert am {tag} war großartig", polarity="positive"),
    _t("well-done", "super gemacht {name} das ist eine hervorragende arbeit", polarity="positive"),
    _t("perfect", "unser urlaub in {stadt} war einfach perfekt", polarity="positive"),
    _t("coming", "wie schön dass du am {tag} kommst {name}", polarity="positive"),
    _t("love-city", "ich liebe {stadt} es ist eine wunderbare stadt", polarity="positive"),
    _t("weekend", "danke {name} das wochenende in {stadt} war perfekt", polarity="positive"),
)
# fmt: on

TABLE = TemplateTable("de", (LANG,), TEMPLATES, FILLERS)
