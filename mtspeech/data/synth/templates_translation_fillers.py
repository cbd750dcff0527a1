"""Fillers of the parallel English -> French / German / Spanish tables (templates_translation.py).

Each row is one value in the four languages, columns in the order en, fr, de, es. The English form is
the bare slot value (brackets mark it inside a longer form); the other forms carry what their grammar
needs in the sentence: article, preposition, case, gender agreement. Variants (``"es:of"``) serve the
patterns that need another preposition in one language.
"""

from __future__ import annotations

from mtspeech.data.synth.fillers import counted, dates, numbers, rows, times, weekdays
from mtspeech.data.synth.templating import KEY, Filler

LANGS = ("en", "fr", "de", "es")

CITIES = rows(
    LANGS,
    ("paris", "paris", "paris", "parís"),
    ("london", "londres", "london", "londres"),
    ("berlin", "berlin", "berlin", "berlín"),
    ("madrid", "madrid", "madrid", "madrid"),
    ("rome", "rome", "rom", "roma"),
    ("lisbon", "lisbonne", "lissabon", "lisboa"),
    ("vienna", "vienne", "wien", "viena"),
    ("brussels", "bruxelles", "brüssel", "bruselas"),
    ("geneva", "genève", "genf", "ginebra"),
    ("munich", "munich", "münchen", "múnich"),
    ("barcelona", "barcelone", "barcelona", "barcelona"),
    ("milan", "milan", "mailand", "milán"),
    ("venice", "venise", "venedig", "venecia"),
    ("florence", "florence", "florenz", "florencia"),
    ("copenhagen", "copenhague", "kopenhagen", "copenhague"),
    ("athens", "athènes", "athen", "atenas"),
    ("warsaw", "varsovie", "warschau", "varsovia"),
    ("prague", "prague", "prag", "praga"),
    ("edinburgh", "édimbourg", "edinburgh", "edimburgo"),
    ("dublin", "dublin", "dublin", "dublín"),
    ("seville", "séville", "sevilla", "sevilla"),
    ("cologne", "cologne", "köln", "colonia"),
    ("zurich", "zurich", "zürich", "zúrich"),
    ("new york", "new york", "new york", "nueva york"),
    ("tokyo", "tokyo", "tokio", "tokio"),
    ("moscow", "moscou", "moskau", "moscú"),
    ("stockholm", "stockholm", "stockholm", "estocolmo"),
    ("hamburg", "hambourg", "hamburg", "hamburgo"),
    ("marseille", "marseille", "marseille", "marsella"),
    ("naples", "naples", "neapel", "nápoles"),
    ("budapest", "budapest", "budapest", "budapest"),
    ("lyon", "lyon", "lyon", "lyon"),
)

DAYS_AHEAD = rows(
    LANGS,
    ("tomorrow", "demain", "morgen", "mañana"),
    ("the day after tomorrow", "après-demain", "übermorgen", "pasado mañana"),
    ("this weekend", "ce week-end", "am wochenende", "este fin de semana"),
    ("next week", "la semaine prochaine", "nächste woche", "la semana que viene"),
    ("today", "aujourd'hui", "heute", "hoy"),
)

WEATHER = rows(
    LANGS,
    ("rain", "pleuvoir", "regnen", "llover"),
    ("snow", "neiger", "schneien", "nevar"),
    ("be [sunny]", "faire beau", "sonnig sein", "hacer sol"),
    ("be [windy]", "y avoir du vent", "windig sein", "hacer viento"),
    ("be [cold]", "faire froid", "kalt sein", "hacer frío"),
    ("be [hot]", "faire chaud", "heiß sein", "hacer calor"),
    ("be [foggy]", "y avoir du brouillard", "neblig sein", "haber niebla"),
    ("be [cloudy]", "y avoir des nuages", "bewölkt sein", "estar nublado"),
)

