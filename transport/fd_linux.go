package transport

// SocketFDs returns the descriptors of the open IPv4 and IPv6 sockets, -1
// for a family that is not open, for an app that must exempt them from its
// own VPN (Android's VpnService.protect). They stay valid until the Bind is
// closed; after it is opened again, ask again.
func (b *LinuxBind) SocketFDs() (v4, v6 int) {
	v4, v6 = -1, -1
	s := b.socks.Load()
	if s == nil {
		return v4, v6
	}
	if s.v4 != nil {
		v4 = rawFD(s.v4)
	}
	if s.v6 != nil {
		v6 = rawFD(s.v6)
	}
	return v4, v6
}

func rawFD(s *linuxSocket) int {
	fd := -1
	if s.rc.Control(func(f uintptr) { fd = int(f) }) != nil {
		return -1
	}
	return fd
}
