//go:build !unix

package transport

// msgTrunc is zero where the platform reports truncation by other means.
const msgTrunc = 0