PEOPLE_NAMES = "anna thomas sophie marco lucas julia david sarah paul laura peter emma daniel claire martin elena"
# French "que" elides before a vowel: "que thomas", "qu'anna" (variant "fr:que").
PEOPLE = [
    {**dict.fromkeys(LANGS, name), "fr:que": f"qu'{name}" if name[0] in "aeiou" else f"que {name}"}
    for name in PEOPLE_NAMES.split()
]

EVENTS = rows(
    LANGS,
    ("[meeting]", "une réunion", "eine besprechung", "una reunión"),
    ("[lunch]", "un déjeuner", "ein mittagessen", "un almuerzo"),
    ("[call]", "un appel", "einen anruf", "una llamada"),
    ("[dinner]", "un dîner", "ein abendessen", "una cena"),
    ("[doctor's appointment]", "un rendez-vous chez le médecin", "einen arzttermin", "una cita con el médico"),
    ("[team meeting]", "une réunion d'équipe", "eine teambesprechung", "una reunión de equipo"),
    ("[video call]", "un appel vidéo", "einen videoanruf", "una videollamada"),
    ("[haircut]", "un rendez-vous chez le coiffeur", "einen friseurtermin", "una cita en la peluquería"),
    ("[yoga class]", "un cours de yoga", "einen yogakurs", "una clase de yoga"),
    ("[tennis lesson]", "un cours de tennis", "eine tennisstunde", "una clase de tenis"),
    ("[piano lesson]", "un cours de piano", "eine klavierstunde", "una clase de piano"),
    ("[job interview]", "un entretien d'embauche", "ein vorstellungsgespräch", "una entrevista de trabajo"),
)

TICKETS = rows(
    LANGS,
    ("train", "un billet de train", "ein zugticket", "un billete de tren"),
    ("bus", "un billet de bus", "ein busticket", "un billete de autobús"),
    ("plane", "un billet d'avion", "ein flugticket", "un billete de avión"),
    ("ferry", "un billet de ferry", "ein fährticket", "un billete de ferri"),
)

NEXT_DEPARTURES = rows(
    LANGS,
    ("train", "le prochain train", "der nächste zug", "el próximo tren"),
    ("bus", "le prochain bus", "der nächste bus", "el próximo autobús"),
    ("ferry", "le prochain ferry", "die nächste fähre", "el próximo ferri"),
    ("flight", "le prochain vol", "der nächste flug", "el próximo vuelo"),
)

DESTINATIONS = rows(
    LANGS,
    ("the [airport]", "à l'aéroport", "zum flughafen", "al aeropuerto"),
    ("the [train station]", "à la gare", "zum bahnhof", "a la estación de tren"),
    ("the [hotel]", "à l'hôtel", "zum hotel", "al hotel"),
    ("the [city centre]", "au centre-ville", "in die innenstadt", "al centro"),
    ("the [hospital]", "à l'hôpital", "zum krankenhaus", "al hospital"),
    ("the [museum]", "au musée", "zum museum", "al museo"),
    ("the [office]", "au bureau", "ins büro", "a la oficina"),
    ("the [stadium]", "au stade", "zum stadion", "al estadio"),
    ("the [beach]", "à la plage", "zum strand", "a la playa"),
    ("the [harbour]", "au port", "zum hafen", "al puerto"),
    ("the [university]", "à l'université", "zur universität", "a la universidad"),
    ("the [zoo]", "au zoo", "zum zoo", "al zoo"),
)

