package netstack

import (
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

func FuzzParseAnswer(f *testing.F) {
	name := dnsmessage.MustNewName("a.test.")
	q := dnsmessage.Question{Name: name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, Response: true})
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	b.AResource(dnsmessage.ResourceHeader{Name: name, Class: dnsmessage.ClassINET}, dnsmessage.AResource{A: [4]byte{1, 2, 3, 4}})
	msg, _ := b.Finish()
	f.Add(msg)
	f.Fuzz(func(t *testing.T, resp []byte) {
		addrs, truncated, err := parseAnswer(resp, 7, q)
		if err == nil && !truncated && len(addrs) == 0 {
			t.Fatal("success without addresses")
		}
	})
}

func TestParseAnswer(t *testing.T) {
	name := dnsmessage.MustNewName("a.test.")
	q := dnsmessage.Question{Name: name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}
	build := func(h dnsmessage.Header, q dnsmessage.Question) []byte {
		b := dnsmessage.NewBuilder(nil, h)
		b.StartQuestions()
		b.Question(q)
		b.StartAnswers()
		b.CNAMEResource(dnsmessage.ResourceHeader{Name: name, Class: dnsmessage.ClassINET}, dnsmessage.CNAMEResource{CNAME: name})
		b.AResource(dnsmessage.ResourceHeader{Name: name, Class: dnsmessage.ClassINET}, dnsmessage.AResource{A: [4]byte{1, 2, 3, 4}})
		msg, _ := b.Finish()
		return msg
	}
	addrs, _, err := parseAnswer(build(dnsmessage.Header{ID: 7, Response: true}, q), 7, q)
	if err != nil || len(addrs) != 1 || addrs[0].String() != "1.2.3.4" {
		t.Errorf("%v %v", addrs, err)
	}
	if _, _, err := parseAnswer(build(dnsmessage.Header{ID: 8, Response: true}, q), 7, q); err == nil {
		t.Error("wrong ID accepted")
	}
	other := q
	other.Type = dnsmessage.TypeAAAA
	if _, _, err := parseAnswer(build(dnsmessage.Header{ID: 7, Response: true}, other), 7, q); err == nil {
		t.Error("answer to another question accepted")
	}
	if _, tr, _ := parseAnswer(build(dnsmessage.Header{ID: 7, Response: true, Truncated: true}, q), 7, q); !tr {
		t.Error("truncation not reported")
	}
	if _, _, err := parseAnswer(build(dnsmessage.Header{ID: 7, Response: true, RCode: dnsmessage.RCodeNameError}, q), 7, q); err != errNXDomain {
		t.Errorf("NXDOMAIN: %v", err)
	}
}

func TestIPPacket(t *testing.T) {
	v4 := make([]byte, 40)
	v4[0] = 0x45
	v4[3] = 28 // total length 28: 12 bytes of padding follow
	if p, proto := ipPacket(v4); len(p) != 28 || proto != 0x0800 {
		t.Errorf("padded IPv4: %d bytes, proto %#x", len(p), proto)
	}
	v4[3] = 41
	if _, proto := ipPacket(v4); proto != 0 {
		t.Error("IPv4 longer than its buffer accepted")
	}
	v4[0], v4[3] = 0x46, 20 // header of 24 bytes in a packet of 20
	if _, proto := ipPacket(v4); proto != 0 {
		t.Error("IPv4 shorter than its header accepted")
	}
	v6 := make([]byte, 60)
	v6[0] = 0x60
	v6[5] = 8
	if p, proto := ipPacket(v6); len(p) != 48 || proto != 0x86dd {
		t.Errorf("IPv6: %d bytes, proto %#x", len(p), proto)
	}
	v6[5] = 21
	if _, proto := ipPacket(v6); proto != 0 {
		t.Error("IPv6 longer than its buffer accepted")
	}
	for _, b := range [][]byte{nil, {0x45}, {0x60, 0}, {0x10, 0, 0, 0}} {
		if _, proto := ipPacket(b); proto != 0 {
			t.Errorf("%x accepted", b)
		}
	}
}
