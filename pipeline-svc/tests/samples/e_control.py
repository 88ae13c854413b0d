"""(e) Control flow with lightweight Python components: a nested pipeline, dsl.If/Else joined by dsl.OneOf, an
f-string input, set_retry on a task that fails once, and an exit handler reading PipelineTaskFinalStatus."""
from kfp import dsl, compiler
from kfp.dsl import PipelineTaskFinalStatus


@dsl.component(install_kfp_package=False)
def add(a: int, b: int) -> int:
    return a + b


@dsl.component(install_kfp_package=False)
def flaky(marker: str) -> str:
    import os
    if not os.path.exists(marker):
        open(marker, 'w').close()
        raise RuntimeError('the first attempt fails')
    return 'passed on a retry'


@dsl.component(install_kfp_package=False)
def echo(text: str) -> str:
    print(text)
    return text


@dsl.component(install_kfp_package=False)
def report(status: PipelineTaskFinalStatus) -> str:
    line = f'{status.pipeline_task_name} ended {status.state}'
    print(line)
    return line


@dsl.pipeline
def plus_ten(x: int) -> int:
    return add(a=x, b=10).output


@dsl.pipeline(name='e-control')
def e_control(x: int = 1, marker: str = '/nonexistent/marker'):
    exit_task = report()
    with dsl.ExitHandler(exit_task):
        total = plus_ten(x=x)
        flaky(marker=marker).set_retry(num_retries=2, backoff_duration='0s', backoff_factor=1.0)
        with dsl.If(total.output > 15):
            big = echo(text=f'big {total.output}')
        with dsl.Else():
            small = echo(text='small')
        chosen = dsl.OneOf(big.output, small.output)
        echo(text=chosen)


if __name__ == '__main__':
    import sys
    compiler.Compiler().compile(e_control, sys.argv[1] if len(sys.argv) > 1 else 'e_control.yaml')
