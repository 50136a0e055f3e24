/* A plain (not setuid) program that execs its arguments: lets a permitted command start
 * something that jitrun itself would refuse (a setuid-root program). */
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: launcher PROGRAM [ARGS...]\n");
        return 2;
    }
    execv(argv[1], argv + 1);
    perror("launcher: execv");
    return 127;
}
