package transport

import "errors"

// Rebinder is a Bind that can move to another port atomically, as the
// kernel's WireGuard does: Rebind opens the sockets of the new port while
// the old ones stay open, and only once that worked closes the old ones
// (their ReceiveFuncs then return ErrClosed) and returns the new
// ReceiveFuncs. If it fails, the Bind is as it was: same port, same
// sockets, the old ReceiveFuncs still working.
type Rebinder interface {
	Rebind(port uint16) (fns []ReceiveFunc, actualPort uint16, err error)
}

var errNotOpen = errors.New("transport: bind not open")

// Rebind implements Rebinder.
func (b *stdBind) Rebind(port uint16) ([]ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.v4 == nil && b.v6 == nil {
		return nil, 0, errNotOpen
	}
	v4, v6, actual, err := bindPair(listenStd, port)
	if err != nil {
		return nil, 0, err
	}
	old4, old6 := b.v4, b.v6
	b.v4, b.v6 = v4, v6
	if old4 != nil {
		old4.Close()
	}
	if old6 != nil {
		old6.Close()
	}
	return stdReceivers(v4, v6), actual, nil
}

// Rebind implements Rebinder.
func (b *memBind) Rebind(port uint16) ([]ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.queue == nil {
		return nil, 0, errNotOpen
	}
	b.net.mu.Lock()
	defer b.net.mu.Unlock()
	port, err := b.freePortLocked(port)
	if err != nil {
		return nil, 0, err
	}
	delete(b.net.binds, b.local)
	close(b.done)
	return []ReceiveFunc{b.startLocked(port)}, port, nil
}