# Rooms "in the X" by default; ":of" forms for "the lights of the X" where Spanish and French say so.
ROOMS: list[Filler] = [
    {"en": en, "fr": fr, "fr:of": fr_of, "de": de, "es": es, "es:of": es_of}
    for en, fr, fr_of, de, es, es_of in (
        ("kitchen", "dans la cuisine", "de la cuisine", "in der küche", "en la cocina", "de la cocina"),
        ("living room", "dans le salon", "du salon", "im wohnzimmer", "en el salón", "del salón"),
        ("bedroom", "dans la chambre", "de la chambre", "im schlafzimmer", "en el dormitorio", "del dormitorio"),
        ("bathroom", "dans la salle de bain", "de la salle de bain", "im bad", "en el baño", "del baño"),
        ("hallway", "dans le couloir", "du couloir", "im flur", "en el pasillo", "del pasillo"),
        (
            "dining room",
            "dans la salle à manger",
            "de la salle à manger",
            "im esszimmer",
            "en el comedor",
            "del comedor",
        ),
        ("study", "dans le bureau", "du bureau", "im arbeitszimmer", "en el despacho", "del despacho"),
        ("garage", "dans le garage", "du garage", "in der garage", "en el garaje", "del garaje"),
        ("basement", "au sous-sol", "du sous-sol", "im keller", "en el sótano", "del sótano"),
        (
            "guest room",
            "dans la chambre d'amis",
            "de la chambre d'amis",
            "im gästezimmer",
            "en la habitación de invitados",
            "de la habitación de invitados",
        ),
    )
]

COLOURS = rows(
    LANGS,
    ("blue", "bleu", "blau", "azul"),
    ("red", "rouge", "rot", "rojo"),
    ("green", "vert", "grün", "verde"),
    ("yellow", "jaune", "gelb", "amarillo"),
    ("purple", "violet", "lila", "morado"),
    ("orange", "orange", "orange", "naranja"),
    ("pink", "rose", "rosa", "rosa"),
    ("warm white", "blanc chaud", "warmweiß", "blanco cálido"),
)

PERCENTAGES = [
    {
        "en": f"[{row['en']} percent]",
        "fr": f"{row['fr']} pour cent",
        "de": f"{row['de']} prozent",
        "es": f"{row['es']} por ciento",
    }
    for row in numbers((10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90), LANGS)
]

DEVICES = rows(
    LANGS,
    ("fan", "le ventilateur", "den ventilator", "el ventilador"),
    ("heater", "le radiateur", "die heizung", "la calefacción"),
    ("smart plug", "la prise connectée", "die smarte steckdose", "el enchufe inteligente"),
    ("air conditioner", "la climatisation", "die klimaanlage", "el aire acondicionado"),
    ("lamp", "la lampe", "die lampe", "la lámpara"),
    ("television", "la télévision", "den fernseher", "la televisión"),
)

COFFEES = rows(
    LANGS,
    ("a [cappuccino]", "un cappuccino", "einen cappuccino", "un capuchino"),
    ("an [espresso]", "un expresso", "einen espresso", "un expreso"),
    ("a [latte]", "un café au lait", "einen milchkaffee", "un café con leche"),
    ("a [black coffee]", "un café noir", "einen schwarzen kaffee", "un café solo"),
    ("a [double espresso]", "un double expresso", "einen doppelten espresso", "un expreso doble"),
    ("a [decaf]", "un déca", "einen entkoffeinierten kaffee", "un descafeinado"),
)

GENRES = rows(
    LANGS,
    ("[jazz] music", "du jazz", "jazz", "jazz"),
    ("[classical] music", "de la musique classique", "klassische musik", "música clásica"),
    ("[rock] music", "du rock", "rockmusik", "rock"),
    ("[pop] music", "de la pop", "popmusik", "música pop"),
    ("[electronic] music", "de la musique électronique", "elektronische musik", "música electrónica"),
    ("[reggae] music", "du reggae", "reggae", "reggae"),
    ("[blues] music", "du blues", "blues", "blues"),
    ("[folk] music", "de la musique folk", "folkmusik", "música folk"),
    ("[latin] music", "de la musique latine", "lateinamerikanische musik", "música latina"),
    ("[country] music", "de la country", "countrymusik", "música country"),
)

ARTIST_NAMES = "coldplay, queen, madonna, shakira, beyoncé, david bowie, bob marley, taylor swift, rihanna, nirvana, "
ARTIST_NAMES += "metallica, radiohead, miles davis, nina simone, stromae, daft punk"
ARTISTS = [dict.fromkeys(LANGS, name.strip()) for name in ARTIST_NAMES.split(",")]

