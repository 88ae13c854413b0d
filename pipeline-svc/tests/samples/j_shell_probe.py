"""(j) One container step that runs a shell script it is given, as an attacker would: the sandbox tests hand it
the commands that try to leave the sandbox and read what they printed from its output parameter."""
from kfp import dsl, compiler
from kfp.dsl import OutputPath


@dsl.container_component
def probe(script: str, said: OutputPath(str)):
    return dsl.ContainerSpec(image='alpine:3.20', command=['/bin/sh', '-c'], args=[script, said])


@dsl.pipeline(name='j-shell-probe')
def j_shell_probe(script: str = 'echo hello > "$0"'):
    probe(script=script)


if __name__ == '__main__':
    import sys
    compiler.Compiler().compile(j_shell_probe, sys.argv[1] if len(sys.argv) > 1 else 'j_shell_probe.yaml')
