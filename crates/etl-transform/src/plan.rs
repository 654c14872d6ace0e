//! The transform SQL planned once per stream and input schema, executed for every batch.
//!
//! Planning (parsing the SQL, the logical plan, its optimisation and the physical plan) costs
//! about a millisecond per batch, which a small Kinesis micro-batch pays in full. So the SQL is
//! planned against table `input` backed by [`InputExec`], a leaf that holds no data: each
//! execution hands it its batch through the task's session configuration ([`InputBatch`]).
//! Before each execution the cached plan's operators are rebuilt with fresh state
//! (`reset_plan_states`: metrics and the sort's filter), so batches transformed at the same
//! time share nothing but the immutable plan.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionContext;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{
    reset_plan_states, Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions,
};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use datafusion::prelude::SessionConfig;
use std::fmt;
use std::sync::Arc;

/// The batch an execution of a [`CachedPlan`] reads as table `input`.
pub(crate) struct InputBatch(pub RecordBatch);

/// A physical plan of one stream's SQL for one input schema.
pub(crate) struct CachedPlan {
    pub input_schema: SchemaRef,
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
}

impl CachedPlan {
    /// Plans `sql` in `ctx` (functions registered) with `input` as the schema of table `input`.
    pub async fn new(ctx: SessionContext, sql: &str, input: SchemaRef) -> Result<Self> {
        ctx.register_table("input", Arc::new(InputTable(input.clone())))?;
        let plan = ctx.sql(sql).await?.create_physical_plan().await?;
        Ok(CachedPlan {
            input_schema: input,
            plan,
            task: ctx.task_ctx(),
        })
    }

    /// Runs the plan on `batch` (whose schema must be [`CachedPlan::input_schema`]).
    pub async fn execute(
        &self,
        batch: RecordBatch,
        config: &SessionConfig,
    ) -> Result<Vec<RecordBatch>> {
        let plan = reset_plan_states(self.plan.clone())?;
        let config = config.clone().with_extension(Arc::new(InputBatch(batch)));
        // The plan holds its functions already; execution looks none up by name.
        let task = Arc::new(TaskContext::new(
            self.task.task_id(),
            self.task.session_id(),
            config,
            Default::default(),
            Default::default(),
            Default::default(),
            Default::default(),
            self.task.runtime_env(),
        ));
        datafusion::physical_plan::collect(plan, task).await
    }
}

/// Table `input`: its scan is an [`InputExec`].
#[derive(Debug)]
struct InputTable(SchemaRef);

#[async_trait]
impl TableProvider for InputTable {
    fn schema(&self) -> SchemaRef {
        self.0.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(InputExec::new(
            self.0.clone(),
            projection.cloned(),
        )?))
    }
}

/// The leaf reading the execution's [`InputBatch`] (projected as the plan asked).
#[derive(Debug)]
struct InputExec {
    input: SchemaRef,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl InputExec {
    fn new(input: SchemaRef, projection: Option<Vec<usize>>) -> Result<Self> {
        let schema = match &projection {
            Some(p) => Arc::new(input.project(p)?),
            None => input.clone(),
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(InputExec {
            input,
            projection,
            schema,
            properties,
        })
    }
}

impl DisplayAs for InputExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "InputExec: projection={:?}", self.projection)
    }
}

impl ExecutionPlan for InputExec {
    fn name(&self) -> &'static str {
        "InputExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let internal = |m: String| DataFusionError::Internal(format!("InputExec: {m}"));
        if partition != 0 {
            return Err(internal(format!("partition {partition} of 1")));
        }
        let Some(input) = context.session_config().get_extension::<InputBatch>() else {
            return Err(internal(
                "no input batch in the task's configuration".into(),
            ));
        };
        let batch = &input.0;
        if batch.schema() != self.input {
            return Err(internal(format!(
                "the batch's schema differs from the planned one: {:?}",
                batch.schema()
            )));
        }
        let batch = match &self.projection {
            Some(p) => batch.project(p)?,
            None => batch.clone(),
        };
        Ok(Box::pin(MemoryStream::try_new(
            vec![batch],
            self.schema.clone(),
            None,
        )?))
    }
}
