//! `dumn_score`, `dumn_ctr` and `dumn_dislike`: the DUMN model as SQL scalar functions.
//!
//! ```sql
//! dumn_ctr(user_id [, user features…], item_id [, item features…],
//!          click_seq, unclick_seq, like_seq, dislike_seq)      -- FLOAT: P(click)
//! dumn_dislike(<same arguments>)                               -- FLOAT: P(dislike)
//! dumn_score(<same arguments>)       -- STRUCT<ctr FLOAT, p_dislike FLOAT>: both, one pass
//! dumn_model_version()               -- TEXT: the version of the model this process serves
//! ```
//!
//! The arguments are the model's input columns in the order its manifest lists them
//! (`dumn inspect MODEL` prints them; `sql/scores.sql` receives them as `${model_inputs}`):
//! the user fields, the item fields, then the four sequences, newest first. Features are
//! integers, booleans or text (hashed as in training); sequences are lists of integer item
//! ids. NULL features, NULL or empty sequences and ids never seen in training are read as
//! in training (padding row, empty sequence, hashed row). A wrong count or type is an
//! error at planning time that names the argument.
//!
//! All four read the process's one [`Scorer`], and one forward yields both
//! probabilities: when one SELECT calls `dumn_ctr` and `dumn_dislike` (or reads
//! `dumn_score(…)['ctr']` and `['p_dislike']`) on the same columns, the second call on a
//! batch reuses the first one's forward (see [`LastScored`]). Scores depend only on their own
//! row (see [`crate::model::scorer`]). Without a model (`dumn sql` without `--model`) the functions still
//! exist and planning a call says how to give one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use datafusion::arrow::array::{
    ArrayRef, Float32Array, RecordBatch, RecordBatchOptions, StructArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::ptr_eq::PtrEq;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::model::features::{FeatureSchema, ValueClass};
use crate::model::inputs::SEQUENCE_COLUMNS;
use crate::model::scorer::{Scorer, Scores};
use crate::model::Rows;

/// Which probability a function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Returns {
    Ctr,
    Dislike,
    Both,
    /// The model's version, from the process that runs the call (on a cluster: an
    /// executor; see `src/engine/cluster.rs`).
    Version,
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct DumnScore {
    name: &'static str,
    output: Returns,
    scorer: Option<PtrEq<Arc<Scorer>>>,
    recent: PtrEq<Arc<LastScored>>,
    signature: Signature,
    /// What `\df NAME` and `dumn inspect` print: the model's arguments by name.
    doc: Documentation,
}

/// The last batch each thread scored, shared by the scoring functions.
///
/// DataFusion evaluates a projection's expressions one after another on the same batch, on
/// one thread, passing the same column arrays to each; and its optimizer inlines
/// `s['ctr'], s['p_dislike']` over `dumn_score(…) AS s` into two calls. Keying the last
/// result by the argument arrays' identity lets the second call reuse the first forward.
/// Holding the arrays keeps their addresses from being reused, so a hit is always the same
/// data.
#[derive(Debug, Default)]
pub struct LastScored(Mutex<HashMap<ThreadId, Scored>>);

/// A call's argument arrays and their scores.
type Scored = (Vec<ArrayRef>, Arc<Vec<Scores>>);

impl LastScored {
    fn same(a: &[ArrayRef], b: &[ArrayRef]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| std::ptr::addr_eq(Arc::as_ptr(x), Arc::as_ptr(y)))
    }

    fn get_or_score(
        &self,
        args: &[ArrayRef],
        score: impl FnOnce() -> anyhow::Result<Vec<Scores>>,
    ) -> anyhow::Result<Arc<Vec<Scores>>> {
        let id = std::thread::current().id();
        if let Some((seen, scores)) = self.0.lock().expect("the cache lock").get(&id) {
            if Self::same(seen, args) {
                return Ok(scores.clone());
            }
        }
        let scores = Arc::new(score()?);
        self.0
            .lock()
            .expect("the cache lock")
            .insert(id, (args.to_vec(), scores.clone()));
        Ok(scores)
    }
}

