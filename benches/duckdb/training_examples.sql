-- DuckDB's form of sql/training_examples.sql, for ci/bench-data.sh only. DuckDB has no
-- dumn_history, so this builds the same rows the way DuckDB does best: one ordered list
-- per user and kind, the number of events strictly before each impression from a window
-- (RANGE ... 1 PRECEDING over nanoseconds), and a slice of the list. Its output was checked
-- equal to dumn's (row count, list lengths and hashes) on the benchmark data.
CREATE OR REPLACE VIEW training_examples AS
WITH histories AS (
    SELECT
        user_id,
        coalesce(list(item_id ORDER BY ts, item_id) FILTER (WHERE kind = 'click'), []) AS clicks,
        coalesce(list(item_id ORDER BY ts, item_id) FILTER (WHERE kind = 'unclick'), []) AS unclicks,
        coalesce(list(item_id ORDER BY ts, item_id) FILTER (WHERE kind = 'like'), []) AS likes,
        coalesce(list(item_id ORDER BY ts, item_id) FILTER (WHERE kind = 'dislike'), []) AS dislikes
    FROM feedback
    GROUP BY user_id
),
item_dislikes AS (
    SELECT user_id, item_id, max(ts) AS last_dislike
    FROM feedback
    WHERE kind = 'dislike'
    GROUP BY user_id, item_id
),
counted AS (
    SELECT
        user_id, item_id, ts, kind,
        coalesce(count(*) FILTER (WHERE kind = 'click') OVER before, 0) AS n_click,
        coalesce(count(*) FILTER (WHERE kind = 'unclick') OVER before, 0) AS n_unclick,
        coalesce(count(*) FILTER (WHERE kind = 'like') OVER before, 0) AS n_like,
        coalesce(count(*) FILTER (WHERE kind = 'dislike') OVER before, 0) AS n_dislike
    FROM (SELECT *, epoch_ns(ts) AS ts_ns FROM feedback)
    WINDOW before AS (
        PARTITION BY user_id ORDER BY ts_ns
        RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    )
)
SELECT
    r.user_id,
    r.item_id,
    r.ts,
    r.kind = 'click' AS clicked,
    coalesce(d.last_dislike >= r.ts, false) AS disliked,
    list_reverse(list_slice(h.clicks, greatest(r.n_click - ${seq_len} + 1, 1), r.n_click)) AS click_seq,
    list_reverse(list_slice(h.unclicks, greatest(r.n_unclick - ${seq_len} + 1, 1), r.n_unclick)) AS unclick_seq,
    list_reverse(list_slice(h.likes, greatest(r.n_like - ${seq_len} + 1, 1), r.n_like)) AS like_seq,
    list_reverse(list_slice(h.dislikes, greatest(r.n_dislike - ${seq_len} + 1, 1), r.n_dislike)) AS dislike_seq,
    u.* EXCLUDE (user_id),
    i.* EXCLUDE (item_id)
FROM counted AS r
JOIN histories AS h ON h.user_id = r.user_id
LEFT JOIN item_dislikes AS d ON d.user_id = r.user_id AND d.item_id = r.item_id
LEFT JOIN users AS u ON u.user_id = r.user_id
LEFT JOIN items AS i ON i.item_id = r.item_id
WHERE r.kind IN ('click', 'unclick');
