package transport

// Rebind implements Rebinder.
func (b *LinuxBind) Rebind(port uint16) ([]ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.socks.Load()
	if old == nil {
		return nil, 0, errNotOpen
	}
	socks, fns, actual, err := b.openSockets(port)
	if err != nil {
		return nil, 0, err
	}
	b.gsoBroken.Store(false)
	b.socks.Store(socks)
	for _, s := range []*linuxSocket{old.v4, old.v6} {
		if s != nil {
			s.conn.Close()
		}
	}
	return fns, actual, nil
}
