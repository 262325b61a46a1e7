//! What a service's tasks say about its node: how far a start got, the node's state,
//! why it does not run, and where its ports are published.
//!
//! A service runs one task at a time; the swarm replaces it when it fails (up to the
//! restart policy) and keeps a few old ones. The tasks that count are those of the
//! service's current generation (see [`spec::generation`](crate::spec::generation))
//! that the swarm still wants to run.
//!
//! A module of its own because reading a task history is the swarm's own concern (a
//! Docker engine lists a container's state as it is): it is the driver's largest piece
//! of logic, pure, and tested as tables of task listings without a swarm.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use bollard::models::{EndpointPortConfigProtocolEnum, Service, Task, TaskState};
use poolcore::driver::LABEL_NODE;
use poolcore::{NodeState, PortSpec, Protocol};
use poolcore_engine::ports_from_labels;

use crate::error::SwarmError;
use crate::spec;

/// How far one node's service got towards running.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Progress<'a> {
    /// Its current task runs (and is healthy, if it has a health check): its ports are
    /// published and can be read from it.
    Running(&'a Task),
    /// Its container started, though it may have exited or failed its health check
    /// since. Enough for a node without ports, as with the Docker driver: what it does
    /// then is for the health checks to tell.
    Started,
    /// Not yet; why.
    Waiting(String),
    /// Its tasks failed until the swarm gave up; why.
    Failed(String),
}

/// A listing of tasks, by the service they belong to.
#[derive(Debug, Default)]
pub(crate) struct TaskIndex<'a>(HashMap<&'a str, Vec<&'a Task>>);

impl<'a> TaskIndex<'a> {
    /// Indexes one listing of (several services') tasks.
    pub(crate) fn new(tasks: &'a [Task]) -> Self {
        let mut index: HashMap<&str, Vec<&Task>> = HashMap::new();
        for task in tasks {
            if let Some(service) = task.service_id.as_deref() {
                index.entry(service).or_default().push(task);
            }
        }
        TaskIndex(index)
    }

    /// The tasks of `service`'s current generation.
    pub(crate) fn current_generation(&self, service: &Service) -> Vec<&'a Task> {
        let Some(tasks) = service.id.as_deref().and_then(|id| self.0.get(id)) else {
            return Vec::new();
        };
        let generation = service.spec.as_ref().map(spec::generation).unwrap_or(0);
        let of_generation =
            |t: &&&Task| t.spec.as_ref().and_then(|s| s.force_update).unwrap_or(0) == generation;
        tasks.iter().filter(of_generation).copied().collect()
    }
}

/// How far `service` got, from the tasks of its current generation. `needs_ports`:
/// the node publishes ports, which the swarm reports only for a running task.
pub(crate) fn progress<'a>(service: &Service, generation: &[&'a Task], needs_ports: bool) -> Progress<'a> {
    if service.spec.as_ref().map(spec::replicas) == Some(0) {
        return Progress::Waiting("scaled to 0 replicas".to_owned());
    }
    let current = current(generation);
    if let Some(task) = current.filter(|t| state(t) == TaskState::RUNNING) {
        return Progress::Running(task);
    }
    if !needs_ports && generation.iter().any(|t| started(t)) {
        return Progress::Started;
    }
    match (current, last_ended(generation)) {
        (Some(task), _) => Progress::Waiting(reason(task)),
        (None, Some(task)) if matches!(state(task), TaskState::FAILED | TaskState::REJECTED) => {
            Progress::Failed(format!(
                "the swarm gave up after {} attempt(s); last: {}",
                generation.len(),
                reason(task)
            ))
        }
        (None, Some(task)) if state(task) == TaskState::COMPLETE => Progress::Failed(format!(
            "it exited before its ports were published: {}",
            reason(task)
        )),
        (None, _) => Progress::Waiting("no task scheduled yet".to_owned()),
    }
}

/// The node's state as `inspect` reports it.
pub(crate) fn node_state(service: &Service, generation: &[&Task]) -> NodeState {
    if service.spec.as_ref().map(spec::replicas) == Some(0) {
        return NodeState::Exited("stopped (scaled to 0 replicas)".to_owned());
    }
    let failure =
        last_ended(generation).filter(|t| matches!(state(t), TaskState::FAILED | TaskState::REJECTED));
    match (current(generation), failure) {
        (Some(task), _) if state(task) == TaskState::RUNNING => NodeState::Running,
        // Waiting for something that may never come, such as a node to run on.
        (Some(task), _) if state(task) == TaskState::PENDING && has_error(task) => {
            NodeState::Exited(reason(task))
        }
        // The swarm tries again, but the node does not run, and this is why.
        (Some(_), Some(failed)) => failed_state(failed, "; the swarm restarts it"),
        (Some(_), None) => NodeState::Starting,
        (None, Some(failed)) => failed_state(failed, ""),
        (None, None) => match last_ended(generation) {
            Some(task) => NodeState::Exited(reason(task)),
            None => NodeState::Starting,
        },
    }
}

