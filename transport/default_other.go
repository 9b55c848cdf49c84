//go:build !linux

package transport

// NewDefaultBind returns the best Bind for the platform: the portable one
// outside Linux.
func NewDefaultBind() Bind { return NewStdBind() }
