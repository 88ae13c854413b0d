"""(g) Container components passing Dataset and Model artifacts from an importer: what lineage follows. The model is
a directory of files; the pipeline returns it."""
from kfp import dsl, compiler
from kfp.dsl import Dataset, Input, Model, Output


@dsl.container_component
def sort_rows(in_ds: Input[Dataset], out_ds: Output[Dataset]):
    return dsl.ContainerSpec(image='alpine:3.20', command=['/bin/sh', '-c'],
                             args=['mkdir -p "$(dirname "$1")" && sort "$0" > "$1"', in_ds.path, out_ds.path])


@dsl.container_component
def fit(in_ds: Input[Dataset], model: Output[Model]):
    return dsl.ContainerSpec(image='alpine:3.20', command=['/bin/sh', '-c'],
                             args=['mkdir -p "$1" && wc -l < "$0" | tr -d " " > "$1/weights.txt" && echo v1 > "$1/format.txt"',
                                   in_ds.path, model.path])


@dsl.pipeline(name='g-lineage')
def g_lineage(data_uri: str = 'highwind://assets/unbound/versions/1') -> Model:
    imported = dsl.importer(artifact_uri=data_uri, artifact_class=Dataset)
    sorted_rows = sort_rows(in_ds=imported.output)
    fitted = fit(in_ds=sorted_rows.outputs['out_ds'])
    return fitted.outputs['model']


if __name__ == '__main__':
    import sys
    compiler.Compiler().compile(g_lineage, sys.argv[1] if len(sys.argv) > 1 else 'g_lineage.yaml')
