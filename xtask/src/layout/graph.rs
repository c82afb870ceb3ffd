//! The import graph of one build target (a library, a binary): files as nodes, an edge where a
//! file uses an item another file defines, and the loops in it.
//!
//! A path is resolved to the file that defines the item: `crate::cache::Cache` goes to the
//! file of module `cache` if it defines `Cache`, else through that module's re-exports to the
//! file they name. A module re-exporting items of its own submodules (`pub use entry::Entry;`)
//! and declaring them (`mod entry;`) is the module's face, not an import; any other use is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::items::{FileItems, PathRef};

/// One file of a target.
#[derive(Debug, Clone)]
pub struct Node {
    /// Path shown in reports (relative to the workspace root).
    pub path: PathBuf,
    /// Its module path inside the target (`[]` for the root, `["cache", "read"]`).
    pub module: Vec<String>,
    /// What it defines and uses.
    pub items: FileItems,
}

/// One edge: `from` uses something of `to`, first at `line` through `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub line: usize,
    pub path: String,
}

/// The files of one target and the edges between them.
pub struct Graph {
    pub nodes: Vec<Node>,
    by_module: BTreeMap<Vec<String>, usize>,
    /// `from` → `to` → the first edge.
    pub edges: BTreeMap<usize, BTreeMap<usize, Edge>>,
}

impl Graph {
    /// Builds the graph of `nodes` (one target).
    pub fn new(nodes: Vec<Node>) -> Self {
        let by_module = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.module.clone(), i))
            .collect();
        let mut graph = Graph {
            nodes,
            by_module,
            edges: BTreeMap::new(),
        };
        for from in 0..graph.nodes.len() {
            for path in graph.nodes[from].items.paths.clone() {
                graph.add_edge(from, &path);
            }
        }
        graph
    }

    fn add_edge(&mut self, from: usize, path: &PathRef) {
        let node = &self.nodes[from];
        let Some(absolute) = absolute(node, &path.segments) else {
            return;
        };
        let Some(to) = self.resolve(&absolute, 0) else {
            return;
        };
        let own_face = path.reexport && self.nodes[to].module.starts_with(&node.module);
        if to == from || own_face {
            return;
        }
        self.edges
            .entry(from)
            .or_default()
            .entry(to)
            .or_insert(Edge {
                from,
                to,
                line: path.line,
                path: path.segments.join("::"),
            });
    }

    /// The file defining the item at `path` (absolute in the target), or the deepest module
    /// file on the way when the item is not found (a macro-made item, an enum variant…).
    fn resolve(&self, path: &[String], hops: usize) -> Option<usize> {
        let (module_len, module) = (0..=path.len())
            .rev()
            .find_map(|n| self.by_module.get(&path[..n]).map(|m| (n, *m)))?;
        let rest = &path[module_len..];
        let Some(name) = rest.first() else {
            return Some(module);
        };
        let items = &self.nodes[module].items;
        if hops > 8 || items.defined.contains(name) {
            return Some(module);
        }
        let base = &self.nodes[module];
        if let Some((_, target)) = items.reexports.iter().find(|(alias, _)| alias == name) {
            if let Some(mut target) = absolute(base, target) {
                target.extend(rest[1..].iter().cloned());
                return self.resolve(&target, hops + 1).or(Some(module));
            }
        }
        for glob in &items.glob_reexports {
            let Some(mut target) = absolute(base, glob) else {
                continue;
            };
            target.extend(rest.iter().cloned());
            if let Some(found) = self.resolve(&target, hops + 1) {
                if self.nodes[found]
                    .items
                    .defined
                    .contains(rest.last().unwrap_or(name))
                    || found != module
                {
                    return Some(found);
                }
            }
        }
        Some(module)
    }

    /// Every loop: the strongly connected parts with more than one file, each as its files
    /// and one cycle through them (the edges in order).
    pub fn loops(&self) -> Vec<(BTreeSet<usize>, Vec<Edge>)> {
        let components = strongly_connected(self.nodes.len(), |n| {
            self.edges
                .get(&n)
                .map(|to| to.keys().copied().collect())
                .unwrap_or_default()
        });
        components
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|component| {
                let cycle = self.cycle_in(&component);
                (component, cycle)
            })
            .collect()
    }

    /// A shortest cycle through the first file of `component`, by breadth-first search.
    fn cycle_in(&self, component: &BTreeSet<usize>) -> Vec<Edge> {
        let start = *component.iter().next().unwrap_or(&0);
        let mut came_from: BTreeMap<usize, usize> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(n) = queue.pop_front() {
            for &to in self.edges.get(&n).map(|e| e.keys()).into_iter().flatten() {
                if !component.contains(&to) || came_from.contains_key(&to) {
                    continue;
                }
                came_from.insert(to, n);
                if to == start {
                    queue.clear();
                    break;
                }
                queue.push_back(to);
            }
        }
        let mut cycle = Vec::new();
        let mut at = start;
        while let Some(&prev) = came_from.get(&at) {
            cycle.push(self.edges[&prev][&at].clone());
            at = prev;
            if at == start {
                break;
            }
        }
        cycle.reverse();
        cycle
    }
}

