//! ValidatePipeline on IR the real `kfp` 2.17.3 compiler wrote (`tests/samples/`, with their Python sources), and on
//! those documents broken one way at a time: each break is one ERROR naming its place, and the sample itself is
//! valid and described.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use highwind_proto::pipeline::v1 as pb;
use pipeline_svc::api::check;
use serde_yaml::Value;

fn sample(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/samples/{name}", env!("CARGO_MANIFEST_DIR"))).expect("sample")
}

fn errors(response: &pb::ValidatePipelineResponse) -> Vec<(String, String)> {
    response
        .issues
        .iter()
        .filter(|i| i.severity == pb::IssueSeverity::Error as i32)
        .map(|i| (i.reason.clone(), i.location.clone()))
        .collect()
}

#[test]
fn every_compiled_sample_is_valid() {
    for name in [
        "a_linear.yaml",
        "a_linear_noinstall.yaml",
        "c_importer_container.yaml",
        "c_importer_container_noinstall.yaml",
        "d_shell.yaml",
        "e_control.yaml",
        "f_wide.yaml",
        "g_lineage.yaml",
        "h_probe.yaml",
        "i_loop.yaml",
        "j_shell_probe.yaml",
        "k_metrics.yaml",
        "l_image.yaml",
        "m_shape.yaml",
        "n_trivial.yaml",
        "o_python_image.yaml",
        "p_local_packages.yaml",
    ] {
        let response = check(sample(name).as_bytes());
        assert_eq!(errors(&response), [], "{name}: {:?}", response.issues);
        assert!(response.valid && response.description.is_some(), "{name}");
    }
}

#[test]
fn a_description_is_enough_for_a_run_form() {
    let described = check(sample("a_linear_noinstall.yaml").as_bytes()).description.expect("valid");
    assert_eq!(described.pipeline_name, "a-linear");
    assert_eq!((described.sdk_version.as_str(), described.schema_version.as_str()), ("kfp-2.17.3", "2.1.0"));
    let inputs: Vec<_> = described
        .input_parameters
        .iter()
        .map(|p| (p.name.as_str(), p.r#type, p.required, p.default_value.clone().and_then(|v| v.kind)))
        .collect();
    use prost_types::value::Kind::NumberValue;
    assert_eq!(
        inputs,
        [
            ("factor", pb::ParameterType::NumberDouble as i32, false, Some(NumberValue(2.0))),
            ("n", pb::ParameterType::NumberInteger as i32, false, Some(NumberValue(5.0))),
        ]
    );
    assert_eq!(described.output_parameters.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["Output"]);
    let tasks: Vec<_> = described.tasks.iter().map(|t| (t.task.as_str(), t.dependent_tasks.clone())).collect();
    assert_eq!(
        tasks,
        [("make-data", vec![]), ("scale", vec!["make-data".to_owned()]), ("summarize", vec!["scale".to_owned()])]
    );
    assert!(described.tasks.iter().all(|t| t.task_type == pb::TaskType::Container as i32 && t.caching_enabled));

    let importing = check(sample("c_importer_container_noinstall.yaml").as_bytes()).description.expect("valid");
    assert_eq!(importing.importers.len(), 1);
    let importer = &importing.importers[0];
    assert_eq!((importer.task.as_str(), importer.artifact_type.as_str()), ("importer", "system.Dataset"));
    assert_eq!(importer.uri_parameter, "data_uri", "the importer's URI comes from the pipeline input");
    let wc = importing.tasks.iter().find(|t| t.task == "wc-lines").expect("wc-lines");
    assert_eq!((wc.task_type, wc.image.as_str()), (pb::TaskType::Container as i32, "alpine:3.20"));
}

/// A change to a document.
type Edit = Box<dyn FnOnce(&mut Value)>;

/// `a_linear_noinstall.yaml` changed by `edit`, validated.
fn broken(edit: impl FnOnce(&mut Value)) -> pb::ValidatePipelineResponse {
    let mut document: Value = serde_yaml::from_str(&sample("a_linear_noinstall.yaml")).unwrap();
    edit(&mut document);
    check(serde_yaml::to_string(&document).unwrap().as_bytes())
}

fn at<'v>(document: &'v mut Value, path: &str) -> &'v mut Value {
    path.split('.').fold(document, |node, key| node.get_mut(key).unwrap_or_else(|| panic!("no {key} in {path}")))
}

