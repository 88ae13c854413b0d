"""(o) Lightweight components in a Python image of their own, as KFP runs them: the compiled command unchanged, its
pip preamble included (kfp is in the image; packages_to_install comes from the package index). The image reference is
a placeholder the tests replace with an image they push."""
from kfp import dsl, compiler

IMAGE = 'highwind-test-image.invalid/python:v1'


@dsl.component(base_image=IMAGE, packages_to_install=['toolz==1.0.0'])
def total(n: int) -> int:
    import toolz
    return toolz.reduce(lambda a, b: a + b, range(n + 1))


@dsl.component(base_image=IMAGE)
def where() -> str:
    import os
    import sys
    return f'{sys.executable} {os.path.isdir("/usr/local/lib/python3.11/dist-packages/kfp")}'


@dsl.pipeline(name='o-python-image')
def o_python_image(n: int = 4):
    total(n=n)
    where()


if __name__ == '__main__':
    import sys
    compiler.Compiler().compile(o_python_image, sys.argv[1] if len(sys.argv) > 1 else 'o_python_image.yaml')
