"""(k) Metadata and metrics as KFP components write them: a model with metadata, an evaluation step that fills an
Output[Metrics] only with log_metric (no file written) and returns its score, a condition on that score, and a
step inside the condition reading the metrics' metadata."""
from kfp import dsl, compiler
from kfp.dsl import Input, Metrics, Model, Output


@dsl.component(install_kfp_package=False)
def train(model: Output[Model]):
    with open(model.path, 'w') as f:
        f.write('weights')
    model.metadata['framework'] = 'sklearn'


@dsl.component(install_kfp_package=False)
def evaluate(model: Input[Model], metrics: Output[Metrics]) -> float:
    with open(model.path) as f:
        assert f.read() == 'weights'
    metrics.log_metric('accuracy', 0.93)
    metrics.log_metric('F1 Score', 0.9)
    return 0.93


@dsl.component(install_kfp_package=False)
def announce(metrics: Input[Metrics]) -> str:
    line = f"accuracy {metrics.metadata['accuracy']}"
    print(line)
    return line


@dsl.pipeline(name='k-metrics')
def k_metrics(threshold: float = 0.5):
    trained = train()
    scored = evaluate(model=trained.outputs['model'])
    with dsl.If(scored.outputs['Output'] > threshold):
        announce(metrics=scored.outputs['metrics'])


if __name__ == '__main__':
    import sys
    compiler.Compiler().compile(k_metrics, sys.argv[1] if len(sys.argv) > 1 else 'k_metrics.yaml')