fn failed_state(task: &Task, suffix: &str) -> NodeState {
    let why = format!("{}{suffix}", reason(task));
    if unhealthy(task) {
        NodeState::Unhealthy(why)
    } else {
        NodeState::Exited(why)
    }
}

/// The node name of a service: its node label, else its own name.
pub(crate) fn node_name(service: &Service) -> String {
    let spec = service.spec.as_ref();
    let label = spec.and_then(|s| s.labels.as_ref()?.get(LABEL_NODE).cloned());
    label
        .or_else(|| spec.and_then(|s| s.name.clone()))
        .or_else(|| service.id.clone())
        .unwrap_or_default()
}

/// True when the service publishes ports.
pub(crate) fn publishes_ports(service: &Service) -> bool {
    !named_ports(service).is_empty()
}

/// The named ports recorded in the service's labels: port name → `80/tcp`.
fn named_ports(service: &Service) -> BTreeMap<String, String> {
    let labels = service.spec.as_ref().and_then(|s| s.labels.as_ref());
    labels.map(ports_from_labels).unwrap_or_default()
}

/// Each named port of `service` at `address:port`, from the ports its running `task`
/// published.
pub(crate) fn endpoints(
    service: &Service,
    task: &Task,
    address: &str,
) -> Result<BTreeMap<String, String>, SwarmError> {
    let published = task
        .status
        .as_ref()
        .and_then(|s| s.port_status.as_ref())
        .and_then(|p| p.ports.as_deref())
        .unwrap_or_default();
    let mut endpoints = BTreeMap::new();
    for (name, spec) in named_ports(service) {
        let wanted: Option<PortSpec> = spec.parse().ok();
        let host_port = published
            .iter()
            .filter(|p| wanted.is_some_and(|w| same_port(w, p.target_port, p.protocol)))
            .find_map(|p| p.published_port.filter(|port| *port > 0));
        let Some(host_port) = host_port else {
            return Err(SwarmError::PortNotPublished {
                service: service
                    .spec
                    .as_ref()
                    .and_then(|s| s.name.clone())
                    .unwrap_or_default(),
                port: spec,
                task: task.id.clone().unwrap_or_default(),
            });
        };
        endpoints.insert(name, format!("{address}:{host_port}"));
    }
    Ok(endpoints)
}

fn same_port(
    wanted: PortSpec,
    target: Option<i64>,
    protocol: Option<EndpointPortConfigProtocolEnum>,
) -> bool {
    let protocol = match protocol {
        Some(EndpointPortConfigProtocolEnum::UDP) => Protocol::Udp,
        // The engine leaves the protocol out for TCP.
        _ => Protocol::Tcp,
    };
    target == Some(i64::from(wanted.port)) && protocol == wanted.protocol
}

/// Where a task's published ports are reached: the address of the swarm node it runs
/// on, as `nodes` (node id → address) says. The host's `public_address` stands in on
/// the node the driver talks to (`own_node`), whose address the operator gave, and
/// where the swarm knows no usable address (empty, loopback, unspecified).
pub(crate) fn task_address(
    task: &Task,
    own_node: &str,
    nodes: &HashMap<String, String>,
    public_address: &str,
) -> String {
    let node = task.node_id.as_deref().unwrap_or_default();
    if node == own_node {
        return public_address.to_owned();
    }
    match nodes.get(node).map(String::as_str) {
        Some(address) if usable(address) => match address.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => address.to_owned(),
        },
        _ => public_address.to_owned(),
    }
}

fn usable(address: &str) -> bool {
    match address.parse::<IpAddr>() {
        Ok(ip) => !ip.is_loopback() && !ip.is_unspecified(),
        Err(_) => !address.trim().is_empty(),
    }
}

