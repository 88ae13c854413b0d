/*
 * The first program of a step that runs in its own image. bwrap starts it as root inside the sandbox (its mounts
 * made, its seccomp filter loaded, every capability but CAP_SETUID, CAP_SETGID and CAP_SETPCAP dropped); it gives
 * up what is left and becomes the step. The image holds none of the host's programs (setpriv, prlimit, env) and
 * none of its libraries, so this is linked statically and bound in from the server. It starts with an empty
 * environment (bwrap --clearenv): the step's variables are its arguments, set only once it is the step's user, so
 * nothing the pipeline chose (GLIBC_TUNABLES, say) is read while it is root.
 *
 *   init UID AS CPU FSIZE NPROC NENV [KEY=VALUE]... -- COMMAND [ARG]...
 *
 * UID: the uid and gid to become, or "-" to stay (the server is not root and a user namespace maps the step).
 * AS, CPU, FSIZE, NPROC: rlimits (address space bytes, CPU seconds, file size bytes, processes); 0 = unlimited.
 * NENV: how many KEY=VALUE arguments follow: the step's whole environment.
 * COMMAND is found on the PATH of that environment, as a container runtime does.
 *
 * Exit status 127 when the command cannot be run, 126 when the sandbox could not be finished; a message on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
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
    fprintf(stderr, "usage: init UID AS CPU FSIZE NPROC NENV [KEY=VALUE]... -- COMMAND [ARG]...\n");
    _exit(126);
}

int main(int argc, char **argv) {
    if (argc < 7) {
        usage();
    }
    unsigned long long count = number(argv[6]);
    if (count > (unsigned long long)argc || 7 + count + 1 >= (unsigned long long)argc) {
        usage();
    }
    char **variables = &argv[7];
    char **command = &argv[7 + count + 1];
    if (strcmp(argv[7 + count], "--") != 0) {
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
    execvp(command[0], command);
    fprintf(stderr, "highwind: cannot run %s: %s\n", command[0], strerror(errno));
    return 127;
}
