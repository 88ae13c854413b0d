"""(h) Container components that try to leave their sandbox: read a file of the host and connect to a TCP port."""
from kfp import dsl, compiler
from kfp.dsl import OutputPath


@dsl.container_component
def read_host_file(path: str, content: OutputPath(str)):
    return dsl.ContainerSpec(image='alpine:3.20', command=['/bin/sh', '-c'], args=['cat "$0" > "$1"', path, content])


@dsl.container_component
def connect(host: str, port: int, said: OutputPath(str)):
    return dsl.ContainerSpec(
        image='python:3.11', command=['python3', '-c'],
        args=['import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 2); '
              'open(sys.argv[3], "w").write("connected")', host, port, said])


@dsl.pipeline(name='h-probe')
def h_probe(path: str = '/etc/hostname', host: str = '127.0.0.1', port: int = 1):
    read_host_file(path=path)
    connect(host=host, port=port)


if __name__ == '__main__':
    import sys
    compiler.Compiler().compile(h_probe, sys.argv[1] if len(sys.argv) > 1 else 'h_probe.yaml')
