package oci

import (
	"archive/tar"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestWriteLayerReferenceDecoder writes a layer larger than the encoder's
// window and many blocks long, and checks that the reference zstd decoder
// (the zstd command, which podman, containerd and BuildKit do not use but
// which any consumer may) gives back the tar, and that the frame asks for
// the pinned 4 MiB window, not more.
func TestWriteLayerReferenceDecoder(t *testing.T) {
	zstdCmd, err := exec.LookPath("zstd")
	if err != nil {
		t.Skip("the zstd command is not installed (Debian package zstd)")
	}
	// 12 MiB of text with repeats near and far: matches within and beyond
	// the window.
	r := rand.New(rand.NewPCG(1, 2))
	words := make([]string, 4096)
	for i := range words {
		words[i] = fmt.Sprintf("w%x", r.Uint64())
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for f := range 12 {
		var sb strings.Builder
		for sb.Len() < 1<<20 {
			sb.WriteString(words[r.IntN(len(words))])
			sb.WriteByte(' ')
		}
		h := &tar.Header{Name: fmt.Sprintf("data/f%02d", f), Mode: 0o644, Size: int64(sb.Len()), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(sb.String())); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()

	s := newTestStore(t)
	l := writeLayer(t, s, data)
	blob, err := s.ReadBlob(l.Descriptor.Digest)
	if err != nil {
		t.Fatal(err)
	}
	var h zstd.Header
	if err := h.Decode(blob); err != nil {
		t.Fatal(err)
	}
	if h.WindowSize != 4<<20 {
		t.Errorf("frame window = %d bytes, want %d", h.WindowSize, 4<<20)
	}
	if !h.HasCheckSum {
		t.Error("frame has no checksum")
	}
	cmd := exec.Command(zstdCmd, "-d", "-c", "-q")
	cmd.Stdin = bytes.NewReader(blob)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("zstd -d: %v: %s", err, stderr.String())
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("zstd -d gave %d bytes that differ from the %d-byte tar", len(out), len(data))
	}
	if len(blob) >= len(data)/2 {
		t.Errorf("blob is %d bytes for a %d-byte tar of repeated words: compression is off", len(blob), len(data))
	}
}
