/*
 * Test of libgotatun through its C interface, run by e2e/capi_test.go
 * inside a network namespace whose peer is wireguard-go:
 *
 *   capi_test IFNAME CONFIG_FILE PEER_IP LOCAL_CIDR PEER_PUBLIC_KEY_HEX
 *
 * Twice: opens a TUN interface itself (no virtio-net header, as Android
 * hands over), turns the tunnel on, pings the peer through it, reads and
 * changes the configuration, suspends, resumes, rebinds, and turns the
 * tunnel off; then checks that no goroutine and no descriptor is left.
 * Needs the library built with -tags gotatun_debug for the goroutine
 * count.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gotatun.h"

/* Test hook of the gotatun_debug build. */
extern int32_t gotatun_debug_goroutines(void);

static const char *ifname, *peer_ip, *local_cidr, *peer_pub;
static char *config;
static atomic_int log_lines;

static void fail(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "FAIL: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static void logger(int32_t level, const char *msg, void *ctx) {
	if (ctx != &log_lines)
		fail("logger got context %p, want %p", ctx, (void *)&log_lines);
	if (level < GOTATUN_LOG_DEBUG || level > GOTATUN_LOG_ERROR)
		fail("log level %d out of range", level);
	atomic_fetch_add(&log_lines, 1);
	if (level >= GOTATUN_LOG_INFO)
		fprintf(stderr, "log %d: %s\n", level, msg);
}

