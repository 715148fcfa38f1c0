-- Serving's queries: the rows the daily picks need (serving.reads) and the write-back of a run's picks
-- (serving.store). Reads that go through binary COPY select bigint NOT NULL columns only. Rows etl reports
-- and skips (graphrec.core.rules: ids below min_id or NULL, infinite or future times) are left out here too.

-- name: now
SELECT extract(epoch FROM now())::bigint AS t;

-- name: domain_names
-- The domains of live goods, in the order their codes in live_goods count them.
SELECT DISTINCT domain FROM goods WHERE deleted_at IS NULL AND domain IS NOT NULL ORDER BY domain;

-- name: live_goods
-- Goods not deleted, by id, with their domain's position in domain_names (-1 without a domain).
SELECT g.id::bigint, coalesce(d.code, -1)::bigint
FROM goods g
LEFT JOIN (
    SELECT domain, row_number() OVER (ORDER BY domain) - 1 AS code
    FROM (SELECT DISTINCT domain FROM goods WHERE deleted_at IS NULL AND domain IS NOT NULL) x
) d ON d.domain = g.domain
WHERE g.deleted_at IS NULL AND g.id >= %(min_id)s
ORDER BY g.id;

-- name: user_ids
SELECT id::bigint FROM users WHERE id >= %(min_id)s ORDER BY id;

-- name: saves
SELECT user_id::bigint, good_id::bigint, extract(epoch FROM saved_at)::bigint
FROM saves
WHERE user_id >= %(min_id)s AND good_id >= %(min_id)s AND isfinite(saved_at)
  AND saved_at <= now() + make_interval(secs => %(future_s)s);

-- name: saves_of_users
-- The given users' saves, and everyone's of the last %(recent)s days (the fallbacks read those).
SELECT user_id::bigint, good_id::bigint, extract(epoch FROM saved_at)::bigint
FROM saves
WHERE (user_id = ANY(%(users)s) OR saved_at >= now() - make_interval(days => %(recent)s))
  AND user_id >= %(min_id)s AND good_id >= %(min_id)s AND isfinite(saved_at)
  AND saved_at <= now() + make_interval(secs => %(future_s)s);

-- name: owned_goods
-- (owner, collection, good) of every collection membership, in the order the goods were added.
SELECT c.owner_id::bigint, cg.collection_id::bigint, cg.good_id::bigint
FROM collection_goods cg
JOIN collections c ON c.id = cg.collection_id
WHERE (%(users)s::bigint[] IS NULL OR c.owner_id = ANY(%(users)s))
  AND c.owner_id >= %(min_id)s AND cg.collection_id >= %(min_id)s AND cg.good_id >= %(min_id)s
ORDER BY cg.added_at, cg.collection_id;

-- name: follows
SELECT follower_id::bigint, followee_id::bigint
FROM follows
WHERE (%(users)s::bigint[] IS NULL OR follower_id = ANY(%(users)s))
  AND follower_id >= %(min_id)s AND followee_id >= %(min_id)s;

-- name: recent_picks
-- Picks served in the last %(days)s days, by any succeeded recommend run (the repeat filter).
SELECT p.user_id, p.good_id
FROM graphrec_picks p
JOIN graphrec_runs r ON r.id = p.run_id
WHERE r.kind = 'recommend' AND r.status = 'succeeded'
  AND r.started_at >= now() - make_interval(days => %(days)s)
  AND (%(users)s::bigint[] IS NULL OR p.user_id = ANY(%(users)s));

-- name: good_titles
SELECT id, title FROM goods WHERE id = ANY(%(ids)s);

-- name: collection_titles
SELECT id, title FROM collections WHERE id = ANY(%(ids)s);

-- name: user_names
SELECT id, name FROM users WHERE id = ANY(%(ids)s);

-- name: for_you
-- The app's read: the current run's picks for one user.
SELECT * FROM for_you(%(user)s, %(limit)s);

-- name: drop_staging
DROP TABLE IF EXISTS pg_temp.graphrec_picks_staging;

