"""(i) A ParallelFor of four 0.4 s container tasks with parallelism 1: one iteration at a time, although the
executor has two or more slots."""
from kfp import dsl, compiler


@dsl.container_component
def nap(seconds: float):
    return dsl.ContainerSpec(image='alpine:3.20', command=['sleep'], args=[seconds])


@dsl.pipeline(name='i-loop')
def i_loop(seconds: float = 0.4):
    with dsl.ParallelFor(items=[1, 2, 3, 4], parallelism=1):
        nap(seconds=seconds)


if __name__ == '__main__':
    import sys
    compiler.Compiler().compile(i_loop, sys.argv[1] if len(sys.argv) > 1 else 'i_loop.yaml')