/// Why a task is where it is, in words an operator acts on: `image missing: No such
/// image: …`, `health check failed: …`, `failed: task: non-zero exit (3)`,
/// `pending: no suitable node (…)`.
pub(crate) fn reason(task: &Task) -> String {
    let status = task.status.as_ref();
    let err = status.and_then(|s| s.err.as_deref()).unwrap_or_default();
    let message = status.and_then(|s| s.message.as_deref()).unwrap_or_default();
    let state = state(task);
    if err.contains("No such image") {
        format!("image missing: {err}")
    } else if unhealthy(task) {
        format!("health check failed: {err}")
    } else if !err.is_empty() {
        format!("{state}: {err}")
    } else if !message.is_empty() && message != state.to_string() {
        format!("{state}: {message}")
    } else {
        state.to_string()
    }
}

pub(crate) fn state(task: &Task) -> TaskState {
    task.status
        .as_ref()
        .and_then(|s| s.state)
        .unwrap_or(TaskState::NEW)
}

fn has_error(task: &Task) -> bool {
    task.status
        .as_ref()
        .and_then(|s| s.err.as_deref())
        .is_some_and(|e| !e.is_empty())
}

/// The engine killed the task's container because its health check failed.
fn unhealthy(task: &Task) -> bool {
    let err = task.status.as_ref().and_then(|s| s.err.as_deref());
    err.is_some_and(|e| e.contains("unhealthy container"))
}

/// The task's container was started (whatever became of it since).
fn started(task: &Task) -> bool {
    let status = task.status.as_ref();
    let container = status
        .and_then(|s| s.container_status.as_ref())
        .and_then(|c| c.container_id.as_deref())
        .is_some_and(|id| !id.is_empty());
    // The engine's words for a process that ran and ended (or was killed unhealthy),
    // as opposed to one that never started.
    let exited = status
        .and_then(|s| s.err.as_deref())
        .is_some_and(|e| e.starts_with("task: non-zero exit"));
    match state(task) {
        TaskState::STARTING | TaskState::RUNNING | TaskState::COMPLETE => true,
        TaskState::FAILED => container && exited,
        _ => false,
    }
}

/// The task the swarm wants to run now: running if one does, else the latest.
fn current<'a>(generation: &[&'a Task]) -> Option<&'a Task> {
    let wanted = generation.iter().copied().filter(|t| {
        matches!(
            t.desired_state,
            Some(TaskState::READY | TaskState::RUNNING | TaskState::ACCEPTED)
        )
    });
    wanted.max_by_key(|t| (state(t) == TaskState::RUNNING, version(t)))
}

/// The latest task that ended.
fn last_ended<'a>(generation: &[&'a Task]) -> Option<&'a Task> {
    let ended = generation.iter().copied().filter(|t| {
        matches!(
            state(t),
            TaskState::COMPLETE
                | TaskState::SHUTDOWN
                | TaskState::FAILED
                | TaskState::REJECTED
                | TaskState::ORPHANED
                | TaskState::REMOVE
        )
    });
    ended.max_by_key(|t| version(t))
}

