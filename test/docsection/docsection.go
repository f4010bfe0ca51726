// Package docsection rewrites one generated section of a Markdown file (between
// <!-- NAME:begin --> and <!-- NAME:end -->), so that benchmark programs can keep
// docs/benchmarks.md current without touching the prose around their figures.
package docsection

import (
	"bytes"
	"os"
)

// Replace puts body in the section called name of the file at path, appending the
// section when the file has none.
func Replace(path, name, body string) error {
	markBegin, markEnd := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
	section := markBegin + "\n" + body + markEnd + "\n"
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	var out []byte
	if i, j := bytes.Index(old, []byte(markBegin)), bytes.Index(old, []byte(markEnd)); i >= 0 && j > i {
		out = append(append(append([]byte{}, old[:i]...), section...), old[j+len(markEnd)+1:]...)
	} else {
		out = append(append(old, '\n'), section...)
	}
	return os.WriteFile(path, out, 0o644)
}

// Get returns the body of the section called name, or false.
func Get(doc []byte, name string) ([]byte, bool) {
	markBegin, markEnd := []byte("<!-- "+name+":begin -->\n"), []byte("<!-- "+name+":end -->")
	i, j := bytes.Index(doc, markBegin), bytes.Index(doc, markEnd)
	if i < 0 || j < i {
		return nil, false
	}
	return doc[i+len(markBegin) : j], true
}
