//! Cycles in a module graph: the strongly connected components with more
//! than one module, each shown with one concrete cycle through it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::modgraph::Graph;

/// A knot of modules that reach each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knot {
    /// Every module in the component, sorted.
    pub members: Vec<String>,
    /// One cycle through its first member: `a → b → … → a`.
    pub cycle: Vec<String>,
}

impl std::fmt::Display for Knot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cycle {} (modules in the knot: {})",
            self.cycle.join(" → "),
            self.members.join(", ")
        )
    }
}

/// Every knot of `graph`, in the order of their first member.
pub fn knots(graph: &Graph) -> Vec<Knot> {
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for node in graph.keys() {
        if !t.index.contains_key(node.as_str()) {
            t.visit(node);
        }
    }
    let mut found: Vec<Knot> = t
        .components
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|mut members| {
            members.sort();
            let cycle = cycle_through(graph, &members);
            Knot { members, cycle }
        })
        .collect();
    found.sort_by(|a, b| a.members.cmp(&b.members));
    found
}

struct Tarjan<'g> {
    graph: &'g Graph,
    index: BTreeMap<&'g str, usize>,
    low: BTreeMap<&'g str, usize>,
    stack: Vec<&'g str>,
    on_stack: BTreeSet<&'g str>,
    components: Vec<Vec<String>>,
}

impl<'g> Tarjan<'g> {
    fn visit(&mut self, v: &'g str) {
        let n = self.index.len();
        self.index.insert(v, n);
        self.low.insert(v, n);
        self.stack.push(v);
        self.on_stack.insert(v);
        for w in self.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !self.index.contains_key(w) {
                self.visit(w);
                let lw = self.low[w];
                let lv = self.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if self.on_stack.contains(w) {
                let iw = self.index[w];
                let lv = self.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if self.low[v] == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}

/// The shortest cycle from `members[0]` back to itself inside the knot.
fn cycle_through(graph: &Graph, members: &[String]) -> Vec<String> {
    let inside: BTreeSet<&str> = members.iter().map(String::as_str).collect();
    let start = members[0].as_str();
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in graph.get(v).into_iter().flatten().map(String::as_str) {
            if w == start {
                let mut path = vec![start.to_owned()];
                let mut at = v;
                while at != start {
                    path.push(at.to_owned());
                    at = came_from[at];
                }
                path.push(start.to_owned());
                path.reverse();
                return path;
            }
            if inside.contains(w) && !came_from.contains_key(w) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    unreachable!("a strongly connected component has a cycle through each member")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str)]) -> Graph {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    }

    #[test]
    fn an_acyclic_graph_has_no_knot() {
        let g = graph(&[
            ("routes", "lifecycle"),
            ("lifecycle", "store"),
            ("routes", "store"),
        ]);
        assert!(knots(&g).is_empty());
    }

    #[test]
    fn a_cycle_is_found_and_printed() {
        let g = graph(&[
            ("lifecycle", "monitor"),
            ("monitor", "save"),
            ("save", "lifecycle"),
            ("save", "disks"),
            ("routes", "lifecycle"),
            ("x", "y"),
            ("y", "x"),
        ]);
        let k = knots(&g);
        assert_eq!(k.len(), 2, "{k:?}");
        assert_eq!(k[0].members, ["lifecycle", "monitor", "save"]);
        assert_eq!(k[0].cycle, ["lifecycle", "monitor", "save", "lifecycle"]);
        assert_eq!(
            k[0].to_string(),
            "cycle lifecycle → monitor → save → lifecycle \
             (modules in the knot: lifecycle, monitor, save)"
        );
        assert_eq!(k[1].cycle, ["x", "y", "x"]);
    }
}
