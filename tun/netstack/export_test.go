package netstack

import (
	"fmt"
	"strings"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// TCPSenders describes the sender of each established TCP connection of
// the stack (congestion window, slow-start threshold, RTT, RTO), for the
// diagnostics of tests that find a transfer stalled.
func TCPSenders(s *Stack) string {
	var b strings.Builder
	for _, ep := range s.stack.RegisteredEndpoints() {
		te, ok := ep.(*tcp.Endpoint)
		if !ok {
			continue
		}
		var info tcpip.TCPInfoOption
		if err := te.GetSockOpt(&info); err != nil || info.State != tcpip.EndpointState(tcp.StateEstablished) {
			continue
		}
		fmt.Fprintf(&b, "[cwnd %d, ssthresh %d, srtt %v, rto %v] ", info.SndCwnd, info.SndSsthresh, info.RTT, info.RTO)
	}
	st := s.stack.Stats().TCP
	fmt.Fprintf(&b, "segments sent %d, retransmits %d, timeouts %d", st.SegmentsSent.Value(), st.Retransmits.Value(), st.Timeouts.Value())
	return b.String()
}
