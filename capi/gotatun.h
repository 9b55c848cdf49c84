/*
 * gotatun: WireGuard for apps.
 *
 * libgotatun runs WireGuard tunnels inside an app's process, on a TUN
 * descriptor the app opened (Android's VpnService.Builder.establish()
 * gives one). Build it with `make capi`: build/capi/libgotatun.so,
 * build/capi/libgotatun.a and this header.
 *
 * Configuration is the text of a UAPI set=1 transaction, the protocol
 * wg(8) speaks to userspace implementations: key=value lines, keys in hex,
 * with or without the leading "set=1" line, e.g.
 *
 *   private_key=<64 hex digits>
 *   listen_port=0
 *   public_key=<64 hex digits>
 *   endpoint=203.0.113.1:51820
 *   allowed_ip=0.0.0.0/0
 *   persistent_keepalive_interval=25
 *
 * Errors are negated errno values: -EINVAL for a configuration that does
 * not parse or is refused, -EADDRINUSE for a listen port in use, -EBADF
 * for a handle that is not (or no longer) turned on.
 *
 * All functions are safe to call from any thread.
 */
#ifndef GOTATUN_H
#define GOTATUN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Log levels passed to the logger: Android's log priorities. */
#define GOTATUN_LOG_DEBUG 3
#define GOTATUN_LOG_INFO 4
#define GOTATUN_LOG_WARN 5
#define GOTATUN_LOG_ERROR 6

/*
 * Starts a tunnel on tun_fd, configured by uapi_config. The library owns
 * tun_fd from this call on, whether it succeeds or not, and closes it at
 * turn-off. The descriptor is used as it is: one IP packet per read and
 * write, no virtio-net header. Returns a handle >= 0, or -errno.
 */
int64_t gotatun_turn_on(const char *uapi_config, int32_t tun_fd);

/* Stops the tunnel, closes its sockets and TUN descriptor; waits for its
 * threads of work to end. The handle is invalid afterwards. */
void gotatun_turn_off(int64_t handle);

/* Applies a set=1 transaction: all of it, or on error (-errno) none. */
int32_t gotatun_set_config(int64_t handle, const char *uapi_config);

/* The get=1 answer (keys in hex, counters), without the errno line; NULL
 * for a bad handle. Free it with gotatun_free. */
char *gotatun_get_config(int64_t handle);

/* Frees a string returned by the library. */
void gotatun_free(void *p);

/*
 * The UDP socket descriptors of the tunnel, -1 if none, to pass to
 * VpnService.protect() so the tunnel's own packets bypass the VPN. They
 * change at gotatun_resume and gotatun_network_changed: protect them
 * again after those.
 */
int32_t gotatun_get_socket_v4(int64_t handle);
int32_t gotatun_get_socket_v6(int64_t handle);

/* Closes the sockets and stops the timers, keeping the configuration. */
void gotatun_suspend(int64_t handle);

/* Opens the sockets again; the next packet starts a fresh handshake. */
void gotatun_resume(int64_t handle);

/* The device's network changed: open the sockets again, keep sessions. */
void gotatun_network_changed(int64_t handle);

/*
 * Sets the function that receives log messages (NULL: none), for every
 * tunnel. msg is valid only during the call. fn may be called from any
 * thread, concurrently.
 */
void gotatun_set_logger(void (*fn)(int32_t level, const char *msg, void *ctx), void *ctx);

/* The library's version; a static string. */
const char *gotatun_version(void);

#ifdef __cplusplus
}
#endif

#endif /* GOTATUN_H */
