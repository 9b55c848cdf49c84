package uapi

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
)

// Serve accepts connections on l and answers the transactions on each, as
// many as a client sends, until l is closed. Transactions of all
// connections are handled one at a time, so a get always sees a whole set.
// When l is closed Serve closes the open connections, waits for their
// handlers to finish and returns nil; another Accept failure is returned.
// A nil log discards.
func Serve(l net.Listener, dev Configurable, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{dev: dev, log: log, conns: make(map[net.Conn]struct{})}
	defer s.closeAll()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		if !s.track(c) {
			c.Close()
			return nil
		}
		s.wg.Add(1)
		go s.serveConn(c)
	}
}

type server struct {
	dev Configurable
	log *slog.Logger
	tx  sync.Mutex // one transaction at a time

	mu     sync.Mutex // guards conns and closed
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func (s *server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *server) closeAll() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// serveConn answers transactions on c until the client closes it or sends
// something that is not a transaction.
func (s *server) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer s.untrack(c)
	defer c.Close()
	serveTransactions(c, s.dev, s.log, &s.tx)
}

// serveTransactions answers the transactions read from rw until it is
// closed or sends an unknown operation. It does not close rw. If tx is not
// nil it is held during each transaction.
func serveTransactions(rw io.ReadWriter, dev Configurable, log *slog.Logger, tx sync.Locker) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	br := bufio.NewReader(rw)
	bw := bufio.NewWriter(rw)
	var buf []byte
	for {
		op, tooLong, err := readLine(br, buf[:0])
		buf = op[:0]
		if err != nil {
			if err != io.EOF || len(op) > 0 {
				log.Debug("uapi: connection ended", "err", err)
			}
			return
		}
		if tooLong {
			log.Error("uapi: operation line too long; closing connection")
			return
		}
		switch string(op) {
		case "set=1":
			if !handleSet(br, bw, dev, log, tx) {
				return
			}
		case "get=1":
			if !handleGet(br, bw, dev, log, tx) {
				return
			}
		default:
			log.Error("uapi: unknown operation; closing connection", "op", quotable("", string(op)))
			return
		}
		if err := bw.Flush(); err != nil {
			log.Debug("uapi: writing answer", "err", err)
			return
		}
	}
}

func handleSet(br *bufio.Reader, bw *bufio.Writer, dev Configurable, log *slog.Logger, tx sync.Locker) bool {
	cfg, complete, err := parseSet(br)
	if err == nil && !complete {
		// The client went away mid-transaction: nobody can learn the
		// result, so half a configuration is not applied.
		log.Error("uapi: set transaction cut off before its blank line; nothing applied")
		return false
	}
	if err == nil {
		if tx != nil {
			tx.Lock()
		}
		err = dev.Apply(cfg)
		if tx != nil {
			tx.Unlock()
		}
		if err != nil {
			log.Error("uapi: set: device refused the configuration; nothing changed", "err", err, "errno", int(ErrnoOf(err)))
		}
	} else {
		log.Error("uapi: set: invalid transaction; nothing changed", "err", err, "errno", int(ErrnoOf(err)))
	}
	// wg(8) reads the answer to a set as a negated errno, as wireguard-go
	// writes it.
	writeErrno(bw, -int64(ErrnoOf(err)))
	return complete
}

func handleGet(br *bufio.Reader, bw *bufio.Writer, dev Configurable, log *slog.Logger, tx sync.Locker) bool {
	line, tooLong, err := readLine(br, nil)
	if err != nil && (err != io.EOF || len(line) > 0) {
		return false
	}
	if err == io.EOF {
		return false
	}
	if tooLong || len(line) != 0 {
		log.Error("uapi: get: operation not followed by a blank line")
		// wg(8) reads the answer to a get as a positive errno.
		writeErrno(bw, int64(syscall.EINVAL))
		return true
	}
	if tx != nil {
		tx.Lock()
	}
	st := dev.State()
	if tx != nil {
		tx.Unlock()
	}
	bw.Write(AppendGet(nil, st))
	writeErrno(bw, 0)
	return true
}

func writeErrno(bw *bufio.Writer, n int64) {
	bw.WriteString("errno=")
	bw.WriteString(strconv.FormatInt(n, 10))
	bw.WriteString("\n\n")
}