/// The task's version: the swarm's change counter, higher for later changes.
fn version(task: &Task) -> u64 {
    task.version.as_ref().and_then(|v| v.index).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use bollard::models::{
        ContainerStatus, EndpointPortConfig, ObjectVersion, PortStatus, ServiceSpec, TaskSpec, TaskStatus,
    };

    use super::*;

    fn service(replicas: i64, generation: u64, ports: &[(&str, &str)]) -> Service {
        let mut labels: HashMap<String, String> = ports
            .iter()
            .map(|(name, spec)| (format!("poolmanager.port.{name}"), (*spec).to_owned()))
            .collect();
        labels.insert(LABEL_NODE.to_owned(), "vp0".to_owned());
        let mut spec = ServiceSpec {
            name: Some("pm-c-vp0-1234".into()),
            labels: Some(labels),
            task_template: Some(TaskSpec {
                force_update: Some(generation),
                ..Default::default()
            }),
            ..Default::default()
        };
        spec::set_replicas(&mut spec, replicas);
        Service {
            id: Some("svc".into()),
            spec: Some(spec),
            ..Default::default()
        }
    }

    struct T {
        state: TaskState,
        desired: TaskState,
        err: &'static str,
        container: bool,
        version: u64,
        generation: u64,
    }

    impl T {
        fn new(state: TaskState, desired: TaskState, version: u64) -> Self {
            T {
                state,
                desired,
                err: "",
                container: true,
                version,
                generation: 0,
            }
        }

        fn err(mut self, err: &'static str) -> Self {
            self.err = err;
            self
        }

        fn no_container(mut self) -> Self {
            self.container = false;
            self
        }

        fn generation(mut self, generation: u64) -> Self {
            self.generation = generation;
            self
        }

        fn task(self) -> Task {
            Task {
                id: Some(format!("task-{}", self.version)),
                version: Some(ObjectVersion {
                    index: Some(self.version),
                }),
                service_id: Some("svc".into()),
                node_id: Some("node-1".into()),
                spec: Some(TaskSpec {
                    force_update: Some(self.generation),
                    ..Default::default()
                }),
                desired_state: Some(self.desired),
                status: Some(TaskStatus {
                    state: Some(self.state),
                    err: (!self.err.is_empty()).then(|| self.err.to_owned()),
                    container_status: Some(ContainerStatus {
                        container_id: Some(if self.container { "c0ffee" } else { "" }.to_owned()),
                        ..Default::default()
                    }),
                    port_status: Some(PortStatus {
                        ports: Some(vec![EndpointPortConfig {
                            protocol: Some(EndpointPortConfigProtocolEnum::TCP),
                            target_port: Some(80),
                            published_port: Some(30001),
                            ..Default::default()
                        }]),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }
        }
    }

    use TaskState as S;

    fn current_generation<'a>(service: &Service, tasks: &'a [Task]) -> Vec<&'a Task> {
        TaskIndex::new(tasks).current_generation(service)
    }

    fn progress_of(service: &Service, tasks: &[Task]) -> String {
        let generation = current_generation(service, tasks);
        match progress(service, &generation, publishes_ports(service)) {
            Progress::Running(task) => format!("running {}", task.id.as_deref().unwrap_or_default()),
            Progress::Started => "started".into(),
            Progress::Waiting(why) => format!("waiting: {why}"),
            Progress::Failed(why) => format!("failed: {why}"),
        }
    }

    #[test]
    fn a_running_task_of_the_current_generation_counts() {
        let web = service(1, 1, &[("http", "80/tcp")]);
        let tasks = [
            // The one before the restart, still shutting down.
            T::new(S::RUNNING, S::SHUTDOWN, 5).task(),
            T::new(S::RUNNING, S::RUNNING, 9).generation(1).task(),
        ];
        assert_eq!(progress_of(&web, &tasks), "running task-9");
        let generation = current_generation(&web, &tasks);
        assert_eq!(node_state(&web, &generation), NodeState::Running);
    }

    #[test]
    fn an_older_generation_is_not_mistaken_for_the_restarted_node() {
        let web = service(1, 2, &[("http", "80/tcp")]);
        let tasks = [T::new(S::RUNNING, S::RUNNING, 5).generation(1).task()];
        assert_eq!(progress_of(&web, &tasks), "waiting: no task scheduled yet");
        assert_eq!(
            node_state(&web, &current_generation(&web, &tasks)),
            NodeState::Starting
        );
    }

    #[test]
    fn a_missing_image_fails_once_the_swarm_gives_up() {
        let web = service(1, 0, &[("http", "80/tcp")]);
        let missing = "No such image: poolmanager/does-not-exist:1";
        let mut tasks = vec![
            T::new(S::REJECTED, S::SHUTDOWN, 3)
                .err(missing)
                .no_container()
                .task(),
            T::new(S::NEW, S::READY, 4).no_container().task(),
        ];
        // The swarm is about to try again.
        assert_eq!(progress_of(&web, &tasks), "waiting: new");
        tasks[1] = T::new(S::REJECTED, S::SHUTDOWN, 6)
            .err(missing)
            .no_container()
            .task();
        assert_eq!(
            progress_of(&web, &tasks),
            "failed: the swarm gave up after 2 attempt(s); last: image missing: No such image: poolmanager/does-not-exist:1"
        );
        let state = node_state(&web, &current_generation(&web, &tasks));
        assert_eq!(state, NodeState::Exited(format!("image missing: {missing}")));
    }

    #[test]
    fn a_node_without_ports_counts_once_its_container_started() {
        let crash = service(1, 0, &[]);
        let tasks = [
            T::new(S::FAILED, S::SHUTDOWN, 3)
                .err("task: non-zero exit (3)")
                .task(),
            T::new(S::FAILED, S::SHUTDOWN, 5)
                .err("task: non-zero exit (3)")
                .task(),
        ];
        assert_eq!(progress_of(&crash, &tasks), "started");
        assert_eq!(
            node_state(&crash, &current_generation(&crash, &tasks)),
            NodeState::Exited("failed: task: non-zero exit (3)".into())
        );
        // A container that could not start is no start.
        let tasks = [T::new(S::FAILED, S::SHUTDOWN, 3)
            .err("starting container failed: exec: \"nope\": not found")
            .task()];
        assert!(
            progress_of(&crash, &tasks).starts_with("failed: "),
            "{}",
            progress_of(&crash, &tasks)
        );
        // Nor is a container waiting for its first health check, for a node with ports.
        let web = service(1, 0, &[("http", "80/tcp")]);
        let tasks = [T::new(S::STARTING, S::RUNNING, 3).task()];
        assert_eq!(progress_of(&crash, &tasks), "started");
        assert_eq!(progress_of(&web, &tasks), "waiting: starting");
    }

    #[test]
    fn a_failing_health_check_is_unhealthy() {
        let sick = service(1, 0, &[]);
        let tasks = [T::new(S::FAILED, S::SHUTDOWN, 7)
            .err("task: non-zero exit (137): dockerexec: unhealthy container")
            .task()];
        let generation = current_generation(&sick, &tasks);
        assert!(
            matches!(node_state(&sick, &generation), NodeState::Unhealthy(ref why) if why.starts_with("health check failed")),
            "{:?}",
            node_state(&sick, &generation)
        );
    }

    #[test]
    fn a_node_the_swarm_restarts_reports_why_until_it_runs() {
        let crash = service(1, 0, &[]);
        let mut tasks = vec![
            T::new(S::FAILED, S::SHUTDOWN, 3)
                .err("task: non-zero exit (3)")
                .task(),
            T::new(S::READY, S::READY, 4).task(),
        ];
        assert_eq!(
            node_state(&crash, &current_generation(&crash, &tasks)),
            NodeState::Exited("failed: task: non-zero exit (3); the swarm restarts it".into())
        );
        tasks[1] = T::new(S::RUNNING, S::RUNNING, 6).task();
        assert_eq!(
            node_state(&crash, &current_generation(&crash, &tasks)),
            NodeState::Running
        );
        // A node stopped on purpose and started again is just starting.
        let tasks = [
            T::new(S::SHUTDOWN, S::SHUTDOWN, 3).task(),
            T::new(S::PREPARING, S::RUNNING, 4).task(),
        ];
        assert_eq!(
            node_state(&crash, &current_generation(&crash, &tasks)),
            NodeState::Starting
        );
    }

    #[test]
    fn unschedulable_and_stopped_nodes_say_why() {
        let web = service(1, 0, &[]);
        let tasks = [T::new(S::PENDING, S::RUNNING, 2)
            .err("no suitable node (scheduling constraints not satisfied on 1 node)")
            .no_container()
            .task()];
        let generation = current_generation(&web, &tasks);
        assert_eq!(
            node_state(&web, &generation),
            NodeState::Exited(
                "pending: no suitable node (scheduling constraints not satisfied on 1 node)".into()
            )
        );
        assert!(progress_of(&web, &tasks).contains("no suitable node"));

        let stopped = service(0, 0, &[]);
        assert!(matches!(node_state(&stopped, &[]), NodeState::Exited(_)));
        assert_eq!(node_state(&web, &[]), NodeState::Starting);
    }

    #[test]
    fn endpoints_come_from_the_running_task() {
        let web = service(1, 0, &[("http", "80/tcp"), ("admin", "80/tcp")]);
        let task = T::new(S::RUNNING, S::RUNNING, 2).task();
        let endpoints = endpoints(&web, &task, "10.0.0.7").unwrap();
        assert_eq!(endpoints["http"], "10.0.0.7:30001");
        assert_eq!(endpoints["admin"], "10.0.0.7:30001");

        let dns = service(1, 0, &[("dns", "53/udp")]);
        let err = super::endpoints(&dns, &task, "10.0.0.7").unwrap_err();
        assert!(err.to_string().contains("53/udp"), "{err}");
    }

    #[test]
    fn addresses_fall_back_to_the_public_address() {
        let task = T::new(S::RUNNING, S::RUNNING, 2).task();
        let nodes = |addr: &str| HashMap::from([("node-1".to_owned(), addr.to_owned())]);
        assert_eq!(
            task_address(&task, "other", &nodes("10.0.0.2"), "pub"),
            "10.0.0.2"
        );
        assert_eq!(task_address(&task, "node-1", &nodes("10.0.0.2"), "pub"), "pub");
        assert_eq!(task_address(&task, "other", &nodes("127.0.0.1"), "pub"), "pub");
        assert_eq!(task_address(&task, "other", &nodes("0.0.0.0"), "pub"), "pub");
        assert_eq!(task_address(&task, "other", &nodes(""), "pub"), "pub");
        assert_eq!(task_address(&task, "other", &HashMap::new(), "pub"), "pub");
        assert_eq!(
            task_address(&task, "other", &nodes("fd00::2"), "pub"),
            "[fd00::2]"
        );
    }
}
