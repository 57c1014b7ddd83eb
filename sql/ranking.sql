-- Step 4: the ranking table of a nightly run (`dumn run`), read from the score table that
-- the run has just written (registered as `scores`).
--
-- Per user, the candidates whose p_dislike is at most ${dislike_threshold}, each item
-- once (candidate sources overlap: an item offered twice has one score, up to the last
-- bits of a float, and is ranked once, with its row of the highest ctr, then of the
-- highest p_dislike), ordered by ctr (highest first; ties broken by item_id), the first
-- ${top_k} kept:
--   user_id, rank (1 = best), item_id, ctr, p_dislike, model_version.
-- Within each output file the rows are in (user_id, rank) order. `dumn_rank`
-- (udfs/rank.rs) is ROW_NUMBER() counting each item once: it keeps one item's later rows
-- out without an aggregate over every (user, item). The window sorts every eligible
-- candidate, so only the narrow columns go through it (the run's one model version is a
-- literal, ${model_version}). `dumn run` runs this step in a 64 MB memory pool of its own,
-- beyond which the sort spills to disk, so its memory does not grow with the number of
-- candidates (src/scoring/run.rs, RANKING_MEMORY).
CREATE OR REPLACE VIEW ranking AS
SELECT user_id, rank, item_id, ctr, p_dislike, ${model_version} AS model_version
FROM (
    SELECT
        user_id, item_id, ctr, p_dislike,
        dumn_rank(item_id) OVER (
            PARTITION BY user_id ORDER BY ctr DESC, item_id, p_dislike DESC
        ) AS rank
    FROM scores
    WHERE p_dislike <= ${dislike_threshold}
)
WHERE rank <= ${top_k};
