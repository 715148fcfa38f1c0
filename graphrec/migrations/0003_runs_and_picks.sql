-- graphrec's own tables: every job it runs (with counts and metrics) and the picks each recommend run wrote.
-- Picks of a run are invisible until graphrec_current points at that run, so one UPDATE swaps a whole day.

CREATE TABLE graphrec_runs (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,                       -- 'recommend', 'evaluate', 'train', 'retrain'
    model_version text,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    status text NOT NULL DEFAULT 'running',   -- 'running', 'succeeded', 'failed'
    counts jsonb NOT NULL DEFAULT '{}'::jsonb,
    metrics jsonb NOT NULL DEFAULT '{}'::jsonb,
    error text
);

CREATE INDEX graphrec_runs_kind_started ON graphrec_runs (kind, started_at DESC);

CREATE TABLE graphrec_picks (
    run_id bigint NOT NULL REFERENCES graphrec_runs (id) ON DELETE CASCADE,
    user_id bigint NOT NULL,
    rank integer NOT NULL,                    -- 1 is the top pick
    good_id bigint NOT NULL,
    score real NOT NULL,
    reason text NOT NULL,                     -- in words: "because you saved <title> in <collection>"
    reason_detail jsonb NOT NULL,             -- structured: {"kind": "good", "good_id": ..., ...}
    is_fallback boolean NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, user_id, rank)
);

-- Exactly one row: the run whose picks the app serves.
CREATE TABLE graphrec_current (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    run_id bigint REFERENCES graphrec_runs (id)
);
INSERT INTO graphrec_current (run_id) VALUES (NULL);

-- The one query the app reads: today's picks for a user, best first.
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
    ORDER BY p.rank
    LIMIT p_limit
$$;
