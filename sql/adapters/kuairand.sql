-- Adapter: the KuaiRand-27K explicit-feedback subset (../shared/datasets/kuairand27k_like_hate)
-- into the input contract. Run with ${data} = that folder.
--
--   processed_standard_kcore_15.tsv  one row per shown video, each with an explicit label:
--     is_click = 1 / 0   -> impressions.clicked (click / unclick)
--     label = 1 / 0      -> actions 'like' / 'hate' (like / dislike), at the same time
--     time_ms            -> ts (epoch milliseconds, UTC)
--   user_features_pure.csv  the user profile; its categorical columns become features
--     (the one-hot columns are stored as numbers and are cast to BIGINT).
-- The subset has no item side information: `items` holds the item ids only.
CREATE EXTERNAL TABLE kuairand_log
STORED AS CSV
LOCATION '${data}/processed_standard_kcore_15.tsv'
OPTIONS ('format.has_header' 'true', 'format.delimiter' '	');

CREATE EXTERNAL TABLE kuairand_users
STORED AS CSV
LOCATION '${data}/user_features_pure.csv'
OPTIONS ('format.has_header' 'true');

CREATE OR REPLACE VIEW impressions AS
SELECT
    CAST(user_id AS BIGINT) AS user_id,
    CAST(video_id AS BIGINT) AS item_id,
    to_timestamp_millis(time_ms) AS ts,
    is_click = 1 AS clicked
FROM kuairand_log;

CREATE OR REPLACE VIEW actions AS
SELECT
    CAST(user_id AS BIGINT) AS user_id,
    CAST(video_id AS BIGINT) AS item_id,
    to_timestamp_millis(time_ms) AS ts,
    CASE WHEN label = 1 THEN 'like' ELSE 'hate' END AS action
FROM kuairand_log
WHERE label IS NOT NULL;

CREATE OR REPLACE VIEW users AS
SELECT
    CAST(user_id AS BIGINT) AS user_id,
    user_active_degree,
    CAST(is_lowactive_period AS BIGINT) AS is_lowactive_period,
    CAST(is_live_streamer AS BIGINT) AS is_live_streamer,
    CAST(is_video_author AS BIGINT) AS is_video_author,
    follow_user_num_range,
    fans_user_num_range,
    friend_user_num_range,
    register_days_range,
    CAST(onehot_feat0 AS BIGINT) AS onehot_feat0,
    CAST(onehot_feat1 AS BIGINT) AS onehot_feat1,
    CAST(onehot_feat2 AS BIGINT) AS onehot_feat2,
    CAST(onehot_feat3 AS BIGINT) AS onehot_feat3,
    CAST(onehot_feat4 AS BIGINT) AS onehot_feat4,
    CAST(onehot_feat5 AS BIGINT) AS onehot_feat5,
    CAST(onehot_feat6 AS BIGINT) AS onehot_feat6,
    CAST(onehot_feat7 AS BIGINT) AS onehot_feat7,
    CAST(onehot_feat8 AS BIGINT) AS onehot_feat8,
    CAST(onehot_feat9 AS BIGINT) AS onehot_feat9,
    CAST(onehot_feat10 AS BIGINT) AS onehot_feat10,
    CAST(onehot_feat11 AS BIGINT) AS onehot_feat11,
    CAST(onehot_feat12 AS BIGINT) AS onehot_feat12,
    CAST(onehot_feat13 AS BIGINT) AS onehot_feat13,
    CAST(onehot_feat14 AS BIGINT) AS onehot_feat14,
    CAST(onehot_feat15 AS BIGINT) AS onehot_feat15,
    CAST(onehot_feat16 AS BIGINT) AS onehot_feat16,
    CAST(onehot_feat17 AS BIGINT) AS onehot_feat17
FROM kuairand_users;

CREATE OR REPLACE VIEW items AS
SELECT DISTINCT CAST(video_id AS BIGINT) AS item_id
FROM kuairand_log;