MESSAGES = rows(
    LANGS,
    ("i will be late", "que je serai en retard", "dass ich später komme", "que llegaré tarde"),
    (
        "the meeting is cancelled",
        "que la réunion est annulée",
        "dass die besprechung ausfällt",
        "que la reunión está cancelada",
    ),
    ("i am on my way", "que je suis en route", "dass ich unterwegs bin", "que voy de camino"),
    (
        "i am working from home today",
        "que je travaille à la maison aujourd'hui",
        "dass ich heute von zu hause arbeite",
        "que hoy trabajo desde casa",
    ),
    ("the train is delayed", "que le train a du retard", "dass der zug verspätung hat", "que el tren va con retraso"),
    ("dinner is ready", "que le dîner est prêt", "dass das abendessen fertig ist", "que la cena está lista"),
    ("i have the tickets", "que j'ai les billets", "dass ich die karten habe", "que tengo las entradas"),
    ("the parcel has arrived", "que le colis est arrivé", "dass das paket angekommen ist", "que el paquete ha llegado"),
)

BUSINESSES = rows(
    LANGS,
    ("pharmacy", "la pharmacie la plus proche", "die nächste apotheke", "la farmacia más cercana"),
    ("supermarket", "le supermarché le plus proche", "der nächste supermarkt", "el supermercado más cercano"),
    ("bakery", "la boulangerie la plus proche", "die nächste bäckerei", "la panadería más cercana"),
    ("petrol station", "la station-service la plus proche", "die nächste tankstelle", "la gasolinera más cercana"),
    ("bank", "la banque la plus proche", "die nächste bank", "el banco más cercano"),
    ("post office", "la poste la plus proche", "die nächste post", "la oficina de correos más cercana"),
    ("hospital", "l'hôpital le plus proche", "das nächste krankenhaus", "el hospital más cercano"),
    ("cafe", "le café le plus proche", "das nächste café", "la cafetería más cercana"),
    ("bookshop", "la librairie la plus proche", "die nächste buchhandlung", "la librería más cercana"),
    ("hotel", "l'hôtel le plus proche", "das nächste hotel", "el hotel más cercano"),
    ("cash machine", "le distributeur le plus proche", "der nächste geldautomat", "el cajero automático más cercano"),
    ("car park", "le parking le plus proche", "der nächste parkplatz", "el aparcamiento más cercano"),
)

SHOPS = rows(
    LANGS,
    ("the bakery", "la boulangerie", "die bäckerei", "la panadería"),
    ("the museum", "le musée", "das museum", "el museo"),
    ("the pharmacy", "la pharmacie", "die apotheke", "la farmacia"),
    ("the library", "la bibliothèque", "die bibliothek", "la biblioteca"),
    ("the post office", "la poste", "die post", "la oficina de correos"),
    ("the swimming pool", "la piscine", "das schwimmbad", "la piscina"),
    ("the supermarket", "le supermarché", "der supermarkt", "el supermercado"),
    ("the bank", "la banque", "die bank", "el banco"),
    ("the market", "le marché", "der markt", "el mercado"),
)

SHOWS = rows(
    LANGS,
    ("the concert", "le concert", "das konzert", "el concierto"),
    ("the film", "le film", "der film", "la película"),
    ("the match", "le match", "das spiel", "el partido"),
    ("the play", "la pièce", "das theaterstück", "la obra de teatro"),
    ("the exhibition", "l'exposition", "die ausstellung", "la exposición"),
    ("the lecture", "la conférence", "der vortrag", "la conferencia"),
    ("the festival", "le festival", "das festival", "el festival"),
)

THANKS_FOR = rows(
    LANGS,
    ("the lovely flowers", "les jolies fleurs", "die schönen blumen", "las flores tan bonitas"),
    ("the wonderful dinner", "ce merveilleux dîner", "das wunderbare abendessen", "la cena tan maravillosa"),
    ("the beautiful present", "ce beau cadeau", "das schöne geschenk", "el regalo tan bonito"),
    ("a great evening", "cette excellente soirée", "den tollen abend", "una noche estupenda"),
    ("the amazing trip", "ce voyage incroyable", "die tolle reise", "el viaje increíble"),
    ("the perfect weekend", "ce week-end parfait", "das perfekte wochenende", "el fin de semana perfecto"),
)

