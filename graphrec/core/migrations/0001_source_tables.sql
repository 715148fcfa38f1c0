-- The Goodsend source tables graphrec reads. No foreign keys or uniqueness on purpose: the app's data
-- (or views over it) can hold duplicates and dangling references, and graphrec finds, counts and skips them.

-- The shop domain of a good, derived from its URL: the host without "www.", or "@handle" for an
-- Instagram profile URL. NULL when the URL cannot be parsed. Kept in SQL so views can use it too.
CREATE OR REPLACE FUNCTION graphrec_domain(url text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN host IS NULL OR host !~ '^[a-z0-9-]+(\.[a-z0-9-]+)+$' THEN NULL
        WHEN host = 'instagram.com' AND handle IS NOT NULL AND handle NOT IN ('p', 'reel', 'reels', 'stories', 'explore', 'tv')
            THEN '@' || lower(handle)
        ELSE host
    END
    FROM (
        SELECT regexp_replace(lower(substring(url FROM '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?([^/?#:]+)')),
                              '^www\.', '') AS host,
               substring(url FROM '^[A-Za-z]+://(?:www\.)?instagram\.com/([A-Za-z0-9._]+)') AS handle
    ) AS parts
$$;

CREATE TABLE users (
    id bigint PRIMARY KEY,
    name text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE goods (
    id bigint PRIMARY KEY,
    title text NOT NULL DEFAULT '',
    url text NOT NULL DEFAULT '',
    domain text GENERATED ALWAYS AS (graphrec_domain(url)) STORED,
    image_url text,
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);

-- The image embedding: pgvector's `vector` where the extension is available (no fixed dimension, so a
-- wrong-sized row is stored and reported rather than refused), plain real[] elsewhere.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
        CREATE EXTENSION IF NOT EXISTS vector;
        ALTER TABLE goods ADD COLUMN embedding vector;
    ELSE
        ALTER TABLE goods ADD COLUMN embedding real[];
    END IF;
END
$$;

CREATE TABLE collections (
    id bigint PRIMARY KEY,
    owner_id bigint NOT NULL,
    title text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE collection_goods (
    collection_id bigint NOT NULL,
    good_id bigint NOT NULL,
    added_at timestamptz NOT NULL DEFAULT now()
);

-- source: where the save was made: 'external' (a link from outside the app), 'explore', 'friend', 'search'...
CREATE TABLE saves (
    user_id bigint NOT NULL,
    good_id bigint NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT now(),
    source text NOT NULL DEFAULT 'external'
);

CREATE TABLE follows (
    follower_id bigint NOT NULL,
    followee_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX saves_user_time ON saves (user_id, saved_at);
CREATE INDEX saves_good ON saves (good_id);
CREATE INDEX collection_goods_collection ON collection_goods (collection_id);
CREATE INDEX follows_follower ON follows (follower_id);
