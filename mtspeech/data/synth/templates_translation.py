"""English sentences with French, German and Spanish translations, written as parallel templates.

Every template is one sentence shape in four languages (en, fr, de, es); one choice of fillers
(templates_translation_fillers.py) renders the same meaning in each, numbers, clock times and dates
written out per language by numbers.py. The English sentence is spoken; the others are its translations.
Templates with an ``intent`` are assistant commands and give the English sentence SLURP's intent and
slot labels too; the rest are everyday statements (travel, appointments, thanks).
"""

from __future__ import annotations

from typing import Any

from mtspeech.data.synth.templates_translation_fillers import FILLERS, LANGS
from mtspeech.data.synth.templating import Template, TemplateTable, parallel


def _t(name: str, *patterns: str, **options: Any) -> Template:
    return parallel(f"tr-{name}", LANGS, *patterns, **options)


TIME, DATE = "time", "date"

# fmt: off
COMMANDS = (
    _t("wake", "wake me up at {time}", "réveille-moi à {time}", "weck mich um {time}", "despiértame a {time}",
       intent="alarm_set", slots={"time": TIME}, limit=80),
    _t("alarm", "set an alarm for {time} on {weekday}", "mets une alarme {weekday} à {time}",
       "stell einen wecker für {weekday} um {time}", "pon una alarma el {weekday} a {time}",
       intent="alarm_set", slots={"time": TIME, "weekday": DATE}, limit=80),
    _t("weather", "what will the weather be like in {city} {day}", "quel temps fera-t-il à {city} {day}",
       "wie wird das wetter {day} in {city}", "qué tiempo hará en {city} {day}",
       intent="weather_query", slots={"city": "place_name", "day": DATE}, limit=80),
    _t("will-it", "will it {weather} in {city} {day}", "est-ce qu'il va {weather} à {city} {day}",
       "wird es {day} in {city} {weather}", "va a {weather} en {city} {day}",
       intent="weather_query", slots={"weather": "weather_descriptor", "city": "place_name", "day": DATE}, limit=80),
    _t("clock", "what time is it in {city} right now", "quelle heure est-il à {city} en ce moment",
       "wie spät ist es gerade in {city}", "qué hora es ahora mismo en {city}",
       intent="datetime_query", slots={"city": "place_name"}),
    _t("schedule", "schedule a {event} with {person} on {weekday} at {time}",
       "planifie {event} avec {person} {weekday} à {time}", "plane {event} mit {person} am {weekday} um {time}",
       "programa {event} con {person} el {weekday} a {time}",
       intent="calendar_set", slots={"event": "event_name", "person": "person", "weekday": DATE, "time": TIME},
       limit=120),
    _t("remind", "remind me to call {person} on {date}", "rappelle-moi d'appeler {person} {date}",
       "erinnere mich daran {person} am {date} anzurufen", "recuérdame llamar a {person} {date}",
       intent="calendar_set", slots={"person": "person", "date": DATE}, limit=80),
    _t("agenda", "what is on my calendar for {weekday}", "qu'est-ce que j'ai dans mon agenda {weekday}",
       "was steht am {weekday} in meinem kalender", "qué tengo en la agenda el {weekday}",
       intent="calendar_query", slots={"weekday": DATE}),
    _t("ticket", "book a {ticket} ticket to {city} for {weekday}", "réserve {ticket} pour {city} pour {weekday}",
       "buche {ticket} nach {city} für {weekday}", "reserva {ticket} a {city} para el {weekday}",
       intent="transport_ticket", slots={"ticket": "transport_type", "city": "place_name", "weekday": DATE}, limit=80),
    _t("departure", "when does the next {departure} to {city} leave", "quand part {departure} pour {city}",
       "wann geht {departure} nach {city}", "cuándo sale {departure} para {city}",
       intent="transport_query", slots={"departure": "transport_type", "city": "place_name"}, limit=80),
    _t("taxi", "call me a taxi to {destination} at {time}", "appelle-moi un taxi pour aller {destination} à {time}",
       "bestell mir ein taxi {destination} für {time}", "pídeme un taxi {destination} para {time}",
       intent="transport_taxi", slots={"destination": "place_name", "time": TIME}, limit=80),
    _t("directions", "how do i get to {destination} from here", "comment est-ce que je vais {destination} d'ici",
       "wie komme ich von hier {destination}", "cómo llego {destination} desde aquí",
       intent="transport_query", slots={"destination": "place_name"}),
    _t("colour", "change the lights in the {room} to {colour}", "mets les lumières {room} en {colour}",
       "stell das licht {room} auf {colour}", "cambia las luces {room:of} a {colour}",
       intent="iot_hue_lightchange", slots={"room": "house_place", "colour": "color_type"}, limit=80),
    _t("lights-off", "turn off the lights in the {room}", "éteins les lumières {room}",
       "mach das licht {room} aus", "apaga las luces {room:of}",
       intent="iot_hue_lightoff", slots={"room": "house_place"}),
    _t("lights-on", "turn on the lights in the {room}", "allume les lumières {room}",
       "mach das licht {room} an", "enciende las luces {room:of}",
       intent="iot_hue_lighton", slots={"room": "house_place"}),
    _t("dim", "dim the lights in the {room} to {percent}", "baisse les lumières {room} à {percent}",
       "dimm das licht {room} auf {percent}", "baja las luces {room:of} al {percent}",
       intent="iot_hue_lightdim", slots={"room": "house_place", "percent": "change_amount"}, limit=80),
    _t("device-on", "switch on the {device} in the {room}", "allume {device} {room}",
       "schalte {device} {room} ein", "enciende {device} {room:of}",
       intent="iot_wemo_on", slots={"device": "device_type", "room": "house_place"}),
    _t("device-off", "switch off the {device} in the {room}", "éteins {device} {room}",
       "schalte {device} {room} aus", "apaga {device} {room:of}",
       intent="iot_wemo_off", slots={"device": "device_type", "room": "house_place"}),
    _t("vacuum", "start the vacuum cleaner in the {room} at {time}", "lance l'aspirateur {room} à {time}",
       "starte den staubsauger {room} um {time}", "pon la aspiradora {room} a {time}",
       intent="iot_cleaning", slots={"room": "house_place", "time": TIME}),
    _t("coffee", "make me {coffee} at {time}", "prépare-moi {coffee} à {time}", "mach mir um {time} {coffee}",
       "prepárame {coffee} a {time}", intent="iot_coffee", slots={"coffee": "coffee_type", "time": TIME}),
    _t("genre", "play some {genre} in the {room}", "mets {genre} {room}", "spiel etwas {genre} {room}",
       "pon {genre} {room}", intent="play_music", slots={"genre": "music_genre", "room": "house_place"}, limit=80),
    _t("album", "play the latest album by {artist}", "mets le dernier album de {artist}",
       "spiel das neueste album von {artist}", "pon el último álbum de {artist}",
       intent="play_music", slots={"artist": "artist_name"}),
    _t("email", "send an email to {person} saying {message}", "envoie un e-mail à {person} pour lui dire {message}",
       "schreib {person} eine e-mail {message}", "envía un correo a {person} diciendo {message}",
       intent="email_sendemail", slots={"person": "person"}, limit=80),
    _t("nearest", "where is the nearest {business}", "où est {business}", "wo ist {business}",
       "dónde está {business}", intent="recommendation_locations", slots={"business": "business_type"}),
    _t("plus", "what is {operand} plus {operand2}", "combien font {operand} plus {operand2}",
       "was ist {operand} plus {operand2}", "cuánto es {operand} más {operand2}", intent="qa_maths"),
    _t("times", "what is {operand} times {operand2}", "combien font {operand} fois {operand2}",
       "was ist {operand} mal {operand2}", "cuánto es {operand} por {operand2}", intent="qa_maths"),
    _t("exchange", "how much is {money} in {currency}", "combien font {money} en {currency}",
       "wie viel sind {money} in {currency}", "cuánto son {money} en {currency}",
       intent="qa_currency", slots={"money": "currency_name", "currency": "currency_name"}, limit=80),
    _t("order", "order {food} for delivery", "commande {food} en livraison", "lass {food} liefern",
       "pide {food} a domicilio", intent="takeaway_order", slots={"food": "food_type"}),
)

