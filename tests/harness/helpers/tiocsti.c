/* Push one keystroke into the terminal on fd 0 with TIOCSTI (doas CVE-2023-28339) and say
 * whether the kernel let it: "TIOCSTI ok" or "TIOCSTI refused: <errno text>". */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

int main(void) {
    char c = '#';
    if (ioctl(0, TIOCSTI, &c) == 0) {
        printf("TIOCSTI ok\n");
        return 0;
    }
    printf("TIOCSTI refused: %s\n", strerror(errno));
    return 3;
}
