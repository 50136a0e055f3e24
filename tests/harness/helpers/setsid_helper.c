/* setsid-helper PIDFILE: starts a grandchild in a new session that ignores SIGTERM
 * (so only SIGKILL or cgroup.kill ends it), writes the grandchild's pid to PIDFILE,
 * then sleeps. Used to check that an expiring grant ends the whole tree. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: setsid-helper PIDFILE\n");
        return 2;
    }
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return 3;
    pid_t child = fork();
    if (child < 0)
        return 3;
    if (child == 0) {
        /* intermediate: new session, then fork the grandchild and exit */
        close(pipefd[0]);
        if (setsid() < 0)
            _exit(4);
        pid_t gc = fork();
        if (gc < 0)
            _exit(4);
        if (gc == 0) {
            signal(SIGTERM, SIG_IGN);
            char buf[32];
            int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
            int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0 || write(fd, buf, n) != n || close(fd) != 0)
                _exit(5);
            if (write(pipefd[1], "r", 1) != 1)
                _exit(5);
            close(pipefd[1]);
            execl("/usr/bin/sleep", "sleep", "600", (char *)NULL);
            _exit(127);
        }
        _exit(0);
    }
    close(pipefd[1]);
    char c;
    if (read(pipefd[0], &c, 1) != 1)
        return 6;
    close(pipefd[0]);
    waitpid(child, NULL, 0);
    printf("grandchild started\n");
    fflush(stdout);
    execl("/usr/bin/sleep", "sleep", "600", (char *)NULL);
    return 127;
}