#[test]
fn each_break_is_an_error_naming_its_place() {
    let cases: Vec<(&str, Edit, &str, &str)> = vec![
        (
            "dangling producer",
            Box::new(|d| {
                *at(d, "root.dag.tasks.scale.inputs.parameters.msg.taskOutputParameter.producerTask") =
                    "make-dta".into()
            }),
            "DANGLING_PRODUCER_TASK",
            "root.dag.tasks.scale.inputs.parameters.msg.taskOutputParameter.producerTask",
        ),
        (
            "dangling component",
            Box::new(|d| *at(d, "root.dag.tasks.scale.componentRef.name") = "comp-scael".into()),
            "DANGLING_COMPONENT_REF",
            "root.dag.tasks.scale.componentRef.name",
        ),
        (
            "dangling executor",
            Box::new(|d| *at(d, "components.comp-scale.executorLabel") = "exec-nope".into()),
            "DANGLING_EXECUTOR_LABEL",
            "components.comp-scale.executorLabel",
        ),
        (
            "wrong constant type",
            Box::new(|d| {
                *at(d, "root.dag.tasks.make-data.inputs.parameters.n") =
                    serde_yaml::from_str("runtimeValue: {constant: five}").unwrap()
            }),
            "TYPE_MISMATCH",
            "root.dag.tasks.make-data.inputs.parameters.n",
        ),
        (
            "missing required input",
            Box::new(|d| {
                at(d, "root.dag.tasks.scale.inputs.parameters").as_mapping_mut().unwrap().remove("factor");
            }),
            "MISSING_REQUIRED_INPUT",
            "root.dag.tasks.scale.inputs.parameters.factor",
        ),
        (
            "unknown placeholder",
            Box::new(|d| {
                let args = at(d, "deploymentSpec.executors.exec-scale.container.args").as_sequence_mut().unwrap();
                args[1] = "{{$.inputs.parameters['secret_token']}}".into();
            }),
            "UNKNOWN_PLACEHOLDER",
            "deploymentSpec.executors.exec-scale.container.args[1]",
        ),
        (
            "resolver",
            Box::new(|d| {
                *at(d, "deploymentSpec.executors.exec-scale") =
                    serde_yaml::from_str("resolver: {outputArtifactQueries: {}}").unwrap()
            }),
            "UNSUPPORTED_EXECUTOR",
            "deploymentSpec.executors.exec-scale.resolver",
        ),
        (
            "dangling output selector",
            Box::new(|d| {
                *at(d, "root.dag.outputs.parameters.Output.valueFromParameter.outputParameterKey") = "Nope".into()
            }),
            "DANGLING_OUTPUT_SELECTOR",
            "root.dag.outputs.parameters.Output",
        ),
        (
            "unparsable condition",
            Box::new(|d| {
                let scale = at(d, "root.dag.tasks.scale").as_mapping_mut().unwrap();
                let policy = "condition: int(inputs.parameter_values['pipelinechannel--n']) > (";
                scale.insert("triggerPolicy".into(), serde_yaml::from_str(policy).unwrap());
            }),
            "INVALID_CEL",
            "root.dag.tasks.scale.triggerPolicy.condition",
        ),
        (
            "old schema",
            Box::new(|d| *at(d, "schemaVersion") = "1.0.0".into()),
            "UNSUPPORTED_SCHEMA_VERSION",
            "schemaVersion",
        ),
        (
            "a field of the wrong shape",
            Box::new(|d| *at(d, "root.dag.tasks.scale.dependentTasks") = "make-data".into()),
            "INVALID_FIELD",
            "root.dag.tasks.scale.dependentTasks",
        ),
    ];
    for (what, edit, reason, location) in cases {
        let response = broken(edit);
        assert!(!response.valid && response.description.is_none(), "{what}");
        assert_eq!(errors(&response), [(reason.to_owned(), location.to_owned())], "{what}: {:?}", response.issues);
    }
}

#[test]
fn a_real_cel_condition_is_accepted() {
    let conditioned = broken(|d| {
        let scale = at(d, "root.dag.tasks.scale").as_mapping_mut().unwrap();
        let policy = "condition: int(inputs.parameter_values['pipelinechannel--n']) > 10 && !(1 == 2)";
        scale.insert("triggerPolicy".into(), serde_yaml::from_str(policy).unwrap());
    });
    assert_eq!(errors(&conditioned), []);
    for hostile in [
        "(".repeat(100_000),
        "x".repeat(5_000),
        "inputs.parameter_values['a".into(),
        "1 + + 2 ) ]".into(),
        "\u{0}".into(),
    ] {
        let refused = broken(|d| {
            let scale = at(d, "root.dag.tasks.scale").as_mapping_mut().unwrap();
            let mut policy = serde_yaml::Mapping::new();
            policy.insert("condition".into(), hostile.clone().into());
            scale.insert("triggerPolicy".into(), Value::Mapping(policy));
        });
        assert_eq!(
            errors(&refused),
            [("INVALID_CEL".to_owned(), "root.dag.tasks.scale.triggerPolicy.condition".to_owned())]
        );
    }
    let described = conditioned.description.expect("valid");
    let scale = described.tasks.iter().find(|t| t.task == "scale").expect("scale");
    assert!(scale.condition.starts_with("int(inputs.parameter_values"));
}

