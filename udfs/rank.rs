//! `dumn_rank(item_id) OVER (PARTITION BY user_id ORDER BY ctr DESC, item_id, …)`: a
//! window function that numbers a partition's distinct items.
//!
//! Contract: `ROW_NUMBER()` that counts each item once. Walking the partition in the
//! window's order, the first row of each non-NULL `item_id` gets the next number (1, 2,
//! …, a `UInt64`, the type of `ROW_NUMBER`); every later row of the same item, and every
//! row with a NULL `item_id`, gets NULL. So `WHERE rank <= k` keeps the best `k`
//! distinct items, each with the row that comes first in the window's order: order by
//! `ctr DESC, item_id` and an item offered twice keeps its row of the highest ctr
//! (sql/ranking.sql adds `p_dislike DESC` to choose between rows of equal ctr).
//! `item_id` may be any integer.
//!
//! Why not `GROUP BY user_id, item_id` before `ROW_NUMBER()` (how sql/ranking.sql kept each
//! item once until 2026-12): that aggregate hashes one group per candidate and then
//! repartitions its output for the window, the larger part of the ranking's time. This
//! keeps, per partition, the set of items seen so far, and runs in DataFusion's streaming
//! window operator (`supports_bounded_execution`), so its memory grows with one user's
//! candidates, not with all of them.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, UInt64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{
    Documentation, PartitionEvaluator, Signature, TypeSignature, Volatility, WindowUDF,
    WindowUDFImpl,
};

/// The function's SQL name.
pub const NAME: &str = "dumn_rank";

