//! How large a run of a pipeline is before it starts, as far as the IR alone says: what CreateRun can hold against
//! the executor's limits. Loops over items known only at run time count no iterations here; the driver checks
//! them when it expands them.

use std::collections::BTreeMap;

use super::spec::{ComponentSpec, PipelineSpec, Task};

/// The known part of a run's size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Size {
    /// Tasks the run holds once expanded: every DAG task, loop, loop iteration and task inside them.
    pub tasks: u64,
    /// Items of loops over constant lists, counted as often as their loop runs.
    pub loop_items: u64,
}

impl Size {
    fn add(self, other: Self) -> Self {
        Self {
            tasks: self.tasks.saturating_add(other.tasks),
            loop_items: self.loop_items.saturating_add(other.loop_items),
        }
    }

    fn times(self, n: u64) -> Self {
        Self { tasks: self.tasks.saturating_mul(n), loop_items: self.loop_items.saturating_mul(n) }
    }
}

/// The known size of a run of `spec`, in time linear in the IR (each component is sized once).
pub fn size(spec: &PipelineSpec) -> Size {
    let mut sized = BTreeMap::new();
    spec.root.as_ref().map_or_else(Size::default, |root| body(spec, root, &mut sized))
}

/// What one run of `component`'s DAG holds; `sized` remembers components already sized (and, while one is being
/// sized, counts it as empty, so a cycle the validator refused cannot recurse).
fn body<'s>(spec: &'s PipelineSpec, component: &'s ComponentSpec, sized: &mut BTreeMap<&'s str, Size>) -> Size {
    let Some(dag) = &component.dag else { return Size::default() };
    dag.tasks.values().fold(Size::default(), |total, task| total.add(of_task(spec, task, sized)))
}

fn of_task<'s>(spec: &'s PipelineSpec, task: &'s Task, sized: &mut BTreeMap<&'s str, Size>) -> Size {
    let itself = Size { tasks: 1, loop_items: 0 };
    let name = task.component_ref.name.as_str();
    let inner = match sized.get(name) {
        Some(size) => *size,
        None => match spec.components.get(name) {
            Some(component) => {
                sized.insert(name, Size::default());
                let size = body(spec, component, sized);
                sized.insert(name, size);
                size
            }
            None => Size::default(),
        },
    };
    let raw = task.parameter_iterator.as_ref().and_then(|iterator| iterator.items.raw.as_deref());
    match raw {
        // Each iteration is a task holding one run of the body.
        Some(raw) => {
            let items = constant_items(raw);
            itself.add(Size { tasks: items, loop_items: items }).add(inner.times(items))
        }
        None if task.parameter_iterator.is_some() || task.artifact_iterator.is_some() => itself,
        None => itself.add(inner),
    }
}

/// How many items a constant loop list holds (0 when it is not a JSON list: the run fails on it anyway).
fn constant_items(raw: &str) -> u64 {
    serde_json::from_str::<Vec<serde::de::IgnoredAny>>(raw)
        .map_or(0, |items| u64::try_from(items.len()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> PipelineSpec {
        serde_yaml::from_str(text).expect("spec")
    }

    #[test]
    fn loops_over_constants_multiply_their_bodies() {
        let text = r#"
root:
  dag:
    tasks:
      first: {componentRef: {name: comp-leaf}}
      loop:
        componentRef: {name: comp-body}
        parameterIterator: {itemInput: x, items: {raw: '[1, 2, 3]'}}
      later:
        componentRef: {name: comp-body}
        parameterIterator: {itemInput: x, items: {inputParameter: list}}
components:
  comp-leaf: {executorLabel: exec-leaf}
  comp-body:
    dag:
      tasks:
        a: {componentRef: {name: comp-leaf}}
        inner:
          componentRef: {name: comp-inner}
          parameterIterator: {itemInput: y, items: {raw: '["p", "q"]'}}
  comp-inner:
    dag:
      tasks:
        b: {componentRef: {name: comp-leaf}}
"#;
        // first (1) + loop (1) + 3 × (iteration 1 + a 1 + inner 1 + 2 × (iteration 1 + b 1)) + later (1)
        assert_eq!(size(&spec(text)), Size { tasks: 1 + 1 + 3 * (1 + 1 + 1 + 2 * 2) + 1, loop_items: 3 + 3 * 2 });
    }

    #[test]
    fn a_cycle_is_sized_without_recursing_for_ever() {
        let text = r#"
root: {dag: {tasks: {t: {componentRef: {name: comp-a}}}}}
components:
  comp-a: {dag: {tasks: {u: {componentRef: {name: comp-a}}}}}
"#;
        assert_eq!(size(&spec(text)).tasks, 2);
    }
}
