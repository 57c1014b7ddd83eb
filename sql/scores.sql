-- Step 3: the score table of a nightly run (`dumn run`).
--
-- One row per row of `scoring_input` (so one per candidate): every column of `candidates`,
-- passed through, then
--   ctr            FLOAT      the click probability (dumn_ctr, udfs/score.rs);
--   p_dislike      FLOAT      the dislike probability (dumn_dislike);
--   model_version  VARCHAR    the artifact's version (its manifest.json);
--   scored_at      TIMESTAMP  when the run started, UTC.
--
-- Parameters, set by `dumn run`:
--   ${candidate_columns}  the columns of `candidates`, comma-separated;
--   ${model_inputs}       the model's input columns in dumn_score's argument order;
--   ${model_version}, ${scored_at}  SQL literals.
--
-- dumn_score computes both probabilities in one forward; it is called once, in the inner
-- query, and its two fields are read outside. scoring_input delivers each user's candidates
-- together, so the model's per-user work (eq. 1-2) runs once per user.
CREATE OR REPLACE VIEW scores AS
SELECT
    ${candidate_columns},
    s['ctr'] AS ctr,
    s['p_dislike'] AS p_dislike,
    ${model_version} AS model_version,
    ${scored_at} AS scored_at
FROM (
    SELECT *, dumn_score(${model_inputs}) AS s
    FROM scoring_input
);
