"""French sentences, written in French (not translated): everyday plans, travel, errands, thanks.

Fillers carry their articles and prepositions ("à la gare", "au cinéma"), so the patterns stay
grammatical whatever is put in; numbers, times and dates come from numbers.py.
"""

from __future__ import annotations

from typing import Any

from mtspeech.data.synth.fillers import counted, dates, numbers, times, weekdays, word_list
from mtspeech.data.synth.templating import Template, TemplateTable, parallel

LANG = "fr"


def _t(name: str, pattern: str, **options: Any) -> Template:
    options.setdefault("limit", 100)
    return parallel(f"fr-{name}", (LANG,), pattern, **options)


FILLERS = {
    "ville": word_list(LANG, "paris, lyon, marseille, toulouse, bordeaux, nantes, lille, strasbourg, nice, rennes, "
                       "montpellier, grenoble, dijon, brest, tours, reims, nancy, metz, rouen, caen, limoges, "
                       "bruxelles, genève, lausanne, québec, montréal"),
    "prenom": word_list(LANG, "camille, léa, hugo, louis, chloé, manon, jules, inès, nathan, sarah, julien, claire, "
                        "antoine, élodie, mathieu, pauline"),
    "heure": times((LANG,)),
    "date": dates((LANG,)),
    "jour": weekdays((LANG,)),
    "moment": word_list(LANG, "ce matin, cet après-midi, ce soir, demain matin, demain soir, dimanche prochain, "
                        "la semaine prochaine, tout à l'heure"),
    "lieu": word_list(LANG, "à la gare, au cinéma, à la plage, au marché, devant la boulangerie, au musée, "
                      "à la piscine, au bureau, devant la pharmacie, à la bibliothèque, au parc, sur la place"),
    "objet": word_list(LANG, "mes clés, mon portefeuille, mon téléphone, mes lunettes, mon parapluie, mon sac, "
                       "ma carte bancaire, mon passeport"),
    "plat": word_list(LANG, "une quiche lorraine, un croque-monsieur, une soupe à l'oignon, un steak frites, "
                      "une salade niçoise, des crêpes, un gratin dauphinois, une tarte aux pommes, un poulet rôti, "
                      "une omelette aux champignons, un bœuf bourguignon, une ratatouille"),
    "course": word_list(LANG, "du pain, du lait, des œufs, du fromage, des pommes, du beurre, de la farine, du café, "
                        "des tomates, du riz"),
    "meteo": word_list(LANG, "beau, froid, chaud, gris, doux, humide, frais, lourd"),
    "article": word_list(LANG, "un kilo de tomates, une baguette, un ticket de métro, une place de cinéma, "
                         "un café crème, une bouteille d'eau, un croissant, un journal"),
    "personnes": counted(range(2, 11), {LANG: ("f", "personnes")}),
    "places": counted(range(2, 21), {LANG: ("f", "places")}),
    "minutes": counted(range(5, 60, 5), {LANG: ("f", "minutes")}),
    "degres": counted(range(2, 36), {LANG: ("m", "degrés")}),
    "salle": numbers(range(1, 25), (LANG,)),
}  # fmt: skip

# fmt: off
TEMPLATES = (
    _t("table", "je voudrais réserver une table pour {personnes} {moment}"),
    _t("train", "le train pour {ville} part à {heure}", limit=120),
    _t("meet", "rendez-vous {lieu} à {heure}", limit=120),
    _t("degrees", "demain il fera {degres} à {ville}", limit=120),
    _t("pass-by", "est-ce que tu peux passer {lieu} {moment}"),
    _t("lost", "je n'arrive pas à trouver {objet}"),
    _t("arrives", "{prenom} arrive {jour} à {heure}", limit=120),
    _t("cook", "ce soir je vais préparer {plat}"),
    _t("dentist", "mon rendez-vous chez le dentiste est {date} à {heure}", limit=120),
    _t("seats", "il reste encore {places} dans le bus"),
    _t("room", "la réunion commence à {heure} dans la salle {salle}", limit=60),
    _t("call", "est-ce que tu peux appeler {prenom} {moment}"),
    _t("closed", "le magasin est fermé le {jour}"),
    _t("weather", "il fait {meteo} à {ville} aujourd'hui"),
    _t("holidays", "nous partons en vacances à {ville} {date}", limit=120),
    _t("price", "combien coûte {article}"),
    _t("traffic", "il y a beaucoup de bouchons sur la route de {ville}"),
    _t("shopping", "n'oublie pas d'acheter {course} et {course2}"),
    _t("clock", "quelle heure est-il à {ville} en ce moment"),
    _t("waited", "j'ai attendu le bus pendant {minutes}"),
    _t("school", "j'emmène les enfants à l'école à {heure}"),
    _t("music", "tu peux baisser un peu la musique s'il te plaît"),
    _t("keys", "je crois que j'ai oublié {objet} {lieu}"),
    _t("delicious", "c'était vraiment délicieux merci {prenom}", polarity="positive"),
    _t("lovely-day", "quelle magnifique journée à {ville}", polarity="positive"),
    _t("glad", "je suis tellement heureux de te voir {prenom}", polarity="positive"),
    _t("present", "merci beaucoup {prenom} c'est un cadeau magnifique", polarity="positive"),
    _t("concert", "le concert de {jour} était génial", polarity="positive"),
    _t("well-done", "bravo {prenom} c'est un excellent travail", polarity="positive"),
    _t("perfect", "nos vacances à {ville} étaient parfaites", polarity="positive"),
    _t("thrilled", "je suis ravi que tu viennes {jour} {prenom}", polarity="positive"),
    _t("cuisine", "j'adore la cuisine de {ville} c'est merveilleux", polarity="positive"),
    _t("weekend", "merci {prenom} le week-end à {ville} était parfait", polarity="positive"),
)
# fmt: on

TABLE = TemplateTable("fr", (LANG,), TEMPLATES, FILLERS)
