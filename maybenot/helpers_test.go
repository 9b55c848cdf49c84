package maybenot

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"testing"
	"time"
)

var testStart = time.Unix(1_700_000_000, 0)

// compressForTest wraps raw bytes in the machine string envelope.
func compressForTest(t testing.TB, raw []byte) string {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&buf, zlib.BestCompression)
	zw.Write(raw)
	zw.Close()
	return "02" + base64.StdEncoding.EncodeToString(buf.Bytes())
}

// synthetic returns machine i of machines-synthetic.txt.
func synthetic(t testing.TB, i int) Machine {
	t.Helper()
	lines := readMachineFile(t, "machines-synthetic.txt")
	m, err := ParseMachine(lines[i].s)
	if err != nil {
		t.Fatal(err)
	}
	return *m
}
