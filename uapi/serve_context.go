package uapi

import (
	"context"
	"log/slog"
	"net"
)

// ServeContext is Serve until ctx is done: then it closes l, waits for the
// open connections' handlers and returns ctx's error. It closes l on any
// return.
func ServeContext(ctx context.Context, l net.Listener, dev Configurable, log *slog.Logger) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	err := Serve(l, dev, log)
	l.Close()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