-- name: create_staging
-- Session-private: invisible to every other session, gone with this one.
CREATE TEMP TABLE graphrec_picks_staging (
    user_id bigint NOT NULL,
    rank integer NOT NULL,
    good_id bigint NOT NULL,
    score real NOT NULL,
    reason text NOT NULL,
    reason_detail jsonb NOT NULL,
    is_fallback boolean NOT NULL
);

-- name: publish_staged
INSERT INTO graphrec_picks (run_id, user_id, rank, good_id, score, reason, reason_detail, is_fallback)
SELECT %(run)s, user_id, rank, good_id, score, reason, reason_detail, is_fallback
FROM pg_temp.graphrec_picks_staging;

-- name: set_current
UPDATE graphrec_current SET run_id = %(run)s, switched_at = now();

-- name: lock_current
-- The current run, locked against a concurrent swap until the transaction ends.
SELECT run_id FROM graphrec_current FOR UPDATE;

-- name: share_current
-- The current run, kept current (a swap waits) until the transaction ends.
SELECT run_id FROM graphrec_current FOR SHARE;

-- name: previous_run
-- The newest succeeded recommend run with picks before the given one (any, when it is NULL).
SELECT id
FROM graphrec_runs r
WHERE kind = 'recommend' AND status = 'succeeded'
  AND id < coalesce(%(before)s, 9223372036854775807)
  AND EXISTS (SELECT 1 FROM graphrec_picks p WHERE p.run_id = r.id)
ORDER BY id DESC
LIMIT 1;

-- name: run_to_serve
-- What rollback must know of a run it is asked to serve.
SELECT status, kind, EXISTS (SELECT 1 FROM graphrec_picks p WHERE p.run_id = r.id) AS has_picks
FROM graphrec_runs r
WHERE id = %(run)s;

-- name: delete_user_picks
DELETE FROM graphrec_picks WHERE run_id = %(run)s AND user_id = %(user)s;

-- name: prune_runs
-- Recommend runs that are not current, older than %(days)s days (the repeat filter reads those), and not
-- among the newest %(keep)s succeeded ones; their picks go with them (ON DELETE CASCADE).
DELETE FROM graphrec_runs r
WHERE kind = 'recommend'
  AND id IS DISTINCT FROM (SELECT run_id FROM graphrec_current)
  AND started_at < now() - make_interval(days => %(days)s)
  AND id NOT IN (
      SELECT id FROM graphrec_runs WHERE kind = 'recommend' AND status = 'succeeded' ORDER BY id DESC LIMIT %(keep)s
  )
RETURNING id;

-- name: succeeded_runs
SELECT id FROM graphrec_runs WHERE kind = 'recommend' AND status = 'succeeded';

-- One user's For You world (serving.reads.read_user_world): the rows one rescore needs, never the catalog.

-- name: saves_by_users
-- Every save of the given users.
SELECT user_id::bigint, good_id::bigint, extract(epoch FROM saved_at)::bigint
FROM saves
WHERE user_id = ANY(%(users)s)
  AND user_id >= %(min_id)s AND good_id >= %(min_id)s AND isfinite(saved_at)
  AND saved_at <= now() + make_interval(secs => %(future_s)s);

-- name: co_savers
-- Users who saved one of the given goods (through saves_good), the given users left out.
SELECT DISTINCT user_id::bigint
FROM saves
WHERE good_id = ANY(%(goods)s) AND NOT user_id = ANY(%(users)s) AND user_id >= %(min_id)s;

-- name: fresh_goods
-- Goods created in the last %(fresh_days)s days (not deleted) with at most %(fresh_max)s saves.
SELECT g.id::bigint
FROM goods g
WHERE g.deleted_at IS NULL AND g.id >= %(min_id)s
  AND g.created_at >= now() - make_interval(days => %(fresh_days)s) AND g.created_at <= now()
  AND (SELECT count(*) FROM saves s WHERE s.good_id = g.id) <= %(fresh_max)s;

