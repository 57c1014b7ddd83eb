-- Step 1: the feedback view.
--
-- One row per feedback event, of four kinds:
--   click    an impression with clicked = true
--   unclick  an impression with clicked = false
--   like     an action named like, cart, fav or buy
--   dislike  an action named dislike or hate
-- Other action names are ignored. Change the mapping here: it is the only place it lives.
--
-- Rows with a NULL user_id, item_id or ts cannot be placed in a user's history and are
-- dropped. Duplicates count once: an impression (user, item, time) logged several times is
-- one click if any copy is clicked, else one unclick; identical actions are one event.
CREATE OR REPLACE VIEW feedback AS
SELECT
    CAST(user_id AS BIGINT) AS user_id,
    CAST(item_id AS BIGINT) AS item_id,
    CAST(ts AS TIMESTAMP) AS ts,
    CASE WHEN bool_or(clicked) THEN 'click' ELSE 'unclick' END AS kind
FROM impressions
WHERE user_id IS NOT NULL AND item_id IS NOT NULL AND ts IS NOT NULL AND clicked IS NOT NULL
GROUP BY 1, 2, 3
UNION ALL
SELECT DISTINCT user_id, item_id, ts, kind
FROM (
    SELECT
        CAST(user_id AS BIGINT) AS user_id,
        CAST(item_id AS BIGINT) AS item_id,
        CAST(ts AS TIMESTAMP) AS ts,
        CASE
            WHEN lower(trim(action)) IN ('like', 'cart', 'fav', 'buy') THEN 'like'
            WHEN lower(trim(action)) IN ('dislike', 'hate') THEN 'dislike'
        END AS kind
    FROM actions
) AS mapped
WHERE kind IS NOT NULL
  AND user_id IS NOT NULL
  AND item_id IS NOT NULL
  AND ts IS NOT NULL;
