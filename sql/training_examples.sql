-- Step 2a: point-in-time training examples.
--
-- One row per impression (user_id, item_id, ts, deduplicated as in the feedback view),
-- with:
--   clicked      the CTR label;
--   disliked     the dislike label: the user disliked this item at or after the impression;
--   click_seq, unclick_seq, like_seq, dislike_seq
--                the item ids of the user's feedback of each kind strictly before ts,
--                newest first, at most ${seq_len} each (empty lists when there is none);
--   feedback_seq the same for every kind of feedback merged by time, when
--                ${merged_feedback} is TRUE (dumn train sets it for the DUMN_AF ablation,
--                the only reader); otherwise empty;
--   every column of `users` (but user_id) and of `items` (but item_id), NULL when the
--   user or item has no row there.
--
-- With ${as_of_midnight} TRUE (`dumn eval --as-of-midnight`), the four sequences are cut at
-- the start (00:00 UTC) of the impression's day instead of at its time: what a nightly job
-- that ran that morning saw. A probe row per user and day, at midnight, with no item,
-- collects them through the same window; it adds nothing to anyone's history.
--
-- The plan never joins an impression with earlier events: it sorts each user's feedback
-- once by time, and the window function dumn_history (udfs/history.rs) gives every event
-- the newest ${seq_len} items of a kind strictly before it (a CASE that is NULL for the
-- other kinds stands in for a FILTER, which window functions do not take). Impressions
-- are the click and unclick rows of the feedback view.
CREATE OR REPLACE VIEW training_examples AS
WITH item_dislikes AS (
    SELECT user_id, item_id, max(ts) AS last_dislike
    FROM feedback
    WHERE kind = 'dislike'
    GROUP BY user_id, item_id
),
events AS (
    SELECT user_id, item_id, ts, kind FROM feedback
    UNION ALL
    SELECT DISTINCT user_id, CAST(NULL AS BIGINT), date_trunc('day', ts), 'midnight'
    FROM feedback
    WHERE ${as_of_midnight} AND kind IN ('click', 'unclick')
),
sequences AS (
    SELECT
        user_id, item_id, ts, kind,
        dumn_history(CASE WHEN kind = 'click' THEN item_id END, ts, ${seq_len}) OVER by_time AS click_seq,
        dumn_history(CASE WHEN kind = 'unclick' THEN item_id END, ts, ${seq_len}) OVER by_time AS unclick_seq,
        dumn_history(CASE WHEN kind = 'like' THEN item_id END, ts, ${seq_len}) OVER by_time AS like_seq,
        dumn_history(CASE WHEN kind = 'dislike' THEN item_id END, ts, ${seq_len}) OVER by_time AS dislike_seq,
        dumn_history(CASE WHEN ${merged_feedback} THEN item_id END, ts, ${seq_len}) OVER by_time AS feedback_seq
    FROM events
    WINDOW by_time AS (PARTITION BY user_id ORDER BY ts)
)
SELECT
    r.user_id,
    r.item_id,
    r.ts,
    r.kind = 'click' AS clicked,
    coalesce(d.last_dislike >= r.ts, false) AS disliked,
    CASE WHEN ${as_of_midnight} THEN m.click_seq ELSE r.click_seq END AS click_seq,
    CASE WHEN ${as_of_midnight} THEN m.unclick_seq ELSE r.unclick_seq END AS unclick_seq,
    CASE WHEN ${as_of_midnight} THEN m.like_seq ELSE r.like_seq END AS like_seq,
    CASE WHEN ${as_of_midnight} THEN m.dislike_seq ELSE r.dislike_seq END AS dislike_seq,
    CASE WHEN ${as_of_midnight} THEN m.feedback_seq ELSE r.feedback_seq END AS feedback_seq,
    u.* EXCLUDE (user_id),
    i.* EXCLUDE (item_id)
FROM sequences AS r
LEFT JOIN sequences AS m
    ON ${as_of_midnight} AND m.kind = 'midnight'
    AND m.user_id = r.user_id AND m.ts = date_trunc('day', r.ts)
LEFT JOIN item_dislikes AS d ON d.user_id = r.user_id AND d.item_id = r.item_id
LEFT JOIN users AS u ON u.user_id = r.user_id
LEFT JOIN items AS i ON i.item_id = r.item_id
WHERE r.kind IN ('click', 'unclick');
