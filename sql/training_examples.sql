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
sequences AS (
    SELECT
        user_id, item_id, ts, kind,
        dumn_history(CASE WHEN kind = 'click' THEN item_id END, ts, ${seq_len}) OVER by_time AS click_seq,
        dumn_history(CASE WHEN kind = 'unclick' THEN item_id END, ts, ${seq_len}) OVER by_time AS unclick_seq,
        dumn_history(CASE WHEN kind = 'like' THEN item_id END, ts, ${seq_len}) OVER by_time AS like_seq,
        dumn_history(CASE WHEN kind = 'dislike' THEN item_id END, ts, ${seq_len}) OVER by_time AS dislike_seq,
        dumn_history(CASE WHEN ${merged_feedback} THEN item_id END, ts, ${seq_len}) OVER by_time AS feedback_seq
    FROM feedback
    WINDOW by_time AS (PARTITION BY user_id ORDER BY ts)
)
SELECT
    r.user_id,
    r.item_id,
    r.ts,
    r.kind = 'click' AS clicked,
    coalesce(d.last_dislike >= r.ts, false) AS disliked,
    r.click_seq,
    r.unclick_seq,
    r.like_seq,
    r.dislike_seq,
    r.feedback_seq,
    u.* EXCLUDE (user_id),
    i.* EXCLUDE (item_id)
FROM sequences AS r
LEFT JOIN item_dislikes AS d ON d.user_id = r.user_id AND d.item_id = r.item_id
LEFT JOIN users AS u ON u.user_id = r.user_id
LEFT JOIN items AS i ON i.item_id = r.item_id
WHERE r.kind IN ('click', 'unclick');
