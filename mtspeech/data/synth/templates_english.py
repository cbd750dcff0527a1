"""English assistant commands labelled the SLURP way (intent ``scenario_action``, slots by SLURP type).

They widen what the SLURP sentences cover: intents SLURP's development split has only a handful of
(``general_greet``, ``music_dislikeness``, ``iot_hue_lighton``, ``email_addcontact`` ...), more slot
values, and sentences whose words are positive (praise, thanks, liking) for the prosody-conflict task.
Intent and slot names are SLURP's, so these sentences and SLURP's train the same labels.
"""

from __future__ import annotations

from typing import Any

from mtspeech.data.synth.fillers import dates, times, weekdays, word_list
from mtspeech.data.synth.templates_translation_fillers import (
    ARTISTS,
    CITIES,
    COFFEES,
    DAYS_AHEAD,
    DESTINATIONS,
    EVENTS,
    PEOPLE,
    PEOPLE_NAMES,
    ROOMS,
)
from mtspeech.data.synth.templating import Template, TemplateTable, parallel

LANG = "en"


def _t(name: str, pattern: str, intent: str, slots: dict[str, str] | None = None, **options: Any) -> Template:
    return parallel(f"en-{name}", (LANG,), pattern, intent=intent, slots=slots, **options)


_EMAIL_DOMAINS = ("gmail", "yahoo", "outlook", "hotmail")
FILLERS = {
    "time": times((LANG,)),
    "date": dates((LANG,)),
    "weekday": weekdays((LANG,)),
    "day": DAYS_AHEAD,
    "city": CITIES,
    "person": PEOPLE,
    "event": EVENTS,
    "room": ROOMS,
    "coffee": COFFEES,
    "destination": DESTINATIONS,
    "artist": ARTISTS,
    "email": [{LANG: f"{name} at {domain} dot com"} for name in PEOPLE_NAMES.split()[:8] for domain in _EMAIL_DOMAINS],
    "info": word_list(LANG, "phone number, email address, home address, birthday, work number"),
    "duration": word_list(LANG, "ten minutes, half an hour, an hour, two hours, twenty minutes, the rest of the day"),
    "percent": word_list(LANG, "ten percent, twenty percent, thirty percent, half, the maximum, the minimum"),
    "dish": word_list(LANG, "lasagne, pancakes, chicken curry, banana bread, a chocolate cake, vegetable soup, "
                      "risotto, guacamole, a roast chicken, fried rice, apple pie, tomato sauce"),
    "joke": word_list(LANG, "funny, short, silly, knock knock, science, bad"),
    "item": word_list(LANG, "milk, eggs, bread, bananas, coffee beans, olive oil, toothpaste, batteries, rice, "
                      "washing powder"),
    "list": word_list(LANG, "shopping, grocery, to do, packing, birthday, christmas"),
    "genre": word_list(LANG, "jazz, rock, country, heavy metal, techno, opera, rap, reggae, classical, pop"),
    "setting": word_list(LANG, "shuffle, repeat"),
    "topic": word_list(LANG, "sports, politics, business, science, technology, football, health, election"),
    "media": word_list(LANG, "bbc news, the guardian, cnn, sky news, the new york times, reuters"),
    "book": word_list(LANG, "pride and prejudice, the hobbit, moby dick, war and peace, jane eyre, dracula, "
                      "little women, great expectations"),
    "game": word_list(LANG, "chess, sudoku, trivia, tic tac toe, hangman, twenty questions, crosswords"),
    "podcast": word_list(LANG, "the daily, radiolab, serial, freakonomics radio, planet money, science weekly"),
    "station": word_list(LANG, "bbc radio two, classic fm, jazz fm, radio one, kiss fm, heart fm, capital fm"),
    "word": word_list(LANG, "serendipity, ephemeral, ubiquitous, photosynthesis, democracy, algorithm, nostalgia, "
                      "metaphor, gravity, entropy, irony, empathy"),
    "country": word_list(LANG, "france, germany, spain, italy, portugal, canada, australia, japan, brazil, egypt, "
                         "kenya, norway, mexico, india, argentina, greece"),
    "landmark": word_list(LANG, "the eiffel tower, mount everest, the empire state building, big ben, "
                          "the statue of liberty, mont blanc"),
    "company": word_list(LANG, "apple, microsoft, amazon, google, tesla, netflix, nike, samsung"),
    "cuisine": word_list(LANG, "italian, chinese, indian, thai, mexican, japanese, greek, french, vietnamese, "
                         "lebanese"),
    "movie": word_list(LANG, "comedy, horror, action, romantic, science fiction, animated"),
    "social": word_list(LANG, "facebook, twitter, instagram"),
    "restaurant": word_list(LANG, "golden dragon, pizza palace, taj mahal, burger barn, sushi garden, la piazza"),
    "agency": [{LANG: "an [uber]"}, {LANG: "a [lyft]"}],
    "road": word_list(LANG, "the ring road, the motorway, main street, the high street, the bridge"),
    "praise": word_list(LANG, "amazing, brilliant, wonderful, fantastic, awesome, great"),
}  # fmt: skip