/// The `dumn_rank` window function, ready to register.
pub fn dumn_rank() -> WindowUDF {
    WindowUDF::from(DumnRank {
        signature: Signature::one_of(vec![TypeSignature::Any(1)], Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DumnRank {
    signature: Signature,
}

/// What `\df dumn_rank` prints.
fn documentation() -> &'static Documentation {
    static DOC: std::sync::LazyLock<Documentation> = std::sync::LazyLock::new(|| {
        Documentation::builder(
            super::doc_section(),
            "A window function: ROW_NUMBER() that counts each item once. The first row of \
             each item in the window's order gets the next number, its later rows and rows \
             with a NULL item_id get NULL. Returns UInt64.",
            "dumn_rank(item_id) OVER (PARTITION BY user_id ORDER BY ctr DESC, item_id)",
        )
        .with_argument("item_id", "an integer column: the items numbered")
        .with_sql_example(
            "SELECT * FROM (\n  SELECT user_id, item_id, ctr,\n    dumn_rank(item_id) OVER \
             (PARTITION BY user_id ORDER BY ctr DESC, item_id) AS rank\n  FROM scores)\n\
             WHERE rank <= 50",
        )
        .build()
    });
    &DOC
}

impl WindowUDFImpl for DumnRank {
    fn documentation(&self) -> Option<&Documentation> {
        Some(documentation())
    }

    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn field(&self, args: WindowUDFFieldArgs) -> Result<FieldRef> {
        match args.get_input_field(0).map(|f| f.data_type().clone()) {
            Some(t) if t.is_integer() || t.is_null() => {}
            other => {
                return plan_err!(
                    "{NAME}: the argument (item_id) must be an integer, got {other:?}"
                )
            }
        }
        Ok(Arc::new(Field::new(args.name(), DataType::UInt64, true)))
    }

    fn partition_evaluator(
        &self,
        _args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        Ok(Box::<Evaluator>::default())
    }
}

/// One partition's state: the items numbered so far.
#[derive(Debug, Default)]
struct Evaluator {
    seen: HashSet<i64>,
}

impl Evaluator {
    /// The number of `item` (NULL: none), given in the window's order.
    fn number(&mut self, item: Option<i64>) -> Option<u64> {
        let item = item?;
        self.seen.insert(item).then_some(self.seen.len() as u64)
    }
}

fn items(values: &[ArrayRef]) -> Result<ArrayRef> {
    Ok(cast(&values[0], &DataType::Int64)?)
}

impl PartitionEvaluator for Evaluator {
    fn is_causal(&self) -> bool {
        // A row's number depends on the rows before it only.
        true
    }

    fn supports_bounded_execution(&self) -> bool {
        true
    }

    /// The streaming form: called for each row, `range` being that row.
    fn evaluate(&mut self, values: &[ArrayRef], range: &Range<usize>) -> Result<ScalarValue> {
        let (values, row) = (&values[0], range.start);
        let item = match values.as_primitive_opt::<Int64Type>() {
            Some(items) => items.is_valid(row).then(|| items.value(row)),
            None => match ScalarValue::try_from_array(values, row)?.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(item) => item,
                other => return exec_err!("{NAME}: item_id {other} is not an integer"),
            },
        };
        Ok(ScalarValue::UInt64(self.number(item)))
    }

    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let items = items(values)?;
        let items = items.as_primitive::<Int64Type>();
        let numbers: UInt64Array = (0..num_rows)
            .map(|row| self.number(items.is_valid(row).then(|| items.value(row))))
            .collect();
        Ok(Arc::new(numbers))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Int64Type, UInt64Type};
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// `(user, item, rank)` for each row of `sql`, in the query's order.
    async fn ranks(sql: &str) -> Vec<(i64, i64, Option<u64>)> {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(3));
        ctx.register_udwf(super::dumn_rank());
        let mut out = Vec::new();
        for b in ctx.sql(sql).await.unwrap().collect().await.unwrap() {
            let (u, i, r) = (
                b.column(0).as_primitive::<Int64Type>(),
                b.column(1).as_primitive::<Int64Type>(),
                b.column(2).as_primitive::<UInt64Type>(),
            );
            for row in 0..b.num_rows() {
                out.push((
                    u.value(row),
                    i.value(row),
                    r.is_valid(row).then(|| r.value(row)),
                ));
            }
        }
        out
    }

    #[tokio::test]
    async fn each_item_once_in_window_order() {
        // User 1: item 11 twice (0.9 and 0.7), items 13 and 10; user 2 starts at 1 again.
        let got = ranks(
            "SELECT u, item, dumn_rank(item) OVER (PARTITION BY u ORDER BY ctr DESC, item) AS r \
             FROM (VALUES (1, 10, 0.5), (1, 11, 0.9), (1, 11, 0.7), (1, 13, 0.9), (2, 20, 0.3)) \
             AS t(u, item, ctr) ORDER BY u, ctr DESC, item",
        )
        .await;
        assert_eq!(
            got,
            vec![
                (1, 11, Some(1)),
                (1, 13, Some(2)),
                (1, 11, None), // item 11 again, at its lower ctr
                (1, 10, Some(3)),
                (2, 20, Some(1)),
            ]
        );
    }

    #[tokio::test]
    async fn null_items_are_not_numbered() {
        let ctx = SessionContext::new();
        ctx.register_udwf(super::dumn_rank());
        let batches = ctx
            .sql(
                "SELECT dumn_rank(item) OVER (ORDER BY ctr DESC) FROM \
                 (VALUES (CAST(NULL AS BIGINT), 0.9), (5, 0.8), (6, 0.7)) AS t(item, ctr)",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let r = batches[0].column(0).as_primitive::<UInt64Type>();
        assert_eq!(
            (0..r.len())
                .map(|i| r.is_valid(i).then(|| r.value(i)))
                .collect::<Vec<_>>(),
            vec![None, Some(1), Some(2)]
        );
    }

    /// Many rows, each item offered several times at several ctrs, through the streaming
    /// window operator: each item's first number goes to its row of the highest ctr, and
    /// the numbers run 1, 2, … in the order of those rows.
    #[tokio::test]
    async fn many_rows_number_each_items_best_row() {
        let got = ranks(
            "SELECT u, item, dumn_rank(item) OVER (PARTITION BY u ORDER BY ctr DESC, item) AS r \
             FROM (SELECT v % 3 AS u, v % 300 AS item, (v * 2654435761) % 1000003 AS ctr \
                   FROM (SELECT value AS v FROM generate_series(1, 30000)))",
        )
        .await;
        assert_eq!(got.len(), 30000);
        let mut best: HashMap<(i64, i64), i64> = HashMap::new();
        for v in 1i64..=30000 {
            let c = best.entry((v % 3, v % 300)).or_insert(i64::MIN);
            *c = (*c).max((v * 2654435761) % 1000003);
        }
        for u in 0..3 {
            let mut want: Vec<(i64, i64)> = best
                .iter()
                .filter(|((uu, _), _)| *uu == u)
                .map(|((_, i), c)| (*c, *i))
                .collect();
            want.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut have: Vec<(u64, i64)> = got
                .iter()
                .filter(|(uu, _, r)| *uu == u && r.is_some())
                .map(|(_, i, r)| (r.unwrap(), *i))
                .collect();
            have.sort();
            assert_eq!(
                have.iter().map(|h| h.1).collect::<Vec<_>>(),
                want.iter().map(|w| w.1).collect::<Vec<_>>(),
                "user {u}"
            );
            assert_eq!(have.last().map(|h| h.0), Some(want.len() as u64));
        }
    }
}
