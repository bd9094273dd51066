package engine

import (
	"reflect"
	"testing"
)

func TestParseProbe(t *testing.T) {
	out := "Python 3.11.2 (main, Mar 13 2023, 12:18:29) [GCC 12.2.0]\n@@snapbuild@@\n" +
		`[{"name": "pip", "version": "23.0.1"}, {"name": "wheel", "version": "0.38.4"}]` + "\n@@snapbuild@@\nglibc 2.36\n"
	var m Metadata
	parseProbe(out, &m)
	want := Metadata{
		PythonVersionInfo: "Python 3.11.2 (main, Mar 13 2023, 12:18:29) [GCC 12.2.0]",
		PythonPackages:    map[string]string{"pip": "23.0.1", "wheel": "0.38.4"},
		LibcVersionInfo:   "glibc 2.36",
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("parseProbe = %+v\nwant %+v", m, want)
	}
	// No python, musl-style ldd line.
	m = Metadata{}
	parseProbe("@@snapbuild@@\n@@snapbuild@@\nldd (GNU libc) 2.31\n", &m)
	if m.PythonVersionInfo != "" || m.PythonPackages != nil || m.LibcVersionInfo != "glibc 2.31" {
		t.Errorf("no python: %+v", m)
	}
	m = Metadata{}
	parseProbe("garbage", &m)
	if !reflect.DeepEqual(m, Metadata{}) {
		t.Errorf("garbage: %+v", m)
	}
}