STATEMENTS = (
    _t("opens", "{shop} opens at {time}", "{shop} ouvre à {time}", "{shop} öffnet um {time}", "{shop} abre a {time}",
       limit=80),
    _t("table", "we would like a table for {party} at {time}", "nous voudrions une table pour {party} à {time}",
       "wir hätten gern einen tisch für {party} um {time}", "queremos una mesa para {party} a {time}", limit=80),
    _t("platform", "the train to {city} leaves from platform {platform}",
       "le train pour {city} part du quai {platform}", "der zug nach {city} fährt von gleis {platform} ab",
       "el tren a {city} sale del andén {platform}"),
    _t("flight", "my flight leaves on {date} at {time}", "mon vol part {date} à {time}",
       "mein flug geht am {date} um {time}", "mi vuelo sale {date} a {time}", limit=80),
    _t("degrees", "it is {degrees} degrees in {city} today", "il fait {degrees} degrés à {city} aujourd'hui",
       "in {city} sind es heute {degrees} grad", "hoy hace {degrees} grados en {city}"),
    _t("waiting", "i have been waiting for {minutes} minutes", "j'attends depuis {minutes} minutes",
       "ich warte seit {minutes} minuten", "llevo {minutes} minutos esperando", limit=40),
    _t("see-you", "see you on {weekday} at {time}", "on se voit {weekday} à {time}",
       "wir sehen uns am {weekday} um {time}", "nos vemos el {weekday} a {time}"),
    _t("show", "{show} starts at {time} on {date}", "{show} commence à {time} {date}",
       "{show} beginnt am {date} um {time}", "{show} empieza {date} a {time}", limit=80),
    _t("moved", "the meeting has been moved to {weekday} at {time}", "la réunion est reportée à {weekday} à {time}",
       "die besprechung wurde auf {weekday} um {time} verschoben", "la reunión se ha cambiado al {weekday} a {time}"),
    _t("birthday", "my birthday is on {date}", "mon anniversaire est {date}", "ich habe am {date} geburtstag",
       "mi cumpleaños es {date}", limit=40),
    _t("price", "the ticket costs {price}", "le billet coûte {price}", "die fahrkarte kostet {price}",
       "el billete cuesta {price}"),
    _t("thanks", "thank you {person} for {gift}", "merci {person} pour {gift}", "danke {person} für {gift}",
       "gracias {person} por {gift}", polarity="positive", limit=80),
    _t("love-city", "i really love {city} it is a wonderful city", "j'adore {city} c'est une ville magnifique",
       "ich liebe {city} es ist eine wunderbare stadt", "me encanta {city} es una ciudad maravillosa",
       polarity="positive"),
    _t("glad", "i am so happy that {person} is coming on {weekday}",
       "je suis tellement content {person:que} vienne {weekday}", "ich freue mich so dass {person} am {weekday} kommt",
       "estoy muy contento de que {person} venga el {weekday}",
       polarity="positive", limit=80),
    _t("fantastic", "{show} on {weekday} was fantastic", "{show} de {weekday} était fantastique",
       "{show} am {weekday} war fantastisch", "{show} del {weekday} estuvo genial", polarity="positive"),
)
# fmt: on

TRANSLATION_TABLE = TemplateTable("translation", LANGS, COMMANDS + STATEMENTS, FILLERS)
