/*
 * The pod sandbox ("pause") process of the flinkgate.local/pause image.
 *
 * It holds a pod's namespaces: it does nothing but wait. As PID 1 of the
 * pod's PID namespace (when the pod shares one) it must also reap orphans
 * re-parented to it, or they stay zombies. SIGTERM / SIGINT end it with
 * status 0, which is what the kubelet expects when it stops a sandbox.
 *
 * Built with `gcc -static` by hack/images, so the image needs no
 * libc: the binary is the whole image.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig)
{
    (void)sig;
    _exit(0);
}

static void on_child(int sig)
{
    int saved = errno;
    (void)sig;
    /* several children may have ended before this handler ran */
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    errno = saved;
}

int main(int argc, char **argv)
{
    struct sigaction sa;

    if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
        puts("flinkgate-pause 1");
        return 0;
    }
    if (getpid() != 1)
        fprintf(stderr, "pause: warning: not PID 1, orphans of this pod are reaped elsewhere\n");

    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0) {
        perror("pause: sigaction");
        return 1;
    }
    sa.sa_handler = on_child;
    sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    if (sigaction(SIGCHLD, &sa, NULL) < 0) {
        perror("pause: sigaction");
        return 1;
    }
    for (;;)
        pause();
}
