//go:build linux

package main

/*
#include <stdint.h>
#include <stdlib.h>
typedef void (*gotatun_log_fn)(int32_t level, const char *msg, void *ctx);
static void gotatun_call_logger(void *fn, int32_t level, const char *msg, void *ctx) {
	((gotatun_log_fn)fn)(level, msg, ctx);
}
*/
import "C"

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"unsafe"
)

// Log levels of gotatun.h: Android's log priorities.
const (
	logDebug = 3
	logInfo  = 4
	logWarn  = 5
	logError = 6
)

// cLogger is the C function logs go to, with its context pointer.
type cLogger struct {
	fn, ctx unsafe.Pointer
}

var logger atomic.Pointer[cLogger]

func setLogger(fn, ctx unsafe.Pointer) {
	if fn == nil {
		logger.Store(nil)
		return
	}
	logger.Store(&cLogger{fn: fn, ctx: ctx})
}

// logHandler formats records as "message key=value ..." and hands them to
// the C logger set at the time.
type logHandler struct {
	attrs  string // pre-formatted " key=value" pairs
	prefix string // group prefix for keys
}

func (logHandler) Enabled(context.Context, slog.Level) bool { return logger.Load() != nil }

func (h logHandler) Handle(_ context.Context, r slog.Record) error {
	l := logger.Load()
	if l == nil {
		return nil
	}
	var b strings.Builder
	b.WriteString(r.Message)
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		appendAttr(&b, h.prefix, a)
		return true
	})
	level := logDebug
	switch {
	case r.Level >= slog.LevelError:
		level = logError
	case r.Level >= slog.LevelWarn:
		level = logWarn
	case r.Level >= slog.LevelInfo:
		level = logInfo
	}
	msg := C.CString(b.String())
	defer C.free(unsafe.Pointer(msg))
	C.gotatun_call_logger(l.fn, C.int32_t(level), msg, l.ctx)
	return nil
}

func appendAttr(b *strings.Builder, prefix string, a slog.Attr) {
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			appendAttr(b, prefix+a.Key+".", g)
		}
		return
	}
	fmt.Fprintf(b, " %s%s=%v", prefix, a.Key, a.Value.Resolve())
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range attrs {
		appendAttr(&b, h.prefix, a)
	}
	h.attrs = b.String()
	return h
}

func (h logHandler) WithGroup(name string) slog.Handler {
	if name != "" {
		h.prefix += name + "."
	}
	return h
}
