-- etl's queries: reading the source tables (etl.source) and loading them (etl.write).
-- Times travel as int64 unix seconds; a NULL time becomes 9223372036854775807 (etl.tables.NO_TIME), 'infinity'
-- 9223372036854775806 (etl.tables.INFINITE_TIME) and '-infinity' -9223372036854775808 (etl.tables.
-- MINUS_INFINITE_TIME), so no read stops on them and etl.validate names the rows. A NULL id or reference
-- becomes -9223372036854775808 (etl.tables.NULL_ID), found the same way (ids must be positive:
-- graphrec.core.rules).

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
SELECT coalesce(id, '-9223372036854775808'::bigint),
       CASE WHEN created_at IS NULL THEN 9223372036854775807
            WHEN isfinite(created_at) THEN floor(extract(epoch FROM created_at))::bigint
            WHEN created_at > 'epoch' THEN 9223372036854775806 ELSE '-9223372036854775808'::bigint END
FROM users
ORDER BY id;

-- name: user_names
SELECT name FROM users ORDER BY id;

-- name: goods
SELECT coalesce(id, '-9223372036854775808'::bigint), title, url, domain, image_url,
       CASE WHEN created_at IS NULL THEN 9223372036854775807
            WHEN isfinite(created_at) THEN floor(extract(epoch FROM created_at))::bigint
            WHEN created_at > 'epoch' THEN 9223372036854775806 ELSE '-9223372036854775808'::bigint END,
       CASE WHEN deleted_at IS NULL THEN 9223372036854775807
            WHEN isfinite(deleted_at) THEN floor(extract(epoch FROM deleted_at))::bigint
            WHEN deleted_at > 'epoch' THEN 9223372036854775806 ELSE '-9223372036854775808'::bigint END
FROM goods
ORDER BY id;

-- name: collections
SELECT coalesce(id, '-9223372036854775808'::bigint), coalesce(owner_id, '-9223372036854775808'::bigint), title,
       CASE WHEN created_at IS NULL THEN 9223372036854775807
            WHEN isfinite(created_at) THEN floor(extract(epoch FROM created_at))::bigint
            WHEN created_at > 'epoch' THEN 9223372036854775806 ELSE '-9223372036854775808'::bigint END
FROM collections
ORDER BY id;

-- name: save_sources
SELECT DISTINCT coalesce(source, 'external') FROM saves ORDER BY 1;

-- name: collection_goods
SELECT coalesce(collection_id, '-9223372036854775808'::bigint), coalesce(good_id, '-9223372036854775808'::bigint),
       CASE WHEN added_at IS NULL THEN 9223372036854775807
            WHEN isfinite(added_at) THEN floor(extract(epoch FROM added_at))::bigint
            WHEN added_at > 'epoch' THEN 9223372036854775806 ELSE '-9223372036854775808'::bigint END
FROM collection_goods;

-- name: saves
-- Sources travel as their position in %(sources)s (save_sources), so saves come in one fixed-width COPY.
SELECT coalesce(user_id, '-9223372036854775808'::bigint), coalesce(good_id, '-9223372036854775808'::bigint),
       CASE WHEN saved_at IS NULL THEN 9223372036854775807
            WHEN isfinite(saved_at) THEN floor(extract(epoch FROM saved_at))::bigint
            WHEN saved_at > 'epoch' THEN 9223372036854775806 ELSE '-9223372036854775808'::bigint END,
       array_position(%(sources)s::text[], coalesce(source, 'external'))::bigint - 1
FROM saves
ORDER BY saved_at, user_id, good_id;

-- name: follows
SELECT coalesce(follower_id, '-9223372036854775808'::bigint), coalesce(followee_id, '-9223372036854775808'::bigint),
       CASE WHEN created_at IS NULL THEN 9223372036854775807
            WHEN isfinite(created_at) THEN floor(extract(epoch FROM created_at))::bigint
            WHEN created_at > 'epoch' THEN 9223372036854775806 ELSE '-9223372036854775808'::bigint END
FROM follows;

-- name: demo_user_interests
SELECT user_id, style, weight FROM demo_user_interests ORDER BY user_id, style;

-- name: demo_good_styles
SELECT good_id, style FROM demo_good_styles ORDER BY good_id;

-- name: empty_source_tables
TRUNCATE follows, saves, collection_goods, collections, goods, users, demo_user_interests, demo_good_styles;

-- name: analyze_source_tables
ANALYZE follows, saves, collection_goods, collections, goods, users;