-- name: fresh_goods_since
-- fresh_goods created after %(since)s (unix s): with a run's fresh pool (serving.reads.FreshPool) only these
-- are read from the table (through goods_created_live), not every good.
SELECT g.id::bigint
FROM goods g
WHERE g.deleted_at IS NULL AND g.id >= %(min_id)s AND g.created_at > to_timestamp(%(since)s)
  AND g.created_at >= now() - make_interval(days => %(fresh_days)s) AND g.created_at <= now()
  AND (SELECT count(*) FROM saves s WHERE s.good_id = g.id) <= %(fresh_max)s;

-- name: fresh_goods_among
-- The given goods that are fresh_goods now (a run's fresh pool, checked before use).
SELECT g.id::bigint
FROM goods g
WHERE g.id = ANY(%(goods)s) AND g.deleted_at IS NULL AND g.id >= %(min_id)s
  AND g.created_at >= now() - make_interval(days => %(fresh_days)s) AND g.created_at <= now()
  AND (SELECT count(*) FROM saves s WHERE s.good_id = g.id) <= %(fresh_max)s;

-- name: popular_recent_goods
-- The goods saved most in the last %(days)s days (For You's popularity top-up draws from these).
SELECT good_id::bigint
FROM saves
WHERE saved_at >= now() - make_interval(days => %(days)s) AND good_id >= %(min_id)s AND isfinite(saved_at)
GROUP BY good_id
ORDER BY count(DISTINCT user_id) DESC, good_id DESC
LIMIT %(limit)s;

-- name: collections_holding
-- (collection, good, added) of every good in the collections that hold one of the given goods.
SELECT cg.collection_id::bigint, cg.good_id::bigint, extract(epoch FROM cg.added_at)::bigint
FROM collection_goods cg
WHERE cg.collection_id IN (SELECT collection_id FROM collection_goods WHERE good_id = ANY(%(goods)s))
  AND cg.collection_id >= %(min_id)s AND cg.good_id >= %(min_id)s AND isfinite(cg.added_at);

-- name: goods_rows
-- The given goods that are not deleted: ids, created_at and domains ('' for none) as one row of arrays, by id.
-- Their domain codes are numbered over these goods alone (serving.reads.read_user_world): numbering every
-- live good's domain, as live_goods does, scanned the catalogue twice per rescore.
SELECT coalesce(array_agg(g.id::bigint ORDER BY g.id), '{}') AS id,
       coalesce(array_agg(extract(epoch FROM g.created_at)::bigint ORDER BY g.id), '{}') AS created,
       coalesce(array_agg(coalesce(g.domain, '') ORDER BY g.id), '{}') AS domain
FROM goods g
WHERE g.id = ANY(%(goods)s) AND g.deleted_at IS NULL AND isfinite(g.created_at);

-- name: goods_embeddings
-- The given goods' CLIP embeddings as real[] (pgvector's vector casts to it), one dimension, no NULL element.
SELECT id::bigint, embedding::real[]
FROM goods
WHERE id = ANY(%(goods)s) AND embedding IS NOT NULL AND array_ndims(embedding::real[]) = 1
  AND cardinality(embedding::real[]) = %(dim)s AND array_position(embedding::real[], NULL) IS NULL
ORDER BY id;

-- name: embedding_dim
SELECT cardinality(embedding::real[]) AS d FROM goods WHERE id = ANY(%(goods)s) AND embedding IS NOT NULL
GROUP BY 1 ORDER BY count(*) DESC LIMIT 1;

-- name: goods_popularity
-- Users who saved each given good: in all, and whose first save of it is in the last %(w0)s, %(w1)s, %(w2)s days.
SELECT good_id::bigint, count(*)::bigint,
       (count(*) FILTER (WHERE first >= now() - make_interval(days => %(w0)s)))::bigint,
       (count(*) FILTER (WHERE first >= now() - make_interval(days => %(w1)s)))::bigint,
       (count(*) FILTER (WHERE first >= now() - make_interval(days => %(w2)s)))::bigint
FROM (
    SELECT good_id, user_id, min(saved_at) AS first
    FROM saves
    WHERE good_id = ANY(%(goods)s) AND user_id >= %(min_id)s AND isfinite(saved_at)
      AND saved_at <= now() + make_interval(secs => %(future_s)s)
    GROUP BY good_id, user_id
) s
GROUP BY good_id;
