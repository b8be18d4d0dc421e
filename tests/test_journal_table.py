"""JournalTable (inserts, updates by id and lookups straight to the journal) must behave
exactly as tinydb's own Table does, before and after a reopen."""
from hypothesis import given, settings
from hypothesis import strategies as st
from tinydb import TinyDB, where
from tinydb.storages import MemoryStorage
from tinydb.table import Table

from kiosk.store.storage import DurableDB, DurableStorage, journal_path

docs = st.fixed_dictionaries({"n": st.integers(0, 5), "s": st.text(max_size=5)})
ops = st.lists(st.one_of(
    st.tuples(st.just("insert"), docs),
    st.tuples(st.just("insert_multiple"), st.lists(docs, max_size=4)),
    st.tuples(st.just("update_ids"), st.fixed_dictionaries({"n": st.integers(0, 5)}),
              st.lists(st.integers(1, 12), max_size=4)),
    st.tuples(st.just("update_cond"), st.fixed_dictionaries({"s": st.text(max_size=3)}), st.integers(0, 5)),
    st.tuples(st.just("remove"), st.integers(0, 5)),
    st.tuples(st.just("get_ids"), st.lists(st.integers(1, 12), max_size=4)),
), max_size=25)


def apply(table, op):
    kind = op[0]
    if kind == "insert":
        return table.insert(op[1])
    if kind == "insert_multiple":
        return table.insert_multiple(op[1])
    if kind == "update_ids":
        return sorted(table.update(op[1], doc_ids=op[2]))
    if kind == "update_cond":
        return sorted(table.update(op[1], where("n") == op[2]))
    if kind == "remove":
        return sorted(table.remove(where("n") == op[1]))
    return sorted((d.doc_id, dict(d)) for d in table.get(doc_ids=op[1]))


def contents(table):
    return sorted((d.doc_id, dict(d)) for d in table.all())


@settings(max_examples=60, deadline=None)
@given(ops)
def test_journal_table_matches_tinydb_table(tmp_path_factory, sequence):
    folder = tmp_path_factory.mktemp("db")
    memory = TinyDB(storage=MemoryStorage)
    reference = memory.table("t")
    db = DurableDB(folder, compact_every=3)
    for op in sequence:
        assert apply(db.table("t"), op) == apply(reference, op), op
        assert contents(db.table("t")) == contents(reference)
    db.close()
    reopened = DurableDB(folder)
    assert contents(reopened.table("t")) == contents(reference)
    # Ids go on from the highest left, as for tinydb's Table opened afresh.
    assert reopened.table("t").insert({"n": 9}) == Table(memory.storage, "t").insert({"n": 9})
    reopened.close()


def test_an_update_by_id_writes_only_that_document(tmp_path):
    db = DurableDB(tmp_path / "db", compact_every=10_000)
    table = db.table("t")
    table.insert_multiple({"n": i, "pad": "x" * 100} for i in range(200))
    before = journal_path(tmp_path / "db", 0).stat().st_size
    table.update({"n": -1}, doc_ids=[7])
    assert journal_path(tmp_path / "db", 0).stat().st_size - before < 250
    assert table.get(doc_id=7)["n"] == -1


def test_other_storages_keep_tinydb_behaviour():
    db = TinyDB(storage=MemoryStorage)
    db.table_class = DurableDB.table_class
    table = db.table("t")
    assert table.insert({"n": 1}) == 1
    assert table.update({"n": 2}, doc_ids=[1]) == [1]
    assert table.get(doc_ids=[1]) == [{"n": 2}]
    assert not isinstance(db.storage, DurableStorage)
