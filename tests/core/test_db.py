from graphrec.core import db


def test_migrations_are_numbered_and_explained():
    migs = db.migrations()
    assert [m.version for m in migs] == list(range(1, len(migs) + 1))
    assert all(m.sql.lstrip().startswith("--") and m.why for m in migs)


def test_migrate_is_idempotent(db_url):
    with db.connect(db_url) as conn:
        first = db.migrate(conn)
        second = db.migrate(conn)
        applied = db.applied_versions(conn)
    assert [m.version for m in first] == [m.version for m in db.migrations()]
    assert second == []
    assert sorted(applied) == [m.version for m in db.migrations()]


def test_embedding_column_type_follows_pgvector(migrated_url):
    with db.connect(migrated_url) as conn:
        t = conn.execute(
            "SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute "
            "WHERE attrelid = 'goods'::regclass AND attname = 'embedding'"
        ).fetchone()["t"]
        assert t == ("vector" if db.has_pgvector(conn) else "real[]")


def test_redact_hides_password():
    assert db.redact("postgresql://u:secret@h:5432/d") == "postgresql://u:***@h:5432/d"
