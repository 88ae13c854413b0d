/*
 * The first program of a step that runs in its own image. bwrap starts it as root inside the sandbox (its mounts
 * made, its seccomp filter loaded, every capability but CAP_SETUID, CAP_SETGID and CAP_SETPCAP dropped); it gives
 * up what is left and becomes the step. The image holds none of the host's programs (setpriv, prlimit, env) and
 * none of its libraries, so this is linked statically and bound in from the server. It starts with an empty
 * environment (bwrap --clearenv): the step's variables are its arguments, set only once it is the step's user, so
 * nothing the pipeline chose (GLIBC_TUNABLES, say) is read while it is root.
 *
 *   init UID AS CPU FSIZE NPROC RELAY NENV [KEY=VALUE]... -- COMMAND [ARG]...
 *
 * UID: the uid and gid to become, or "-" to stay (the server is not root and a user namespace maps the step).
 * AS, CPU, FSIZE, NPROC: rlimits (address space bytes, CPU seconds, file size bytes, processes); 0 = unlimited.
 * RELAY: "-", or FD:PORT for a long-lived server in a network namespace of its own (a deployment's replica):
 *   init stays as its parent and relays every connection accepted on FD (a listening Unix socket the platform
 *   made in a directory of its own and handed down) to 127.0.0.1:PORT inside the namespace, so the platform
 *   reaches the server while nothing else can, and the server reaches nothing unless it was given network. It
 *   exits with the server's status.
 * NENV: how many KEY=VALUE arguments follow: the step's whole environment.
 * COMMAND is found on the PATH of that environment, as a container runtime does.
 *
 * Exit status 127 when the command cannot be run, 126 when the sandbox could not be finished; a message on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void fail(const char *what) {
    fprintf(stderr, "highwind: cannot start the step: %s: %s\n", what, strerror(errno));
    _exit(126);
}

static unsigned long long number(const char *text) {
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0') {
        fprintf(stderr, "highwind: cannot start the step: bad number %s\n", text);
        _exit(126);
    }
    return value;
}

static void limit(int resource, const char *text) {
    unsigned long long value = number(text);
    if (value == 0) {
        return;
    }
    struct rlimit bound = {value, value};
    if (setrlimit(resource, &bound) != 0) {
        fail("setrlimit");
    }
}

static void usage(void) {
    fprintf(stderr, "usage: init UID AS CPU FSIZE NPROC RELAY NENV [KEY=VALUE]... -- COMMAND [ARG]...\n");
    _exit(126);
}

/* Copies bytes both ways between two connected sockets until each direction has ended, passing each end on. */
static void shuttle(int a, int b) {
    struct pollfd ends[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    static char buffer[64 * 1024];
    int open = 2;
    while (open > 0) {
        if (poll(ends, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        for (int i = 0; i < 2; i++) {
            if (ends[i].fd < 0 || (ends[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
                continue;
            }
            int to = i == 0 ? b : a;
            ssize_t n = read(ends[i].fd, buffer, sizeof buffer);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                shutdown(to, SHUT_WR);
                ends[i].fd = -1;
                open--;
                continue;
            }
            for (ssize_t done = 0; done < n;) {
                ssize_t written = write(to, buffer + done, (size_t)(n - done));
                if (written < 0 && errno == EINTR) {
                    continue;
                }
                if (written <= 0) {
                    return;
                }
                done += written;
            }
        }
    }
}

/* One connection: to the server on 127.0.0.1:port, in a process of its own. A server not listening yet closes
 * the connection at once, which the platform reads as "not ready". */
static void serve_one(int client, int port) {
    signal(SIGPIPE, SIG_IGN);
    int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in address = {0};
    address.sin_family = AF_INET;
    address.sin_port = htons((unsigned short)port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (server < 0 || connect(server, (struct sockaddr *)&address, sizeof address) != 0) {
        _exit(0);
    }
    int on = 1;
    setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    shuttle(client, server);
    _exit(0);
}

/* Runs COMMAND as a child and relays connections accepted on the inherited listening socket FD to its port
 * until it exits; then exits as it did. */
static int relay(const char *spec, char **command) {
    const char *colon = strchr(spec, ':');
    char descriptor[16] = {0};
    size_t length = colon == NULL ? 0 : (size_t)(colon - spec);
    if (length == 0 || length >= sizeof descriptor) {
        fprintf(stderr, "highwind: cannot start the server: bad relay %s\n", spec);
        return 126;
    }
    memcpy(descriptor, spec, length);
    unsigned long long fd = number(descriptor);
    unsigned long long port = number(colon + 1);
    if (fd < 3 || fd > 1024 || port == 0 || port > 65535) {
        fprintf(stderr, "highwind: cannot start the server: bad relay %s\n", spec);
        return 126;
    }
    int listener = (int)fd;
    int type = 0;
    socklen_t size = sizeof type;
    if (getsockopt(listener, SOL_SOCKET, SO_TYPE, &type, &size) != 0 || type != SOCK_STREAM) {
        fail("the relay's socket");
    }
    /* The server never holds it. */
    if (fcntl(listener, F_SETFD, FD_CLOEXEC) != 0) {
        fail("the relay's socket");
    }
    pid_t child = fork();
    if (child < 0) {
        fail("fork");
    }
    if (child == 0) {
        execvp(command[0], command);
        fprintf(stderr, "highwind: cannot run %s: %s\n", command[0], strerror(errno));
        _exit(127);
    }
    for (;;) {
        int status = 0;
        pid_t ended;
        /* The connections' processes and the server: reaped at every turn (the poll wakes at least each second). */
        while ((ended = waitpid(-1, &status, WNOHANG)) > 0) {
            if (ended == child) {
                _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
            }
        }
        struct pollfd waiting = {listener, POLLIN, 0};
        if (poll(&waiting, 1, 1000) <= 0 || (waiting.revents & POLLIN) == 0) {
            continue;
        }
        int client = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (client < 0) {
            continue;
        }
        pid_t worker = fork();
        if (worker == 0) {
            close(listener);
            serve_one(client, (int)port);
        }
        close(client);
    }
}

int main(int argc, char **argv) {
    if (argc < 8) {
        usage();
    }
    unsigned long long count = number(argv[7]);
    if (count > (unsigned long long)argc || 8 + count + 1 >= (unsigned long long)argc) {
        usage();
    }
    const char *relayed = argv[6];
    char **variables = &argv[8];
    char **command = &argv[8 + count + 1];
    if (strcmp(argv[8 + count], "--") != 0) {
        usage();
    }
    struct rlimit no_core = {0, 0};
    if (setrlimit(RLIMIT_CORE, &no_core) != 0) {
        fail("setrlimit");
    }
    limit(RLIMIT_AS, argv[2]);
    limit(RLIMIT_CPU, argv[3]);
    limit(RLIMIT_FSIZE, argv[4]);
    limit(RLIMIT_NPROC, argv[5]);
    if (strcmp(argv[1], "-") != 0) {
        unsigned long long id = number(argv[1]);
        if (id == 0 || id > 0xfffffffeULL) {
            fprintf(stderr, "highwind: cannot start the step: it never runs as root\n");
            return 126;
        }
        /* The bounding set first: emptying it needs CAP_SETPCAP, which changing uid takes away. */
        for (int cap = 0; cap <= 63; cap++) {
            if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
                fail("dropping the bounding set");
            }
        }
        if (setgroups(0, NULL) != 0) {
            fail("setgroups");
        }
        if (setresgid((gid_t)id, (gid_t)id, (gid_t)id) != 0) {
            fail("setresgid");
        }
        /* From root to another uid: the permitted, effective and ambient sets are cleared by the kernel. */
        if (setresuid((uid_t)id, (uid_t)id, (uid_t)id) != 0) {
            fail("setresuid");
        }
        if (getuid() == 0 || geteuid() == 0) {
            fprintf(stderr, "highwind: cannot start the step: still root\n");
            return 126;
        }
    }
    /* The inheritable set too, so nothing survives an exec. */
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &header, data) != 0) {
        fail("capset");
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        fail("no_new_privs");
    }
    /* Only now, as the step's own user, does anything the pipeline chose enter the environment. */
    if (clearenv() != 0) {
        fail("clearenv");
    }
    for (unsigned long long i = 0; i < count; i++) {
        if (strchr(variables[i], '=') == NULL || variables[i][0] == '=' || putenv(variables[i]) != 0) {
            fprintf(stderr, "highwind: cannot start the step: bad variable %s\n", variables[i]);
            return 126;
        }
    }
    if (strcmp(relayed, "-") != 0) {
        return relay(relayed, command);
    }
    execvp(command[0], command);
    fprintf(stderr, "highwind: cannot run %s: %s\n", command[0], strerror(errno));
    return 127;
}