/// The four functions, backed by `scorer` (or by none: planning a call then fails with
/// a message that says how to load a model).
pub fn functions(scorer: Option<Arc<Scorer>>) -> Vec<ScalarUDF> {
    let recent = Arc::new(LastScored::default());
    [
        ("dumn_ctr", Returns::Ctr),
        ("dumn_dislike", Returns::Dislike),
        ("dumn_score", Returns::Both),
        ("dumn_model_version", Returns::Version),
    ]
    .into_iter()
    .map(|(name, output)| {
        ScalarUDF::new_from_impl(DumnScore {
            name,
            output,
            scorer: scorer.clone().map(PtrEq::from),
            recent: PtrEq::from(recent.clone()),
            signature: match output {
                // Volatile, so that the call runs where the query runs, not at planning.
                Returns::Version => Signature::nullary(Volatility::Volatile),
                _ => Signature::variadic_any(Volatility::Immutable),
            },
            doc: documentation(name, output, scorer.as_deref()),
        })
    })
    .collect()
}

/// The model's input columns, in call order, each with what it must hold.
pub fn arguments(schema: &FeatureSchema) -> Vec<(String, String)> {
    let feature = |whose: &str| format!("{whose} feature: an integer, boolean or text column");
    let mut out: Vec<(String, String)> = Vec::new();
    out.extend(
        schema
            .user_fields
            .iter()
            .map(|f| (f.name.clone(), feature("user"))),
    );
    out.extend(
        schema
            .item_fields
            .iter()
            .map(|f| (f.name.clone(), feature("item"))),
    );
    let what = [
        "clicked",
        "was shown and did not click",
        "liked",
        "disliked",
    ];
    out.extend(SEQUENCE_COLUMNS.iter().zip(what).map(|(name, what)| {
        (
            name.to_string(),
            format!("the items the user {what} before, newest first: a list of integer ids"),
        )
    }));
    out
}

/// The documentation of one of the four functions; with a model, its arguments by name.
fn documentation(name: &str, output: Returns, scorer: Option<&Scorer>) -> Documentation {
    let returns = match output {
        Returns::Ctr => "The model's click probability P(click) of each row, a FLOAT.",
        Returns::Dislike => "The model's dislike probability P(dislike) of each row, a FLOAT.",
        Returns::Both => {
            "Both probabilities from one forward pass, as STRUCT<ctr FLOAT, p_dislike FLOAT>."
        }
        Returns::Version => {
            return Documentation::builder(
                super::doc_section(),
                "The version of the model this process serves (on a cluster: the executor's), \
                 as TEXT.",
                "dumn_model_version()",
            )
            .build()
        }
    };
    let Some(scorer) = scorer else {
        return Documentation::builder(
            super::doc_section(),
            format!(
                "{returns} Takes the model's input columns in the order of its manifest; \
                 without a model (--model) they are unknown."
            ),
            format!("{name}(<the model's input columns>)"),
        )
        .build();
    };
    let args = arguments(scorer.schema());
    let names: Vec<&str> = args.iter().map(|(n, _)| n.as_str()).collect();
    let mut doc = Documentation::builder(
        super::doc_section(),
        format!(
            "{returns} Model {}. dumn_predict('TABLE') calls it with TABLE's columns of \
             these names.",
            scorer.model_version()
        ),
        format!("{name}({})", names.join(", ")),
    );
    for (arg, what) in args {
        doc = doc.with_argument(arg, what);
    }
    doc.build()
}

/// The struct type of `dumn_score`.
pub fn score_type() -> DataType {
    DataType::Struct(Fields::from(vec![
        Field::new("ctr", DataType::Float32, false),
        Field::new("p_dislike", DataType::Float32, false),
    ]))
}

fn is_feature(t: &DataType) -> bool {
    t.is_integer()
        || matches!(
            t,
            DataType::Boolean
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Null
                | DataType::Dictionary(_, _)
        )
}