#[test]
fn resource_settings_are_a_warning_for_the_local_executor() {
    let with_limits = broken(|d| {
        let container = at(d, "deploymentSpec.executors.exec-scale.container").as_mapping_mut().unwrap();
        container.insert(
            "resources".into(),
            serde_yaml::from_str("{resourceCpuLimit: '2', resourceMemoryLimit: 4G}").unwrap(),
        );
    });
    assert!(with_limits.valid);
    let warnings = &with_limits.description.expect("valid").warnings;
    assert_eq!(warnings.len(), 1);
    assert_eq!(
        (warnings[0].reason.as_str(), warnings[0].location.as_str()),
        ("RESOURCES_IGNORED", "deploymentSpec.executors.exec-scale.container.resources")
    );
}

#[test]
fn importer_uris_the_server_would_refuse_are_flagged() {
    for (uri, flagged) in [
        ("file:///etc/passwd", true),
        ("https://example.com/data.csv", true),
        ("highwind://assets/0190a6f4-0000-7000-8000-000000000001/versions/../../x", true),
        ("highwind://assets/0190a6f4-0000-7000-8000-000000000001/versions/3", false),
    ] {
        let mut document: Value = serde_yaml::from_str(&sample("c_importer_container_noinstall.yaml")).unwrap();
        let importer = at(&mut document, "deploymentSpec.executors.exec-importer.importer.artifactUri");
        *importer = serde_yaml::from_str(&format!("constant: {uri:?}")).unwrap();
        let response = check(serde_yaml::to_string(&document).unwrap().as_bytes());
        assert!(response.valid, "a run may still bind the importer: {uri}");
        let warned = response.issues.iter().any(|i| i.reason == "IMPORTER_URI_REFUSED");
        assert_eq!(warned, flagged, "{uri}");
    }
}

#[test]
fn cycles_are_found_between_tasks_and_between_components() {
    let looped = broken(|d| {
        let make = at(d, "root.dag.tasks.make-data").as_mapping_mut().unwrap();
        make.insert("dependentTasks".into(), serde_yaml::from_str("[summarize]").unwrap());
    });
    let found = errors(&looped);
    assert_eq!(found.len(), 1, "{:?}", looped.issues);
    assert_eq!(found[0].0, "CYCLE");
    assert!(looped.issues[0].message.contains("make-data") && looped.issues[0].message.contains("summarize"));

    let recursive = broken(|d| {
        let dag: Value =
            serde_yaml::from_str("dag: {tasks: {inner: {componentRef: {name: comp-nested}, taskInfo: {name: inner}}}}")
                .unwrap();
        at(d, "components").as_mapping_mut().unwrap().insert("comp-nested".into(), dag);
    });
    assert_eq!(errors(&recursive), [("CYCLE".to_owned(), "components.comp-nested".to_owned())]);
}

#[test]
fn hostile_documents_are_refused_without_being_expanded() {
    let laughs = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n\
                  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n\
                  root: [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n";
    let started = std::time::Instant::now();
    let bomb = check(laughs.as_bytes());
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "not expanded");
    assert!(!bomb.valid);
    assert!(["ALIAS_EXPANSION", "INVALID_FIELD"].contains(&bomb.issues[0].reason.as_str()), "{:?}", bomb.issues);

    let constant = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let deep = format!(
        "root: {{dag: {{tasks: {{t: {{inputs: {{parameters: {{p: {{runtimeValue: {{constant: {constant}}}}}}}}}}}}}}}}}\n"
    );
    let nested = check(deep.as_bytes());
    assert_eq!(nested.issues[0].reason, "TOO_DEEP", "{:?}", nested.issues);

    let syntax = check(b"pipelineInfo:\n  name: x\n root: [\n");
    assert_eq!(syntax.issues[0].reason, "YAML_SYNTAX");
    assert!(syntax.issues[0].line > 0, "the line is given");

    let huge = check(&vec![b'#'; pipeline_svc::ir::MAX_BYTES + 1]);
    assert_eq!(huge.issues[0].reason, "TOO_LARGE");
    let three = format!("{0}---\n{{}}\n---\n{{}}\n", sample("a_linear_noinstall.yaml"));
    assert_eq!(check(three.as_bytes()).issues[0].reason, "TOO_MANY_DOCUMENTS");
    let with_platform = format!("{}---\nplatforms: {{kubernetes: {{}}}}\n", sample("a_linear_noinstall.yaml"));
    let platform = check(with_platform.as_bytes());
    assert!(platform.valid && platform.description.as_ref().unwrap().has_platform_spec);
    assert_eq!(platform.issues[0].reason, "PLATFORM_SPEC_IGNORED");
}
