-- Step 2b: the scoring input as of a cutoff.
--
-- One row per candidate (every column of `candidates`, passed through), with:
--   click_seq, unclick_seq, like_seq, dislike_seq
--                the item ids of the user's feedback of each kind strictly before
--                ${cutoff}, newest first, at most ${seq_len} each (empty lists when none);
--   every column of `users` (but user_id) and of `items` (but item_id), NULL when absent.
-- Candidates with a NULL user_id or item_id are dropped.
--
-- The plan keeps only the newest ${seq_len} events of each user and kind (a window over
-- the events sorted once) before building the lists, so a user's list never holds more.
CREATE OR REPLACE VIEW scoring_input AS
WITH recent AS (
    SELECT user_id, item_id, ts, kind
    FROM (
        SELECT
            user_id, item_id, ts, kind,
            row_number() OVER (PARTITION BY user_id, kind ORDER BY ts DESC, item_id DESC) AS age
        FROM feedback
        WHERE ts < ${cutoff}
    ) AS ranked
    WHERE age <= ${seq_len}
),
histories AS (
    SELECT
        user_id,
        array_agg(item_id ORDER BY ts DESC, item_id DESC) FILTER (WHERE kind = 'click') AS click_seq,
        array_agg(item_id ORDER BY ts DESC, item_id DESC) FILTER (WHERE kind = 'unclick') AS unclick_seq,
        array_agg(item_id ORDER BY ts DESC, item_id DESC) FILTER (WHERE kind = 'like') AS like_seq,
        array_agg(item_id ORDER BY ts DESC, item_id DESC) FILTER (WHERE kind = 'dislike') AS dislike_seq
    FROM recent
    GROUP BY user_id
)
SELECT
    c.*,
    coalesce(h.click_seq, []) AS click_seq,
    coalesce(h.unclick_seq, []) AS unclick_seq,
    coalesce(h.like_seq, []) AS like_seq,
    coalesce(h.dislike_seq, []) AS dislike_seq,
    u.* EXCLUDE (user_id),
    i.* EXCLUDE (item_id)
FROM candidates AS c
LEFT JOIN histories AS h ON h.user_id = c.user_id
LEFT JOIN users AS u ON u.user_id = c.user_id
LEFT JOIN items AS i ON i.item_id = c.item_id
WHERE c.user_id IS NOT NULL AND c.item_id IS NOT NULL;
