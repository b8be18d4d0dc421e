"""The private parts of tinydb that JournalTable (kiosk/store/storage.py) overrides or sets:
`Table._read_table`, `Table._get_next_id` and `Table._next_id`. tinydb may rename them in any
release; setup.py pins `tinydb>=4.8,<5`, and these tests fail loudly, naming the part, when
an installed tinydb no longer has them or no longer goes through them."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import tinydb
from tinydb import TinyDB, where
from tinydb.storages import MemoryStorage
from tinydb.table import Table

ROOT = Path(__file__).resolve().parents[1]


def test_setup_py_keeps_tinydb_below_the_next_major_version():
    pin = re.search(r'"tinydb([^"]*)"', (ROOT / "setup.py").read_text()).group(1)
    assert pin == ">=4.8,<5", f"setup.py pins tinydb{pin}: JournalTable relies on tinydb 4's private Table"
    assert int(tinydb.__version__.split(".")[0]) == 4, f"tinydb {tinydb.__version__} is installed"


@pytest.mark.parametrize("name", ["_read_table", "_get_next_id"])
def test_the_private_methods_journal_table_uses_still_exist(name):
    method = getattr(Table, name, None)
    assert callable(method), f"tinydb.table.Table.{name} is gone: JournalTable's override no longer applies"
    assert list(inspect.signature(method).parameters) == ["self"], f"Table.{name} changed its parameters"


def test_next_id_is_the_cached_counter_that_get_next_id_keeps():
    # JournalTable sets `_next_id = None` after inserting a Document with its own id, as
    # tinydb's insert does, so that the next id is counted again from the table.
    table = TinyDB(storage=MemoryStorage).table("t")
    assert table._next_id is None, "Table._next_id is not a counter that starts empty"
    assert table._get_next_id() == 1 and table._next_id == 2
    table.insert(tinydb.table.Document({"n": 1}, doc_id=7))
    assert table._next_id is None and table._get_next_id() == 8


def test_every_reader_goes_through_read_table():
    # JournalTable hands tinydb the journal's live table from `_read_table`; a reader that
    # stopped calling it would read around the journal.
    calls = []

    class Counting(Table):
        def _read_table(self):
            calls.append(1)
            return super()._read_table()

    class DB(TinyDB):
        table_class = Counting

    table = DB(storage=MemoryStorage).table("t")
    table.insert({"n": 1})
    for name, read in (("all", lambda: table.all()), ("search", lambda: table.search(where("n") == 1)),
                       ("get", lambda: table.get(doc_id=1)), ("contains", lambda: table.contains(doc_id=1)),
                       ("len", lambda: len(table)), ("iter", lambda: list(table))):
        table.clear_cache()
        before = len(calls)
        assert read(), name
        assert len(calls) > before, f"Table.{name} no longer reads through _read_table"

