package main

// The package index of the apt+pip workload: a PEP 503 "simple" index of
// small pure-Python wheels the bench writes, served on 127.0.0.1, so that
// pip_install needs no network beyond loopback.

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// wheelNames are the projects the index serves, one wheel each.
var wheelNames = []string{"bench-alpha", "bench-beta", "bench-gamma"}

// servePackageIndex writes the wheels and their index under dir, serves
// dir on 127.0.0.1 and returns the index URL (".../simple/") and a function
// that stops the server.
func servePackageIndex(dir string) (url string, stop func(), err error) {
	files := filepath.Join(dir, "files")
	if err := os.MkdirAll(files, 0o755); err != nil {
		return "", nil, err
	}
	for _, name := range wheelNames {
		file, err := writeWheel(files, name, "1.0")
		if err != nil {
			return "", nil, err
		}
		data, err := os.ReadFile(filepath.Join(files, file))
		if err != nil {
			return "", nil, err
		}
		sum := sha256.Sum256(data)
		project := filepath.Join(dir, "simple", name)
		if err := os.MkdirAll(project, 0o755); err != nil {
			return "", nil, err
		}
		page := fmt.Sprintf("<!DOCTYPE html><html><body>\n<a href=\"../../files/%s#sha256=%s\">%s</a>\n</body></html>\n",
			file, hex.EncodeToString(sum[:]), file)
		if err := os.WriteFile(filepath.Join(project, "index.html"), []byte(page), 0o644); err != nil {
			return "", nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("package index: %w", err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String() + "/simple/", func() { srv.Close() }, nil
}

// writeWheel writes a pure-Python wheel of project name (module name with
// "-" as "_") into dir and returns its file name.
func writeWheel(dir, name, version string) (string, error) {
	mod := strings.ReplaceAll(name, "-", "_")
	file := fmt.Sprintf("%s-%s-py3-none-any.whl", mod, version)
	f, err := os.Create(filepath.Join(dir, file))
	if err != nil {
		return "", err
	}
	defer f.Close()
	z := zip.NewWriter(f)
	info := fmt.Sprintf("%s-%s.dist-info", mod, version)
	for _, e := range []struct{ name, content string }{
		{mod + "/__init__.py", fmt.Sprintf("NAME = %q\n", name)},
		{info + "/METADATA", fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", name, version)},
		{info + "/WHEEL", "Wheel-Version: 1.0\nGenerator: snapbuild-bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
		{info + "/RECORD", ""},
		{info + "/top_level.txt", mod + "\n"},
	} {
		w, err := z.Create(e.name)
		if err != nil {
			return "", err
		}
		if _, err := w.Write([]byte(e.content)); err != nil {
			return "", err
		}
	}
	if err := z.Close(); err != nil {
		return "", err
	}
	return file, f.Close()
}
