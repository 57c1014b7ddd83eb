-- Step 2b: the candidates in user order.
--
-- `dumn` materialises this query (in a scratch folder, with a sort that spills to disk
-- beyond a fixed memory budget) and reads it back as `candidates` before
-- scoring_input.sql runs. The joins of scoring_input keep the order of their probe side,
-- so each user's candidates then reach dumn_ctr together and share one user step of the
-- model, whatever order the candidate files are in. Candidates with a NULL key are
-- dropped here (the pre-flight check counted them).
SELECT *
FROM candidates
WHERE user_id IS NOT NULL AND item_id IS NOT NULL
ORDER BY user_id
