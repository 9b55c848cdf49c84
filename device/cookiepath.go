package device

import (
	"sync"
	"time"

	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
)

// The receive goroutines check handshake messages before they queue them
// (whitepaper section 5.3, wireguard-go's under-load behaviour): a bad mac1
// is dropped at once; under load a message without a valid mac2 is
// answered with a cookie reply right there, batched with the other replies
// of the same read, and never queued; one with a valid mac2 passes the
// per-source rate limiter and is queued. So while under load the handshake
// queue only holds messages from sources that proved they receive at their
// address, and a flood of spoofed initiations cannot crowd out a peer that
// answered its cookie.
//
// Cookie replies have the same per-source limit as the messages that
// carry their cookie back (a source gets no more handshakes processed than
// that, so more replies would be wasted), and a device-wide budget over
// that. A flood from a few addresses then gets a few replies each and
// leaves the budget to everyone else: a legitimate initiator is answered
// at its first attempt, not when it wins a draw against the flood.

const (
	// cookieReplyRate is the most cookie replies per second the device
	// sends, and cookieReplyBurst how many it may send at once after a
	// quiet spell. A reply costs the device 0.8 to 1.6 µs of CPU on a
	// busy 2-core Xeon VM (mac1 check, the cookie MAC, XChaCha20-Poly1305
	// of 16 bytes; BenchmarkCookieReplyBatch), so 100,000 replies a second
	// is at most a sixth of a core, the kernel's receive and send work
	// aside. A legitimate initiator's chance of being answered
	// is this rate over the flood's, so the budget is as high as the CPU
	// bound allows rather than tight.
	cookieReplyRate  = 100_000
	cookieReplyBurst = 2048
)

// replyBudget is a device-wide token bucket for cookie replies, shared by
// the receive goroutines.
type replyBudget struct {
	mu     sync.Mutex
	tokens int64 // in nanoseconds of credit, at most cookieReplyBurst replies' worth
	last   int64 // unix nanoseconds of the last refill
}

const replyCost = int64(time.Second) / cookieReplyRate

// take reports whether a cookie reply may be sent at now, and charges it.
func (b *replyBudget) take(now time.Time) bool {
	t := now.UnixNano()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last == 0 {
		b.tokens, b.last = cookieReplyBurst*replyCost, t
	}
	if elapsed := t - b.last; elapsed > 0 {
		b.tokens = min(b.tokens+elapsed, cookieReplyBurst*replyCost)
		b.last = t
	}
	if b.tokens < replyCost {
		return false
	}
	b.tokens -= replyCost
	return true
}

// cookieReplies are the cookie replies of one read, sent together.
type cookieReplies struct {
	bufs [][noise.MessageCookieReplySize]byte
	out  [][]byte
	eps  []transport.Endpoint
}

func newCookieReplies(n int) cookieReplies {
	return cookieReplies{
		bufs: make([][noise.MessageCookieReplySize]byte, n),
		out:  make([][]byte, 0, n),
		eps:  make([]transport.Endpoint, 0, n),
	}
}

// admitHandshake decides whether an initiation or response of the right
// size may go to the handshake queue: mac1 first, then under load mac2 and
// the per-source limit. A message under load without a valid mac2 gets a
// cookie reply, sent by flushCookies.
func (r *receiver) admitHandshake(msg []byte, ep transport.Endpoint, now time.Time) bool {
	d := r.d
	id := d.ident.Load()
	if id == nil {
		return false
	}
	if !id.checker.CheckMAC1(msg) {
		d.stats.badMAC.Add(1)
		return false
	}
	if !d.underLoad(now) {
		return true
	}
	if id.checker.CheckMAC2(msg, ep.Dst, now) {
		if !d.limiter.Allow(ep.Dst.Addr()) {
			d.stats.rateLimited.Add(1)
			return false
		}
		return true
	}
	if !d.replyLimiter.Allow(ep.Dst.Addr()) || !d.replies.take(now) {
		d.stats.cookiesDropped.Add(1)
		return false
	}
	c := &r.cookies
	buf := &c.bufs[len(c.out)]
	if err := id.checker.WriteReply(buf, msg, ep.Dst, now); err != nil {
		d.log.Debug("creating cookie reply", "err", err)
		return false
	}
	c.out = append(c.out, buf[:])
	c.eps = append(c.eps, ep)
	return false
}

// flushCookies sends the cookie replies of this read: in one call where
// the Bind can send to several endpoints at once, else one by one.
func (r *receiver) flushCookies() {
	c := &r.cookies
	if len(c.out) == 0 {
		return
	}
	d := r.d
	if ms, ok := d.bind.(transport.MultiSender); ok {
		if err := ms.SendTo(c.out, c.eps); err != nil {
			d.log.Debug("sending cookie replies", "err", err)
		} else {
			d.stats.cookiesSent.Add(uint64(len(c.out)))
		}
	} else {
		for i := range c.out {
			r.one[0] = c.out[i]
			if err := d.send(r.one[:], c.eps[i]); err != nil {
				d.log.Debug("sending cookie reply", "err", err)
				continue
			}
			d.stats.cookiesSent.Add(1)
		}
		r.one[0] = nil
	}
	clear(c.eps)
	c.out, c.eps = c.out[:0], c.eps[:0]
}

// consumeCookieReply takes a cookie reply for one of our handshake
// messages, in the receive goroutine: it costs one decryption, and only
// for a known index.
func (d *Device) consumeCookieReply(msg []byte, now time.Time) {
	var rep noise.MessageCookieReply
	if rep.Unmarshal(msg) != nil {
		d.stats.badInbound.Add(1)
		return
	}
	e := d.indices.lookup(rep.Receiver)
	if e == nil {
		d.stats.unknownIndex.Add(1)
		return
	}
	if err := e.peer.cookie.ConsumeReply(&rep, now); err != nil {
		d.log.Debug("bad cookie reply", "peer", e.peer.short(), "err", err)
		return
	}
	d.stats.cookiesReceived.Add(1)
}
