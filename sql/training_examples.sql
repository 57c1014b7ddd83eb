-- Step 2a: point-in-time training examples.
--
-- One row per impression (user_id, item_id, ts, deduplicated as in the feedback view),
-- with:
--   clicked      the CTR label;
--   disliked     the dislike label: the user disliked this item at or after the impression;
--   click_seq, unclick_seq, like_seq, dislike_seq
--                the item ids of the user's feedback of each kind strictly before ts,
--                newest first, at most ${seq_len} each (empty lists when there is none);
--   every column of `users` (but user_id) and of `items` (but item_id), NULL when the
--   user or item has no row there.
--
-- The plan sorts each user's feedback once instead of joining every impression with every
-- earlier event:
--   histories  one time-ordered list of item ids per user and kind;
--   counted    the user's feedback in time order; for each event, the running count of
--              each kind up to its time (peers included) minus the count at exactly its
--              time gives the number of events strictly before it;
--   the newest ${seq_len} of those are a slice of the ordered list, reversed.
-- Impressions are the click and unclick rows of the feedback view.
CREATE OR REPLACE VIEW training_examples AS
WITH histories AS (
    SELECT
        user_id,
        array_agg(item_id ORDER BY ts, item_id) FILTER (WHERE kind = 'click') AS clicks,
        array_agg(item_id ORDER BY ts, item_id) FILTER (WHERE kind = 'unclick') AS unclicks,
        array_agg(item_id ORDER BY ts, item_id) FILTER (WHERE kind = 'like') AS likes,
        array_agg(item_id ORDER BY ts, item_id) FILTER (WHERE kind = 'dislike') AS dislikes
    FROM feedback
    GROUP BY user_id
),
item_dislikes AS (
    SELECT user_id, item_id, max(ts) AS last_dislike
    FROM feedback
    WHERE kind = 'dislike'
    GROUP BY user_id, item_id
),
flagged AS (
    SELECT
        user_id, item_id, ts, kind,
        CASE WHEN kind = 'click' THEN 1 ELSE 0 END AS is_click,
        CASE WHEN kind = 'unclick' THEN 1 ELSE 0 END AS is_unclick,
        CASE WHEN kind = 'like' THEN 1 ELSE 0 END AS is_like,
        CASE WHEN kind = 'dislike' THEN 1 ELSE 0 END AS is_dislike
    FROM feedback
),
counted AS (
    SELECT
        user_id, item_id, ts, kind,
        sum(is_click) OVER upto - sum(is_click) OVER same_time AS n_click,
        sum(is_unclick) OVER upto - sum(is_unclick) OVER same_time AS n_unclick,
        sum(is_like) OVER upto - sum(is_like) OVER same_time AS n_like,
        sum(is_dislike) OVER upto - sum(is_dislike) OVER same_time AS n_dislike
    FROM flagged
    WINDOW
        upto AS (PARTITION BY user_id ORDER BY ts RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
        same_time AS (PARTITION BY user_id, ts)
)
SELECT
    r.user_id,
    r.item_id,
    r.ts,
    r.kind = 'click' AS clicked,
    coalesce(d.last_dislike >= r.ts, false) AS disliked,
    coalesce(array_reverse(array_slice(h.clicks, greatest(r.n_click - ${seq_len} + 1, 1), r.n_click)), []) AS click_seq,
    coalesce(array_reverse(array_slice(h.unclicks, greatest(r.n_unclick - ${seq_len} + 1, 1), r.n_unclick)), []) AS unclick_seq,
    coalesce(array_reverse(array_slice(h.likes, greatest(r.n_like - ${seq_len} + 1, 1), r.n_like)), []) AS like_seq,
    coalesce(array_reverse(array_slice(h.dislikes, greatest(r.n_dislike - ${seq_len} + 1, 1), r.n_dislike)), []) AS dislike_seq,
    u.* EXCLUDE (user_id),
    i.* EXCLUDE (item_id)
FROM counted AS r
JOIN histories AS h ON h.user_id = r.user_id
LEFT JOIN item_dislikes AS d ON d.user_id = r.user_id AND d.item_id = r.item_id
LEFT JOIN users AS u ON u.user_id = r.user_id
LEFT JOIN items AS i ON i.item_id = r.item_id
WHERE r.kind IN ('click', 'unclick');
