-- Every statement the web layer runs (the API, the vibe-check page, the tiles), loaded once by queries.py.
-- All are reads; parameters are psycopg's named placeholders, and a literal percent sign is written twice.

-- name: for_you
-- A user's picks as the finished JSON body (schemas.ForYou): Postgres builds it, one round trip, one text
-- value. for_you() and the graphrec_current lookups run in one statement, so they see one snapshot: the
-- body holds one run's picks, whichever side of a swap the statement started on. tile_url is the tile
-- route's path with a {good_id} slot (routers/tiles.py). Titles are cut as graphrec.core.rules.short_title cuts
-- them (max_title characters, the last an ellipsis).
SELECT EXISTS (SELECT 1 FROM users WHERE id = %(user_id)s) AS known,
       json_build_object(
           'user_id', %(user_id)s::bigint,
           'run_id', (SELECT run_id FROM graphrec_current),
           'model_version', (SELECT r.model_version FROM graphrec_current c
                             JOIN graphrec_runs r ON r.id = c.run_id),
           'picks', coalesce((
               SELECT json_agg(json_build_object(
                   'rank', f.rank, 'good_id', f.good_id,
                   'title', CASE WHEN length(f.title) > %(max_title)s
                                 THEN left(f.title, %(max_title)s - 1) || %(ellipsis)s ELSE f.title END,
                   'domain', f.domain,
                   'image_url', f.image_url, 'tile_url', replace(%(tile_url)s, '{good_id}', f.good_id::text),
                   'score', f.score, 'reason', f.reason, 'reason_detail', f.reason_detail,
                   'is_fallback', f.is_fallback) ORDER BY f.rank)
               FROM for_you(%(user_id)s, %(limit)s) f), '[]'::json)
       )::text AS body;

-- name: current_run
SELECT run_id FROM graphrec_current;

-- name: good_and_run
-- The current run and whether the good exists and is not deleted, in one snapshot.
SELECT (SELECT run_id FROM graphrec_current) AS run_id,
       EXISTS (SELECT 1 FROM goods WHERE id = %(good_id)s AND deleted_at IS NULL) AS known;

-- name: live_goods
-- Goods the API may show: deleted ones are left out.
SELECT id, title, domain, image_url FROM goods WHERE id = ANY(%(ids)s) AND deleted_at IS NULL;

-- name: holders
-- Who already has the good: its savers and the owners of collections holding it.
SELECT user_id FROM saves WHERE good_id = %(good_id)s
UNION
SELECT c.owner_id FROM collection_goods cg JOIN collections c ON c.id = cg.collection_id
WHERE cg.good_id = %(good_id)s;

-- name: user_names
SELECT id, name FROM users WHERE id = ANY(%(ids)s) ORDER BY name, id;

-- name: user_exists
SELECT id FROM users WHERE id = %(id)s;

-- name: user
-- The page's header: a user and their counts.
SELECT u.id, u.name, u.created_at,
       (SELECT count(DISTINCT good_id) FROM saves WHERE user_id = u.id) AS goods,
       (SELECT count(*) FROM collections WHERE owner_id = u.id) AS collections,
       (SELECT count(*) FROM follows WHERE follower_id = u.id) AS following,
       (SELECT count(*) FROM follows WHERE followee_id = u.id) AS followers
FROM users u WHERE u.id = %(user_id)s;

-- name: recent_saves
-- A user's newest saved goods, each once, deleted ones included (the page marks them).
SELECT s.good_id, s.saved_at, g.title, g.domain, g.image_url, g.deleted_at IS NOT NULL AS deleted
FROM (SELECT good_id, max(saved_at) AS saved_at FROM saves WHERE user_id = %(user_id)s
      GROUP BY good_id ORDER BY saved_at DESC LIMIT %(n)s) s
LEFT JOIN goods g ON g.id = s.good_id
ORDER BY s.saved_at DESC;

-- name: saved_domains
SELECT DISTINCT g.domain FROM saves s JOIN goods g ON g.id = s.good_id
WHERE s.user_id = %(user_id)s AND g.domain IS NOT NULL;

-- name: collections
-- A user's collections, most recently added to first, each with its newest goods for the strip.
SELECT c.id, c.title, count(cg.good_id) AS goods,
       (array_agg(cg.good_id ORDER BY cg.added_at DESC) FILTER (WHERE cg.good_id IS NOT NULL))[1:%(tiles)s]
           AS good_ids
FROM collections c LEFT JOIN collection_goods cg ON cg.collection_id = c.id
WHERE c.owner_id = %(user_id)s
GROUP BY c.id, c.title
ORDER BY max(cg.added_at) DESC NULLS LAST, c.id
LIMIT %(n)s;

-- name: goods
-- Goods shown small on the page (collection strips, the saves reasons point at), deleted ones included.
SELECT id, title, domain, image_url FROM goods WHERE id = ANY(%(ids)s);

-- name: runs
-- The recommend runs that still have picks, newest first.
SELECT r.id, r.model_version, r.started_at, r.finished_at, r.status, r.counts,
       r.id = (SELECT run_id FROM graphrec_current) AS current
FROM graphrec_runs r
WHERE r.kind = 'recommend' AND EXISTS (SELECT 1 FROM graphrec_picks p WHERE p.run_id = r.id)
ORDER BY r.id DESC LIMIT 30;

-- name: run_picks
-- Picks of any kept run, not only the current one: that is what makes two runs comparable.
SELECT p.rank, p.good_id, g.title, g.domain, g.image_url, g.deleted_at IS NOT NULL AS deleted,
       p.score, p.reason, p.reason_detail, p.is_fallback
FROM graphrec_picks p LEFT JOIN goods g ON g.id = p.good_id
WHERE p.run_id = %(run_id)s AND p.user_id = %(user_id)s
ORDER BY p.rank LIMIT 100;

-- name: random_users
-- Eligible users are those the current run picked for; before any run, those with enough saves.
SELECT user_id FROM (
    SELECT p.user_id FROM graphrec_picks p
    WHERE p.run_id = (SELECT run_id FROM graphrec_current) AND p.rank = 1
    UNION ALL
    SELECT user_id FROM saves
    WHERE NOT EXISTS (SELECT 1 FROM graphrec_current WHERE run_id IS NOT NULL)
    GROUP BY user_id HAVING count(DISTINCT good_id) > %(min_goods)s
) eligible
ORDER BY random() LIMIT %(n)s;

-- name: users_by_name
-- q has its LIKE wildcards escaped by the caller: it matches as a plain substring.
SELECT id, name FROM users WHERE name ILIKE '%%' || %(q)s || '%%' ESCAPE '\' ORDER BY name, id LIMIT 30;

-- name: sample_saves
-- Each sample user's newest saved goods, for the strip beside their name.
SELECT u.id AS user_id, g.id, g.title, g.image_url
FROM unnest(%(ids)s::bigint[]) AS u(id)
CROSS JOIN LATERAL (
    SELECT s.good_id, max(s.saved_at) AS saved_at FROM saves s WHERE s.user_id = u.id
    GROUP BY s.good_id ORDER BY saved_at DESC LIMIT %(n)s
) s
JOIN goods g ON g.id = s.good_id
ORDER BY u.id, s.saved_at DESC;

-- name: tile
-- What a good's tile is drawn from: its own title, domain and image embedding (source columns only).
-- Only what a tile can show of the title travels (fetch cuts it to rules.MAX_TITLE_CHARS).
SELECT left(title, 1000) AS title, domain, embedding::real[] AS embedding FROM goods WHERE id = %(good_id)s;
