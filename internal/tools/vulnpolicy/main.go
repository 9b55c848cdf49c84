// Command vulnpolicy reads `govulncheck -format json` on stdin and applies
// the project's policy to its findings:
//
//   - a vulnerability reachable from our code in any module other than
//     the standard library fails the check (exit status 1): we can and
//     must move to a fixed version of that module;
//   - a reachable vulnerability in the standard library is listed with
//     the Go release that fixes it, and fails the check only with
//     -strict-stdlib: the standard library comes with the Go toolchain
//     the binary is built with, which the builder chooses, not go.mod.
//
// Findings that are imported but not reachable (package or module
// level) are counted and not listed, as govulncheck's text mode does.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

func main() {
	strict := flag.Bool("strict-stdlib", false, "fail on reachable standard-library vulnerabilities too")
	flag.Parse()
	rep, err := read(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulnpolicy:", err)
		os.Exit(2)
	}
	rep.print(os.Stdout)
	if rep.fails(*strict) {
		os.Exit(1)
	}
}

// message is one JSON object of govulncheck's output stream.
type message struct {
	Config *struct {
		GoVersion string `json:"go_version"`
		DB        string `json:"db"`
		DBLast    string `json:"db_last_modified"`
	} `json:"config"`
	OSV *struct {
		ID      string `json:"id"`
		Summary string `json:"summary"`
	} `json:"osv"`
	Finding *struct {
		OSV          string  `json:"osv"`
		FixedVersion string  `json:"fixed_version"`
		Trace        []frame `json:"trace"`
	} `json:"finding"`
}

type frame struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Package  string `json:"package"`
	Function string `json:"function"`
	Receiver string `json:"receiver"`
}

// vuln is one reachable vulnerability with the symbols that reach it.
type vuln struct {
	id, summary, module, version, fixed string
	symbols                             map[string]bool
}

// maxSymbols is how many reaching symbols a listed vulnerability shows.
const maxSymbols = 4

type report struct {
	goVersion, db string
	reachable     map[string]*vuln
	imported      map[string]bool // not reachable: package or module level only
}

func read(r io.Reader) (*report, error) {
	rep := &report{reachable: map[string]*vuln{}, imported: map[string]bool{}}
	summaries := map[string]string{}
	dec := json.NewDecoder(r)
	sawConfig := false
	for {
		var m message
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading govulncheck JSON: %w", err)
		}
		switch {
		case m.Config != nil:
			sawConfig = true
			rep.goVersion = m.Config.GoVersion
			rep.db = strings.TrimSpace(m.Config.DB + " " + m.Config.DBLast)
		case m.OSV != nil:
			summaries[m.OSV.ID] = m.OSV.Summary
		case m.Finding != nil:
			f := m.Finding
			if len(f.Trace) == 0 {
				return nil, fmt.Errorf("finding %s has no trace", f.OSV)
			}
			top := f.Trace[0]
			if top.Function == "" {
				rep.imported[f.OSV] = true
				continue
			}
			v := rep.reachable[f.OSV]
			if v == nil {
				v = &vuln{id: f.OSV, module: top.Module, version: top.Version, fixed: f.FixedVersion, symbols: map[string]bool{}}
				rep.reachable[f.OSV] = v
			}
			sym := top.Package + "." + top.Function
			if top.Receiver != "" {
				sym = top.Package + "." + strings.TrimPrefix(top.Receiver, "*") + "." + top.Function
			}
			v.symbols[sym] = true
		}
	}
	if !sawConfig {
		return nil, errors.New("no config message: is this govulncheck -format json output?")
	}
	for id, v := range rep.reachable {
		v.summary = summaries[id]
		delete(rep.imported, id)
	}
	return rep, nil
}

func (r *report) sorted() []*vuln {
	vs := make([]*vuln, 0, len(r.reachable))
	for _, v := range r.reachable {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].id < vs[j].id })
	return vs
}

func (r *report) fails(strict bool) bool {
	for _, v := range r.reachable {
		if v.module != "stdlib" || strict {
			return true
		}
	}
	return false
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "govulncheck: %s, database %s\n", r.goVersion, r.db)
	var mods, std int
	for _, v := range r.sorted() {
		syms := make([]string, 0, len(v.symbols))
		for s := range v.symbols {
			syms = append(syms, s)
		}
		sort.Strings(syms)
		kind := "FAIL module"
		if v.module == "stdlib" {
			kind = "toolchain"
			std++
		} else {
			mods++
		}
		fixed := v.fixed
		if fixed == "" {
			fixed = "no fixed version"
		}
		more := ""
		if len(syms) > maxSymbols {
			more = fmt.Sprintf(" and %d more", len(syms)-maxSymbols)
			syms = syms[:maxSymbols]
		}
		fmt.Fprintf(w, "%s %s %s@%s, fixed in %s: %s\n    reached through %s%s\n",
			kind, v.id, v.module, v.version, fixed, v.summary, strings.Join(syms, ", "), more)
	}
	fmt.Fprintf(w, "reachable: %d in modules (fail), %d in the standard library of %s (build releases with the Go that fixes them); imported but not reachable: %d\n",
		mods, std, r.goVersion, len(r.imported))
}
