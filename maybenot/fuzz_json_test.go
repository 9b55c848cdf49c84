package maybenot

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzUnmarshalJSON: no panic on any bytes, in decoding or in validating
// what was decoded (UnmarshalJSON leaves validation to the caller); a
// machine accepted from JSON writes JSON that reads back to the same JSON.
func FuzzUnmarshalJSON(f *testing.F) {
	for _, name := range []string{"machines-public.json", "machines-synthetic.json"} {
		fh, err := os.Open(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec struct {
				Machine json.RawMessage `json:"machine"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && len(rec.Machine) > 0 && string(rec.Machine) != "null" {
				f.Add([]byte(rec.Machine))
			}
		}
		fh.Close()
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"states":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Machine
		if err := m.UnmarshalJSON(b); err != nil {
			return
		}
		_ = m.Validate()
		js, err := m.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var m2 Machine
		if err := m2.UnmarshalJSON(js); err != nil {
			t.Fatalf("own JSON rejected: %v\n%s", err, js)
		}
		if js2, _ := m2.MarshalJSON(); !bytes.Equal(js, js2) {
			t.Fatalf("JSON round trip changed the machine\n%s\n%s", js, js2)
		}
	})
}
