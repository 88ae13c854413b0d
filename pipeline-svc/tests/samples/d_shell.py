"""(d) Container components only (runnable without kfp installed): a fan-out ParallelFor with dsl.Collected, a
dsl.If/Else on an upstream output, a long sleeper for cancellation and a gate a test opens for RetryRun."""
from kfp import dsl, compiler
from kfp.dsl import OutputPath


@dsl.container_component
def square(x: int, y: OutputPath(int)):
    return dsl.ContainerSpec(image='alpine:3.20', command=['/bin/sh', '-c'],
                             args=['echo $(($0 * $0)) > "$1"', x, y])


@dsl.container_component
def show(values: list, text: OutputPath(str)):
    return dsl.ContainerSpec(image='alpine:3.20', command=['/bin/sh', '-c'],
                             args=['printf "%s" "$0" > "$1"; echo "collected $0"', values, text])


@dsl.container_component
def big_or_small(label: str, said: OutputPath(str)):
    return dsl.ContainerSpec(image='alpine:3.20', command=['/bin/sh', '-c'],
                             args=['printf "%s" "$0" > "$1"', label, said])


@dsl.container_component
def sleeper(seconds: int, done: OutputPath(str)):
    # A child process in the background and one in front: cancelling must stop both.
    return dsl.ContainerSpec(image='alpine:3.20', command=['/bin/sh', '-c'],
                             args=['sleep "$0" & sleep "$0"; echo slept > "$1"', seconds, done])


@dsl.container_component
def gate(path: str, passed: OutputPath(str)):
    return dsl.ContainerSpec(image='alpine:3.20', command=['/bin/sh', '-c'],
                             args=['echo "checking $0"; test -e "$0" && echo open > "$1"', path, passed])


@dsl.pipeline(name='d-shell')
def d_shell(n: int = 3, sleep_seconds: int = 0, gate_path: str = '/') -> str:
    with dsl.ParallelFor(items=[1, 2, 3], parallelism=2) as x:
        sq = square(x=x)
    collected = show(values=dsl.Collected(sq.outputs['y']))
    with dsl.If(n > 2):
        big_or_small(label='big')
    with dsl.Else():
        big_or_small(label='small')
    sleeper(seconds=sleep_seconds).after(collected)
    gate(path=gate_path).after(collected)
    return collected.outputs['text']


if __name__ == '__main__':
    import sys
    compiler.Compiler().compile(d_shell, sys.argv[1] if len(sys.argv) > 1 else 'd_shell.yaml')
