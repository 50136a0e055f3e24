/* Runs a program the way an attacker would, for the attack tests (tests/e2e/test_attacks.py):
 *
 *   exec-argv argc0  PROGRAM            execve(PROGRAM, {NULL}, hostile envp)      (PwnKit)
 *   exec-argv empty0 PROGRAM [ARGS...]  execve(PROGRAM, {"", ARGS..., NULL}, hostile envp)
 *   exec-argv closed PROGRAM [ARGS...]  close fds 0, 1 and 2, then execv(PROGRAM, {PROGRAM, ARGS...})
 *
 * The hostile environment is the one CVE-2021-4034 exploits use (GCONV_PATH=., CHARSET=PWNKIT,
 * a PATH that names a GCONV_PATH directory), followed by the caller's own environment. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static char **hostile_env(void)
{
    static const char *fixed[] = {"GCONV_PATH=.", "CHARSET=PWNKIT", "PATH=GCONV_PATH=.", "SHELL=pwnkit",
                                  "LC_MESSAGES=../../../../tmp/pwnkit", NULL};
    size_t n = 0, m = 0;
    while (fixed[n])
        n++;
    while (environ[m])
        m++;
    char **env = calloc(n + m + 1, sizeof(char *));
    if (!env)
        exit(125);
    for (size_t i = 0; i < n; i++)
        env[i] = (char *)fixed[i];
    for (size_t i = 0; i < m; i++)
        env[n + i] = environ[i];
    return env;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: exec-argv argc0|empty0|closed PROGRAM [ARGS...]\n");
        return 2;
    }
    const char *mode = argv[1], *prog = argv[2];
    if (strcmp(mode, "argc0") == 0) {
        char *none[] = {NULL};
        execve(prog, none, hostile_env());
    } else if (strcmp(mode, "empty0") == 0) {
        argv[2] = "";
        execve(prog, argv + 2, hostile_env());
    } else if (strcmp(mode, "closed") == 0) {
        close(0);
        close(1);
        close(2);
        execv(prog, argv + 2);
        return 126; /* stderr is closed: nothing to say */
    } else {
        fprintf(stderr, "exec-argv: unknown mode %s\n", mode);
        return 2;
    }
    fprintf(stderr, "exec-argv: execve %s: %s\n", prog, strerror(errno));
    return 127;
}
