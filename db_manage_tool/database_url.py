"""Database URLs: checked, normalised to psycopg2, and masked wherever they are shown."""
import os
import re
from urllib.parse import quote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

# Environment variables that may hold a URL with a password, scrubbed from every message.
URL_VARIABLES = ("DATABASE_URL", "TEST_DATABASE_URL", "MIGRATION_DATABASE_URL", "TEST_MIGRATION_DATABASE_URL")
# user:password@ up to the last @ of the URL (a password may hold an unencoded @), and ?password=.
# Also in text that merely looks like a URL: a colon or slash missing (postgresql//user:password@host,
# postgresql:/user:password@host), or no user (postgres:password@host).
# Each scheme is looked for where a run of scheme characters begins (the lookbehind), not inside it: a long run
# of letters would otherwise be scanned again from each of its letters (quadratic).
_SCHEME = r"(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*"
_CREDENTIALS = re.compile(r"(?P<head>" + _SCHEME + r"(?::/{1,2}|//)[^:/@\s'\"]*:)[^\s'\"]*@", re.IGNORECASE)
_BARE_CREDENTIALS = re.compile(r"(?P<head>" + _SCHEME + r":)(?!/)[^\s'\"/@]+@", re.IGNORECASE)
LONGEST_URL = 4096  # characters: PostgreSQL's whole startup packet is 10,000 bytes
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)[^&\s'\"]*", re.IGNORECASE)


class ConfigError(Exception):
    """A setting is missing or unusable; the message says which and how to fix it."""


def normalise(raw, variable="DATABASE_URL"):
    """Return raw as a SQLAlchemy URL for psycopg2, or raise ConfigError saying what is wrong."""
    if len(raw) > LONGEST_URL:
        raise ConfigError(f"{variable} is {len(raw):,} characters long (not shown): no server takes a URL that "
                          f"long; write it in {LONGEST_URL:,} characters or fewer (a long application_name or "
                          "options value, perhaps).")
    authority = re.match(r"\s*[a-z][a-z0-9+.-]*://([^/?#]*)", raw, re.IGNORECASE)
    if authority and authority.group(1).count("@") > 1:  # libpq would read the password's tail as the host
        raise ConfigError(f"{variable} has more than one @ before the host (not shown: it holds a password): write "
                          "each @ of the password as %40 (pass@word becomes pass%40word).")
    try:
        url = make_url(raw.strip())
    except (ArgumentError, ValueError):
        raise ConfigError(f"{variable} is not a valid database URL (not shown: it may hold a password): write it as "
                          "postgresql://user@host:5432/name, a password after the user and a colon, and any "
                          "@ : / in the password written %40 %3A %2F.") from None
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise ConfigError(
            f"{variable} points to a {url.get_backend_name()} database ({mask(url)}); "
            "this project uses PostgreSQL only: use a postgresql:// URL."
        )
    if not url.database:
        raise ConfigError(f"{variable} names no database: add one, as in postgresql://user@host:5432/NAME.")
    if len(url.database.encode()) > 63:  # PostgreSQL would cut it, so two long names could be one database
        raise ConfigError(f"{variable} names a database of {len(url.database.encode())} bytes; PostgreSQL keeps "
                          "63 at most: choose a shorter name.")
    driver = url.drivername.partition("+")[2]
    if driver and driver != "psycopg2":
        raise ConfigError(f"{variable} asks for the {driver} driver ({url.drivername}://), which this project does "
                          "not use: write postgresql:// (psycopg2, installed with the project).")
    if url.drivername in ("postgres", "postgresql"):
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which this project does not install.
        url = url.set(drivername="postgresql+psycopg2")
    return url


def mask(url):
    """Return url (a string or URL) as text with its password replaced by ***."""
    text = url.render_as_string(hide_password=True) if isinstance(url, URL) else str(url)
    text = _BARE_CREDENTIALS.sub(r"\g<head>***@", _CREDENTIALS.sub(r"\g<head>***@", text))
    return _QUERY_PASSWORD.sub(r"\g<head>***", text)


def scrub(text):
    """Return text with every URL password, and the passwords of the URL settings, masked."""
    text = mask(text)
    for variable in URL_VARIABLES:
        for form in _password_forms(os.environ.get(variable, "")):
            if len(form) >= 3:  # a shorter one would mask ordinary letters
                text = text.replace(form, "***")
    return text


def _password_forms(raw):
    """Return the ways the password in raw may be written: as typed, decoded, and encoded (none without one)."""
    forms = set()
    for typed in (r"(?::/{0,2}|/{1,2})[^:/@\s]*:([^@\s]+)@",  # after a user and a colon (a user alone is no password)
                  r":([^/@\s][^@\s]*)@"):  # all of it, when no slashes follow the scheme (postgres:pw@host)
        match = re.search(r"^\s*[a-z][a-z0-9+.-]*" + typed, raw, re.IGNORECASE)
        forms |= {match.group(1)} if match else set()
    try:
        url = make_url(raw) if raw else None
        password = url and (url.password or url.query.get("password"))
    except (ArgumentError, ValueError):
        password = None
    if password:
        forms |= {password, quote(password, safe="")}
    return sorted(forms, key=len, reverse=True)  # the longest first, so that no part of one is left
