/* Tries to open a raw ICMP socket, which needs CAP_NET_RAW, and says whether it could. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
    int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    if (fd < 0) {
        printf("raw socket: refused (%s)\n", strerror(errno));
        return 1;
    }
    printf("raw socket: opened (fd %d) - this needs CAP_NET_RAW\n", fd);
    close(fd);
    return 0;
}
