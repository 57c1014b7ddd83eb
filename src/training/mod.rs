//! Training and evaluation: from a SQL-defined dataset to a saved model and its metrics.
//!
//! | module | owns |
//! | --- | --- |
//! | [`settings`] | the settings of a training job, resolved in one place |
//! | [`workflow`] | what `dumn train`, `ablate` and `eval` do: prepare once, train, save, tabulate |
//! | [`dataset`] | the time split, the feature columns of the inputs, the materialised [`dataset::ExampleFiles`] |
//! | [`vocabulary`] | the embedding vocabularies, counted on the train split |
//! | [`fit`] | the epoch loop: shuffling, early stopping, best-on-validation weights |
//! | [`step`] | one optimisation step (Adam, the losses, the memory write) |
//! | [`evaluate`] | the metrics of a model on a split or on examples in memory |
//! | [`compare`] | intervals over seeds, paired bootstrap intervals of AUC differences |
//! | [`metrics`] | AUC, GAUC, logloss |
//! | [`report`] | the pictures: learning curve, test ROC and calibration, the ablation chart (SVG) |
//!
//! This stage calls [`crate::data`], [`crate::engine`], [`crate::model`] and [`crate::io`].

pub mod compare;
pub mod dataset;
pub mod evaluate;
pub mod fit;
pub mod metrics;
pub mod report;
pub mod settings;
pub mod step;
pub mod vocabulary;
pub mod workflow;
