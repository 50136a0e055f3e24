/* A shared object that proves it was loaded: its constructor creates
 * MARKER_DIR/loaded-uid<U>-euid<E>-pid<P> (MARKER_DIR is given with -D at compile time).
 * Used as LD_PRELOAD and as a gconv module by tests/e2e/test_attacks.py; if any process
 * jitrun starts (or jitrun itself) ever loads it, the marker appears. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#ifndef MARKER_DIR
#error "compile with -DMARKER_DIR=\"/some/dir\""
#endif

__attribute__((constructor)) static void jitlab_marker(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/loaded-uid%u-euid%u-pid%d", MARKER_DIR, (unsigned)getuid(),
             (unsigned)geteuid(), (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0)
        close(fd);
}

/* what a gconv module must export, so that iconv would really use it */
int gconv_init(void *step) { (void)step; return 0; }
int gconv(void *a, void *b, const unsigned char **c, const unsigned char *d, unsigned char **e, size_t *f, int g, int h)
{
    (void)a; (void)b; (void)c; (void)d; (void)e; (void)f; (void)g; (void)h;
    return 0;
}
