// Package inproc holds the in-process benchmarks that compare gotatun's
// packages with wireguard-go's device package doing the same work: full
// handshakes, per-packet encryption and decryption, allowed-IPs lookups and
// the cost of idle peers. Each benchmark has a "gotatun" and a
// "wireguard-go" sub-benchmark; the bench command runs them and reports the
// two side by side. The benchmarks live in _test.go files, the only place
// the module may import wireguard-go.
package inproc
