package noise

const (
	replayBlockBits = 64
	// replayBlocks is the ring size in 64-bit blocks. The counters within
	// the window (max-ReplayWindow, max] span at most ReplayWindow/64+1
	// blocks, so with that many no two of them share a ring slot.
	replayBlocks = ReplayWindow/replayBlockBits + 1
)

// ReplayFilter remembers which transport counters have been received, over
// a sliding window of ReplayWindow counters below the highest one seen, as
// a ring of 64-bit blocks. A counter is accepted once, if it is below
// RejectAfterMessages and greater than max-ReplayWindow, where max is the
// highest counter accepted so far. The zero value is ready to use; it is
// not safe for concurrent use (Keypair.AcceptCounter locks it).
type ReplayFilter struct {
	// top is the highest accepted counter plus one; 0 if none yet.
	top  uint64
	ring [replayBlocks]uint64
}

// Reset forgets every counter.
func (f *ReplayFilter) Reset() {
	*f = ReplayFilter{}
}

// Accept reports whether counter is new and within the window, and records
// it if so.
func (f *ReplayFilter) Accept(counter uint64) bool {
	if counter >= RejectAfterMessages {
		return false
	}
	block := counter / replayBlockBits
	if counter >= f.top {
		if f.top > 0 {
			// Clear the blocks that the window slides over. Blocks are
			// identified by absolute index; the ring slot is the index
			// modulo replayBlocks.
			last := (f.top - 1) / replayBlockBits
			n := block - last
			if n > replayBlocks {
				n = replayBlocks
			}
			for i := uint64(1); i <= n; i++ {
				f.ring[(last+i)%replayBlocks] = 0
			}
		}
		f.top = counter + 1
	} else if f.top-counter > ReplayWindow {
		return false
	}
	slot := &f.ring[block%replayBlocks]
	bit := uint64(1) << (counter % replayBlockBits)
	if *slot&bit != 0 {
		return false
	}
	*slot |= bit
	return true
}
