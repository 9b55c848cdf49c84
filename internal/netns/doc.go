// Package netns runs code inside a named network namespace (one made by
// `ip netns add`), for tests and benchmarks that open sockets there. It
// works on Linux only.
package netns
