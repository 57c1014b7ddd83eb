//! `dumn_predict('TABLE')`: a table function that scores every row of a table by column
//! name.
//!
//! ```sql
//! SELECT user_id, item_id, ctr, p_dislike FROM dumn_predict('scoring_input') LIMIT 5;
//! ```
//!
//! Contract: returns every row and column of TABLE (a table or view of the session, as
//! `schema.table` when not in the default schema) followed by `ctr` and `p_dislike`, the
//! same values as `dumn_ctr(…)` and `dumn_dislike(…)` called with TABLE's columns named as
//! the model's inputs (`\df dumn_ctr` lists them). A model input that TABLE lacks is an
//! error that names it; TABLE's other columns pass through. TABLE must not have columns
//! named `ctr` or `p_dislike` already.
//!
//! It plans as a view: a projection over TABLE that calls the session's `dumn_ctr` and
//! `dumn_dislike`, so filters and limits above it apply as to any query, and both calls
//! share one forward per batch (see `udfs/score.rs`).

use std::sync::{Arc, LazyLock};

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::TableReference;
use datafusion::common::{plan_datafusion_err, plan_err, Column, Result, ScalarValue};
use datafusion::datasource::provider_as_source;
use datafusion::datasource::ViewTable;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{Documentation, Expr, LogicalPlanBuilder};

use super::score::DumnScore;

/// The function's name in SQL.
pub const NAME: &str = "dumn_predict";

/// What `\df dumn_predict` prints.
pub fn documentation() -> &'static Documentation {
    static DOC: LazyLock<Documentation> = LazyLock::new(|| {
        Documentation::builder(
            super::doc_section(),
            "A table function: every row of TABLE with two columns added, ctr and \
             p_dislike, from the model's inputs matched to TABLE's columns by name.",
            "dumn_predict('TABLE')",
        )
        .with_argument(
            "TABLE",
            "the name of a table or view, in quotes (for example 'scoring_input')",
        )
        .with_sql_example(
            "SELECT user_id, item_id, ctr FROM dumn_predict('scoring_input')\n\
             WHERE p_dislike < 0.5 ORDER BY ctr DESC LIMIT 10",
        )
        .build()
    });
    &DOC
}

/// The table function; registered on every session with [`super::register`].
#[derive(Debug, Default)]
pub struct DumnPredict;

impl TableFunctionImpl for DumnPredict {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let name = match args.exprs() {
            [Expr::Literal(ScalarValue::Utf8(Some(name)), _)] => name.clone(),
            _ => {
                return plan_err!(
                    "{NAME}() takes one argument, a table's name in quotes: \
                     {NAME}('scoring_input')"
                )
            }
        };
        let state = args
            .session()
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| plan_datafusion_err!("{NAME}() needs a DataFusion session"))?;
        let model = |function: &str| -> Result<_> {
            let udf = state.scalar_functions().get(function).cloned();
            let Some(udf) = udf else {
                return plan_err!("{NAME}(): the session has no {function}()");
            };
            Ok(udf)
        };
        let (ctr, dislike) = (model("dumn_ctr")?, model("dumn_dislike")?);
        let score = ctr
            .inner()
            .downcast_ref::<DumnScore>()
            .ok_or_else(|| plan_datafusion_err!("{NAME}(): dumn_ctr is not dumn's"))?;
        let inputs = score.scorer()?.input_columns();

        let reference = TableReference::from(name.as_str());
        let table = state
            .schema_for_ref(reference.clone())
            .ok()
            .and_then(|schema| {
                futures::executor::block_on(schema.table(reference.table())).transpose()
            })
            .transpose()?
            .ok_or_else(|| {
                plan_datafusion_err!(
                    "{NAME}('{name}'): there is no table or view `{name}` (\\d lists them)"
                )
            })?;
        let schema = table.schema();
        for taken in ["ctr", "p_dislike"] {
            if schema.field_with_name(taken).is_ok() {
                return plan_err!(
                    "{NAME}('{name}'): `{name}` has a column `{taken}` already, which \
                     {NAME} adds; select the other columns into a view first"
                );
            }
        }
        let column = |c: &str| Expr::Column(Column::new(Some(reference.clone()), c));
        let mut args = Vec::with_capacity(inputs.len());
        for input in &inputs {
            if schema.field_with_name(input).is_err() {
                return plan_err!(
                    "{NAME}('{name}'): `{name}` has no column `{input}`, an input of model {} \
                     (it reads {})",
                    score.scorer()?.model_version(),
                    inputs.join(", ")
                );
            }
            args.push(column(input));
        }
        let mut projection: Vec<Expr> = schema.fields().iter().map(|f| column(f.name())).collect();
        projection.push(ctr.call(args.clone()).alias("ctr"));
        projection.push(dislike.call(args).alias("p_dislike"));
        let plan = LogicalPlanBuilder::scan(reference, provider_as_source(table), None)?
            .project(projection)?
            .build()?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}
