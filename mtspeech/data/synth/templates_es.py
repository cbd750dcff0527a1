"""Spanish sentences, written in Spanish (not translated): everyday plans, travel, errands, thanks.

Fillers carry their articles and prepositions ("en la estación", "las llaves"); numbers, times
("a las siete y media de la tarde") and dates come from numbers.py.
"""

from __future__ import annotations

from typing import Any

from mtspeech.data.synth.fillers import counted, dates, numbers, times, weekdays, word_list
from mtspeech.data.synth.templating import Template, TemplateTable, parallel

LANG = "es"


def _t(name: str, pattern: str, **options: Any) -> Template:
    options.setdefault("limit", 100)
    return parallel(f"es-{name}", (LANG,), pattern, **options)


FILLERS = {
    "ciudad": word_list(LANG, "madrid, barcelona, valencia, sevilla, bilbao, málaga, zaragoza, granada, salamanca, "
                        "toledo, córdoba, cádiz, santander, murcia, alicante, valladolid, pamplona, oviedo, "
                        "buenos aires, lima, bogotá, santiago, quito, montevideo, caracas, la habana"),
    "nombre": word_list(LANG, "lucía, pablo, carmen, javier, marta, diego, sofía, alejandro, paula, sergio, elena, "
                        "andrés, laura, miguel, isabel, carlos"),
    "hora": times((LANG,)),
    "fecha": dates((LANG,)),
    "dia": weekdays((LANG,)),
    "momento": word_list(LANG, "esta tarde, mañana por la mañana, esta noche, después de comer, el fin de semana, "
                         "más tarde, el lunes que viene, dentro de un rato"),
    "lugar": word_list(LANG, "en la estación, en el cine, en la playa, en el mercado, en la plaza, en el parque, "
                       "en la puerta del museo, en la cafetería, en la oficina, en la biblioteca, en la parada del "
                       "autobús, delante del teatro"),
    "objeto": word_list(LANG, "las llaves, la cartera, el móvil, las gafas, el paraguas, el bolso, el pasaporte, "
                        "la chaqueta"),
    "plato": word_list(LANG, "una tortilla de patatas, una paella, gazpacho, unas croquetas, una ensalada mixta, "
                       "lentejas, pollo asado, una sopa de verduras, huevos rotos, arroz con leche, "
                       "albóndigas, una crema de calabaza"),
    "compra": word_list(LANG, "pan, leche, huevos, queso, manzanas, mantequilla, harina, café, tomates, arroz"),
    "tiempo": word_list(LANG, "mucho frío, mucho calor, viento, sol, buen tiempo, mal tiempo, fresco, bochorno"),
    "articulo": word_list(LANG, "un kilo de tomates, una barra de pan, un billete de metro, una entrada de cine, "
                          "un café con leche, una botella de agua, un periódico, una docena de huevos"),
    "asientos": counted(range(2, 21), {LANG: ("m", "asientos")}),
    "minutos": counted(range(5, 60, 5), {LANG: ("m", "minutos")}),
    "personas": counted(range(2, 11), {LANG: ("f", "personas")}),
    "grados": counted(range(2, 36), {LANG: ("m", "grados")}),
    "sala": numbers(range(1, 25), (LANG,)),
}  # fmt: skip

# fmt: off
TEMPLATES = (
    _t("train", "el tren a {ciudad} sale a {hora}", limit=120),
    _t("meet", "quedamos {lugar} a {hora}", limit=120),
    _t("call", "puedes llamar a {nombre} {momento}"),
    _t("lost", "he perdido {objeto}"),
    _t("degrees", "mañana hará {grados} en {ciudad}", limit=120),
    _t("arrives", "{nombre} llega el {dia} a {hora}", limit=120),
    _t("dentist", "mi cita con el dentista es {fecha} a {hora}", limit=120),
    _t("cook", "esta noche voy a preparar {plato}"),
    _t("holidays", "nos vamos de vacaciones a {ciudad} {fecha}", limit=120),
    _t("shopping", "no te olvides de comprar {compra} y {compra2}"),
    _t("seats", "quedan {asientos} libres en el autobús"),
    _t("closed", "la tienda está cerrada el {dia}"),
    _t("traffic", "hay mucho tráfico en la carretera de {ciudad}"),
    _t("clock", "qué hora es ahora en {ciudad}"),
    _t("waited", "he esperado el autobús durante {minutos}"),
    _t("room", "la reunión empieza a {hora} en la sala {sala}", limit=60),
    _t("weather", "hoy hace {tiempo} en {ciudad}"),
    _t("price", "cuánto cuesta {articulo}"),
    _t("school", "llevo a los niños al colegio a {hora}"),
    _t("table", "quiero reservar una mesa para {personas} {momento}"),
    _t("forgot", "creo que me he dejado {objeto} {lugar}"),
    _t("music", "puedes bajar un poco la música por favor"),
    _t("delicious", "la comida estaba buenísima gracias {nombre}", polarity="positive"),
    _t("lovely-day", "qué día tan maravilloso en {ciudad}", polarity="positive"),
    _t("glad", "estoy encantado de verte {nombre}", polarity="positive"),
    _t("present", "muchas gracias {nombre} es un regalo precioso", polarity="positive"),
    _t("concert", "el concierto del {dia} fue fantástico", polarity="positive"),
    _t("well-done", "enhorabuena {nombre} es un trabajo excelente", polarity="positive"),
    _t("perfect", "nuestras vacaciones en {ciudad} fueron perfectas", polarity="positive"),
    _t("coming", "qué alegría que vengas el {dia} {nombre}", polarity="positive"),
    _t("love-city", "me encanta {ciudad} es una ciudad preciosa", polarity="positive"),
    _t("weekend", "gracias {nombre} el fin de semana en {ciudad} fue perfecto", polarity="positive"),
)
# fmt: on

TABLE = TemplateTable("es", (LANG,), TEMPLATES, FILLERS)
