-- etl's queries: reading the source tables (etl.source) and loading them (etl.write).
-- Times travel as int64 unix seconds; a NULL time becomes 9223372036854775807 (etl.tables.NO_TIME).

-- name: embedding_type
SELECT format_type(atttypid, atttypmod) AS t
FROM pg_attribute
WHERE attrelid = 'goods'::regclass AND attname = 'embedding';

-- name: embeddings_vector
-- pgvector's own binary form: half the bytes of real[] and no cast on the server.
SELECT embedding FROM goods ORDER BY id;

-- name: embeddings_real
SELECT embedding::real[] FROM goods ORDER BY id;

-- name: users
SELECT id, coalesce(floor(extract(epoch FROM created_at))::bigint, 9223372036854775807)
FROM users
ORDER BY id;

-- name: user_names
SELECT name FROM users ORDER BY id;

-- name: goods
SELECT id, title, url, domain, image_url,
       coalesce(floor(extract(epoch FROM created_at))::bigint, 9223372036854775807),
       coalesce(floor(extract(epoch FROM deleted_at))::bigint, 9223372036854775807)
FROM goods
ORDER BY id;

-- name: collections
SELECT id, owner_id, title, coalesce(floor(extract(epoch FROM created_at))::bigint, 9223372036854775807)
FROM collections
ORDER BY id;

-- name: save_sources
SELECT DISTINCT source FROM saves ORDER BY 1;

-- name: collection_goods
SELECT collection_id, good_id, coalesce(floor(extract(epoch FROM added_at))::bigint, 9223372036854775807)
FROM collection_goods;

-- name: saves
-- Sources travel as their position in %(sources)s (save_sources), so saves come in one fixed-width COPY.
SELECT user_id, good_id, coalesce(floor(extract(epoch FROM saved_at))::bigint, 9223372036854775807),
       array_position(%(sources)s::text[], source)::bigint - 1
FROM saves
ORDER BY saved_at, user_id, good_id;

-- name: follows
SELECT follower_id, followee_id, coalesce(floor(extract(epoch FROM created_at))::bigint, 9223372036854775807)
FROM follows;

-- name: demo_user_interests
SELECT user_id, style, weight FROM demo_user_interests ORDER BY user_id, style;

-- name: demo_good_styles
SELECT good_id, style FROM demo_good_styles ORDER BY good_id;

-- name: empty_source_tables
TRUNCATE follows, saves, collection_goods, collections, goods, users, demo_user_interests, demo_good_styles;

-- name: analyze_source_tables
ANALYZE follows, saves, collection_goods, collections, goods, users;
