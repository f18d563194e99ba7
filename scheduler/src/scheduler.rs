//! [`Scheduler`]: submitting tasks and DAGs, and asking about them (cron
//! jobs are in `cron.rs`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::backend::Backend;
use crate::clock::Clock;
use crate::error::SchedulerError;
use crate::registry::Registry;
use crate::task::{Counts, Submitted, Task, TaskId, TaskInfo};

/// The client side of a queue: submits tasks and answers questions about
/// them. Cheap to clone; any number of processes may submit to one Redis
/// queue.
#[derive(Debug)]
pub struct Scheduler<B: Backend> {
    backend: Arc<B>,
    clock: Arc<dyn Clock>,
    registry: Option<Arc<Registry>>,
}

impl<B: Backend> Scheduler<B> {
    /// Now on the scheduler's clock.
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}

impl<B: Backend> Clone for Scheduler<B> {
    fn clone(&self) -> Self {
        Scheduler {
            backend: self.backend.clone(),
            clock: self.clock.clone(),
            registry: self.registry.clone(),
        }
    }
}

impl<B: Backend> Scheduler<B> {
    /// A scheduler on `backend`, reading time from `clock`.
    pub fn new(backend: Arc<B>, clock: Arc<dyn Clock>) -> Self {
        Scheduler { backend, clock, registry: None }
    }

    /// Checks every submission against `registry`: unknown task names and
    /// payloads that do not fit the handler are refused at submit time
    /// rather than dead-lettered later.
    #[must_use]
    pub fn with_registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(Arc::new(registry.clone()));
        self
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<B> {
        &self.backend
    }

    /// Submits one task.
    ///
    /// # Errors
    /// [`SchedulerError::UnknownTask`] / [`SchedulerError::BadPayload`]
    /// (with a registry), [`SchedulerError::DuplicateId`],
    /// [`SchedulerError::UnknownParent`], backend failures.
    pub async fn submit(&self, task: Task) -> Result<Submitted, SchedulerError> {
        let mut submitted = self.submit_all(vec![task]).await?;
        submitted
            .pop()
            .ok_or_else(|| SchedulerError::Backend(crate::BackendError::message("no result")))
    }

    /// Submits tasks in one transition (parents before children).
    ///
    /// # Errors
    /// As [`submit`](Self::submit); on an error nothing is added.
    pub async fn submit_all(&self, tasks: Vec<Task>) -> Result<Vec<Submitted>, SchedulerError> {
        if let Some(registry) = &self.registry {
            for task in &tasks {
                registry.validate(task.name(), task.payload())?;
            }
        }
        let now = self.now_ms();
        self.backend.submit(tasks.into_iter().map(|t| t.into_new(now)).collect(), now).await
    }

    /// Submits a DAG: each task runs after all its parents in the DAG have
    /// succeeded. Returns each node's task id.
    ///
    /// # Errors
    /// [`SchedulerError::Cycle`] when the edges form a cycle (nothing is
    /// submitted), and as [`submit_all`](Self::submit_all).
    pub async fn submit_dag(&self, dag: Dag) -> Result<HashMap<String, TaskId>, SchedulerError> {
        let order = dag.topological_order()?;
        let mut ids = HashMap::new();
        let mut tasks = Vec::with_capacity(order.len());
        for key in order {
            let (task, parents) = &dag.nodes[&key];
            let mut task = task.clone();
            for parent in parents {
                task = task.after_parent(&ids[parent]);
            }
            ids.insert(key.clone(), task.id().clone());
            tasks.push(task);
        }
        self.submit_all(tasks).await?;
        Ok(ids)
    }

    /// What is known about a task.
    ///
    /// # Errors
    /// Backend failures.
    pub async fn info(&self, id: &TaskId) -> Result<Option<TaskInfo>, SchedulerError> {
        self.backend.info(id).await
    }

