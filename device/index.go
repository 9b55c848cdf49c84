package device

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/gotatun/gotatun/noise"
)

// indexEntry is what a local sender index stands for: a handshake of peer
// in flight, and once the handshake has produced a session, its keypair.
type indexEntry struct {
	peer    *Peer
	keypair atomic.Pointer[noise.Keypair]
}

const indexShards = 256

// indexTable maps the 32-bit sender indices we hand out to their peers and
// keypairs. Lookups, one per received packet, take no lock: each shard is a
// copy-on-write map behind an atomic pointer. Writers (handshakes, expiring
// keypairs) copy one shard, which holds a 256th of the live sessions.
type indexTable struct {
	shards [indexShards]indexShard

	randMu sync.Mutex
	rand   io.Reader
	live   atomic.Int64
}

type indexShard struct {
	mu sync.Mutex // serialises writers of this shard
	m  atomic.Pointer[map[uint32]*indexEntry]
}

// maxIndexTries bounds the retries after a collision; with 32-bit random
// indices a working random source never gets near it.
const maxIndexTries = 64

var errIndexSpace = errors.New("device: cannot find a free sender index (random source broken?)")

func newIndexTable(rand io.Reader) *indexTable {
	return &indexTable{rand: rand}
}

func (t *indexTable) shard(i uint32) *indexShard {
	return &t.shards[i%indexShards]
}

func (t *indexTable) lookup(i uint32) *indexEntry {
	m := t.shard(i).m.Load()
	if m == nil {
		return nil
	}
	return (*m)[i]
}

// add reserves a fresh random index for peer, unique among live entries.
func (t *indexTable) add(peer *Peer) (uint32, *indexEntry, error) {
	e := &indexEntry{peer: peer}
	var b [4]byte
	for range maxIndexTries {
		t.randMu.Lock()
		_, err := io.ReadFull(t.rand, b[:])
		t.randMu.Unlock()
		if err != nil {
			return 0, nil, fmt.Errorf("device: reading random sender index: %w", err)
		}
		i := binary.LittleEndian.Uint32(b[:])
		s := t.shard(i)
		s.mu.Lock()
		old := s.m.Load()
		if old != nil {
			if _, taken := (*old)[i]; taken {
				s.mu.Unlock()
				continue
			}
		}
		n := make(map[uint32]*indexEntry, mapLen(old)+1)
		if old != nil {
			for k, v := range *old {
				n[k] = v
			}
		}
		n[i] = e
		s.m.Store(&n)
		s.mu.Unlock()
		t.live.Add(1)
		return i, e, nil
	}
	return 0, nil, errIndexSpace
}

// remove deletes index i if it still stands for e.
func (t *indexTable) remove(i uint32, e *indexEntry) {
	if e == nil {
		return
	}
	s := t.shard(i)
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.m.Load()
	if old == nil || (*old)[i] != e {
		return
	}
	n := make(map[uint32]*indexEntry, len(*old))
	for k, v := range *old {
		if k != i {
			n[k] = v
		}
	}
	if len(n) == 0 {
		s.m.Store(nil)
	} else {
		s.m.Store(&n)
	}
	t.live.Add(-1)
}

// len returns the number of live indices.
func (t *indexTable) len() int { return int(t.live.Load()) }

func mapLen(m *map[uint32]*indexEntry) int {
	if m == nil {
		return 0
	}
	return len(*m)
}
