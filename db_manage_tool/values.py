"""Values for generated rows, as COPY text fields: realistic pools chosen by column name, fills by type.

The pools are built once per run from Mimesis seeded with a fixed number (measured per row:
Mimesis 23 us, Faker 323 us, polyfactory's SQLAlchemy factory 813 us; drawing from a pool:
under 0.2 us a column), so the same command writes the same data at COPY speed.
"""
import json
import random
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from .errors import Failure

NULL = "\\N"
T0 = datetime(2025, 1, 6, 9, 30, tzinfo=timezone.utc)  # generated times lie in the two years before T0
SPAN = timedelta(days=730)
POOL_SIZE = 1000
SEED = 20250106
PERSON_TABLES = {"user", "users", "person", "people", "persons", "author", "authors", "customer", "customers",
                 "member", "members", "employee", "employees", "contact", "contacts", "account", "accounts",
                 "profile", "profiles", "student", "students", "teacher", "teachers", "staff", "owner", "owners"}
# (kind, words of the column name that say it holds that kind), the first match wins.
NAME_RULES = [
    ("email", ({"email"}, {"mail"}, {"e", "mail"})),
    ("username", ({"username"}, {"user", "name"}, {"login"}, {"handle"}, {"nickname"}, {"screen", "name"})),
    ("first_name", ({"first", "name"}, {"firstname"}, {"given", "name"}, {"forename"})),
    ("last_name", ({"last", "name"}, {"lastname"}, {"surname"}, {"family", "name"})),
    ("full_name", ({"full", "name"}, {"fullname"}, {"display", "name"}, {"author", "name"}, {"contact", "name"})),
    ("phone", ({"phone"}, {"mobile"}, {"telephone"}, {"tel"}, {"fax"})),
    ("slug", ({"slug"},)),
    ("url", ({"url"}, {"uri"}, {"website"}, {"homepage"}, {"link"}, {"href"}, {"permalink"})),
    ("title", ({"title"}, {"subject"}, {"headline"}, {"heading"})),
    ("country_code", ({"country", "code"}, {"country", "iso"})),
    ("country", ({"country"}, {"nation"})),
    ("city", ({"city"}, {"town"})),
    ("state", ({"province"}, {"region"}, {"county"}, {"us", "state"})),  # a bare `state` is often a status
    ("postal_code", ({"zip"}, {"zipcode"}, {"postcode"}, {"postal"})),
    ("street", ({"street"}, {"address"}, {"line1"})),
    ("company", ({"company"}, {"organisation"}, {"organization"}, {"employer"})),
    ("occupation", ({"occupation"}, {"job"}, {"profession"})),
    ("color", ({"color"}, {"colour"})),
    ("currency", ({"currency"},)),
    ("ip", ({"ip"}, {"ip", "address"})),
    ("hostname", ({"hostname"}, {"host"}, {"domain"})),
    ("password", ({"password"}, {"passwd"}, {"hash"})),
    ("token", ({"token"}, {"secret"}, {"api", "key"}, {"nonce"})),
    ("user_agent", ({"user", "agent"}, {"useragent"})),
    ("paragraph", ({"body"}, {"content"}, {"text"}, {"html"}, {"markdown"}, {"details"}, {"article"})),
    ("sentence", ({"description"}, {"summary"}, {"bio"}, {"about"}, {"note"}, {"notes"}, {"comment"},
                  {"message"}, {"excerpt"}, {"reason"}, {"caption"}, {"remark"}, {"remarks"})),
]
# Numeric ranges that a column's name implies: (words, low, high).
NUMBER_RULES = [
    ({"age"}, 18, 90), ({"year"}, 1990, 2030), ({"latitude"}, -90, 90), ({"lat"}, -90, 90),
    ({"longitude"}, -180, 180), ({"lng"}, -180, 180), ({"lon"}, -180, 180), ({"rating"}, 1, 5), ({"stars"}, 1, 5),
    ({"score"}, 0, 100), ({"percent"}, 0, 100), ({"percentage"}, 0, 100), ({"quantity"}, 1, 100), ({"qty"}, 1, 100),
    ({"stock"}, 0, 500), ({"price"}, 1, 1000), ({"amount"}, 1, 1000), ({"cost"}, 1, 1000), ({"total"}, 1, 5000),
    ({"balance"}, 0, 10000), ({"count"}, 0, 1000), ({"position"}, 0, 100), ({"order"}, 0, 100),
    ({"priority"}, 0, 10), ({"weight"}, 1, 100), ({"height"}, 1, 250), ({"duration"}, 1, 3600),
]


def escape(text):
    """Return text as a field of COPY's text format (backslash, tab, newline and return escaped)."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def words_of(name):
    """Return the lower-case words of a column or table name (snake_case or camelCase)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [word for word in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if word]


def kind_for_name(column_name, table_name):
    """Return the realistic kind a column's name says it holds (email, city, ...), or None."""
    words = set(words_of(column_name))
    for kind, alternatives in NAME_RULES:
        if any(alternative <= words for alternative in alternatives):
            return kind
    if words == {"name"}:
        return "full_name" if set(words_of(table_name)) & PERSON_TABLES else "label"
    if "name" in words:
        return "label"
    return None


def number_range(column_name):
    """Return the (low, high) range a column's name implies, or None."""
    words = set(words_of(column_name))
    return next(((low, high) for rule, low, high in NUMBER_RULES if rule <= words), None)


