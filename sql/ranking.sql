-- Step 4: the ranking table of a nightly run (`dumn run`), read from the score table that
-- the run has just written (registered as `scores`).
--
-- Per user, the candidates whose p_dislike is at most ${dislike_threshold}, each item
-- once (candidate sources overlap: an item offered twice has one score, up to the last
-- bits of a float, and is ranked once), ordered by ctr (highest first; ties broken by
-- item_id), the first ${top_k} kept:
--   user_id, rank (1 = best), item_id, ctr, p_dislike, model_version.
-- Within each output file the rows are in (user_id, rank) order. The window sorts every
-- eligible candidate, so only the narrow columns go through it (the run's one model
-- version is a literal, ${model_version}). `dumn run` runs this step in a 64 MB memory
-- pool of its own, beyond which the aggregate and the sort spill to disk, so its memory
-- does not grow with the number of candidates (src/scoring/run.rs, RANKING_MEMORY).
CREATE OR REPLACE VIEW ranking AS
SELECT user_id, rank, item_id, ctr, p_dislike, ${model_version} AS model_version
FROM (
    SELECT
        user_id, item_id, ctr, p_dislike,
        ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY ctr DESC, item_id) AS rank
    FROM (
        SELECT user_id, item_id, max(ctr) AS ctr, max(p_dislike) AS p_dislike
        FROM scores
        WHERE p_dislike <= ${dislike_threshold}
        GROUP BY user_id, item_id
    )
)
WHERE rank <= ${top_k};