static void sleep_ms(long ms) {
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int count_fds(void) {
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		fail("opendir /proc/self/fd: %s", strerror(errno));
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

static int open_tun(void) {
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		fail("open /dev/net/tun: %s", strerror(errno));
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		fail("TUNSETIFF %s: %s", ifname, strerror(errno));
	return fd;
}

static void sh(const char *fmt, ...) {
	char cmd[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	int rc = system(cmd);
	if (rc != 0)
		fail("`%s` exited with %d", cmd, rc);
}

/* ping waits for the peer to answer, then wants three answers in a row. */
static void ping(const char *when) {
	char cmd[256];
	snprintf(cmd, sizeof cmd, "ping -n -q -c 1 -W 1 %s >/dev/null", peer_ip);
	int i;
	for (i = 0; i < 10 && system(cmd) != 0; i++)
		;
	snprintf(cmd, sizeof cmd, "ping -n -q -c 3 -i 0.2 -W 2 %s >/dev/null", peer_ip);
	if (system(cmd) != 0)
		fail("no ping answer from %s %s", peer_ip, when);
}

static char *get_config(int64_t h) {
	char *c = gotatun_get_config(h);
	if (!c)
		fail("gotatun_get_config returned NULL");
	return c;
}

static int has(const char *cfg, const char *fmt, ...) {
	char want[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(want, sizeof want, fmt, ap);
	va_end(ap);
	return strstr(cfg, want) != NULL;
}

static void check_socket(int64_t h) {
	int fd = gotatun_get_socket_v4(h);
	if (fd < 0)
		fail("no IPv4 socket");
	int type = 0;
	socklen_t len = sizeof type;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_DGRAM)
		fail("descriptor %d is not a UDP socket", fd);
	if (gotatun_get_socket_v6(h) < 0)
		fail("no IPv6 socket");
}

static void cycle(int round) {
	int tun = open_tun();
	sh("ip addr add %s dev %s && ip link set %s mtu 1420 up", local_cidr, ifname, ifname);
	int fds = count_fds();
	int goroutines = gotatun_debug_goroutines();

	int64_t h = gotatun_turn_on(config, tun);
	if (h < 0)
		fail("gotatun_turn_on: %s", strerror((int)-h));
	check_socket(h);
	ping("after turn-on");

	char *c = get_config(h);
	if (!has(c, "public_key=%s\n", peer_pub) || has(c, "last_handshake_time_sec=0\n") || has(c, "rx_bytes=0\n"))
		fail("configuration after the pings:\n%s", c);
	gotatun_free(c);

	/* A bad change is refused whole. */
	char buf[512];
	snprintf(buf, sizeof buf, "public_key=%s\npersistent_keepalive_interval=25\nallowed_ip=banana\n", peer_pub);
	int32_t rc = gotatun_set_config(h, buf);
	if (rc != -EINVAL)
		fail("bad set_config returned %d, want %d", rc, -EINVAL);
	c = get_config(h);
	if (has(c, "persistent_keepalive_interval=25"))
		fail("refused change applied in part:\n%s", c);
	gotatun_free(c);
	snprintf(buf, sizeof buf, "set=1\npublic_key=%s\npersistent_keepalive_interval=25\n", peer_pub);
	if ((rc = gotatun_set_config(h, buf)) != 0)
		fail("set_config: %d", rc);
	c = get_config(h);
	if (!has(c, "persistent_keepalive_interval=25\n"))
		fail("keepalive not set:\n%s", c);
	gotatun_free(c);

	gotatun_suspend(h);
	if (gotatun_get_socket_v4(h) != -1 || gotatun_get_socket_v6(h) != -1)
		fail("sockets open while suspended");
	sleep_ms(50); /* the peer ignores initiations within 20 ms of the last */
	gotatun_resume(h);
	check_socket(h);
	ping("after resume");
	gotatun_network_changed(h);
	check_socket(h);
	ping("after a network change");

	gotatun_turn_off(h);
	if ((rc = gotatun_set_config(h, buf)) != -EBADF)
		fail("set_config after turn-off: %d, want %d", rc, -EBADF);
	if (gotatun_get_config(h) != NULL || gotatun_get_socket_v4(h) != -1)
		fail("handle still answers after turn-off");

	int left = -1;
	for (int i = 0; i < 300; i++) {
		left = gotatun_debug_goroutines() - goroutines;
		if (left <= 0)
			break;
		sleep_ms(10);
	}
	if (left > 0)
		fail("round %d: %d goroutines left after turn-off", round, left);
	/* The TUN descriptor was the library's: one fewer. The Go runtime
	 * opens its poller on first use, so only the second round counts. */
	int now = count_fds();
	printf("round %d: %d descriptors before turn-on (with the TUN), %d after turn-off\n", round, fds, now);
	if (round > 0 && now != fds - 1)
		fail("round %d: %d descriptors open after turn-off, want %d", round, now, fds - 1);
}

int main(int argc, char **argv) {
	if (argc != 6) {
		fprintf(stderr, "usage: %s IFNAME CONFIG_FILE PEER_IP LOCAL_CIDR PEER_PUBLIC_KEY_HEX\n", argv[0]);
		return 2;
	}
	ifname = argv[1];
	peer_ip = argv[3];
	local_cidr = argv[4];
	peer_pub = argv[5];
	FILE *f = fopen(argv[2], "r");
	if (!f)
		fail("open %s: %s", argv[2], strerror(errno));
	static char text[8192];
	size_t n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = 0;
	config = text;

	const char *v = gotatun_version();
	if (!v || strncmp(v, "gotatun", 7) != 0)
		fail("version %s", v ? v : "(null)");
	printf("%s\n", v);
	gotatun_set_logger(logger, &log_lines);

	/* A refused configuration: the descriptor is closed all the same. */
	int p[2];
	if (pipe(p) < 0)
		fail("pipe: %s", strerror(errno));
	int64_t h = gotatun_turn_on("listen_port=banana\n", p[1]);
	if (h != -EINVAL)
		fail("turn_on with a bad configuration returned %lld, want %d", (long long)h, -EINVAL);
	char ch;
	if (read(p[0], &ch, 1) != 0)
		fail("descriptor not closed by a failed turn_on");
	close(p[0]);

	for (int round = 0; round < 2; round++)
		cycle(round);
	if (atomic_load(&log_lines) == 0)
		fail("the logger got nothing");
	gotatun_set_logger(NULL, NULL);
	printf("PASS\n");
	return 0;
}
