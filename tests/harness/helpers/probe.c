/* Installed root 4755 by the harness: prints what a setuid-root program got. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    printf("uid=%d euid=%d\n", (int)getuid(), (int)geteuid());
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 3;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Cap", 3) == 0 || strncmp(line, "NoNewPrivs", 10) == 0)
            fputs(line, stdout);
    fclose(f);
    return 0;
}
