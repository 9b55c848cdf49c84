package transport

// NewDefaultBind returns the best Bind for the platform: on Linux a
// LinuxBind with batching, offloads and sticky source addresses.
func NewDefaultBind() Bind { return NewLinuxBind(LinuxBindConfig{}) }
