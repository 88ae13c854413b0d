"""(n) Five container steps one after another that do nothing (`true`): what running a step costs, on the host or
in its image. The image reference is a placeholder the benchmarks replace with an image they push."""
from kfp import dsl, compiler

IMAGE = 'highwind-test-image.invalid/busybox:v1'


@dsl.container_component
def nothing():
    return dsl.ContainerSpec(image=IMAGE, command=['true'])


@dsl.pipeline(name='n-trivial')
def n_trivial():
    previous = nothing()
    for _ in range(4):
        previous = nothing().after(previous)


if __name__ == '__main__':
    import sys
    compiler.Compiler().compile(n_trivial, sys.argv[1] if len(sys.argv) > 1 else 'n_trivial.yaml')