class Pools:
    """Realistic values by kind, each list built once per run from a seeded Mimesis."""

    def __init__(self):
        self.built, self.reseeded, self.kind = {}, set(), None

    def get(self, kind):
        """Return the pool of kind (plain text, not yet escaped)."""
        if kind not in self.built:
            self.built[kind] = self.build(kind)
        return self.built[kind]

    def provider(self, name):
        """Return the seeded Mimesis provider `name` (Person, Address, Text, Finance, Internet), made once."""
        key = f"_{name}"
        if key not in self.built:
            try:
                import mimesis
                from mimesis.locales import Locale
            except ImportError:
                raise Failure("seed --rows makes its realistic values with Mimesis, which is not installed: "
                              "`pip install 'flask-db-manage[seed]'` (the package mimesis). Nothing was changed.") from None

            cls = getattr(mimesis, name)
            self.built[key] = cls(seed=SEED) if name == "Internet" else cls(Locale.EN, seed=SEED)
        if name not in self.reseeded:  # each pool the same whatever was built before it
            self.built[key].reseed(f"{SEED}:{self.kind}")
            self.reseeded.add(name)
        return self.built[key]

    def words(self):
        """Return the plain words of Mimesis' English text, sorted."""
        if "_words" not in self.built:
            self.kind, self.reseeded = "words", set()
            words = self.provider("Text").words(quantity=600)
            self.built["_words"] = sorted({w.lower() for w in words if w.isalpha() and len(w) > 2})
        return self.built["_words"]

    def build(self, kind):
        """Build the pool of kind with Mimesis."""
        words = self.words() if kind in ("hostname", "slug", "url", "title", "label", "word") else []
        self.kind, self.reseeded = kind, set()
        person, address, text = (lambda: self.provider("Person")), (lambda: self.provider("Address")), \
            (lambda: self.provider("Text"))
        finance, internet = (lambda: self.provider("Finance")), (lambda: self.provider("Internet"))
        rng = random.Random(f"{SEED}:{kind}")
        size = POOL_SIZE // 4 if kind in ("paragraph", "sentence") else POOL_SIZE

        def name():
            return re.sub(r"[^a-z.]", "", f"{person().first_name()}.{person().last_name()}".lower())
        makers = {
            "first_name": lambda: person().first_name(), "last_name": lambda: person().last_name(),
            "full_name": lambda: person().full_name(), "username": name, "email": name,
            "phone": lambda: person().phone_number(), "occupation": lambda: person().occupation(),
            "city": lambda: address().city(), "country": lambda: address().country(),
            "country_code": lambda: address().country_code(), "state": lambda: address().state(),
            "postal_code": lambda: address().postal_code(), "street": lambda: address().address(),
            "company": lambda: finance().company(), "currency": lambda: finance().currency_iso_code(),
            "color": lambda: text().color(), "ip": lambda: internet().ip_v4(),
            "hostname": lambda: f"{rng.choice(words)}.example.net",
            "slug": lambda: "-".join(rng.sample(words, rng.randint(2, 4))),
            "url": lambda: f"https://example.com/{'-'.join(rng.sample(words, rng.randint(1, 3)))}",
            "title": lambda: " ".join(rng.sample(words, rng.randint(3, 7))).capitalize(),
            "label": lambda: " ".join(rng.sample(words, rng.randint(1, 2))).title(),
            "word": lambda: rng.choice(words),
            "sentence": lambda: text().sentence(),
            "paragraph": lambda: text().text(quantity=rng.randint(2, 5)),
            "password": lambda: f"pbkdf2:sha256:600000${rng.getrandbits(64):016x}${rng.getrandbits(256):064x}",
            "token": lambda: f"{rng.getrandbits(128):032x}",
            "user_agent": lambda: rng.choice(("Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0",
                                             "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5)",
                                             "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "python-requests/2.32")),
        }
        return [str(makers[kind]()) for _ in range(size)]


def timestamp_pool(rng, with_zone):
    """Return times spread over the two years before T0, as COPY text."""
    times = (T0 - SPAN * rng.random() for _ in range(4096))
    return [t.isoformat() if with_zone else t.replace(tzinfo=None).isoformat() for t in times]


def date_pool():
    """Return every day of the two years before T0, as COPY text."""
    return [(T0 - timedelta(days=d)).date().isoformat() for d in range(730)]


def time_pool(rng):
    """Return times of day, as COPY text."""
    return [f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}" for _ in range(1440)]


def interval_pool(rng):
    """Return intervals from a minute to a month, as COPY text."""
    return [f"{rng.randint(1, 43200)} minutes" for _ in range(1024)]


def json_pool(rng, pools):
    """Return small JSON documents, as COPY text."""
    words = pools.get("word")
    return [escape(json.dumps({"id": i, "label": rng.choice(words), "tags": rng.sample(words, rng.randint(0, 3)),
                               "active": rng.random() < 0.7, "score": round(rng.uniform(0, 100), 2)}))
            for i in range(256)]


def to_copy(value):
    """Return a Python value as a COPY text field (None is NULL; dicts and lists become JSON)."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dict | list):
        return escape(json.dumps(value, default=str))
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return escape(str(value))


def array_literal(items):
    """Return a PostgreSQL array literal of items (strings quoted), as COPY text."""
    def element(item):
        if item is None:
            return "NULL"
        if isinstance(item, bool):
            return "t" if item else "f"
        if isinstance(item, int | float | Decimal):
            return str(item)
        return '"' + str(item).replace("\\", "\\\\").replace('"', '\\"') + '"'
    return escape("{" + ",".join(element(item) for item in items) + "}")
