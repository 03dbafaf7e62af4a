//! The action graph: actions as nodes, `depends_on` as edges (dependency → dependent).
//!
//! Built with petgraph and checked once: ids unique, every dependency known, no cycle. Apply walks
//! it; `graph` renders it. This module only builds and checks; it never decides what depends on what.

use rustc_hash::FxHashMap;

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};

use super::model::{Action, Plan};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("action id `{0}` is used twice")]
    DuplicateId(String),
    #[error("action `{action}` depends on `{missing}`, which is not in the plan")]
    UnknownDependency { action: String, missing: String },
    #[error("the actions form a cycle through `{0}`")]
    Cycle(String),
}

/// The checked graph of a plan's actions; node weights are indexes into `plan.actions`.
#[derive(Debug)]
pub struct ActionGraph {
    pub graph: DiGraph<usize, ()>,
    pub nodes: Vec<NodeIndex>,
    /// Indexes into `plan.actions`, in an order where every action follows its dependencies.
    pub order: Vec<usize>,
}

impl ActionGraph {
    pub fn build(plan: &Plan) -> Result<Self, GraphError> {
        Self::from_actions(&plan.actions)
    }

    pub fn from_actions(actions: &[Action]) -> Result<Self, GraphError> {
        let mut graph = DiGraph::with_capacity(actions.len(), actions.len());
        // Only looked up, never walked: a hash map (the order of actions is the plan's).
        let mut by_id: FxHashMap<&str, NodeIndex> = FxHashMap::default();
        by_id.reserve(actions.len());
        let mut nodes = Vec::with_capacity(actions.len());
        for (i, a) in actions.iter().enumerate() {
            let n = graph.add_node(i);
            if by_id.insert(a.id.as_str(), n).is_some() {
                return Err(GraphError::DuplicateId(a.id.clone()));
            }
            nodes.push(n);
        }
        for (i, a) in actions.iter().enumerate() {
            for dep in &a.depends_on {
                let from =
                    by_id
                        .get(dep.as_str())
                        .ok_or_else(|| GraphError::UnknownDependency {
                            action: a.id.clone(),
                            missing: dep.clone(),
                        })?;
                graph.add_edge(*from, nodes[i], ());
            }
        }
        let order = toposort(&graph, None)
            .map_err(|c| GraphError::Cycle(actions[graph[c.node_id()]].id.clone()))?
            .into_iter()
            .map(|n| graph[n])
            .collect();
        Ok(ActionGraph {
            graph,
            nodes,
            order,
        })
    }
}
