-- for_you() seeks graphrec_picks' primary key on (run_id, user_id): the first version joined
-- graphrec_current, and the planner then scanned the index entries of every stored run (31 ms instead of
-- 0.5 ms at the demo scale). Also brings databases created from an earlier 0003 up to date.
-- Same result shape, same contract: see 0003's opening comment.

ALTER TABLE graphrec_current ADD COLUMN IF NOT EXISTS switched_at timestamptz;

CREATE OR REPLACE FUNCTION for_you(p_user_id bigint, p_limit integer DEFAULT 20)
RETURNS TABLE (
    rank integer, good_id bigint, title text, domain text, image_url text, score real,
    reason text, reason_detail jsonb, is_fallback boolean, run_id bigint, model_version text
)
LANGUAGE sql STABLE AS $$
    SELECT p.rank, p.good_id, g.title, g.domain, g.image_url, p.score,
           p.reason, p.reason_detail, p.is_fallback, p.run_id, r.model_version
    FROM graphrec_picks p
    JOIN graphrec_runs r ON r.id = p.run_id
    JOIN goods g ON g.id = p.good_id
    WHERE p.run_id = (SELECT c.run_id FROM graphrec_current c)
      AND p.user_id = p_user_id
      AND g.deleted_at IS NULL
    ORDER BY p.rank
    LIMIT p_limit
$$;
