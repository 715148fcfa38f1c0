-- graphrec's own tables: every job it runs (with counts and metrics) and the picks each recommend run wrote.
-- Picks of a run are invisible until graphrec_current points at that run, so one UPDATE swaps a whole day.
--
-- For readers (the API): read picks only through for_you(user_id, limit) or by joining graphrec_current;
-- a recommend run's row appears only when its picks are complete (status 'succeeded', written in the same
-- transaction as its picks) or when it failed ('failed', no picks). The current run's embeddings are in
-- graphrec.artifacts.run_embeddings_path(artifacts, graphrec_current.run_id). `graphrec rollback` may point
-- graphrec_current at an older run; serving/store.py is the only writer. 0004 redefines for_you() (same shape).

CREATE TABLE graphrec_runs (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,                       -- 'recommend', 'retrain', ...
    model_version text,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
    counts jsonb NOT NULL DEFAULT '{}'::jsonb,
    metrics jsonb NOT NULL DEFAULT '{}'::jsonb,  -- per-stage seconds, the failing stage, ...
    error text
);

CREATE INDEX graphrec_runs_kind_started ON graphrec_runs (kind, started_at DESC);

CREATE TABLE graphrec_picks (
    run_id bigint NOT NULL REFERENCES graphrec_runs (id) ON DELETE CASCADE,
    user_id bigint NOT NULL,
    rank integer NOT NULL,                    -- 1 is the top pick
    good_id bigint NOT NULL,
    score real NOT NULL,                      -- the model's inner product; 0 where it cannot score the pair
    reason text NOT NULL,                     -- in words: "because you saved <title> in <collection>"
    reason_detail jsonb NOT NULL,             -- structured: {"kind": "collection", "good_id": ..., ...}
    is_fallback boolean NOT NULL DEFAULT false,
    -- Also the index for_you() reads through: one range scan per (run, user), already in rank order.
    PRIMARY KEY (run_id, user_id, rank)
);

-- Exactly one row: the run whose picks the app serves.
CREATE TABLE graphrec_current (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    run_id bigint REFERENCES graphrec_runs (id),
    switched_at timestamptz
);
INSERT INTO graphrec_current (run_id) VALUES (NULL);

-- The one query the app reads: today's picks for a user, best first. One statement, so one snapshot: it
-- sees the run that was current when it started, whole. Goods deleted since the run are left out.
CREATE FUNCTION for_you(p_user_id bigint, p_limit integer DEFAULT 20)
RETURNS TABLE (
    rank integer, good_id bigint, title text, domain text, image_url text, score real,
    reason text, reason_detail jsonb, is_fallback boolean, run_id bigint, model_version text
)
LANGUAGE sql STABLE AS $$
    SELECT p.rank, p.good_id, g.title, g.domain, g.image_url, p.score,
           p.reason, p.reason_detail, p.is_fallback, p.run_id, r.model_version
    FROM graphrec_current c
    JOIN graphrec_picks p ON p.run_id = c.run_id AND p.user_id = p_user_id
    JOIN graphrec_runs r ON r.id = p.run_id
    JOIN goods g ON g.id = p.good_id
    WHERE g.deleted_at IS NULL
    ORDER BY p.rank
    LIMIT p_limit
$$;
