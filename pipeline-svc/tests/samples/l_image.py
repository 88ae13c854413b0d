"""(l) Container steps that need their own image: one reads a file and runs a tool only the image has, with the
image's environment and working directory; one names no command, so the image's entrypoint runs its arguments (as
on Kubernetes). The image reference is a placeholder the tests replace with an image they build and push."""
from kfp import dsl, compiler
from kfp.dsl import OutputPath

IMAGE = 'highwind-test-image.invalid/busybox:v1'


@dsl.container_component
def from_image(seen: OutputPath(str)):
    return dsl.ContainerSpec(
        image=IMAGE, command=['/bin/sh', '-c'],
        args=['{ cat /etc/image-only.txt; only-in-image; echo "env=$FROM_IMAGE_ENV"; echo "cwd=$(pwd)";'
              ' echo "runs=$(ls /highwind/runs | wc -l)"; } > "$0"', seen])


@dsl.container_component
def entrypoint_only(said: OutputPath(str)):
    return dsl.ContainerSpec(image=IMAGE, args=[said])


@dsl.pipeline(name='l-image')
def l_image() -> str:
    entrypoint_only()
    return from_image().outputs['seen']


if __name__ == '__main__':
    import sys
    compiler.Compiler().compile(l_image, sys.argv[1] if len(sys.argv) > 1 else 'l_image.yaml')