fn is_id_list(t: &DataType) -> bool {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            f.data_type().is_integer() || f.data_type() == &DataType::Null
        }
        DataType::Null => true,
        _ => false,
    }
}

impl DumnScore {
    /// The scorer behind the function, or the error that says how to give one.
    pub(super) fn scorer(&self) -> Result<&Scorer> {
        match &self.scorer {
            Some(s) => Ok(s),
            None => plan_err!(
                "{}() needs a model: pass --model DIR to `dumn sql`, or set `model` in the job file",
                self.name
            ),
        }
    }
}

impl ScalarUDFImpl for DumnScore {
    fn name(&self) -> &str {
        self.name
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let scorer = self.scorer()?;
        if self.output == Returns::Version {
            return Ok(DataType::Utf8);
        }
        let columns = scorer.input_columns();
        if arg_types.len() != columns.len() {
            return plan_err!(
                "{}() takes {} arguments for model {}: {}; got {}",
                self.name,
                columns.len(),
                scorer.model_version(),
                columns.join(", "),
                arg_types.len()
            );
        }
        let features = columns.len() - 4;
        let fields: Vec<&crate::model::features::FieldSpec> = scorer
            .schema()
            .user_fields
            .iter()
            .chain(&scorer.schema().item_fields)
            .collect();
        for (i, (t, col)) in arg_types.iter().zip(&columns).enumerate() {
            let trained = fields.get(i).and_then(|f| f.class);
            if let (Some(want), Some(have)) = (trained, ValueClass::of(t)) {
                if want != have {
                    return plan_err!(
                        "{}(): argument {} (`{col}`) holds {have} values ({t}), but model {} \
                         was trained on {want} values; cast it in SQL",
                        self.name,
                        i + 1,
                        scorer.model_version()
                    );
                }
            }
            let (ok, want) = if i < features {
                (is_feature(t), "an integer, boolean or text feature")
            } else {
                (is_id_list(t), "a list of integer item ids")
            };
            if !ok {
                return plan_err!(
                    "{}(): argument {} (`{col}`) must be {want}, found {t}",
                    self.name,
                    i + 1
                );
            }
        }
        Ok(match self.output {
            Returns::Both => score_type(),
            Returns::Ctr | Returns::Dislike => DataType::Float32,
            Returns::Version => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scorer = self.scorer()?;
        if self.output == Returns::Version {
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                scorer.model_version().to_string(),
            ))));
        }
        let arrays: Vec<ArrayRef> = ColumnarValue::values_to_arrays(&args.args)?;
        let scored = self.recent.get_or_score(&arrays, || {
            let schema = Schema::new(
                scorer
                    .input_columns()
                    .into_iter()
                    .zip(&arrays)
                    .map(|(name, a)| Field::new(name, a.data_type().clone(), true))
                    .collect::<Vec<_>>(),
            );
            let batch = RecordBatch::try_new_with_options(
                Arc::new(schema),
                arrays.clone(),
                &RecordBatchOptions::new().with_row_count(Some(args.number_rows)),
            )?;
            scorer.score(&Rows::from_batch(&batch, scorer.schema(), false)?)
        });
        let scores = match scored {
            Ok(s) => s,
            Err(e) => return exec_err!("{}(): {e:#}", self.name),
        };
        let ctr = || Float32Array::from_iter_values(scores.iter().map(|s| s.ctr));
        let dislike = || Float32Array::from_iter_values(scores.iter().map(|s| s.p_dislike));
        let out: ArrayRef = match self.output {
            Returns::Ctr => Arc::new(ctr()),
            Returns::Dislike => Arc::new(dislike()),
            Returns::Version => unreachable!("answered above"),
            Returns::Both => {
                let DataType::Struct(fields) = score_type() else {
                    unreachable!("score_type is a struct")
                };
                Arc::new(StructArray::new(
                    fields,
                    vec![Arc::new(ctr()), Arc::new(dislike())],
                    None,
                ))
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}