/// `segments` made absolute from `node`'s module: `crate::`, `super::`, `self::`, or a
/// child module's name; `None` for other crates' paths.
fn absolute(node: &Node, segments: &[String]) -> Option<Vec<String>> {
    let first = segments.first()?;
    let mut base = match first.as_str() {
        "crate" => return Some(segments[1..].to_vec()),
        "self" => node.module.clone(),
        "super" => node.module.clone(),
        name if node.items.child_modules.iter().any(|c| c == name) => {
            let mut path = node.module.clone();
            path.extend(segments.iter().cloned());
            return Some(path);
        }
        _ => return None,
    };
    let mut rest = &segments[1..];
    if first == "super" {
        base.pop()?;
        while rest.first().is_some_and(|s| s == "super") {
            base.pop()?;
            rest = &rest[1..];
        }
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// Tarjan's strongly connected components (iterative).
fn strongly_connected(n: usize, next: impl Fn(usize) -> Vec<usize>) -> Vec<BTreeSet<usize>> {
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut components = Vec::new();
    let mut counter = 0;
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, Vec<usize>)> = vec![(root, next(root))];
        index[root] = counter;
        low[root] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some((v, pending)) = work.last_mut() {
            let v = *v;
            if let Some(w) = pending.pop() {
                if index[w] == usize::MAX {
                    index[w] = counter;
                    low[w] = counter;
                    counter += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, next(w)));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some((parent, _)) = work.last() {
                low[*parent] = low[*parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = BTreeSet::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.insert(w);
                    if w == v {
                        break;
                    }
                }
                components.push(component);
            }
        }
    }
    components
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::items::read;

    fn node(path: &str, module: &[&str], code: &str) -> Node {
        Node {
            path: PathBuf::from(path),
            module: module.iter().map(|s| s.to_string()).collect(),
            items: read(code),
        }
    }

    #[test]
    fn two_files_using_each_other_are_a_loop() {
        let graph = Graph::new(vec![
            node("lib.rs", &[], "mod a;\nmod b;\n"),
            node("a.rs", &["a"], "use crate::b::B;\npub struct A;\n"),
            node(
                "b.rs",
                &["b"],
                "pub struct B;\nfn f() { let _ = super::a::A; }\n",
            ),
        ]);
        let loops = graph.loops();
        assert_eq!(loops.len(), 1);
        assert_eq!(loops[0].0, BTreeSet::from([1, 2]));
        assert!(loops[0]
            .1
            .iter()
            .any(|e| e.path == "super::a::A" && e.line == 2));
    }

    #[test]
    fn a_parent_declaring_and_reexporting_its_children_is_no_loop() {
        let graph = Graph::new(vec![
            node("lib.rs", &[], "mod cache;\npub use cache::Entry;\n"),
            node(
                "cache/mod.rs",
                &["cache"],
                "mod entry;\npub use entry::Entry;\npub struct Cache;\n",
            ),
            node(
                "cache/entry.rs",
                &["cache", "entry"],
                "use super::Cache;\npub struct Entry;\n",
            ),
            node("other.rs", &["other"], "use crate::Entry;\n"),
        ]);
        assert!(graph.loops().is_empty());
        // `crate::Entry` goes through two re-exports to the file defining it.
        assert_eq!(graph.edges[&3].keys().copied().collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn a_longer_loop_is_found_and_walked_in_order() {
        let graph = Graph::new(vec![
            node("a.rs", &["a"], "use crate::b::B;\npub struct A;\n"),
            node("b.rs", &["b"], "use crate::c::C;\npub struct B;\n"),
            node("c.rs", &["c"], "use crate::a::A;\npub struct C;\n"),
            node("d.rs", &["d"], "use crate::a::A;\n"),
        ]);
        let loops = graph.loops();
        assert_eq!(loops.len(), 1);
        let walk: Vec<_> = loops[0].1.iter().map(|e| (e.from, e.to)).collect();
        assert_eq!(walk, [(0, 1), (1, 2), (2, 0)]);
    }

    #[test]
    fn a_parent_using_a_child_that_uses_the_parent_is_a_loop() {
        let graph = Graph::new(vec![
            node(
                "cache/mod.rs",
                &["cache"],
                "mod read;\npub struct Cache;\nfn get() { read::get_one(); }\n",
            ),
            node(
                "cache/read.rs",
                &["cache", "read"],
                "use super::Cache;\npub fn get_one() {}\n",
            ),
        ]);
        assert_eq!(graph.loops().len(), 1);
    }
}
