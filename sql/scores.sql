-- Step 3: the score table of a nightly run (`dumn run`).
--
-- One row per row of `scoring_input` (so one per candidate): every column of `candidates`,
-- passed through, then
--   ctr            FLOAT      the click probability (dumn_ctr, udfs/score.rs);
--   p_dislike      FLOAT      the dislike probability (dumn_dislike);
--   model_version  VARCHAR    the artifact's version (its manifest.json);
--   scored_at      TIMESTAMP(6)  when the run started, UTC, in microseconds: the precision
--                  of Delta Lake and Spark, so both output formats store one type.
--
-- Parameters, set by `dumn run`:
--   ${candidate_columns}  the columns of `candidates`, comma-separated;
--   ${model_inputs}       the model's input columns in dumn_score's argument order;
--   ${model_version}, ${scored_at}  SQL literals.
--
-- One forward gives both probabilities: dumn_dislike reuses the forward that dumn_ctr ran
-- on the same batch (udfs/score.rs). scoring_input delivers each user's candidates
-- together, so the model's per-user work (eq. 1-2) runs once per user.
CREATE OR REPLACE VIEW scores AS
SELECT
    ${candidate_columns},
    dumn_ctr(${model_inputs}) AS ctr,
    dumn_dislike(${model_inputs}) AS p_dislike,
    ${model_version} AS model_version,
    CAST(${scored_at} AS TIMESTAMP(6)) AS scored_at
FROM scoring_input;