    /// Waits until task `id` is done for good (succeeded, dead or
    /// cancelled: [`TaskState::is_final`](crate::TaskState::is_final)) and
    /// returns its final info, for at most `within` (`Duration::MAX`: however
    /// long it takes).
    ///
    /// It asks the backend with a backoff (1 ms, doubling to 250 ms), so a
    /// long wait costs a few queries a second, never a tight loop. A
    /// succeeded task is forgotten after the backend's retention period;
    /// wait well within it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use sysblocks_scheduler::{
    ///     MemoryBackend, Registry, Scheduler, Task, TaskState, TokioClock, Worker, WorkerConfig,
    /// };
    ///
    /// let backend = Arc::new(MemoryBackend::new());
    /// let clock = Arc::new(TokioClock::starting_at(Duration::from_millis(1_700_000_000_000)));
    /// let scheduler = Scheduler::new(backend.clone(), clock.clone());
    /// let mut registry = Registry::new();
    /// registry.register("greet", |_ctx, name: String| async move {
    ///     println!("hello, {name}");
    ///     Ok(())
    /// });
    /// let worker = Worker::new(backend, registry, WorkerConfig::default())?.with_clock(clock);
    /// let worker = Arc::new(worker);
    /// let running = tokio::spawn({
    ///     let worker = worker.clone();
    ///     async move { worker.run(Duration::from_secs(1)).await }
    /// });
    /// let id = scheduler.submit(Task::new("greet", "ada")?).await?.id().clone();
    /// let done = scheduler.wait(&id, Duration::from_secs(60)).await?;
    /// assert_eq!(done.state, TaskState::Succeeded);
    /// assert_eq!(done.payload, "\"ada\"");
    /// worker.shutdown();
    /// running.await??;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`SchedulerError::NotFound`] for a task that does not exist (or was
    /// forgotten), [`SchedulerError::WaitTimedOut`] when it is not done
    /// within `within`, and backend failures.
    pub async fn wait(&self, id: &TaskId, within: Duration) -> Result<TaskInfo, SchedulerError> {
        let deadline = deadline_after(within);
        let mut pause = Duration::from_millis(1);
        loop {
            match self.backend.info(id).await? {
                None => return Err(SchedulerError::NotFound { id: id.to_string() }),
                Some(info) if info.state.is_final() => return Ok(info),
                Some(_) => {}
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(SchedulerError::WaitTimedOut { id: id.to_string() });
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    /// [`wait`](Self::wait) for every task of `ids`, within one overall
    /// bound; their final infos in the order of `ids`.
    ///
    /// # Errors
    /// As [`wait`](Self::wait), for the first task that fails it.
    pub async fn wait_all(
        &self,
        ids: &[TaskId],
        within: Duration,
    ) -> Result<Vec<TaskInfo>, SchedulerError> {
        let deadline = deadline_after(within);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            out.push(self.wait(id, left).await?);
        }
        Ok(out)
    }

    /// Tasks per state.
    ///
    /// # Errors
    /// Backend failures.
    pub async fn counts(&self) -> Result<Counts, SchedulerError> {
        self.backend.counts().await
    }

    /// The dead-letter queue, oldest first.
    ///
    /// # Errors
    /// Backend failures.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<TaskInfo>, SchedulerError> {
        self.backend.dead_letters(limit).await
    }

    /// Runs a dead task again, with its attempts reset.
    ///
    /// # Errors
    /// [`SchedulerError::NotFound`], [`SchedulerError::WrongState`].
    pub async fn replay(&self, id: &TaskId) -> Result<(), SchedulerError> {
        self.backend.replay(id, self.now_ms()).await
    }
}

/// The moment `within` from now; a bound past what an `Instant` can hold
/// (`Duration::MAX`, meaning "however long it takes") is a century away.
fn deadline_after(within: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(within).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Tasks with dependencies, named by keys local to the DAG.
///
/// ```
/// use sysblocks_scheduler::{Dag, SchedulerError, Task};
///
/// let mut dag = Dag::new();
/// dag.add("fetch", Task::new("fetch", &())?);
/// dag.add("resize", Task::new("resize", &())?);
/// dag.add("publish", Task::new("publish", &())?);
/// dag.edge("fetch", "resize")?;
/// dag.edge("resize", "publish")?;
/// assert_eq!(dag.topological_order()?, ["fetch", "resize", "publish"]);
/// dag.edge("publish", "fetch")?;
/// assert!(matches!(dag.topological_order(), Err(SchedulerError::Cycle { .. })));
/// # Ok::<(), SchedulerError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Dag {
    nodes: HashMap<String, (Task, Vec<String>)>,
    insertion: Vec<String>,
}

impl Dag {
    /// An empty DAG.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the task under `key`.
    pub fn add(&mut self, key: &str, task: Task) -> &mut Self {
        if self.nodes.insert(key.to_string(), (task, Vec::new())).is_none() {
            self.insertion.push(key.to_string());
        }
        self
    }

    /// `child` runs after `parent` succeeds.
    ///
    /// # Errors
    /// [`SchedulerError::UnknownParent`] when either key was not added.
    pub fn edge(&mut self, parent: &str, child: &str) -> Result<&mut Self, SchedulerError> {
        if !self.nodes.contains_key(parent) {
            return Err(SchedulerError::UnknownParent { parent: parent.to_string() });
        }
        let Some((_, parents)) = self.nodes.get_mut(child) else {
            return Err(SchedulerError::NotFound { id: child.to_string() });
        };
        if !parents.iter().any(|p| p == parent) {
            parents.push(parent.to_string());
        }
        Ok(self)
    }

    /// The keys, parents before children (Kahn's algorithm; ties in
    /// insertion order).
    ///
    /// # Errors
    /// [`SchedulerError::Cycle`] naming a task on a cycle.
    pub fn topological_order(&self) -> Result<Vec<String>, SchedulerError> {
        let mut indegree: HashMap<&str, usize> =
            self.nodes.iter().map(|(k, (_, parents))| (k.as_str(), parents.len())).collect();
        let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
        for key in &self.insertion {
            for parent in &self.nodes[key].1 {
                children.entry(parent.as_str()).or_default().push(key.as_str());
            }
        }
        let mut ready: VecDeque<&str> =
            self.insertion.iter().map(String::as_str).filter(|k| indegree[k] == 0).collect();
        let mut order = Vec::with_capacity(self.nodes.len());
        while let Some(key) = ready.pop_front() {
            order.push(key.to_string());
            for &child in children.get(key).map(Vec::as_slice).unwrap_or_default() {
                let n = indegree.entry(child).or_default();
                *n -= 1;
                if *n == 0 {
                    ready.push_back(child);
                }
            }
        }
        if order.len() < self.nodes.len() {
            let stuck = self.insertion.iter().find(|k| indegree[k.as_str()] > 0);
            return Err(SchedulerError::Cycle { task: stuck.cloned().unwrap_or_default() });
        }
        Ok(order)
    }
}