# fmt: off
TEMPLATES = (
    _t("alarm-when", "what time is my alarm on {weekday}", "alarm_query", {"weekday": "date"}),
    _t("alarm-check", "do i have an alarm set for {time}", "alarm_query", {"time": "time"}),
    _t("alarm-cancel", "cancel my alarm for {time}", "alarm_remove", {"time": "time"}),
    _t("alarm-delete", "delete all my alarms for {weekday}", "alarm_remove", {"weekday": "date"}),
    _t("louder", "turn the volume up to {percent}", "audio_volume_up", {"percent": "change_amount"}),
    _t("quieter", "turn the volume down to {percent}", "audio_volume_down", {"percent": "change_amount"}),
    _t("mute", "mute the speakers for {duration}", "audio_volume_mute", {"duration": "time"}),
    _t("meetings-on", "what meetings do i have on {date}", "calendar_query", {"date": "date"}),
    _t("when-event", "when is my {event} with {person}", "calendar_query", {"event": "event_name", "person": "person"}),
    _t("cancel-event", "cancel my {event} on {weekday}", "calendar_remove", {"event": "event_name", "weekday": "date"}),
    _t("remove-event", "delete the {event} with {person} from my calendar", "calendar_remove",
       {"event": "event_name", "person": "person"}),
    _t("recipe", "give me a recipe for {dish}", "cooking_recipe", {"dish": "food_type"}),
    _t("cook-time", "how long should i cook {dish} for", "cooking_query", {"dish": "food_type"}),
    _t("convert", "if it is {time} in {city} what time is it in {city2}", "datetime_convert",
       {"time": "time", "city": "place_name", "city2": "place_name"}),
    _t("weekday-of", "what day of the week is {date}", "datetime_query", {"date": "date"}),
    _t("add-contact", "add {person} to my contacts", "email_addcontact", {"person": "person"}),
    _t("save-email", "save {email} as a new contact", "email_addcontact", {"email": "email_address"}),
    _t("mail-from", "do i have any new emails from {person}", "email_query", {"person": "person"}),
    _t("contact-info", "what is the {info} of {person}", "email_querycontact",
       {"info": "personal_info", "person": "person"}),
    _t("hello", "hello there", "general_greet"),
    _t("morning", "good morning how are you today", "general_greet"),
    _t("hey", "hey how is it going", "general_greet"),
    _t("evening", "good evening nice to talk to you", "general_greet"),
    _t("joke", "tell me a {joke} joke", "general_joke", {"joke": "joke_type"}),
    _t("vacuum", "vacuum the {room} please", "iot_cleaning", {"room": "house_place"}),
    _t("brew", "brew {coffee} for me", "iot_coffee", {"coffee": "coffee_type"}),
    _t("brighter", "make the lights brighter in the {room}", "iot_hue_lightup", {"room": "house_place"}),
    _t("lights-on", "switch the lights on in the {room}", "iot_hue_lighton", {"room": "house_place"}),
    _t("list-add", "add {item} to my {list} list", "lists_createoradd", {"list": "list_name"}),
    _t("list-new", "create a new {list} list", "lists_createoradd", {"list": "list_name"}),
    _t("list-read", "what is on my {list} list", "lists_query", {"list": "list_name"}),
    _t("list-remove", "remove {item} from my {list} list", "lists_remove", {"list": "list_name"}),
    _t("dislike-genre", "i don't like {genre} music", "music_dislikeness", {"genre": "music_genre"}),
    _t("never-play", "please never play {artist} again", "music_dislikeness", {"artist": "artist_name"}),
    _t("who-sings", "who is singing this song", "music_query"),
    _t("setting", "turn {setting} on", "music_settings", {"setting": "player_setting"}),
    _t("news-topic", "what is the latest {topic} news", "news_query", {"topic": "news_topic"}),
    _t("headlines", "read me the headlines from {media}", "news_query", {"media": "media_type"}),
    _t("audiobook", "resume the audiobook {book}", "play_audiobook", {"book": "audiobook_name"}),
    _t("game", "let's play {game}", "play_game", {"game": "game_name"}),
    _t("podcast", "play the latest episode of {podcast}", "play_podcasts", {"podcast": "podcast_name"}),
    _t("radio", "tune in to {station}", "play_radio", {"station": "radio_name"}),
    _t("define", "what does {word} mean", "qa_definition", {"word": "definition_word"}),
    _t("capital", "what is the capital of {country}", "qa_factoid", {"country": "place_name"}),
    _t("how-tall", "how tall is {landmark}", "qa_factoid", {"landmark": "place_name"}),
    _t("stock", "what is the stock price of {company} today", "qa_stock", {"company": "business_name"}),
    _t("events", "what events are on in {city} {day}", "recommendation_events", {"city": "place_name", "day": "date"}),
    _t("restaurant", "recommend a good {cuisine} restaurant near me", "recommendation_locations",
       {"cuisine": "food_type"}),
    _t("movie", "can you recommend a good {movie} movie", "recommendation_movies", {"movie": "movie_type"}),
    _t("new-posts", "are there any new posts from {person} on {social}", "social_query",
       {"person": "person", "social": "media_type"}),
    _t("takeaway", "order some {cuisine} food from {restaurant}", "takeaway_order",
       {"cuisine": "food_type", "restaurant": "business_name"}),
    _t("order-status", "is my order from {restaurant} on its way", "takeaway_query", {"restaurant": "business_name"}),
    _t("ride", "get me {agency} to {destination}", "transport_taxi",
       {"agency": "transport_agency", "destination": "place_name"}),
    _t("traffic", "how is the traffic on {road} right now", "transport_traffic", {"road": "place_name"}),
    _t("umbrella", "do i need an umbrella in {city} {day}", "weather_query", {"city": "place_name", "day": "date"}),
    _t("temperature", "what is the temperature in {city} right now", "weather_query", {"city": "place_name"}),
    # Words that are positive whatever the voice: the prosody-conflict task speaks them sad or angry.
    _t("love-artist", "i really love {artist}", "music_likeness", {"artist": "artist_name"}, polarity="positive"),
    _t("awesome-genre", "this {genre} song is awesome", "music_likeness", {"genre": "music_genre"},
       polarity="positive"),
    _t("praise", "you are {praise} thank you so much", "general_quirky", polarity="positive"),
    _t("happy-day", "i am so happy today", "general_quirky", polarity="positive"),
    _t("wonderful-day", "post on {social} that i had a wonderful day in {city}", "social_post",
       {"social": "media_type", "city": "place_name"}, polarity="positive"),
    _t("thanks-mail", "send an email to {person} saying thanks for the lovely evening", "email_sendemail",
       {"person": "person"}, polarity="positive"),
    _t("great-dinner", "the dinner at {restaurant} was great", "general_quirky", {"restaurant": "business_name"},
       polarity="positive"),
    _t("perfect-playlist", "this playlist is perfect for {weekday} morning", "music_likeness", {"weekday": "date"},
       polarity="positive"),
    _t("enjoyed", "i really enjoyed the {event} with {person}", "general_quirky",
       {"event": "event_name", "person": "person"}, polarity="positive"),
)
# fmt: on

TABLE = TemplateTable("english", (LANG,), TEMPLATES, FILLERS)
