"""(k) Metrics as KFP components write them: an Output[Metrics] filled only with log_metric (no file written), a
condition on the score the same step returns, and a step inside that condition reading the metrics' metadata."""
from kfp import dsl, compiler
from kfp.dsl import Input, Metrics, Output


@dsl.component(install_kfp_package=False)
def evaluate(metrics: Output[Metrics]) -> float:
    metrics.log_metric('accuracy', 0.93)
    metrics.log_metric('f1', 0.9)
    return 0.93


@dsl.component(install_kfp_package=False)
def announce(metrics: Input[Metrics]) -> str:
    line = f"accuracy {metrics.metadata['accuracy']}"
    print(line)
    return line


@dsl.pipeline(name='k-metrics')
def k_metrics(threshold: float = 0.5):
    scored = evaluate()
    with dsl.If(scored.outputs['Output'] > threshold):
        announce(metrics=scored.outputs['metrics'])


if __name__ == '__main__':
    import sys
    compiler.Compiler().compile(k_metrics, sys.argv[1] if len(sys.argv) > 1 else 'k_metrics.yaml')
