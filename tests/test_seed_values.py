"""Properties of the COPY text `seed --rows` and OVERRIDES write, checked through a real COPY (Hypothesis)."""
import io
import json

import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db_manage_tool.values import array_literal, to_copy

# Any text PostgreSQL stores: every character but NUL and lone surrogates.
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | TEXT,
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
                    max_leaves=8)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def cursor(database_url):
    """A cursor on this test's database, with a scratch table of a text, a text[] and a jsonb column."""
    connection = psycopg2.connect(database_url.replace("postgresql+psycopg2://", "postgresql://"))
    connection.autocommit = True
    with connection.cursor() as cur:
        cur.execute("CREATE TABLE copied (t text, a text[], j jsonb)")
        yield cur
    connection.close()


def copy_back(cursor, line):
    """COPY one line into the scratch table and return the row it made (the table emptied again)."""
    cursor.execute("TRUNCATE copied")
    cursor.copy_expert("COPY copied (t, a, j) FROM STDIN", io.BytesIO(line.encode()))
    cursor.execute("SELECT t, a, j FROM copied")
    return cursor.fetchone()


@SETTINGS
@given(text=TEXT, items=st.lists(TEXT | st.none(), max_size=4), document=JSON)
def test_values_survive_copy_unchanged(cursor, text, items, document):
    row = copy_back(cursor, "\t".join([to_copy(text), array_literal(items), to_copy(json.dumps(document))]) + "\n")
    assert row == (text, items, document)


@SETTINGS
@given(value=st.none() | st.booleans() | st.integers(-2**31, 2**31 - 1))
def test_none_is_null_and_booleans_are_booleans(cursor, value):
    cursor.execute("TRUNCATE copied")
    cursor.execute("CREATE TEMP TABLE IF NOT EXISTS typed (b boolean, i integer)")
    cursor.execute("TRUNCATE typed")
    boolean = value if value is None or isinstance(value, bool) else None
    number = None if isinstance(value, bool) else value
    cursor.copy_expert("COPY typed (b, i) FROM STDIN", io.BytesIO(f"{to_copy(boolean)}\t{to_copy(number)}\n".encode()))
    cursor.execute("SELECT b, i FROM typed")
    assert cursor.fetchone() == (boolean, number)
