-- Adapter: the Taobao display-ad sample in its DMR-preprocessed layout
-- (../shared/datasets/ali_display_dmr_sample/alimama_sampled_train.txt) into the input
-- contract. Run with ${data} = that folder.
--
-- Each row of the file is one ad impression (raw_sample) with the user's last 50 behaviour
-- events (behavior_log) flattened into it, 267 comma-separated columns without a header:
--   column_1..50     btag of each past event (0 padding, 1 pv, 2 cart, 3 fav, 4 buy)
--   column_51..100   category of each past event
--   column_101..150  brand of each past event
--   column_251..259  user profile: uid, cms_segid, cms_group_id, final_gender_code,
--                    age_level, pvalue_level, shopping_level, occupation,
--                    new_user_class_level
--   column_260..264  the ad: adgroup_id, cate_id, campaign_id, customer, brand
--   column_267       clk, the click label
-- Mapping and the choices it needs (the layout keeps no timestamps and no item ids for
-- past events):
--   impressions  one per row: item = adgroup_id, clicked = clk = 1, ts = 2017-05-13 plus
--                the row's position in seconds (rows keep their file order);
--   actions      past events with btag cart, fav or buy, which the contract maps to like;
--                their item is the brand, as the pseudo item id 1000000000 + brand; they
--                happened before the sample window, so they get ts = 2017-05-06; a user's
--                event repeated in several rows counts once;
--   no dislike signal exists in this dataset.
CREATE EXTERNAL TABLE taobao_sample
STORED AS CSV
LOCATION '${data}/alimama_sampled_train.txt'
OPTIONS ('format.has_header' 'false');

CREATE OR REPLACE VIEW taobao_rows AS
SELECT *, row_number() OVER () AS row_pos
FROM taobao_sample;

CREATE OR REPLACE VIEW impressions AS
SELECT
    CAST(column_251 AS BIGINT) AS user_id,
    CAST(column_260 AS BIGINT) AS item_id,
    to_timestamp_seconds(1494633600 + row_pos) AS ts,
    column_267 = 1 AS clicked
FROM taobao_rows;

CREATE OR REPLACE VIEW taobao_past_events AS
SELECT
    user_id,
    unnest(btags) AS btag,
    unnest(categories) AS category,
    unnest(brands) AS brand
FROM (
    SELECT
        CAST(column_251 AS BIGINT) AS user_id,
        make_array(column_1, column_2, column_3, column_4, column_5, column_6, column_7, column_8, column_9, column_10, column_11, column_12, column_13, column_14, column_15, column_16, column_17, column_18, column_19, column_20, column_21, column_22, column_23, column_24, column_25, column_26, column_27, column_28, column_29, column_30, column_31, column_32, column_33, column_34, column_35, column_36, column_37, column_38, column_39, column_40, column_41, column_42, column_43, column_44, column_45, column_46, column_47, column_48, column_49, column_50) AS btags,
        make_array(column_51, column_52, column_53, column_54, column_55, column_56, column_57, column_58, column_59, column_60, column_61, column_62, column_63, column_64, column_65, column_66, column_67, column_68, column_69, column_70, column_71, column_72, column_73, column_74, column_75, column_76, column_77, column_78, column_79, column_80, column_81, column_82, column_83, column_84, column_85, column_86, column_87, column_88, column_89, column_90, column_91, column_92, column_93, column_94, column_95, column_96, column_97, column_98, column_99, column_100) AS categories,
        make_array(column_101, column_102, column_103, column_104, column_105, column_106, column_107, column_108, column_109, column_110, column_111, column_112, column_113, column_114, column_115, column_116, column_117, column_118, column_119, column_120, column_121, column_122, column_123, column_124, column_125, column_126, column_127, column_128, column_129, column_130, column_131, column_132, column_133, column_134, column_135, column_136, column_137, column_138, column_139, column_140, column_141, column_142, column_143, column_144, column_145, column_146, column_147, column_148, column_149, column_150) AS brands
    FROM taobao_sample
) AS flattened;

CREATE OR REPLACE VIEW actions AS
SELECT DISTINCT
    user_id,
    1000000000 + CAST(brand AS BIGINT) AS item_id,
    to_timestamp_seconds(1494028800) AS ts,
    CASE btag WHEN 2 THEN 'cart' WHEN 3 THEN 'fav' ELSE 'buy' END AS action
FROM taobao_past_events
WHERE btag IN (2, 3, 4);

CREATE OR REPLACE VIEW users AS
SELECT DISTINCT
    CAST(column_251 AS BIGINT) AS user_id,
    CAST(column_252 AS BIGINT) AS cms_segid,
    CAST(column_253 AS BIGINT) AS cms_group_id,
    CAST(column_254 AS BIGINT) AS final_gender_code,
    CAST(column_255 AS BIGINT) AS age_level,
    CAST(column_256 AS BIGINT) AS pvalue_level,
    CAST(column_257 AS BIGINT) AS shopping_level,
    CAST(column_258 AS BIGINT) AS occupation,
    CAST(column_259 AS BIGINT) AS new_user_class_level
FROM taobao_sample;

CREATE OR REPLACE VIEW items AS
SELECT DISTINCT
    CAST(column_260 AS BIGINT) AS item_id,
    CAST(column_261 AS BIGINT) AS cate_id,
    CAST(column_264 AS BIGINT) AS brand
FROM taobao_sample
UNION ALL
SELECT
    1000000000 + CAST(brand AS BIGINT) AS item_id,
    CAST(min(category) AS BIGINT) AS cate_id,
    CAST(brand AS BIGINT) AS brand
FROM taobao_past_events
WHERE btag IN (2, 3, 4)
GROUP BY brand;
