"""(f) 32 independent container tasks, each sleeping a given time: the executor's parallelism benchmark."""
from kfp import dsl, compiler


@dsl.container_component
def nap(seconds: float, index: int):
    return dsl.ContainerSpec(image='alpine:3.20', command=['sleep'], args=[seconds])


@dsl.pipeline(name='f-wide')
def f_wide(seconds: float = 0.5):
    for index in range(32):
        nap(seconds=seconds, index=index).set_display_name(f'nap-{index}')


if __name__ == '__main__':
    import sys
    compiler.Compiler().compile(f_wide, sys.argv[1] if len(sys.argv) > 1 else 'f_wide.yaml')
