"""(p) A lightweight component whose packages_to_install come from a local directory of wheels the platform is
configured with, so a step with no network still gets them. The image reference is a placeholder the tests replace
with an image they push."""
from kfp import dsl, compiler

IMAGE = 'highwind-test-image.invalid/python:v1'


@dsl.component(base_image=IMAGE, packages_to_install=['highwind-local-probe==1.0'])
def greet() -> str:
    import highwind_local_probe
    return highwind_local_probe.GREETING


@dsl.pipeline(name='p-local-packages')
def p_local_packages():
    greet()


if __name__ == '__main__':
    import sys
    compiler.Compiler().compile(p_local_packages, sys.argv[1] if len(sys.argv) > 1 else 'p_local_packages.yaml')
