package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"time"
)

// ServeHTTPProxy serves an HTTP proxy on ln until ln fails or the server
// is closed: CONNECT tunnels and plain requests with an absolute URL.
// A target that refuses or cannot be reached gets 502 Bad Gateway, one
// that does not answer in time 504 Gateway Timeout.
func (s *Server) ServeHTTPProxy(ln net.Listener) error {
	transport := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return s.dial(ctx, network, addr)
		},
		MaxIdleConns:          64,
		IdleConnTimeout:       60 * time.Second,
		ResponseHeaderTimeout: 0,
		ForceAttemptHTTP2:     false,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = pr.In.URL
			pr.Out.Host = pr.In.Host
		},
		Transport:     transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Info("http: request failed", "client", r.RemoteAddr, "url", r.URL.Redacted(), "err", err)
			httpError(w, err)
		},
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodConnect {
				s.httpConnect(w, r)
				return
			}
			if r.URL.Scheme != "http" || r.URL.Host == "" {
				http.Error(w, "this is a proxy: requests need an absolute http:// URL (use CONNECT for https)", http.StatusBadRequest)
				return
			}
			rp.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: handshakeTimeout,
		ErrorLog:          nil,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
	}
	if !s.track(srv) {
		return ErrServerClosed
	}
	defer s.untrack(srv)
	defer transport.CloseIdleConnections()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return ErrServerClosed
	}
	return err
}

func httpError(w http.ResponseWriter, err error) {
	code := http.StatusBadGateway
	if isTimeout(err) {
		code = http.StatusGatewayTimeout
	}
	http.Error(w, fmt.Sprintf("%d %s: %v", code, http.StatusText(code), err), code)
}

func (s *Server) httpConnect(w http.ResponseWriter, r *http.Request) {
	if _, _, err := net.SplitHostPort(r.Host); err != nil {
		http.Error(w, "CONNECT needs host:port", http.StatusBadRequest)
		return
	}
	t, err := s.dial(r.Context(), "tcp", r.Host)
	if err != nil {
		s.log.Info("http: CONNECT failed", "client", r.RemoteAddr, "target", r.Host, "err", err)
		httpError(w, err)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		t.Close()
		http.Error(w, "cannot take over the connection", http.StatusInternalServerError)
		return
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		t.Close()
		return
	}
	if !s.track(t) {
		c.Close()
		return
	}
	if !s.track(c) {
		s.untrack(t)
		t.Close()
		return
	}
	defer func() {
		s.untrack(c)
		s.untrack(t)
		c.Close()
		t.Close()
	}()
	c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	if err := flushBuffered(brw.Reader, t); err != nil {
		return
	}
	relay(c, t)
}

// flushBuffered writes what the client sent after its request, and the
// server's reader already took, to t.
func flushBuffered(br *bufio.Reader, t net.Conn) error {
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		_, err := t.Write(b)
		return err
	}
	return nil
}