# Amounts of money with the currency as the English slot; KEY keeps "fifty euros in euros" out.
_CURRENCY_NOUNS = {  # English plural, then per language (gender, plural)
    "euros": {"fr": ("m", "euros"), "de": ("n", "euro"), "es": ("m", "euros")},
    "dollars": {"fr": ("m", "dollars"), "de": ("m", "dollar"), "es": ("m", "dólares")},
    "pounds": {"fr": ("f", "livres"), "de": ("n", "pfund"), "es": ("f", "libras")},
    "yen": {"fr": ("m", "yens"), "de": ("m", "yen"), "es": ("m", "yenes")},
    "swiss francs": {"fr": ("m", "francs suisses"), "de": ("m", "schweizer franken"), "es": ("m", "francos suizos")},
}
MONEY = [
    {**row, KEY: english}
    for english, nouns in _CURRENCY_NOUNS.items()
    for row in counted((5, 10, 20, 50, 100, 200, 500), {"en": ("m", english), **nouns})
]
CURRENCIES = [
    {"en": english, **{lang: plural for lang, (_, plural) in nouns.items()}, KEY: english}
    for english, nouns in _CURRENCY_NOUNS.items()
]
PRICES = counted((2, 3, 4, 5, 8, 12, 15, 20, 25, 30, 45, 60), {"en": ("m", "euros"), **_CURRENCY_NOUNS["euros"]})
PARTY_SIZES = counted(
    range(2, 13), {"en": ("m", "people"), "fr": ("f", "personnes"), "de": ("f", "personen"), "es": ("f", "personas")}
)
MENU = {  # English plural, then per language (gender, plural): orders of two to six
    "pizzas": {"fr": ("f", "pizzas"), "de": ("f", "pizzen"), "es": ("f", "pizzas")},
    "burgers": {"fr": ("m", "burgers"), "de": ("m", "burger"), "es": ("f", "hamburguesas")},
    "salads": {"fr": ("f", "salades"), "de": ("m", "salate"), "es": ("f", "ensaladas")},
    "sandwiches": {"fr": ("m", "sandwichs"), "de": ("n", "sandwiches"), "es": ("m", "bocadillos")},
    "portions of sushi": {
        "fr": ("f", "portions de sushis"),
        "de": ("f", "portionen sushi"),
        "es": ("f", "raciones de sushi"),
    },
}
FOOD_ORDERS = [row for english, nouns in MENU.items() for row in counted(range(2, 7), {"en": ("m", english), **nouns})]

FILLERS: dict[str, list[Filler]] = {
    "time": times(LANGS),
    "date": dates(LANGS),
    "weekday": weekdays(LANGS),
    "city": CITIES,
    "day": DAYS_AHEAD,
    "weather": WEATHER,
    "person": PEOPLE,
    "event": EVENTS,
    "ticket": TICKETS,
    "departure": NEXT_DEPARTURES,
    "destination": DESTINATIONS,
    "room": ROOMS,
    "colour": COLOURS,
    "percent": PERCENTAGES,
    "device": DEVICES,
    "coffee": COFFEES,
    "genre": GENRES,
    "artist": ARTISTS,
    "message": MESSAGES,
    "business": BUSINESSES,
    "shop": SHOPS,
    "show": SHOWS,
    "gift": THANKS_FOR,
    "money": MONEY,
    "currency": CURRENCIES,
    "price": PRICES,
    "party": PARTY_SIZES,
    "food": FOOD_ORDERS,
    "operand": numbers(range(2, 31), LANGS),
    "platform": numbers(range(1, 21), LANGS),
    "degrees": numbers(range(2, 36), LANGS, {"fr": "m", "es": "m"}),
    "minutes": numbers(range(2, 60), LANGS, {"fr": "f", "es": "m"}),
}
