"""(m) The whole shape of a first pipeline: a dataset made and a model trained by lightweight components with
packages_to_install, an Output[Metrics] filled only with log_metric, a condition on the metric, and a container
step in an image of its own. The image reference is a placeholder the tests replace with an image they push."""
from kfp import dsl, compiler
from kfp.dsl import Dataset, Input, Metrics, Model, Output, OutputPath

IMAGE = 'highwind-test-image.invalid/busybox:v1'


@dsl.component(packages_to_install=['toolz==1.0.0'])
def make_data(data: Output[Dataset]):
    import toolz
    with open(data.path, 'w') as f:
        f.write(','.join(str(x) for x in toolz.take(5, toolz.iterate(lambda x: x + 1, 1))))


@dsl.component(packages_to_install=['toolz==1.0.0'])
def train(data: Input[Dataset], model: Output[Model]):
    import toolz
    with open(data.path) as f:
        values = [int(v) for v in f.read().split(',')]
    with open(model.path, 'w') as f:
        f.write(str(toolz.reduce(lambda a, b: a + b, values)))
    model.metadata['framework'] = 'toolz'


@dsl.component
def evaluate(model: Input[Model], metrics: Output[Metrics]) -> float:
    with open(model.path) as f:
        score = int(f.read()) / 20
    metrics.log_metric('accuracy', score)
    return score


@dsl.container_component
def announce(accuracy: float, said: OutputPath(str)):
    return dsl.ContainerSpec(image=IMAGE, command=['/bin/sh', '-c'],
                             args=['{ echo "deploying at $0"; only-in-image; } > "$1"', accuracy, said])


@dsl.pipeline(name='m-shape')
def m_shape(threshold: float = 0.5):
    data = make_data()
    model = train(data=data.outputs['data'])
    evaluation = evaluate(model=model.outputs['model'])
    with dsl.If(evaluation.outputs['Output'] > threshold):
        announce(accuracy=evaluation.outputs['Output'])


if __name__ == '__main__':
    import sys
    compiler.Compiler().compile(m_shape, sys.argv[1] if len(sys.argv) > 1 else 'm_shape.yaml')
