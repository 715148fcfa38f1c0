-- The core's queries: the migration runner (graphrec.core.db), the job lock and the run ledger (graphrec.core.runs;
-- graphrec_runs and graphrec_current, see migration 0003).

-- name: database_exists
SELECT 1 FROM pg_database WHERE datname = %(name)s;

-- name: create_migration_ledger
CREATE TABLE IF NOT EXISTS graphrec_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: migration_ledger_exists
SELECT to_regclass('graphrec_migrations') AS t;

-- name: applied_migrations
SELECT version, name FROM graphrec_migrations ORDER BY version;

-- name: migration_lock
-- Serialises concurrent `db init`s: the second waits for the first's transaction, then sees its versions.
SELECT pg_advisory_xact_lock(%(key)s);

-- name: migration_applied
SELECT 1 FROM graphrec_migrations WHERE version = %(version)s;

-- name: record_migration
INSERT INTO graphrec_migrations (version, name) VALUES (%(version)s, %(name)s);

-- name: has_pgvector
SELECT 1 FROM pg_extension WHERE extname = 'vector';

-- name: try_lock
-- A session advisory lock: released when the session ends, so a killed job drops it with its connection.
SELECT pg_try_advisory_lock(%(key)s) AS ok;

-- name: unlock
-- Released explicitly before the connection closes: a closed session's backend exits asynchronously.
SELECT pg_advisory_unlock(%(key)s) AS ok;

-- name: lock_holder
-- Who holds a job's lock, for the message of the job that was refused (objid is the key's low 32 bits).
SELECT a.pid, a.application_name, a.backend_start
FROM pg_locks l
JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.objid = %(objid)s AND l.granted;

-- name: set_activity
-- Shown in pg_stat_activity.application_name, so an operator sees what a job is doing.
SELECT set_config('application_name', %(text)s, false);

-- name: new_run_id
-- A run id from the sequence, before the run has a row.
SELECT nextval(pg_get_serial_sequence('graphrec_runs', 'id')) AS id;

-- name: record_run
-- A finished run's row; a NULL id takes the next one from the sequence.
INSERT INTO graphrec_runs (id, kind, model_version, started_at, finished_at, status, counts, metrics, error)
VALUES (
    coalesce(%(id)s, nextval(pg_get_serial_sequence('graphrec_runs', 'id'))),
    %(kind)s, %(model_version)s, to_timestamp(%(started_at)s), now(), %(status)s, %(counts)s, %(metrics)s,
    %(error)s
)
RETURNING id;

-- name: current_run
-- The run whose picks the app serves.
SELECT r.* FROM graphrec_current c JOIN graphrec_runs r ON r.id = c.run_id;

-- name: list_runs
-- Runs of one kind, newest first, marking the current one.
SELECT r.*, (r.id = c.run_id) IS TRUE AS current
FROM graphrec_runs r CROSS JOIN graphrec_current c
WHERE r.kind = %(kind)s
ORDER BY r.id DESC;
